/**
 * The operations admin API end to end (docs/operations.md#admin-api): a real
 * gateway on a real SQLite file, a real loopback upstream, and the admin port
 * over HTTP. Dead letters are made the way production makes them (attempts
 * exhausted, outcome unknown) and are found, inspected, redriven, discarded
 * and canceled; replay is paused and resumed through the store.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it, type TestContext } from 'node:test';
import { jsonOf, operationIdOf, startGateway, type TestGateway } from '../support/harness.ts';
import { TestUpstream } from '../support/test-upstream.ts';

const ROUTES = [
  { name: 'payments', match: 'POST /payments', maxAttempts: 2 },
  { name: 'orders', match: 'POST /orders', maxAttempts: 2 },
];

async function upstreamFor(t: TestContext): Promise<TestUpstream> {
  const upstream = await new TestUpstream().start();
  t.after(() => upstream.stop());
  return upstream;
}

const admin = (gw: TestGateway, path: string, init: RequestInit = {}) =>
  fetch(`http://127.0.0.1:${gw.adminPort}${path}`, init);
const post = (gw: TestGateway, path: string, body?: unknown) =>
  admin(gw, path, {
    method: 'POST',
    ...(body === undefined
      ? {}
      : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
  });

/** Waits until the admin API lists `id` as a dead letter (the replay fails it in the background). */
async function deadLetter(gw: TestGateway, id: string): Promise<void> {
  const op = await gw.settled(id);
  assert.equal(op.status, 'Failed');
  assert.ok(op.deadLetteredAt, `${id} is dead-lettered`);
}

async function capture(gw: TestGateway, path: string, marker = randomUUID()): Promise<string> {
  const res = await fetch(`${gw.publicUrl}${path}`, { method: 'POST', body: marker });
  assert.equal(res.status, 202);
  return operationIdOf(res);
}

