/**
 * The dashboard's static files (src/ops/dashboard/: HTML, plain JS modules,
 * CSS), served on the admin port at `/` and `/dashboard/…`. They ship with the
 * package as they are (the build copies them beside the compiled modules), so
 * there is no build step to run, and they are found relative to this module,
 * never to the working directory. Only the listed files are served.
 */
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendProblem } from '../../gateway/problem-response.ts';

const DIR = new URL('../dashboard/', import.meta.url);

const FILES: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'api.js': 'text/javascript; charset=utf-8',
  'charts.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
};

/** Answers `/` and `/dashboard/<file>`; false for any other path. */
export function serveDashboard(req: IncomingMessage, res: ServerResponse, path: string): boolean {
  const name =
    path === '/'
      ? 'index.html'
      : path.startsWith('/dashboard/')
        ? path.slice('/dashboard/'.length)
        : undefined;
  if (name === undefined) return false;
  const type = FILES[name];
  if (type === undefined) {
    sendProblem(
      res,
      'not-found',
      `The dashboard has no file ${JSON.stringify(name)}. Open / on the admin port.`,
    );
    return true;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    sendProblem(res, 'method-not-allowed', `${req.method} is not supported here; use GET.`, {
      allow: 'GET, HEAD',
    });
    return true;
  }
  const body = readFileSync(new URL(name, DIR));
  res.writeHead(200, {
    'content-type': type,
    'content-length': body.length,
    'cache-control': 'no-cache',
    // The page runs only its own scripts and talks only to this port.
    'content-security-policy':
      "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
    'x-content-type-options': 'nosniff',
  });
  res.end(req.method === 'HEAD' ? undefined : body);
  return true;
}
