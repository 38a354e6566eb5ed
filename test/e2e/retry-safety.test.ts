/**
 * Invariant 2: no silent double effects. A request whose attempt may have
 * reached the upstream (the connection was reset after the upstream read it)
 * is sent again only when the method is idempotent or the route declares that
 * the upstream honours Idempotency-Key; otherwise it ends Failed, outcome
 * unknown, dead-lettered.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { jsonOf, operationIdOf, startGateway } from '../support/harness.ts';
import { TestUpstream } from '../support/test-upstream.ts';

describe('a connection reset after the upstream read the request', () => {
  it('is not re-sent for a POST on a route without idempotency-key support: Failed, outcome unknown', async () => {
    const upstream = await new TestUpstream().start();
    upstream.behaviour = () => ({ kind: 'reset' });
    await using gw = await startGateway({ upstream: upstream.url });
    const marker = randomUUID();
    const res = await fetch(`${gw.publicUrl}/payments`, { method: 'POST', body: marker });
    assert.equal(res.status, 202);
    const op = await gw.settled(operationIdOf(res));
    assert.equal(op.status, 'Failed');
    assert.equal(op.error?.code, 'outcome-unknown');
    assert.ok(op.deadLetteredAt, 'dead-lettered for a person to decide');
    assert.equal(upstream.count(marker), 1, 'never sent twice');
    const result = await fetch(`${gw.publicUrl}/_spillway/operations/${op.id}/result`);
    assert.equal(result.status, 502);
    assert.equal((await jsonOf(result)).type, 'https://spillway.dev/problems/outcome-unknown');
    await upstream.stop();
  });

  it('is re-sent with the same Idempotency-Key when the route declares the upstream honours it', async () => {
    const upstream = await new TestUpstream().start();
    let calls = 0;
    upstream.behaviour = () =>
      ++calls === 1 ? { kind: 'reset' } : { kind: 'respond', status: 201, body: 'paid' };
    await using gw = await startGateway({
      upstream: upstream.url,
      routes: [{ name: 'payments', match: 'POST /payments', honoursIdempotencyKey: true }],
    });
    const marker = randomUUID();
    const res = await fetch(`${gw.publicUrl}/payments`, { method: 'POST', body: marker });
    assert.equal(res.status, 202);
    const op = await gw.settled(operationIdOf(res));
    assert.equal(op.status, 'Succeeded');
    const sent = upstream.received.filter((r) => r.body.includes(marker));
    assert.equal(sent.length, 2);
    const keys = sent.map((r) => r.headers['idempotency-key']);
    assert.equal(keys[0], `spillway-${op.id}`, 'a key derived from the operation id');
    assert.equal(keys[1], keys[0], 'the same key on every attempt');
    await upstream.stop();
  });

  it("forwards the client's own Idempotency-Key unchanged on every attempt", async () => {
    const upstream = await new TestUpstream().start();
    await upstream.stop();
    await using gw = await startGateway({
      upstream: upstream.url,
      routes: [{ name: 'payments', match: 'POST /payments', honoursIdempotencyKey: true }],
    });
    const res = await fetch(`${gw.publicUrl}/payments`, {
      method: 'POST',
      headers: { 'idempotency-key': '"client-key-1"' },
      body: 'x',
    });
    await upstream.start();
    await gw.settled(operationIdOf(res));
    assert.equal(upstream.received[0]!.headers['idempotency-key'], '"client-key-1"');
    await upstream.stop();
  });

  it('is re-sent for an idempotent method (PUT) without any declaration', async () => {
    const upstream = await new TestUpstream().start();
    let calls = 0;
    upstream.behaviour = () =>
      ++calls === 1 ? { kind: 'reset' } : { kind: 'respond', status: 200, body: 'stored' };
    await using gw = await startGateway({ upstream: upstream.url });
    const res = await fetch(`${gw.publicUrl}/documents/1`, { method: 'PUT', body: 'v2' });
    const op = await gw.settled(operationIdOf(res));
    assert.equal(op.status, 'Succeeded');
    assert.equal(calls, 2);
    await upstream.stop();
  });

  it('during a replay: a POST reset mid-replay is dead-lettered, not sent a third time', async () => {
    const upstream = await new TestUpstream().start();
    await upstream.stop();
    await using gw = await startGateway({ upstream: upstream.url });
    const marker = randomUUID();
    const res = await fetch(`${gw.publicUrl}/orders`, { method: 'POST', body: marker });
    assert.equal(res.status, 202);
    upstream.behaviour = () => ({ kind: 'reset' });
    await upstream.start();
    const op = await gw.settled(operationIdOf(res));
    assert.equal(op.status, 'Failed');
    assert.equal(op.error?.code, 'outcome-unknown');
    assert.equal(upstream.count(marker), 1);
    await upstream.stop();
  });

  it('an adopted attempt that times out is not re-sent for a POST', async () => {
    const upstream = await new TestUpstream().start();
    upstream.behaviour = () => ({ kind: 'black-hole' });
    await using gw = await startGateway({
      upstream: upstream.url,
      routeDefaults: { budgetMs: 100, attemptTimeoutMs: 400 },
    });
    const marker = randomUUID();
    const res = await fetch(`${gw.publicUrl}/orders`, { method: 'POST', body: marker });
    assert.equal(res.status, 202);
    const op = await gw.settled(operationIdOf(res));
    assert.equal(op.status, 'Failed');
    assert.equal(op.error?.code, 'outcome-unknown');
    assert.match(op.error?.message ?? '', /attemptTimeoutMs/);
    assert.equal(upstream.count(marker), 1);
    await upstream.stop();
  });
});
