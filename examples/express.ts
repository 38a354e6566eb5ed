/**
 * Spillway as an Express middleware, in one process: `node examples/express.ts`,
 * then `curl -i -X POST localhost:3000/payments -H 'content-type: application/json' -d '{"amount":42}'`.
 * Tested by test/embed/express.test.ts; shown in docs/embedding.md.
 */
// #region recipe
import express from 'express';
import { createSpillway, fromNodeHandler, isSpillwayCall } from '../src/index.ts';
import { demoProvider, type PaymentProvider, ProviderUnavailable } from './payment-provider.ts';

export const config = {
  routes: [{ name: 'payments', match: 'POST /payments', budgetMs: 2_000 }],
};

export function createApp(provider: PaymentProvider, store = 'spillway.db', settings = config) {
  const app = express();
  // Attempts and replays are in-process requests to this same app (no port).
  const spillway = createSpillway({ upstream: fromNodeHandler(app), store, config: settings });

  // First, before any body parser: Spillway reads the raw body. Its own calls go on to the routes.
  app.use((req, res, next) => {
    if (isSpillwayCall(req) || req.path === '/health') return next();
    spillway.handle(req, res);
  });
  app.use(express.json());
  app.get('/health', (_req, res) => {
    res.send('ok');
  });
  app.post('/payments', async (req, res) => {
    try {
      res.status(201).json(await provider.charge(req.body));
    } catch (error) {
      // Nothing was charged: a 503 tells Spillway to store the request and replay it later.
      if (!(error instanceof ProviderUnavailable)) throw error;
      res.status(503).json({ error: error.message });
    }
  });
  return { app, spillway };
}

if (import.meta.main) {
  const { app, spillway } = createApp(demoProvider());
  const server = app.listen(3000);
  process.once('SIGINT', () => server.close(() => void spillway.close()));
}
// #endregion
