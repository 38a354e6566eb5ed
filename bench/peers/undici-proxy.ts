/**
 * Peer child process: the plainest reverse proxy Node offers, the baseline a
 * gateway's sync path is held against. A `node:http` server that streams each
 * request to the upstream through one undici `Pool` (128 connections, as
 * Spillway's upstream pool) and the answer back (`Pool.stream`), dropping hop-by-hop
 * headers (RFC 9110 §7.6.1) and adding Via, nothing else: no limits, no
 * budgets, no health.
 *
 *   node bench/peers/undici-proxy.ts --upstream URL [--load-spillway]
 *
 * `--load-spillway` also starts a Spillway gateway in this process, on the
 * same upstream, on its own port, which nothing calls (SQLite store in a
 * temporary directory; bench/sync-cost.ts `--loaded-peer`): the same proxy in
 * a process that carries and runs what a gateway's process does, apart from
 * Spillway's request path.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { type Dispatcher, Pool } from 'undici';

const { values } = parseArgs({
  options: { upstream: { type: 'string' }, 'load-spillway': { type: 'boolean', default: false } },
});
const beside = values['load-spillway'] ? await idleGateway(values.upstream!) : undefined;
const pool = new Pool(values.upstream!, { connections: 128 });
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'host',
]);

const forwardable = (headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>) => {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
  }
  return out;
};

const server = createServer((req, res) => {
  const hasBody =
    req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
  // `stream` writes the answer's body straight into `res`: no intermediate Readable, the cheapest undici offers.
  pool
    .stream(
      {
        method: req.method as Dispatcher.HttpMethod,
        path: req.url!,
        headers: { ...forwardable(req.headers), via: '1.1 undici-proxy' },
        body: hasBody ? req : null,
      },
      ({ statusCode, headers }) => {
        res.writeHead(statusCode, forwardable(headers));
        return res;
      },
    )
    .catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`bad gateway: ${(error as Error).message}`);
    });
});
server.keepAliveTimeout = 60_000;

server.listen(0, '127.0.0.1', () => {
  process.send?.({ ready: { port: (server.address() as AddressInfo).port } });
});

process.once('SIGTERM', () => {
  server.close(() => void Promise.all([pool.close(), beside?.()]).then(() => process.exit(0)));
  server.closeAllConnections();
});

/** A gateway on `upstream` that nothing calls; resolves with the way to stop it and remove its store. */
async function idleGateway(upstream: string): Promise<() => Promise<void>> {
  const { buildConfig, startSpillway } = await import('../../src/index.ts');
  const dir = mkdtempSync(join(tmpdir(), 'spillway-idle-'));
  const spillway = await startSpillway(
    buildConfig({ upstream, store: join(dir, 'idle.db'), host: '127.0.0.1', port: 0, adminPort: 0 }),
  );
  return () => spillway.stop().then(() => rmSync(dir, { recursive: true, force: true }));
}
