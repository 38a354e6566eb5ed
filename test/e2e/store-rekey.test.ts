/**
 * `spillway store rekey` as a user runs it: on an SQLite file holding a
 * plaintext row and a row under an old key, it seals both under the newest
 * key, prints progress and a summary per table, and the file then opens with
 * the newest key alone. While a gateway holds the file it refuses in one line.
 */
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { newStoreKey, parseStoreKey, StoreKeyring } from '../../src/store/sealed-values.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { newOperation } from '../store/store-fixture.ts';
import { spillway } from '../support/cli.ts';
import { tempDir } from '../support/harness.ts';
import { ManualClock } from '../support/manual-clock.ts';

const dir = tempDir();
after(() => rmSync(dir, { recursive: true, force: true }));

const SECRET = 'card=4111111111111111&rekey_plaintext';
const secretOperation = (clock: ManualClock) =>
  newOperation(clock, {
    request: {
      method: 'POST',
      path: '/payments',
      query: '',
      headers: [['authorization', 'Bearer rekey_secret_token']],
      body: new Uint8Array(Buffer.from(SECRET)),
    },
  });

describe('spillway store rekey', () => {
  it('seals plaintext and old-key rows under the newest key, prints a summary, and the old key can go', async () => {
    const clock = new ManualClock();
    const path = join(dir, 'rekey.db');
    const [oldKey, newKey] = [newStoreKey(), newStoreKey()];
    const plain = new SqliteStore({ path, clock, exclusive: true });
    const plainOp = secretOperation(clock);
    await plain.capture(plainOp);
    await plain.close();
    const old = new SqliteStore({
      path,
      clock,
      exclusive: true,
      encryptionKeys: StoreKeyring.parse([oldKey]),
    });
    const oldOp = secretOperation(clock);
    await old.capture(oldOp);
    await old.close();

    const run = await spillway(['store', 'rekey', '--store', path, '--batch-size', '1'], {
      SPILLWAY_STORE_ENCRYPTION_KEY: `${newKey},${oldKey}`,
    });
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /operations\.request: 2 scanned, 2 re-sealed/);
    assert.match(run.stdout, /operations\.request\s+2/);
    assert.match(run.stdout, new RegExp(`newest key ${parseStoreKey(newKey).id}`));
    assert.match(run.stdout, new RegExp(`forgotten: ${parseStoreKey(oldKey).id}`));

    const disk =
      readFileSync(path).toString('latin1') + readFileSync(`${path}-wal`, { flag: 'a+' }).toString('latin1');
    assert.ok(!disk.includes(SECRET));
    const newestOnly = new SqliteStore({
      path,
      clock,
      exclusive: true,
      encryptionKeys: StoreKeyring.parse([newKey]),
    });
    try {
      for (const { id } of [plainOp, oldOp]) {
        assert.equal(Buffer.from((await newestOnly.get(id))!.request.body).toString(), SECRET);
      }
      // The gateway holds the file: rekey refuses in one line, naming the holder.
      const locked = await spillway(['store', 'rekey', '--store', path], {
        SPILLWAY_STORE_ENCRYPTION_KEY: newKey,
      });
      assert.equal(locked.code, 1, locked.stderr);
      const lines = locked.stderr.trimEnd().split('\n');
      assert.equal(lines.length, 1, locked.stderr);
      assert.match(
        lines[0]!,
        /^spillway: the store .* is in use by another Spillway .*stop that process first/,
      );
    } finally {
      await newestOnly.close();
    }
  });

  it('refuses a store file that does not exist rather than create one', async () => {
    const run = await spillway(['store', 'rekey', '--store', join(dir, 'missing.db')], {
      SPILLWAY_STORE_ENCRYPTION_KEY: newStoreKey(),
    });
    assert.equal(run.code, 1);
    assert.match(run.stderr, /^spillway: there is no SQLite store at .*missing\.db/);
  });

  it('is a usage error without a subcommand it knows', async () => {
    const run = await spillway(['store', 'shred']);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /spillway store rekey/);
  });
});
