import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after } from 'node:test';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { tempDir } from '../support/harness.ts';
import { storeConformance } from './conformance.ts';
import { drainConformance } from './drain-conformance.ts';
import { operatorConformance } from './operator-conformance.ts';
import { orderingConformance } from './ordering-conformance.ts';
import { staleCopyConformance } from './stale-copy-conformance.ts';

const dir = tempDir();
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

storeConformance('sqlite', async (clock) => {
  const path = join(dir, `store-${n++}.db`);
  return {
    store: new SqliteStore({ path, clock }),
    reopen: async () => new SqliteStore({ path, clock }),
  };
});

operatorConformance('sqlite', async (clock) => {
  const path = join(dir, `store-${n++}.db`);
  return {
    store: new SqliteStore({ path, clock }),
    reopen: async () => new SqliteStore({ path, clock }),
  };
});

drainConformance('sqlite', async (clock) => {
  const path = join(dir, `store-${n++}.db`);
  return {
    store: new SqliteStore({ path, clock }),
    reopen: async () => new SqliteStore({ path, clock }),
  };
});

orderingConformance('sqlite', async (clock) => {
  const path = join(dir, `store-${n++}.db`);
  return {
    store: new SqliteStore({ path, clock }),
    reopen: async () => new SqliteStore({ path, clock }),
  };
});

staleCopyConformance('sqlite', async (clock) => {
  const path = join(dir, `store-${n++}.db`);
  return {
    store: new SqliteStore({ path, clock }),
    reopen: async () => new SqliteStore({ path, clock }),
  };
});
