/**
 * A child process for crash tests of Spillway embedded in an app: the app's
 * handler is the in-process upstream of createSpillway, and the app listens
 * on loopback with `spillway.handle`. The handler's effects are appended to a
 * file (one line per effect), which outlives a kill -9 of the process, so the
 * test counts how often each request really took effect.
 *
 * It also defines the function `charge` (spillway.define), called by
 * `POST /charge` with the request body as input, which refuses
 * (NotProcessedError) or takes effect (appends to the same file) as `handler` says.
 *
 * argv[2] is a JSON file: { store, config, effects, handler: 'refuse' | 'effect' }.
 * Prints one JSON line {"msg":"listening","port":N} once it serves.
 */
import { appendFileSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createSpillway } from '../../src/embed/create-spillway.ts';
import { NotProcessedError } from '../../src/embed/functions.ts';
import { createLogger } from '../../src/ops/logger.ts';

interface AppConfig {
  store: string;
  config: Record<string, unknown>;
  effects: string;
  handler: 'refuse' | 'effect';
}

const app = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as AppConfig;

async function handler(request: Request): Promise<Response> {
  const body = await request.text();
  if (app.handler === 'refuse') return new Response('not now', { status: 503 });
  appendFileSync(app.effects, `${body}\n`);
  return Response.json({ done: body }, { status: 201 });
}

const spillway = createSpillway({
  upstream: handler,
  store: app.store,
  config: app.config,
  logger: createLogger('warn'),
});
const charge = spillway.define('charge', async (input: { marker: string }) => {
  if (app.handler === 'refuse') throw new NotProcessedError('not now');
  appendFileSync(app.effects, `${input.marker}\n`);
  return { charged: input.marker };
});
await spillway.ready();
const server = createServer((req, res) => {
  if (req.url !== '/charge') return spillway.handle(req, res);
  let body = '';
  req.on('data', (chunk) => {
    body += chunk;
  });
  req.on('end', () => {
    charge.call({ marker: body }).then(
      (outcome) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(outcome)),
      (error: Error) => res.writeHead(503).end(error.message),
    );
  });
});
server.listen(0, '127.0.0.1', () => {
  console.log(JSON.stringify({ msg: 'listening', port: (server.address() as AddressInfo).port }));
});
process.once('SIGTERM', () => {
  server.close();
  server.closeAllConnections();
  void spillway.close().then(() => process.exit(0));
});
