import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after } from 'node:test';
import { StoreKeyring } from '../../src/store/sealed-values.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { ThreadedSqliteStore } from '../../src/store/sqlite/threaded-store.ts';
import { tempDir } from '../support/harness.ts';
import { storeConformance } from './conformance.ts';
import { rawBytes, sealingConformance } from './sealing-conformance.ts';

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

sealingConformance('sqlite', async (clock) => {
  const path = join(dir, `store-${n++}.db`);
  return {
    open: async (keys, onError) =>
      new SqliteStore({
        path,
        clock,
        ...(keys ? { encryptionKeys: StoreKeyring.parse(keys) } : {}),
        ...(onError ? { onError } : {}),
      }),
    rawContent: async () => rawContentOf(path),
  };
});

// The store users get (openStore): the same SqliteStore on its own thread, through the same suites.
storeConformance('sqlite on its thread', async (clock) => {
  const path = join(dir, `store-${n++}.db`);
  return {
    store: await ThreadedSqliteStore.open({ path, clock }),
    reopen: () => ThreadedSqliteStore.open({ path, clock }),
  };
});

sealingConformance('sqlite on its thread', async (clock) => {
  const path = join(dir, `store-${n++}.db`);
  return {
    open: (keys, onError) =>
      ThreadedSqliteStore.open({
        path,
        clock,
        ...(keys ? { encryptionKeys: StoreKeyring.parse(keys) } : {}),
        ...(onError ? { onError } : {}),
      }),
    rawContent: async () => rawContentOf(path),
  };
});

/** Past the adapter: every value of every table, as the file holds it. */
function rawContentOf(path: string): Buffer {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    const tables = db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table'`).all();
    return Buffer.concat(
      tables.flatMap(({ name }) =>
        db
          .prepare(`SELECT * FROM "${String(name)}"`)
          .all()
          .flatMap((row) => Object.values(row).map((value) => rawBytes(value))),
      ),
    );
  } finally {
    db.close();
  }
}
