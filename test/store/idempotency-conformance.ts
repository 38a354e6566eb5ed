/**
 * Idempotency-Key records (IdempotencyKeys in src/store/port.ts): claims,
 * kept answers, accepted operations, expiry. Every adapter passes it unchanged.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import type { IdempotencyClaim } from '../../src/store/port.ts';
import { newOperation, type StoreFactory, storeFixture } from './store-fixture.ts';

export function idempotencyConformance(name: string, factory: StoreFactory): void {
  describe(`IdempotencyKeys conformance: ${name}`, () => {
    const fx = storeFixture(factory);

    describe('Idempotency-Key records', () => {
      const claimOf = (overrides: Partial<IdempotencyClaim> = {}): IdempotencyClaim => ({
        key: 'k1',
        token: randomUUID(),
        fingerprint: 'fp1',
        lockedUntil: fx.clock.now() + 10_000,
        expiresAt: fx.clock.now() + 86_400_000,
        ...overrides,
      });
      const answer = {
        status: 500,
        headers: [['content-type', 'text/plain'] as [string, string]],
        body: new Uint8Array(Buffer.from('upstream broke')),
      };

      it('a claim holds the key: the next claim sees it in progress', async () => {
        const first = claimOf();
        assert.equal(await fx.store.claimIdempotencyKey(first), undefined);
        const second = await fx.store.claimIdempotencyKey(claimOf({ fingerprint: 'fp2' }));
        assert.equal(second?.state, 'in-progress');
        assert.equal(second?.fingerprint, 'fp1', 'the record is unchanged by the refused claim');
      });

      it('only one of many concurrent claims of a key wins', async () => {
        const results = await Promise.all(
          Array.from({ length: 20 }, () => fx.store.claimIdempotencyKey(claimOf())),
        );
        assert.equal(results.filter((r) => r === undefined).length, 1);
      });

      it('keeps a completed answer byte for byte, across reopening', async () => {
        const claim = claimOf();
        await fx.store.claimIdempotencyKey(claim);
        await fx.store.completeIdempotencyKey(claim.key, claim.token, answer);
        await fx.store.close();
        fx.store = await fx.reopen();
        const record = await fx.store.claimIdempotencyKey(claimOf());
        assert.equal(record?.state, 'completed');
        assert.ok(record?.state === 'completed');
        assert.equal(record.response.status, 500);
        assert.deepEqual(record.response.headers, answer.headers);
        assert.deepEqual(Buffer.from(record.response.body), Buffer.from(answer.body));
      });

      it('a released claim frees the key; a stranger token changes nothing', async () => {
        const claim = claimOf();
        await fx.store.claimIdempotencyKey(claim);
        await fx.store.releaseIdempotencyKey(claim.key, 'someone-else');
        assert.equal((await fx.store.claimIdempotencyKey(claimOf()))?.state, 'in-progress');
        await fx.store.releaseIdempotencyKey(claim.key, claim.token);
        assert.equal(await fx.store.claimIdempotencyKey(claimOf()), undefined);
      });

      it('a lapsed lock lets a new claim take over, and fences the old claimant out', async () => {
        const old = claimOf();
        await fx.store.claimIdempotencyKey(old);
        fx.clock.advance(10_000);
        const fresh = claimOf();
        assert.equal(await fx.store.claimIdempotencyKey(fresh), undefined);
        await fx.store.completeIdempotencyKey(old.key, old.token, answer);
        assert.equal(
          (await fx.store.claimIdempotencyKey(claimOf()))?.state,
          'in-progress',
          'old token ignored',
        );
      });

      it('an expired record is forgotten: claimed anew, and purged', async () => {
        const claim = claimOf({ expiresAt: fx.clock.now() + 1_000 });
        await fx.store.claimIdempotencyKey(claim);
        await fx.store.completeIdempotencyKey(claim.key, claim.token, answer);
        await fx.store.claimIdempotencyKey(claimOf({ key: 'k2', expiresAt: fx.clock.now() + 1_000 }));
        await fx.store.claimIdempotencyKey(claimOf({ key: 'k3', expiresAt: fx.clock.now() + 5_000 }));
        assert.equal((await fx.store.claimIdempotencyKey(claimOf()))?.state, 'completed');
        fx.clock.advance(1_000);
        assert.equal(
          await fx.store.purgeIdempotencyKeys(fx.clock.now(), 100),
          2,
          'k1 and k2 expired; k3 kept',
        );
        assert.equal(await fx.store.claimIdempotencyKey(claimOf()), undefined, 'a reuse after expiry is new');
        assert.equal((await fx.store.claimIdempotencyKey(claimOf({ key: 'k3' })))?.state, 'in-progress');
      });

      it('a capture marks its claim accepted in the same commit; retention takes the record with the operation', async () => {
        const claim = claimOf();
        await fx.store.claimIdempotencyKey(claim);
        const op = await fx.store.capture(
          newOperation(fx.clock, { tenant: 't1', idempotency: { key: claim.key, token: claim.token } }),
        );
        assert.equal((await fx.store.get(op.id))?.tenant, 't1');
        const record = await fx.store.claimIdempotencyKey(claimOf());
        assert.deepEqual(record?.state === 'accepted' && record.operationId, op.id);
        await fx.store.cancel(op.id);
        fx.clock.advance(1_000);
        assert.equal(await fx.store.purge(fx.clock.now(), 100), 1);
        assert.equal(
          await fx.store.claimIdempotencyKey(claimOf()),
          undefined,
          'the key went with its operation',
        );
      });
    });
  });
}
