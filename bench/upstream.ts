/**
 * Bench child process: a trivial upstream on 127.0.0.1, port chosen by the OS.
 * GET answers a small JSON document; POST reads the body and answers with its
 * length. As cheap as a server gets, so the bench measures the gateway.
 *
 * It counts the POSTs it answered and reports the count over IPC when asked
 * (`'count'`), so replay runs can check each operation was delivered once,
 * with the times the first one arrived and the last was answered, so a drain
 * after an outage can tell how long after the upstream came back
 * (`listeningAt`, reported when ready) the first replay reached it and the
 * last was done. Times are epoch milliseconds.
 *
 *   node bench/upstream.ts [--port N]      (default: a port chosen by the OS)
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { port: { type: 'string', default: '0' } } });
const epochMs = () => performance.timeOrigin + performance.now();

const getBody = JSON.stringify({ id: 'pay_0001', amount: 4200, currency: 'EUR', status: 'captured' });

let posts = 0;
let firstPostAt: number | undefined;
let lastPostAt: number | undefined;

const server = createServer((req, res) => {
  if (req.method === 'GET') {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(getBody) });
    res.end(getBody);
    return;
  }
  firstPostAt ??= epochMs();
  let received = 0;
  req.on('data', (chunk: Buffer) => {
    received += chunk.length;
  });
  req.on('end', () => {
    posts++;
    lastPostAt = epochMs();
    const body = JSON.stringify({ id: 'pay_0002', status: 'captured', received });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
});
// Longer than any pause between scenarios, so no pooled connection is closed under a request.
server.keepAliveTimeout = 60_000;

server.listen(Number(values.port), '127.0.0.1', () => {
  process.send?.({ ready: { port: (server.address() as AddressInfo).port, listeningAt: epochMs() } });
});

process.on('message', (message) => {
  if (message === 'count') process.send?.({ posts, firstPostAt, lastPostAt });
});

process.once('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
