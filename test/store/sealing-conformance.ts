/**
 * Encryption at rest (storeEncryptionKey), the same on every adapter: with a
 * key, the database holds no request or response content in plaintext (read
 * with the driver directly, past the adapter) while every verb returns the
 * original bytes; rows sealed under an older key read once a newer key is
 * listed first; a row the configured keys cannot open is a typed error, a
 * reported and skipped lease, and a refused start; without a key nothing
 * changes.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { StoredValueUnreadableError } from '../../src/errors.ts';
import type { OperationStore, RekeyProgress, StaleCopy, StoredResponse } from '../../src/store/port.ts';
import { newStoreKey, parseStoreKey, StoreKeyError } from '../../src/store/sealed-values.ts';
import { ManualClock } from '../support/manual-clock.ts';
import { newOperation } from './store-fixture.ts';

export interface SealingFixture {
  /**
   * Opens the fixture's one store (again) with these keys, newest first (none:
   * no encryption). `onError` receives what the store reports outside a verb.
   */
  open(keys?: readonly string[], onError?: (error: unknown) => void): Promise<OperationStore>;
  /** Every value of every table, as bytes, read with the driver directly: what is at rest. */
  rawContent(): Promise<Buffer>;
}

export type SealingFactory = (clock: ManualClock) => Promise<SealingFixture>;

const SECRET_BODY = 'card=4111111111111111&cvc=737';
const SECRET_TOKEN = 'Bearer sk_live_secret_token_9f8e7d';
const SECRET_RESULT = '{"receipt":"rcpt_plaintext_4242"}';
const SECRET_COOKIE = 'session=cookie_plaintext_77';
const SECRET_ANSWER = '{"kept":"idempotent_answer_plaintext"}';

const bytes = (text: string) => new Uint8Array(Buffer.from(text));
const secretRequest = (clock: ManualClock) =>
  newOperation(clock, {
    request: {
      method: 'POST',
      path: '/payments',
      query: '',
      headers: [
        ['authorization', SECRET_TOKEN],
        ['content-type', 'application/x-www-form-urlencoded'],
      ],
      body: bytes(SECRET_BODY),
    },
  });
const secretResult: StoredResponse = {
  status: 201,
  headers: [
    ['content-type', 'application/json'],
    ['set-cookie', SECRET_COOKIE],
  ],
  body: bytes(SECRET_RESULT),
};
const secretAnswer: StoredResponse = {
  status: 200,
  headers: [['content-type', 'application/json']],
  body: bytes(SECRET_ANSWER),
};
const SECRET_COPY = '{"price":"stale_copy_plaintext_12"}';
const SECRETS = [SECRET_BODY, SECRET_TOKEN, SECRET_RESULT, SECRET_COOKIE, SECRET_ANSWER, SECRET_COPY];
const roomy = { maxEntries: 100, maxBytes: 1_000_000 };
const staleCopy = (clock: ManualClock, resource = 'r1'): StaleCopy => ({
  resource,
  variant: 'v1',
  route: 'prices',
  vary: [],
  response: {
    status: 200,
    headers: [['content-type', 'application/json']],
    body: bytes(SECRET_COPY),
  },
  storedAt: clock.now(),
  initialAge: 0,
  expiresAt: clock.now() + 60_000,
  lastUsedAt: clock.now(),
});

/** A value read from the database as bytes, for searching what is at rest. */
export const rawBytes = (value: unknown): Buffer =>
  value instanceof Uint8Array
    ? Buffer.from(value)
    : Buffer.from(typeof value === 'string' ? value : (JSON.stringify(value) ?? ''));

const text = (body: Uint8Array) => Buffer.from(body).toString();

