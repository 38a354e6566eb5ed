/**
 * The SQLite store file itself: it holds request bodies and Authorization
 * headers, so it and its -wal/-shm are readable by their owner only; and one
 * process at a time may write it (an exclusive lock beside it, released by the
 * OS when its holder dies, so a kill -9 never leaves a stale lock).
 */
import assert from 'node:assert/strict';
import { rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { tempDir } from '../support/harness.ts';

const dir = tempDir();
after(() => rmSync(dir, { recursive: true, force: true }));

const mode = (path: string) => statSync(path).mode & 0o777;

describe('the SQLite store file', () => {
  it('is created 0600, and so are its -wal and -shm', async () => {
    const path = join(dir, 'private.db');
    const previous = process.umask(0o022); // the usual umask, which leaves new files world-readable
    try {
      const store = new SqliteStore({ path });
      await store.setOverride('r', 'forced-async'); // a write, so the WAL exists
      for (const file of [path, `${path}-wal`, `${path}-shm`]) {
        assert.equal(mode(file).toString(8), '600', file);
      }
      await store.close();
    } finally {
      process.umask(previous);
    }
  });

  it('with exclusive set, refuses a second writer, naming the first, until it closes', async () => {
    const path = join(dir, 'locked.db');
    const first = new SqliteStore({ path, exclusive: true });
    assert.throws(
      () => new SqliteStore({ path, exclusive: true }),
      (error: Error) => {
        assert.equal(error.name, 'StoreLockedError');
        assert.match(error.message, new RegExp(`pid ${process.pid}\\b`));
        assert.match(error.message, /locked\.db/);
        return true;
      },
    );
    await first.close();
    const second = new SqliteStore({ path, exclusive: true });
    await second.close();
    assert.equal(mode(`${path}.lock`).toString(8), '600');
  });
});
