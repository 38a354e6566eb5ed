/**
 * What the two queue peers (pg-boss, BullMQ) share: a Fastify server that
 * answers any request 202 once its durable enqueue has resolved, like
 * Spillway's capture, storing what Spillway stores (method, path, headers,
 * body as received: no JSON parsing), and the worker side's call to the
 * upstream, through one undici `Pool` like Spillway's replay.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import { type Dispatcher, Pool } from 'undici';

/** One captured request, as a job's data. */
export interface CapturedRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** Starts Fastify on 127.0.0.1 (port chosen by the OS); `enqueue` resolves with the job id once it is durable. */
export async function startCaptureServer(
  enqueue: (request: CapturedRequest) => Promise<string | null | undefined>,
): Promise<{ app: FastifyInstance; port: number }> {
  const app = Fastify({ logger: false, keepAliveTimeout: 60_000, bodyLimit: 1_048_576 });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_request, body, done) => done(null, body));
  app.all('/*', async (request, reply) => {
    const id = await enqueue({
      method: request.method,
      path: request.url,
      headers: request.headers,
      body: typeof request.body === 'string' ? request.body : '',
    });
    if (!id) throw new Error('the queue accepted no job');
    return reply.code(202).send({ id });
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  return { app, port: typeof address === 'object' && address ? address.port : 0 };
}

/** Sends a captured request to the upstream; throws unless it answers 2xx, so the queue retries it. */
export function upstreamCaller(upstream: string) {
  const pool = new Pool(upstream, { connections: 128 });
  const call = async (request: CapturedRequest): Promise<void> => {
    const answer = await pool.request({
      method: request.method as Dispatcher.HttpMethod,
      path: request.path,
      headers: { 'content-type': String(request.headers['content-type'] ?? 'application/octet-stream') },
      body: request.body,
    });
    await answer.body.dump();
    if (answer.statusCode < 200 || answer.statusCode > 299) {
      throw new Error(`the upstream answered ${answer.statusCode}`);
    }
  };
  return { call, close: () => pool.close() };
}
