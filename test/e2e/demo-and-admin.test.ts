/**
 * The demo's story end to end (what `npm start` shows a newcomer), and the
 * admin port's liveness and readiness.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { startDemo } from '../../src/demo/demo.ts';
import { resourceKey } from '../../src/policy/stale-if-error.ts';
import { jsonOf, operationIdOf, startGateway, tempDir } from '../support/harness.ts';
import { capturedLogger } from '../support/log-lines.ts';
import { closedPort } from '../support/test-upstream.ts';

describe('the demo', () => {
  it('answers sync, then 202 while the upstream is down, then completes the payment once it is back', async () => {
    const dir = tempDir();
    const { logger, lines } = capturedLogger('info');
    const demo = await startDemo({
      port: 0,
      ports: { admin: 0, upstream: 0, control: 0, webhooks: 0 },
      store: join(dir, 'demo.db'),
      guide: false,
      logger,
    });
    try {
      const gw = demo.spillway.publicUrl;
      const pay = (amount: number) =>
        fetch(`${gw}/payments`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ amount }),
        });
      const sync = await pay(42);
      assert.equal(sync.status, 201);
      assert.equal((await jsonOf(sync)).amount, 42);

      const again = await fetch(`${gw}/payments`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': 'order-1001' },
        body: '{"amount": 5}',
      });
      const replayed = await fetch(`${gw}/payments`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': 'order-1001' },
        body: '{"amount": 5}',
      });
      assert.equal(replayed.headers.get('idempotent-replayed'), 'true');
      assert.deepEqual(await jsonOf(replayed), await jsonOf(again));

      await demo.upstream.setMode({ mode: 'down' });
      const accepted = await fetch(`${gw}/payments`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'spillway-callback': demo.receiver.url },
        body: JSON.stringify({ amount: 43 }),
      });
      assert.equal(accepted.status, 202);
      const id = operationIdOf(accepted);

      await demo.upstream.setMode({ mode: 'healthy' });
      for (;;) {
        const monitor = await jsonOf(await fetch(`${gw}/_spillway/operations/${id}`));
        if (monitor.status === 'Succeeded') break;
        assert.notEqual(monitor.status, 'Failed');
        await new Promise((r) => setTimeout(r, 50));
      }
      const result = await fetch(`${gw}/_spillway/operations/${id}/result`);
      assert.equal(result.status, 201);
      const payment = await jsonOf(result);
      assert.equal(payment.amount, 43);
      const all = await jsonOf(await fetch(`${demo.upstream.url}/payments`));
      assert.equal(Object.keys(all).length, 3, 'three payments, each made once');
      while (demo.receiver.received.length === 0) await new Promise((r) => setTimeout(r, 20));
      const [hook] = demo.receiver.received;
      assert.equal(hook?.verified, true);
      assert.equal(hook?.event?.subject, id);
      assert.equal(hook?.event?.data?.status, 'Succeeded');
      // The log shows the story: the capture, then the attempt that succeeded, both at info.
      const mine = lines.filter((l) => l.operationId === id);
      const capture = mine.find((l) => l.msg === 'operation:captured');
      assert.equal(capture?.level, 'info');
      assert.equal(capture?.route, 'payments');
      assert.equal(capture?.reason, 'upstream-unreachable');
      assert.ok(mine.some((l) => l.msg === 'attempt:finished' && l.outcome === 'succeeded'));
    } finally {
      await demo.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the demo’s prices (guide step 9)', () => {
  it('answers the last price list at once while the upstream is down, then the fresh one', async () => {
    const dir = tempDir();
    const demo = await startDemo({
      port: 0,
      ports: { admin: 0, upstream: 0, control: 0, webhooks: 0 },
      store: join(dir, 'demo.db'),
      guide: false,
      logger: capturedLogger('info').logger,
    });
    try {
      const gw = demo.spillway.publicUrl;
      const first = await fetch(`${gw}/prices`);
      assert.equal(first.status, 200);
      const list = await jsonOf(first);
      assert.equal(list.currency, 'EUR');
      const kept = resourceKey({ tenant: null, method: 'GET', path: '/prices', query: '', headers: [] });
      for (const until = Date.now() + 10_000; (await demo.spillway.store.staleCopies(kept)).length === 0; ) {
        assert.ok(Date.now() < until, 'the price list is kept within 10 s');
        await new Promise((r) => setTimeout(r, 20));
      }
      await demo.upstream.setMode({ mode: 'down' });
      const stale = await fetch(`${gw}/prices`);
      assert.equal(stale.status, 200);
      assert.deepEqual(await jsonOf(stale), list);
      assert.equal(stale.headers.get('cache-status'), 'Spillway; hit; detail=stale-if-error');
      assert.match(stale.headers.get('age') ?? '', /^\d+$/);
      const id = operationIdOf(stale);
      await demo.upstream.setMode({ mode: 'healthy' });
      for (const until = Date.now() + 20_000; ; ) {
        const monitor = await jsonOf(await fetch(`${gw}/_spillway/operations/${id}`));
        if (monitor.status === 'Succeeded') break;
        assert.ok(Date.now() < until, `the refresh succeeds (${monitor.status})`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const fresh = await fetch(`${gw}/_spillway/operations/${id}/result`);
      assert.equal(fresh.status, 200);
      assert.equal((await jsonOf(fresh)).currency, 'EUR');
      const next = await fetch(`${gw}/prices`);
      assert.equal(next.headers.get('cache-status'), null, 'fresh from the upstream again');
      await next.text();
    } finally {
      await demo.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the admin port', () => {
  it('answers /healthz and /readyz while serving, and /readyz 503 for shutdownDelayMs before the port closes', async () => {
    const gw = await startGateway({
      upstream: `http://127.0.0.1:${await closedPort()}`,
      shutdownDelayMs: 300,
    });
    const admin = `http://127.0.0.1:${gw.adminPort}`;
    assert.deepEqual(await jsonOf(await fetch(`${admin}/healthz`)), { status: 'ok' });
    const ready = await fetch(`${admin}/readyz`);
    assert.equal(ready.status, 200);
    assert.equal((await jsonOf(ready)).status, 'ready');
    const unknown = await fetch(`${admin}/nope`);
    assert.equal(unknown.status, 404);
    assert.equal((await jsonOf(unknown)).type, 'https://spillway.dev/problems/not-found');

    // Readiness drops first thing in stop(); the public port keeps serving for shutdownDelayMs.
    const stopping = gw.stop();
    const during = await fetch(`${admin}/readyz`);
    assert.equal(during.status, 503);
    assert.equal((await jsonOf(during)).status, 'not-ready');
    const stillServing = await fetch(`${gw.publicUrl}/payments`, { method: 'POST', body: 'x' });
    assert.equal(stillServing.status, 202);
    await stopping;
  });
});
