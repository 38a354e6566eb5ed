/**
 * Writing problem+json answers (RFC 9457). Every error Spillway produces goes
 * out through here, so none escapes as plain text.
 */
import type { ServerResponse } from 'node:http';
import { type ErrorCode, problem } from '../errors.ts';

export function sendProblem(
  res: ServerResponse,
  code: ErrorCode,
  detail: string,
  headers: Record<string, string | number> = {},
  extensions: Record<string, unknown> = {},
): void {
  const doc = problem(code, detail, extensions);
  const body = JSON.stringify(doc);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(doc.status, {
    ...headers,
    'content-type': 'application/problem+json',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(body);
}