describe('the operations admin API', () => {
  it('lists a dead letter with its attempt history, redrives it under a paused then resumed replay, and it succeeds', async (t) => {
    const upstream = await upstreamFor(t);
    upstream.behaviour = () => ({ kind: 'respond', status: 503, body: 'down' });
    await using gw = await startGateway({ upstream: upstream.url, routes: ROUTES });
    const id = await capture(gw, '/payments');
    const other = await capture(gw, '/orders');
    await Promise.all([deadLetter(gw, id), deadLetter(gw, other)]);

    const list = await jsonOf(await admin(gw, '/api/operations?deadLettered=true&route=payments'));
    assert.deepEqual(
      list.operations.map((o: { id: string }) => o.id),
      [id],
    );
    assert.equal(list.nextCursor, null);
    const [row] = list.operations;
    assert.equal(row.status, 'Failed');
    assert.equal(row.deadLettered, true);
    assert.equal(row.lastError.code, 'attempts-exhausted');
    assert.equal(row.failoverReason, 'upstream answered 503');
    assert.equal(row.method, 'POST');

    const detail = await jsonOf(await admin(gw, `/api/operations/${id}`));
    assert.deepEqual(
      detail.attemptHistory.map((a: Record<string, unknown>) => [a.attempt, a.outcome, a.upstreamStatus]),
      [
        [1, 'retry', 503],
        [2, 'failed', 503],
      ],
    );
    for (const a of detail.attemptHistory) {
      assert.equal(typeof a.durationMs, 'number');
      assert.ok(Date.parse(a.startedDateTime) <= Date.parse(detail.lastActionDateTime));
    }
    assert.deepEqual(
      detail.events.map((e: { status: string }) => e.status),
      ['NotStarted', 'Running', 'Failed'],
    );
    assert.equal('body' in detail, false, 'no request body is shown');

    const health = await jsonOf(await admin(gw, '/api/health'));
    const payments = health.routes.find((r: { route: string }) => r.route === 'payments');
    assert.deepEqual([payments.backlog, payments.deadLettered, payments.replay], [0, 1, 'running']);
    assert.deepEqual(health.totals, { backlog: 0, deadLettered: 2 });

    // Paused: the redriven operation waits, in every process sharing the store.
    const paused = await admin(gw, '/api/routes/payments/replay', { method: 'PUT', body: 'paused' });
    assert.equal(paused.status, 200);
    assert.equal((await jsonOf(paused)).replay, 'paused');
    upstream.behaviour = () => ({ kind: 'respond', status: 201, body: 'paid' });
    const redrive = await post(gw, `/api/operations/${id}/redrive`);
    assert.equal(redrive.status, 200);
    const redriven = await jsonOf(redrive);
    assert.equal(redriven.status, 'NotStarted');
    assert.equal(redriven.deadLettered, false);
    assert.ok(redriven.redrivenDateTime);
    await gw.worker.runOnce();
    await gw.worker.idle();
    assert.equal((await gw.store.get(id))?.status, 'NotStarted', 'not replayed while paused');
    const pausedHealth = await jsonOf(await admin(gw, '/api/health'));
    const pausedRoute = pausedHealth.routes.find((r: { route: string }) => r.route === 'payments');
    assert.deepEqual([pausedRoute.backlog, pausedRoute.replay], [1, 'paused']);

    const resumed = await admin(gw, '/api/routes/payments/replay', {
      method: 'PUT',
      body: JSON.stringify({ replay: 'running' }),
    });
    assert.equal((await jsonOf(resumed)).replay, 'running');
    const done = await gw.settled(id);
    assert.equal(done.status, 'Succeeded');
    const after = await jsonOf(await admin(gw, `/api/operations/${id}`));
    assert.deepEqual(
      after.attemptHistory.map((a: Record<string, unknown>) => [a.attempt, a.outcome, a.upstreamStatus]),
      [
        [1, 'retry', 503],
        [2, 'failed', 503],
        [3, 'succeeded', 201],
      ],
    );
    assert.equal(after.resultStatus, 201);

    const again = await post(gw, `/api/operations/${id}/redrive`);
    assert.equal(again.status, 409);
    assert.equal((await jsonOf(again)).code, 'not-dead-lettered');
    assert.equal(again.headers.get('content-type'), 'application/problem+json');
  });

  it('redrives an outcome-unknown dead letter only with includeOutcomeUnknown', async (t) => {
    const upstream = await upstreamFor(t);
    upstream.behaviour = () => ({ kind: 'reset' });
    await using gw = await startGateway({ upstream: upstream.url, routes: ROUTES });
    const id = await capture(gw, '/payments');
    await deadLetter(gw, id);
    const refused = await post(gw, `/api/operations/${id}/redrive`);
    assert.equal(refused.status, 409);
    const problem = await jsonOf(refused);
    assert.equal(problem.code, 'redrive-needs-confirmation');
    assert.match(problem.detail, /includeOutcomeUnknown/);
    const bad = await post(gw, `/api/operations/${id}/redrive`, { includeOutcomeUnknown: 'yes' });
    assert.equal(bad.status, 400);
    upstream.behaviour = () => ({ kind: 'respond', status: 201, body: 'paid' });
    const redrive = await post(gw, `/api/operations/${id}/redrive`, { includeOutcomeUnknown: true });
    assert.equal(redrive.status, 200);
    assert.equal((await gw.settled(id)).status, 'Succeeded');
  });

  it('discards a dead letter, cancels between attempts, and refuses what does not apply', async (t) => {
    const upstream = await upstreamFor(t);
    upstream.behaviour = () => ({ kind: 'respond', status: 503, body: 'down' });
    await using gw = await startGateway({ upstream: upstream.url, routes: ROUTES });
    const id = await capture(gw, '/payments');
    await deadLetter(gw, id);
    const discarded = await post(gw, `/api/operations/${id}/discard`);
    assert.equal(discarded.status, 200);
    const view = await jsonOf(discarded);
    assert.deepEqual([view.status, view.deadLettered], ['Failed', false]);
    assert.ok(view.discardedDateTime);
    const twice = await post(gw, `/api/operations/${id}/discard`);
    assert.equal((await jsonOf(twice)).code, 'not-dead-lettered');
    assert.deepEqual((await jsonOf(await admin(gw, '/api/operations?deadLettered=true'))).operations, []);

    // A replay that gets a 503 with Retry-After waits an hour: Running, holding no lease.
    upstream.behaviour = () => ({ kind: 'respond', status: 503, headers: { 'retry-after': '3600' } });
    const res = await fetch(`${gw.publicUrl}/orders`, {
      method: 'POST',
      headers: { prefer: 'respond-async, wait=0' },
      body: 'x',
    });
    const waiting = operationIdOf(res);
    const until = Date.now() + 10_000;
    while (
      (await gw.store.get(waiting))?.attempts !== 1 ||
      (await gw.store.get(waiting))?.leaseOwner !== null
    ) {
      assert.ok(Date.now() < until, 'the first replay is recorded');
      await new Promise((r) => setTimeout(r, 20));
    }
    const monitor = await jsonOf(await fetch(`${gw.publicUrl}/_spillway/operations/${waiting}`));
    assert.equal(monitor.status, 'Running');
    assert.equal(monitor.lastError.upstreamStatus, 503);
    assert.ok(Date.parse(monitor.nextAttemptDateTime) > Date.now() + 3_000_000);
    assert.equal(monitor.failoverReason, 'respond-async with wait=0');
    const publicCancel = await fetch(`${gw.publicUrl}/_spillway/operations/${waiting}/cancel`, {
      method: 'POST',
    });
    assert.equal(publicCancel.status, 409, 'the public cancel stops at NotStarted');
    const cancel = await post(gw, `/api/operations/${waiting}/cancel`);
    assert.equal(cancel.status, 200);
    assert.equal((await jsonOf(cancel)).status, 'Canceled');
    const ended = await post(gw, `/api/operations/${waiting}/cancel`);
    assert.equal(ended.status, 409);
    assert.equal((await jsonOf(ended)).code, 'operation-terminal');

    const unknown = await post(gw, '/api/operations/op_nope/redrive');
    assert.equal(unknown.status, 404);
    assert.equal((await jsonOf(unknown)).code, 'operation-not-found');
    for (const query of ['status=Lost', 'deadLettered=maybe', 'limit=0', 'limit=501', 'cursor=xyz']) {
      const bad = await admin(gw, `/api/operations?${query}`);
      assert.equal(bad.status, 400, query);
      assert.equal((await jsonOf(bad)).code, 'bad-request');
    }
    const wrongMethod = await admin(gw, '/api/operations', { method: 'DELETE' });
    assert.equal(wrongMethod.status, 405);
    const noRoute = await admin(gw, '/api/routes/nope/replay', { method: 'PUT', body: 'paused' });
    assert.equal(noRoute.status, 404);
    const badReplay = await admin(gw, '/api/routes/payments/replay', { method: 'PUT', body: 'stopped' });
    assert.equal(badReplay.status, 400);
  });

  it('pages with an opaque cursor, and redrives dead letters in bulk a batch at a time', async (t) => {
    const upstream = await upstreamFor(t);
    upstream.behaviour = () => ({ kind: 'respond', status: 503, body: 'down' });
    await using gw = await startGateway({ upstream: upstream.url, routes: ROUTES });
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push(await capture(gw, i < 4 ? '/payments' : '/orders'));
    await Promise.all(ids.map((id) => deadLetter(gw, id)));

    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page = await jsonOf(
        await admin(gw, `/api/operations?deadLettered=true&limit=2${cursor ? `&cursor=${cursor}` : ''}`),
      );
      assert.ok(page.operations.length <= 2);
      seen.push(...page.operations.map((o: { id: string }) => o.id));
      cursor = page.nextCursor;
    } while (cursor);
    assert.deepEqual([...seen].sort(), [...ids].sort());

    upstream.behaviour = () => ({ kind: 'respond', status: 201, body: 'paid' });
    const redriven: string[] = [];
    let next: string | undefined;
    for (;;) {
      const res = await post(gw, '/api/operations/redrive', { route: 'payments', limit: 3, cursor: next });
      assert.equal(res.status, 200);
      const batch = await jsonOf(res);
      assert.deepEqual(batch.skipped, []);
      redriven.push(...batch.redriven);
      if (!batch.nextCursor) break;
      next = batch.nextCursor;
    }
    assert.deepEqual([...redriven].sort(), ids.slice(0, 4).sort());
    for (const id of redriven) assert.equal((await gw.settled(id)).status, 'Succeeded');
    const left = await jsonOf(await admin(gw, '/api/operations?deadLettered=true'));
    assert.deepEqual(
      left.operations.map((o: { id: string }) => o.id),
      [ids[4]],
    );
    const discard = await jsonOf(await post(gw, '/api/operations/discard', {}));
    assert.deepEqual(discard, { discarded: [ids[4]], skipped: [], nextCursor: null });
    const badBody = await admin(gw, '/api/operations/discard', { method: 'POST', body: '[1]' });
    assert.equal(badBody.status, 400);
  });
});
