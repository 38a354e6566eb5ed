/**
 * The webhook outbox (WebhookOutbox in src/store/port.ts): deliveries created
 * in the commit of a terminal status, leased and recorded under a token,
 * disabled endpoints, re-sends. Every adapter passes it unchanged.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { newOperationId } from '../../src/engine/operation-id.ts';
import type { WebhookAttemptRecord, WebhookDeliveryQuery } from '../../src/store/port.ts';
import { lease, newOperation, type StoreFactory, storeFixture, tokenOf } from './store-fixture.ts';

export function webhookOutboxConformance(name: string, factory: StoreFactory): void {
  describe(`WebhookOutbox conformance: ${name}`, () => {
    const fx = storeFixture(factory);

    /** An operation with a callback, finished 200: its delivery is waiting in the outbox. */
    async function finishedWithCallback() {
      const op = await fx.store.capture(
        newOperation(fx.clock, { callbackUrl: `https://h.example/${randomUUID()}` }),
      );
      const leased = await lease(fx.store);
      await fx.store.complete(op.id, tokenOf(leased, op.id), {
        status: 200,
        headers: [],
        body: new Uint8Array(),
      });
      return op;
    }

    it('webhooks: a terminal change creates one delivery per endpoint in its own commit, filtered by events', async () => {
      const hooks = `https://hooks.example/${randomUUID()}`;
      const subscriptions = [
        { endpoint: 'audit', url: `${hooks}/audit`, events: null },
        { endpoint: 'failures', url: `${hooks}/failures`, events: ['failed' as const] },
      ];
      const done = await fx.store.capture(
        newOperation(fx.clock, { callbackUrl: `${hooks}/cb`, webhookSubscriptions: subscriptions }),
      );
      const plain = await fx.store.capture(newOperation(fx.clock));
      const canceled = await fx.store.capture(
        newOperation(fx.clock, {
          nextAttemptAt: fx.clock.now() + 60_000,
          webhookSubscriptions: [{ endpoint: 'cancels', url: `${hooks}/c`, events: ['canceled'] }],
        }),
      );
      assert.equal((await fx.store.get(done.id))?.callbackUrl, `${hooks}/cb`);
      assert.equal((await fx.store.get(plain.id))?.callbackUrl, null);
      const leased = await lease(fx.store);
      assert.deepEqual(await fx.store.webhookDeliveries(done.id), [], 'nothing before the terminal event');
      fx.clock.advance(7);
      await fx.store.complete(done.id, tokenOf(leased, done.id), {
        status: 201,
        headers: [],
        body: new Uint8Array(),
      });
      await fx.store.complete(plain.id, tokenOf(leased, plain.id), {
        status: 201,
        headers: [],
        body: new Uint8Array(),
      });
      await fx.store.cancel(canceled.id);
      const deliveries = await fx.store.webhookDeliveries(done.id);
      assert.deepEqual(
        deliveries.map((d) => [d.seq, d.endpoint, d.url, d.state, d.attempts, d.nextAttemptAt, d.attemptLog]),
        [
          [3, 'audit', `${hooks}/audit`, 'pending', 0, fx.clock.now(), []],
          [3, 'callback', `${hooks}/cb`, 'pending', 0, fx.clock.now(), []],
        ],
        'the Succeeded event (seq 3) goes to the callback and to "audit", not to "failures"',
      );
      assert.deepEqual(await fx.store.webhookDeliveries(plain.id), []);
      assert.deepEqual(
        (await fx.store.webhookDeliveries(canceled.id)).map((d) => [d.seq, d.endpoint]),
        [[2, 'cancels']],
      );
      assert.deepEqual(await fx.store.webhookDeliveries(newOperationId()), []);
    });

    it('webhooks: leasing is exclusive and per endpoint, attempts are fenced and recorded, a delivered one is done', async () => {
      const url = `https://hooks.example/${randomUUID()}`;
      const op = await fx.store.capture(
        newOperation(fx.clock, {
          callbackUrl: url,
          webhookSubscriptions: [{ endpoint: 'audit', url: `${url}/audit`, events: null }],
        }),
      );
      const leased = await lease(fx.store);
      await fx.store.complete(op.id, tokenOf(leased, op.id), {
        status: 200,
        headers: [],
        body: new Uint8Array(),
      });
      const leaseHooks = (owner: string, endpoints: string[], limit = 10) =>
        fx.store.leaseWebhookDeliveries({ owner, limit, leaseMs: 30_000, endpoints });
      assert.deepEqual(await leaseHooks('w1', []), []);
      const [mine, extra] = await leaseHooks('w1', ['callback']);
      assert.equal(extra, undefined);
      assert.equal(mine?.endpoint, 'callback');
      assert.equal(mine?.url, url);
      assert.deepEqual(
        [mine?.event.operationId, mine?.event.seq, mine?.event.status, mine?.event.attempts],
        [op.id, 3, 'Succeeded', 1],
      );
      assert.equal(mine?.traceparent, op.traceparent);
      assert.deepEqual(await leaseHooks('w2', ['callback', 'audit']).then((l) => l.map((d) => d.endpoint)), [
        'audit',
      ]);
      assert.deepEqual(await leaseHooks('w3', ['callback', 'audit']), [], 'held leases are not leased again');
      assert.equal(
        await fx.store.nextWebhookDueAt(['callback']),
        fx.clock.now() + 30_000,
        'the lease, while held',
      );

      const key = { operationId: op.id, seq: 3, endpoint: 'callback' };
      const failedAttempt = {
        attempt: { at: fx.clock.now(), status: 500, error: null, latencyMs: 12, responseSnippet: 'boom' },
        next: { state: 'pending' as const, nextAttemptAt: fx.clock.now() + 5_000 },
        lastError: 'The receiver answered 500.',
        disableEndpoint: false,
      };
      assert.equal(
        await fx.store.recordWebhookAttempt(key, `${mine!.leaseToken}x`, failedAttempt),
        false,
        'fenced by the token',
      );
      assert.equal(await fx.store.recordWebhookAttempt(key, mine!.leaseToken, failedAttempt), true);
      assert.equal(
        await fx.store.recordWebhookAttempt(key, mine!.leaseToken, failedAttempt),
        false,
        'the lease is gone',
      );
      assert.equal(await fx.store.nextWebhookDueAt(['callback']), fx.clock.now() + 5_000);
      assert.deepEqual(await leaseHooks('w1', ['callback']), [], 'not due yet');
      fx.clock.advance(5_000);
      const [again] = await leaseHooks('w3', ['callback']);
      assert.equal(again?.attempts, 1);
      fx.clock.advance(40);
      const delivered = {
        attempt: { at: fx.clock.now(), status: 204, error: null, latencyMs: 3, responseSnippet: '' },
        next: { state: 'delivered' as const },
        lastError: null,
        disableEndpoint: false,
      };
      assert.equal(await fx.store.recordWebhookAttempt(key, again!.leaseToken, delivered), true);
      fx.clock.advance(3_600_000);
      assert.deepEqual(await leaseHooks('w4', ['callback']), [], 'delivered: never leased again');
      assert.equal(await fx.store.nextWebhookDueAt(['callback']), undefined);
      const callback = (await fx.store.webhookDeliveries(op.id)).find((d) => d.endpoint === 'callback');
      assert.equal(callback?.state, 'delivered');
      assert.equal(callback?.attempts, 2);
      assert.equal(callback?.lastError, null);
      assert.deepEqual(callback?.attemptLog, [
        {
          attempt: 1,
          at: failedAttempt.attempt.at,
          status: 500,
          error: null,
          latencyMs: 12,
          responseSnippet: 'boom',
        },
        { attempt: 2, at: delivered.attempt.at, status: 204, error: null, latencyMs: 3, responseSnippet: '' },
      ]);
    });

    it('webhooks: an expired lease counts the lost attempt; a released one is due at once, uncounted', async () => {
      const op = await finishedWithCallback();
      const leaseHooks = (owner: string) =>
        fx.store.leaseWebhookDeliveries({ owner, limit: 10, leaseMs: 1_000, endpoints: ['callback'] });
      const [dead] = await leaseHooks('dead');
      fx.clock.advance(999);
      assert.deepEqual(await leaseHooks('w2'), []);
      fx.clock.advance(1);
      const [recovered] = await leaseHooks('w2');
      assert.equal(recovered?.attempts, 1, 'the lost attempt is counted');
      const key = { operationId: op.id, seq: 3, endpoint: 'callback' };
      assert.equal(await fx.store.releaseWebhookDelivery(key, dead!.leaseToken), false);
      assert.equal(await fx.store.releaseWebhookDelivery(key, recovered!.leaseToken), true);
      const [handedBack] = await leaseHooks('w3');
      assert.equal(handedBack?.attempts, 1, 'a release is not an attempt');
    });

    it('webhooks: a 410 disables a subscription for its pending and later deliveries; a callback only its own', async () => {
      const url = `https://hooks.example/${randomUUID()}`;
      const subscribed = (callbackUrl: string | null = null) =>
        fx.store.capture(
          newOperation(fx.clock, {
            callbackUrl,
            webhookSubscriptions: [{ endpoint: 'audit', url, events: null }],
          }),
        );
      const [a, b] = [await subscribed(`${url}/cb-a`), await subscribed(`${url}/cb-b`)];
      const later = await subscribed();
      const other = await fx.store.capture(
        newOperation(fx.clock, {
          webhookSubscriptions: [{ endpoint: 'audit', url: `${url}/elsewhere`, events: null }],
        }),
      );
      const leased = await lease(fx.store);
      for (const op of [a, b, other]) {
        await fx.store.complete(op.id, tokenOf(leased, op.id), {
          status: 200,
          headers: [],
          body: new Uint8Array(),
        });
        fx.clock.advance(1); // deliveries are leased oldest first: a's comes first
      }
      const gone = (lastError: string) => ({
        attempt: { at: fx.clock.now(), status: 410, error: null, latencyMs: 1, responseSnippet: null },
        next: { state: 'disabled' as const },
        lastError,
        disableEndpoint: true,
      });
      const [first] = await fx.store.leaseWebhookDeliveries({
        owner: 'w1',
        limit: 1,
        leaseMs: 30_000,
        endpoints: ['audit'],
      });
      assert.ok(first);
      assert.equal(
        await fx.store.recordWebhookAttempt(first, first.leaseToken, gone('The receiver answered 410 Gone.')),
        true,
      );
      const state = async (id: string, endpoint: string) =>
        (await fx.store.webhookDeliveries(id)).find((d) => d.endpoint === endpoint)?.state;
      assert.equal(await state(a.id, 'audit'), 'disabled');
      assert.equal(
        await state(b.id, 'audit'),
        'disabled',
        'a pending delivery to the same endpoint ends too',
      );
      assert.equal(await state(other.id, 'audit'), 'pending', 'another URL of the same name is not disabled');
      await fx.store.complete(later.id, tokenOf(leased, later.id), {
        status: 200,
        headers: [],
        body: new Uint8Array(),
      });
      assert.equal(await state(later.id, 'audit'), 'disabled', 'later deliveries are created disabled');
      assert.deepEqual(
        (
          await fx.store.leaseWebhookDeliveries({
            owner: 'w2',
            limit: 10,
            leaseMs: 1_000,
            endpoints: ['audit'],
          })
        ).map((d) => d.operationId),
        [other.id],
      );

      // A callback's 410 ends that delivery only.
      const [cbA] = await fx.store.leaseWebhookDeliveries({
        owner: 'w1',
        limit: 1,
        leaseMs: 30_000,
        endpoints: ['callback'],
      });
      assert.ok(cbA);
      await fx.store.recordWebhookAttempt(cbA, cbA.leaseToken, { ...gone('gone'), disableEndpoint: false });
      const callbacks = [await state(a.id, 'callback'), await state(b.id, 'callback')].sort();
      assert.deepEqual(callbacks, ['disabled', 'pending']);
    });

    it('webhooks: purging an operation removes its deliveries and their attempts', async () => {
      const op = await finishedWithCallback();
      const [d] = await fx.store.leaseWebhookDeliveries({
        owner: 'w1',
        limit: 1,
        leaseMs: 1_000,
        endpoints: ['callback'],
      });
      await fx.store.recordWebhookAttempt(d!, d!.leaseToken, {
        attempt: { at: fx.clock.now(), status: 200, error: null, latencyMs: 1, responseSnippet: 'ok' },
        next: { state: 'delivered' },
        lastError: null,
        disableEndpoint: false,
      });
      fx.clock.advance(1_000);
      assert.equal(await fx.store.purge(fx.clock.now(), 100), 1);
      assert.deepEqual(await fx.store.webhookDeliveries(op.id), []);
    });

    describe('webhooks: operator actions (enable an endpoint, re-send a delivery)', () => {
      const ok = { status: 200, headers: [], body: new Uint8Array() };
      /** A fresh subscription name: on PostgreSQL disabled endpoints outlive each test's truncation. */
      const freshName = () => `hooks-${randomUUID().slice(0, 8)}`;
      const leaseHooks = (owner: string, endpoints: string[], limit = 10, leaseMs = 30_000) =>
        fx.store.leaseWebhookDeliveries({ owner, limit, leaseMs, endpoints });
      const attempt = (status: number, next: WebhookAttemptRecord['next'], disableEndpoint = false) => ({
        attempt: { at: fx.clock.now(), status, error: null, latencyMs: 2, responseSnippet: String(status) },
        next,
        lastError: status === 410 ? 'The receiver answered 410 Gone.' : `The receiver answered ${status}.`,
        disableEndpoint,
      });
      /** Operations that have just Succeeded (seq 3), with a callback and the given subscription. */
      async function finished(count: number, subscription?: { endpoint: string; url: string }) {
        const ops = [];
        for (let i = 0; i < count; i++) {
          ops.push(
            await fx.store.capture(
              newOperation(fx.clock, {
                callbackUrl: `https://cb.example/${randomUUID()}`,
                webhookSubscriptions: subscription ? [{ ...subscription, events: null }] : [],
              }),
            ),
          );
        }
        const leased = await fx.store.lease({ owner: 'w', limit: count, leaseMs: 60_000 });
        for (const op of ops) {
          await fx.store.complete(op.id, tokenOf(leased, op.id), ok);
          fx.clock.advance(1); // deliveries are leased oldest first
        }
        return ops;
      }
      const delivery = async (operationId: string, endpoint = 'callback') =>
        (await fx.store.webhookDeliveries(operationId)).find((d) => d.endpoint === endpoint)!;
      const keyOf = (operationId: string, endpoint = 'callback') => ({ operationId, seq: 3, endpoint });

      it('webhooks: deliveries are listed by state across operations, to one endpoint or all, newest first, a page after a cursor', async () => {
        const name = freshName();
        const url = `https://hooks.example/${randomUUID()}`;
        const [a, b, c] = await finished(3, { endpoint: name, url }); // created 1 ms apart, a first
        const [fa, fb] = await leaseHooks('w1', ['callback'], 2);
        assert.deepEqual([fa?.operationId, fb?.operationId], [a!.id, b!.id]);
        await fx.store.recordWebhookAttempt(fa!, fa!.leaseToken, attempt(500, { state: 'failed' }));
        await fx.store.recordWebhookAttempt(fb!, fb!.leaseToken, attempt(204, { state: 'delivered' }));
        const [gone] = await leaseHooks('w1', [name], 1);
        assert.equal(gone?.operationId, a!.id);
        await fx.store.recordWebhookAttempt(
          gone!,
          gone!.leaseToken,
          attempt(410, { state: 'disabled' }, true),
        );

        const list = async (query: Omit<WebhookDeliveryQuery, 'limit'> & { limit?: number }) =>
          (await fx.store.listWebhookDeliveries({ limit: 10, ...query })).map((d) => [
            d.operationId,
            d.endpoint,
          ]);
        assert.deepEqual(await list({ state: 'failed' }), [[a!.id, 'callback']]);
        assert.deepEqual(await list({ state: 'delivered' }), [[b!.id, 'callback']]);
        assert.deepEqual(
          await list({ state: 'disabled' }),
          [
            [c!.id, name],
            [b!.id, name],
            [a!.id, name],
          ],
          'newest first: the 410 disabled the pending deliveries to that URL too',
        );
        assert.deepEqual(await list({ state: 'pending' }), [[c!.id, 'callback']]);
        assert.deepEqual(await list({ state: 'pending', endpoint: name }), []);
        assert.deepEqual(await list({ state: 'disabled', endpoint: 'callback' }), []);
        assert.deepEqual(await list({ state: 'failed', endpoint: 'nobody' }), []);

        const [failed] = await fx.store.listWebhookDeliveries({ state: 'failed', limit: 10 });
        const { attemptLog, ...shown } = (await delivery(a!.id))!;
        assert.equal(attemptLog.length, 1);
        assert.deepEqual(failed, shown, 'each as webhookDeliveries has it, without its attempt log');
        assert.deepEqual(
          [failed?.seq, failed?.url, failed?.attempts, failed?.lastError],
          [3, fa!.url, 1, 'The receiver answered 500.'],
        );

        // Pages: each goes on after the last of the one before, to one endpoint or to all.
        const pages = async (query: Omit<WebhookDeliveryQuery, 'limit' | 'after'>, limit: number) => {
          const seen: string[][] = [];
          let after: WebhookDeliveryQuery['after'];
          for (;;) {
            const page = await fx.store.listWebhookDeliveries({
              ...query,
              limit,
              ...(after ? { after } : {}),
            });
            assert.ok(page.length <= limit);
            if (page.length === 0) return seen;
            seen.push(page.map((d) => d.operationId));
            after = page.at(-1)!;
          }
        };
        assert.deepEqual(await pages({ state: 'disabled' }, 2), [[c!.id, b!.id], [a!.id]]);
        assert.deepEqual(await pages({ state: 'disabled', endpoint: name }, 1), [[c!.id], [b!.id], [a!.id]]);

        // Deliveries created in the same millisecond are ordered by operation id, and none is lost or
        // repeated between pages.
        const same = [];
        for (let i = 0; i < 3; i++) {
          same.push(await fx.store.capture(newOperation(fx.clock, { callbackUrl: `${url}/${i}` })));
        }
        const leased = await fx.store.lease({ owner: 'w', limit: 3, leaseMs: 60_000 });
        for (const op of same) await fx.store.complete(op.id, tokenOf(leased, op.id), ok);
        const tied = same
          .map((op) => op.id)
          .sort()
          .reverse();
        assert.deepEqual(await pages({ state: 'pending', endpoint: 'callback' }, 1), [
          ...tied.map((id) => [id]),
          [c!.id],
        ]);
        assert.deepEqual(await pages({ state: 'pending' }, 2), [
          [tied[0], tied[1]],
          [tied[2], c!.id],
        ]);
      });

      it('webhooks: disabled endpoints are listed; enabling one sends later deliveries and leaves those disabled meanwhile disabled', async () => {
        const name = freshName();
        const [url, moved] = [`https://hooks.example/${randomUUID()}`, `https://new.example/${randomUUID()}`];
        const [a, b] = await finished(2, { endpoint: name, url });
        const [elsewhere] = await finished(1, { endpoint: name, url: moved });
        const mine = async () =>
          (await fx.store.disabledWebhookEndpoints()).filter((e) => e.endpoint === name);
        assert.deepEqual(await mine(), []);

        const [first] = await leaseHooks('w1', [name], 1);
        assert.equal(first?.operationId, a!.id);
        const disabledAt = fx.clock.now();
        assert.equal(
          await fx.store.recordWebhookAttempt(
            first!,
            first!.leaseToken,
            attempt(410, { state: 'disabled' }, true),
          ),
          true,
        );
        fx.clock.advance(5);
        const [second] = await leaseHooks('w1', [name]);
        assert.equal(second?.operationId, elsewhere!.id, "b's delivery was disabled with the endpoint");
        await fx.store.recordWebhookAttempt(
          second!,
          second!.leaseToken,
          attempt(410, { state: 'disabled' }, true),
        );
        const gone = 'The receiver answered 410 Gone.';
        const listed = [
          { endpoint: name, url, disabledAt, reason: gone },
          { endpoint: name, url: moved, disabledAt: disabledAt + 5, reason: gone },
        ];
        assert.deepEqual(await mine(), listed, 'each URL of the name, oldest first');

        assert.deepEqual(
          await fx.store.enableWebhookEndpoint(name),
          listed,
          'every URL of the name is enabled',
        );
        assert.deepEqual(await mine(), []);
        assert.deepEqual(await fx.store.enableWebhookEndpoint(name), [], 'enabling twice changes nothing');
        assert.deepEqual(await fx.store.enableWebhookEndpoint(freshName()), []);
        assert.equal((await delivery(b!.id, name)).state, 'disabled', 'disabled meanwhile: stays disabled');
        assert.deepEqual(await leaseHooks('w2', [name]), [], 'nothing was made pending by enabling');

        const [later] = await finished(1, { endpoint: name, url });
        assert.equal((await delivery(later!.id, name)).state, 'pending', 'later deliveries are sent again');
        assert.deepEqual(
          (await leaseHooks('w2', [name])).map((d) => d.operationId),
          [later!.id],
        );
      });

      it('webhooks: a re-send puts a failed or disabled delivery back, due now, keeping its attempts; pending, leased, delivered and unknown ones are refused', async () => {
        const [failed, disabled, waiting] = await finished(3);
        const [f, d] = await leaseHooks('w1', ['callback'], 2);
        assert.deepEqual([f?.operationId, d?.operationId], [failed!.id, disabled!.id]);
        await fx.store.recordWebhookAttempt(f!, f!.leaseToken, attempt(500, { state: 'failed' }));
        await fx.store.recordWebhookAttempt(d!, d!.leaseToken, attempt(410, { state: 'disabled' }));
        fx.clock.advance(60_000);

        const resent = await fx.store.resendWebhookDelivery(keyOf(failed!.id));
        assert.equal(resent.outcome, 'resent');
        assert.ok(resent.outcome === 'resent');
        assert.equal(resent.previousState, 'failed');
        assert.equal(resent.delivery.state, 'pending');
        assert.equal(resent.delivery.nextAttemptAt, fx.clock.now(), 'due now');
        assert.equal(resent.delivery.attempts, 1, 'its attempts are kept');
        const after = await delivery(failed!.id);
        assert.deepEqual(
          [after.state, after.attempts, after.url, after.attemptLog.map((a) => a.status)],
          ['pending', 1, f!.url, [500]],
          'the attempt log is kept, and the URL',
        );
        assert.deepEqual(await fx.store.resendWebhookDelivery(keyOf(failed!.id)), {
          outcome: 'refused',
          reason: 'pending',
        });

        const again = await fx.store.resendWebhookDelivery(keyOf(disabled!.id));
        assert.ok(again.outcome === 'resent', again.outcome);
        assert.equal(again.previousState, 'disabled');

        assert.deepEqual(await fx.store.resendWebhookDelivery(keyOf(waiting!.id)), {
          outcome: 'refused',
          reason: 'pending',
        });
        const leased = await leaseHooks('w2', ['callback']);
        assert.deepEqual(
          leased.map((l) => [l.operationId, l.attempts]).sort(),
          [
            [disabled!.id, 1],
            [failed!.id, 1],
            [waiting!.id, 0],
          ].sort() as Array<[string, number]>,
        );
        assert.deepEqual(
          await fx.store.resendWebhookDelivery(keyOf(failed!.id)),
          { outcome: 'refused', reason: 'pending' },
          'leased: refused, and still held',
        );
        assert.deepEqual(await leaseHooks('w3', ['callback']), []);
        const [byW2] = leased.filter((l) => l.operationId === failed!.id);
        assert.equal(
          await fx.store.recordWebhookAttempt(byW2!, byW2!.leaseToken, attempt(204, { state: 'delivered' })),
          true,
        );
        const done = await delivery(failed!.id);
        assert.deepEqual(
          done.attemptLog.map((a) => [a.attempt, a.status]),
          [
            [1, 500],
            [2, 204],
          ],
          'the re-sent attempt is numbered after the earlier ones',
        );
        assert.deepEqual(await fx.store.resendWebhookDelivery(keyOf(failed!.id)), {
          outcome: 'refused',
          reason: 'delivered',
        });
        assert.equal((await delivery(failed!.id)).state, 'delivered');

        assert.deepEqual(await fx.store.resendWebhookDelivery(keyOf(newOperationId())), {
          outcome: 'unknown',
        });
        assert.deepEqual(await fx.store.resendWebhookDelivery(keyOf(waiting!.id, 'nobody')), {
          outcome: 'unknown',
        });
        assert.deepEqual(await fx.store.resendWebhookDelivery({ ...keyOf(waiting!.id), seq: 2 }), {
          outcome: 'unknown',
        });
      });

      it("webhooks: a re-send is refused while its endpoint is disabled there, and may point a subscription's delivery at a new URL", async () => {
        const name = freshName();
        const [url, moved] = [`https://hooks.example/${randomUUID()}`, `https://new.example/${randomUUID()}`];
        const [a, b] = await finished(2, { endpoint: name, url });
        const [first] = await leaseHooks('w1', [name], 1);
        await fx.store.recordWebhookAttempt(
          first!,
          first!.leaseToken,
          attempt(410, { state: 'disabled' }, true),
        );
        assert.deepEqual(await fx.store.resendWebhookDelivery(keyOf(a!.id, name)), {
          outcome: 'refused',
          reason: 'endpoint-disabled',
        });
        assert.equal((await delivery(a!.id, name)).state, 'disabled');
        assert.deepEqual(await leaseHooks('w1', [name]), []);

        const retargeted = await fx.store.resendWebhookDelivery(keyOf(a!.id, name), moved);
        assert.ok(retargeted.outcome === 'resent', retargeted.outcome);
        assert.equal(retargeted.delivery.url, moved);
        const [leased] = await leaseHooks('w1', [name]);
        assert.deepEqual([leased?.operationId, leased?.url], [a!.id, moved]);

        assert.equal((await fx.store.enableWebhookEndpoint(name)).length, 1);
        const same = await fx.store.resendWebhookDelivery(keyOf(b!.id, name));
        assert.ok(same.outcome === 'resent', same.outcome);
        assert.equal(same.delivery.url, url, 'without a URL, the delivery keeps its own');
      });

      it('webhooks: a delivery disabled mid-attempt and re-sent stays with its lease holder until the lease runs out, never leased twice', async () => {
        const name = freshName();
        const url = `https://hooks.example/${randomUUID()}`;
        const [a, b, c] = await finished(3, { endpoint: name, url });
        const [da] = await leaseHooks('w1', [name], 1);
        const leasedAt = fx.clock.now();
        const [db, dc] = await leaseHooks('w2', [name], 2, 30_000);
        assert.deepEqual(
          [da, db, dc].map((d) => d?.operationId),
          [a!.id, b!.id, c!.id],
        );
        await fx.store.recordWebhookAttempt(da!, da!.leaseToken, attempt(410, { state: 'disabled' }, true));
        assert.equal((await delivery(b!.id, name)).state, 'disabled', 'disabled while w2 sends it');
        assert.equal(
          await fx.store.recordWebhookAttempt(db!, db!.leaseToken, attempt(204, { state: 'delivered' })),
          false,
          "the holder's record is refused while it is disabled",
        );
        await fx.store.enableWebhookEndpoint(name);
        fx.clock.advance(1_000);
        for (const op of [b!, c!]) {
          const resent = await fx.store.resendWebhookDelivery(keyOf(op.id, name));
          assert.ok(resent.outcome === 'resent', resent.outcome);
          assert.equal(resent.delivery.nextAttemptAt, leasedAt + 30_000, 'due when the lease runs out');
        }
        assert.deepEqual(await leaseHooks('w3', [name]), [], 'not leased while w2 may still be sending');
        assert.equal(
          await fx.store.recordWebhookAttempt(dc!, dc!.leaseToken, attempt(204, { state: 'delivered' })),
          true,
          'the holder records its attempt',
        );
        assert.equal((await delivery(c!.id, name)).state, 'delivered');
        fx.clock.advance(29_000);
        const [recovered, extra] = await leaseHooks('w3', [name]);
        assert.equal(extra, undefined);
        assert.equal(recovered?.operationId, b!.id);
        assert.equal(recovered?.attempts, 1, "the holder's unrecorded attempt is counted as lost");
      });

      it('webhooks: of concurrent re-sends one wins, and of concurrent leases after it one gets the delivery', async () => {
        const [op] = await finished(1);
        const [d] = await leaseHooks('w1', ['callback']);
        await fx.store.recordWebhookAttempt(d!, d!.leaseToken, attempt(500, { state: 'failed' }));
        const resends = await Promise.all(
          Array.from({ length: 8 }, () => fx.store.resendWebhookDelivery(keyOf(op!.id))),
        );
        assert.deepEqual(resends.map((r) => (r.outcome === 'refused' ? r.reason : r.outcome)).sort(), [
          'pending',
          'pending',
          'pending',
          'pending',
          'pending',
          'pending',
          'pending',
          'resent',
        ]);
        const leases = await Promise.all(
          ['x1', 'x2', 'x3', 'x4'].map((owner) => leaseHooks(owner, ['callback'])),
        );
        assert.equal(leases.flat().length, 1);
      });
    });
  });
}
