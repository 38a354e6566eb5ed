/** The Fastify recipe (examples/fastify.ts): the plugin on the real Fastify, listening on loopback. */
import type { AddressInfo } from 'node:net';
import { createApp } from '../../examples/fastify.ts';
import { recipeSettings, recipeSuite } from '../support/recipes.ts';

recipeSuite('Fastify', async (provider, store) => {
  const app = await createApp(provider, store, recipeSettings as never);
  await app.listen({ port: 0, host: '127.0.0.1' });
  return {
    url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`,
    stop: () => app.close(), // its onClose hook closes Spillway
  };
});