export function sealingConformance(name: string, factory: SealingFactory): void {
  describe(`Encryption at rest: ${name}`, () => {
    let clock: ManualClock;
    let fixture: SealingFixture;
    const open: OperationStore[] = [];
    const openStore = async (keys?: readonly string[], onError?: (error: unknown) => void) => {
      const store = await fixture.open(keys, onError);
      open.push(store);
      return store;
    };
    const k1 = newStoreKey();
    const k2 = newStoreKey();
    const id1 = parseStoreKey(k1).id;
    const id2 = parseStoreKey(k2).id;

    beforeEach(async () => {
      clock = new ManualClock();
      fixture = await factory(clock);
    });
    afterEach(async () => {
      for (const store of open.splice(0)) await store.close();
    });

    /** A request captured and completed, and an Idempotency-Key answer kept, through `store`. */
    const writeEverything = async (store: OperationStore) => {
      const input = secretRequest(clock);
      await store.capture(input);
      const [leased] = await store.lease({ owner: 'w1', limit: 1, leaseMs: 1_000 });
      assert.equal(leased?.id, input.id);
      assert.equal(text(leased.request.body), SECRET_BODY);
      assert.ok(await store.complete(input.id, leased.leaseToken, secretResult));
      const key = `k-${randomUUID()}`;
      const claim = { key, token: randomUUID(), fingerprint: 'f', lockedUntil: clock.now() + 1_000 };
      assert.equal(await store.claimIdempotencyKey({ ...claim, expiresAt: clock.now() + 60_000 }), undefined);
      await store.completeIdempotencyKey(key, claim.token, secretAnswer);
      const resource = `r-${randomUUID()}`;
      assert.equal((await store.keepStaleCopy(staleCopy(clock, resource), roomy)).kept, true);
      return { id: input.id, key, resource };
    };

    /** Everything `writeEverything` stored reads back as it was given. */
    const assertReadsBack = async (
      store: OperationStore,
      { id, key, resource }: { id: string; key: string; resource: string },
    ) => {
      const op = await store.get(id);
      assert.ok(op);
      assert.equal(text(op.request.body), SECRET_BODY);
      assert.deepEqual(op.request.headers, secretRequest(clock).request.headers);
      assert.equal(op.result?.status, 201);
      assert.deepEqual(op.result?.headers, secretResult.headers);
      assert.equal(text(op.result!.body), SECRET_RESULT);
      const record = await store.claimIdempotencyKey({
        key,
        token: randomUUID(),
        fingerprint: 'f',
        lockedUntil: clock.now() + 1_000,
        expiresAt: clock.now() + 60_000,
      });
      assert.equal(record?.state, 'completed');
      assert.ok(record?.state === 'completed');
      assert.deepEqual(record.response.headers, secretAnswer.headers);
      assert.equal(text(record.response.body), SECRET_ANSWER);
      const [copy] = await store.staleCopies(resource);
      assert.deepEqual(copy?.response.headers, staleCopy(clock).response.headers);
      assert.equal(text(copy!.response.body), SECRET_COPY);
    };

    it('with a key, no body, header or result is at rest in plaintext, and every verb returns the original bytes', async () => {
      const store = await openStore([k1]);
      const written = await writeEverything(store);
      const raw = (await fixture.rawContent()).toString('latin1');
      for (const secret of SECRETS) assert.ok(!raw.includes(secret), `${secret} is not stored in plaintext`);
      assert.ok(raw.includes(`sealed:1:${id1}:`), 'values name the key they are sealed under');
      await assertReadsBack(store, written);
      // Binary bodies come back byte for byte.
      const binary = newOperation(clock);
      await store.capture(binary);
      assert.deepEqual(
        Buffer.from((await store.get(binary.id))!.request.body),
        Buffer.from(binary.request.body),
      );
    });

    it('rotation: rows sealed under the old key read once a new key is listed first; new rows use the new key', async () => {
      const before = await writeEverything(await openStore([k1]));
      await open.pop()!.close();
      const store = await openStore([k2, k1]);
      await assertReadsBack(store, before);
      const after = await writeEverything(store);
      await assertReadsBack(store, after);
      const raw = (await fixture.rawContent()).toString('latin1');
      assert.ok(raw.includes(`sealed:1:${id2}:`), 'new rows are sealed under the newest key');
      assert.ok(raw.includes(`sealed:1:${id1}:`), 'old rows keep theirs until re-encrypted');
    });

    it('a store holding values under a key that is not configured refuses to open, naming the key', async () => {
      await writeEverything(await openStore([k1]));
      await open.pop()!.close();
      await assert.rejects(fixture.open([k2]), (error: Error) => {
        assert.ok(error instanceof StoreKeyError, String(error));
        assert.match(error.message, new RegExp(`${id1}.*SPILLWAY_STORE_ENCRYPTION_KEY`));
        return true;
      });
      await assert.rejects(fixture.open(), (error: Error) => {
        assert.ok(error instanceof StoreKeyError, String(error));
        assert.match(error.message, new RegExp(id1));
        return true;
      });
    });

    it('a row sealed under a key this store lacks is a typed error on read, and its lease is handed back and reported', async () => {
      // Another process got the new key first (a rotation done out of order): this one still has only k1.
      const reported: unknown[] = [];
      const behind = await openStore([k1], (error) => reported.push(error));
      const ahead = await openStore([k2, k1]);
      const sealedUnderK2 = secretRequest(clock);
      await ahead.capture(sealedUnderK2);
      const readable = newOperation(clock, { nextAttemptAt: clock.now() + 1 });
      await behind.capture(readable);
      clock.advance(1);

      await assert.rejects(behind.get(sealedUnderK2.id), (error: Error) => {
        assert.ok(error instanceof StoredValueUnreadableError, String(error));
        assert.equal(error.reason, 'key-missing');
        assert.equal(error.keyId, id2);
        assert.match(error.message, new RegExp(`${sealedUnderK2.id}.*${id2}`));
        return true;
      });
      // The lease goes on with what it can read; the other is handed back untouched and reported.
      const leased = await behind.lease({ owner: 'w1', limit: 10, leaseMs: 1_000 });
      assert.deepEqual(
        leased.map((op) => op.id),
        [readable.id],
      );
      assert.equal(reported.length, 1);
      assert.ok(reported[0] instanceof StoredValueUnreadableError);
      assert.equal((reported[0] as StoredValueUnreadableError).keyId, id2);
      const [taken] = await ahead.lease({ owner: 'w2', limit: 10, leaseMs: 1_000 });
      assert.equal(taken?.id, sealedUnderK2.id, 'the unreadable row was not left leased');
      assert.equal(taken.attempts, 0, 'no attempt was counted for it');
      assert.equal(text(taken.request.body), SECRET_BODY);

      // A stale copy it cannot read is no copy: skipped and reported, never served as garbage.
      await ahead.keepStaleCopy(staleCopy(clock, 'sealed-under-k2'), roomy);
      assert.deepEqual(await behind.staleCopies('sealed-under-k2'), []);
      assert.equal(reported.length, 2);
      assert.equal((reported[1] as StoredValueUnreadableError).keyId, id2);
    });

    it('a sealed row read without any key is a typed error naming its key', async () => {
      const plain = await openStore();
      const keyed = await openStore([k1]);
      const input = secretRequest(clock);
      await keyed.capture(input);
      await assert.rejects(plain.get(input.id), (error: Error) => {
        assert.ok(error instanceof StoredValueUnreadableError, String(error));
        assert.equal(error.reason, 'no-key');
        assert.match(error.message, /no storeEncryptionKey is set/);
        return true;
      });
    });

    it('rekey: rows under an old key and plaintext rows are sealed under the newest key, and the old key is forgotten', async () => {
      const plain = await writeEverything(await openStore());
      await open.pop()!.close();
      const old = await writeEverything(await openStore([k1]));
      await open.pop()!.close();
      const store = await openStore([k2, k1]);
      const progress: RekeyProgress[] = [];
      const summary = await store.rekey({ batchSize: 1, onProgress: (step) => progress.push(step) });
      assert.equal(summary.keyId, id2);
      assert.deepEqual(summary.resealed, {
        'operations.request': 2,
        'operations.result': 2,
        'idempotency_keys.answer': 2,
        stale_copies: 2,
      });
      assert.deepEqual(summary.forgotten, [id1]);
      assert.deepEqual(progress.at(-1), { part: 'stale_copies', scanned: 2, resealed: 2 });
      // Done is done: a second run finds nothing to seal again.
      const again = await store.rekey();
      assert.deepEqual(Object.values(again.resealed), [0, 0, 0, 0]);
      assert.deepEqual(again.forgotten, []);
      await open.pop()!.close();

      const raw = (await fixture.rawContent()).toString('latin1');
      for (const secret of SECRETS) assert.ok(!raw.includes(secret), `${secret} is not stored in plaintext`);
      assert.ok(!raw.includes(id1), 'nothing, store_keys included, names the old key');
      assert.ok(raw.includes(`sealed:1:${id2}:`));
      // The old key can leave the config: a store given only the newest starts and reads everything.
      const newestOnly = await openStore([k2]);
      await assertReadsBack(newestOnly, plain);
      await assertReadsBack(newestOnly, old);
    });

    it('rekey without a key is refused, and changes nothing', async () => {
      const store = await openStore();
      await writeEverything(store);
      await assert.rejects(store.rekey(), StoreKeyError);
      const raw = (await fixture.rawContent()).toString('latin1');
      for (const secret of SECRETS) assert.ok(raw.includes(secret));
    });

    it('without a key nothing changes: plaintext at rest, read as before, and readable after a key is set', async () => {
      const store = await openStore();
      const written = await writeEverything(store);
      const raw = (await fixture.rawContent()).toString('latin1');
      for (const secret of SECRETS) assert.ok(raw.includes(secret), `${secret} is stored as before`);
      assert.ok(!raw.includes('sealed:'));
      await assertReadsBack(store, written);
      await open.pop()!.close();
      // Enabling the key later: old plaintext rows still read; new rows are sealed.
      const keyed = await openStore([k1]);
      await assertReadsBack(keyed, written);
      const after = await writeEverything(keyed);
      await assertReadsBack(keyed, after);
    });
  });
}
