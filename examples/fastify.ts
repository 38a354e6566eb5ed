/**
 * Spillway as a Fastify plugin, in one process: `node examples/fastify.ts`,
 * then `curl -i -X POST localhost:3000/payments -H 'content-type: application/json' -d '{"amount":42}'`.
 * Tested by test/embed/fastify.test.ts; shown in docs/embedding.md.
 */
// #region recipe
import Fastify, { type FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { type CreateSpillwayOptions, createSpillway, fromNodeHandler, isSpillwayCall } from '../src/index.ts';
import { demoProvider, type PaymentProvider, ProviderUnavailable } from './payment-provider.ts';

/** Every route of the app behind Spillway, and /_spillway/ served: register it before the routes. */
export const spillwayPlugin = fp<Omit<CreateSpillwayOptions, 'upstream'>>(
  async (app: FastifyInstance, options) => {
    const spillway = createSpillway({
      ...options,
      // Attempts and replays go through the app's own routing, in-process (no port), once it is ready.
      upstream: fromNodeHandler(async (req, res) => {
        await app.ready();
        app.routing(req, res);
      }),
    });
    app.decorate('spillway', spillway);
    // onRequest runs before Fastify reads the body, which Spillway must read itself.
    app.addHook('onRequest', async (request, reply) => {
      if (isSpillwayCall(request.raw) || request.url === '/health') return; // straight to the route
      reply.hijack();
      spillway.handle(request.raw, reply.raw);
    });
    app.addHook('onClose', () => spillway.close());
  },
  { name: 'spillway' },
);

export const config = {
  routes: [{ name: 'payments', match: 'POST /payments', budgetMs: 2_000 }],
};

export async function createApp(provider: PaymentProvider, store = 'spillway.db', settings = config) {
  const app = Fastify();
  await app.register(spillwayPlugin, { store, config: settings });
  app.get('/health', async () => 'ok');
  app.post('/payments', async (request, reply) => {
    try {
      const payment = await provider.charge(request.body);
      return reply.code(201).send(payment);
    } catch (error) {
      // Nothing was charged: a 503 tells Spillway to store the request and replay it later.
      if (error instanceof ProviderUnavailable) return reply.code(503).send({ error: error.message });
      throw error;
    }
  });
  return app;
}

if (import.meta.main) {
  const app = await createApp(demoProvider());
  await app.listen({ port: 3000 });
  process.once('SIGINT', () => void app.close());
}
// #endregion
