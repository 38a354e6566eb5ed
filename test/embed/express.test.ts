/** The Express recipe (examples/express.ts): the middleware on the real Express, listening on loopback. */
import type { AddressInfo } from 'node:net';
import { createApp } from '../../examples/express.ts';
import { recipeSettings, recipeSuite } from '../support/recipes.ts';

recipeSuite('Express', async (provider, store) => {
  const { app, spillway } = createApp(provider, store, recipeSettings as never);
  const server = await new Promise<ReturnType<typeof app.listen>>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    stop: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await spillway.close();
    },
  };
});
