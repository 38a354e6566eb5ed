/**
 * Peer child process: Fastify with `@fastify/http-proxy` (undici underneath,
 * through `@fastify/reply-from`), the proxy a Node team would reach for
 * first. Logging off, defaults otherwise.
 *
 *   node bench/peers/fastify-proxy.ts --upstream URL
 */
import { parseArgs } from 'node:util';
import proxy from '@fastify/http-proxy';
import Fastify from 'fastify';

const { values } = parseArgs({ options: { upstream: { type: 'string' } } });
const app = Fastify({ logger: false, keepAliveTimeout: 60_000 });
await app.register(proxy, { upstream: values.upstream! });
await app.listen({ host: '127.0.0.1', port: 0 });
const address = app.server.address();
process.send?.({ ready: { port: typeof address === 'object' && address ? address.port : 0 } });

process.once('SIGTERM', () => {
  void app.close().then(() => process.exit(0));
});
