/** The Hono recipe (examples/hono.ts) with the real Hono, served by @hono/node-server on loopback. */
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { createApp } from '../../examples/hono.ts';
import { recipeSettings, recipeSuite } from '../support/recipes.ts';

recipeSuite('Hono', async (provider, store) => {
  const { app, spillway } = createApp(provider, store, recipeSettings as never);
  const server = await new Promise<ReturnType<typeof serve>>((resolve) => {
    const s = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(s));
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    stop: async () => {
      await new Promise((resolve) => server.close(resolve));
      await spillway.close();
    },
  };
});
