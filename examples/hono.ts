/**
 * Spillway in front of a Hono app, in one process: `node examples/hono.ts`,
 * then `curl -i -X POST localhost:3000/payments -d '{"amount":42}'`.
 * Tested by test/embed/hono.test.ts; shown in docs/embedding.md.
 */
// #region recipe
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { createSpillway } from '../src/index.ts';
import { demoProvider, type PaymentProvider, ProviderUnavailable } from './payment-provider.ts';

export const config = {
  routes: [{ name: 'payments', match: 'POST /payments', budgetMs: 2_000 }],
};

export function createApp(provider: PaymentProvider, store = 'spillway.db', settings = config) {
  // The app's own routes, which know nothing of Spillway.
  const api = new Hono();
  api.post('/payments', async (c) => {
    try {
      return c.json(await provider.charge(await c.req.json()), 201);
    } catch (error) {
      // Nothing was charged: a 503 tells Spillway to store the request and replay it later.
      if (error instanceof ProviderUnavailable) throw new HTTPException(503, { message: error.message });
      throw error;
    }
  });

  // Spillway calls api.fetch in-process, for the first attempt and for every replay.
  const spillway = createSpillway({ upstream: api.fetch, store, config: settings });

  // The app served to clients: Spillway in front of the routes it protects, and its operations API.
  const app = new Hono();
  app.get('/health', (c) => c.text('ok')); // not through Spillway
  app.all('/_spillway/*', (c) => spillway.fetch(c.req.raw));
  app.all('/payments', (c) => spillway.fetch(c.req.raw));
  return { app, spillway };
}

if (import.meta.main) {
  const { app, spillway } = createApp(demoProvider());
  const server = serve({ fetch: app.fetch, port: 3000 });
  process.once('SIGINT', () => server.close(() => void spillway.close()));
}
// #endregion
