/**
 * FIFO per key through the gateway (route option `orderingKey`): requests with
 * the same key reach the upstream in the order they were captured, one at a
 * time, once it is back; and a live request whose key still has requests
 * waiting is captured behind them (202, with the reason in
 * Spillway-Failover-Reason) instead of going ahead of them, while other keys go
 * straight through.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { operationIdOf, startGateway, type TestGateway } from '../support/harness.ts';
import { type Received, TestUpstream } from '../support/test-upstream.ts';

const json = { 'content-type': 'application/json' };

describe('FIFO per ordering key, end to end', () => {
  let upstream: TestUpstream;
  let gw: TestGateway;
  before(async () => {
    upstream = await new TestUpstream().start();
    gw = await startGateway({
      upstream: upstream.url,
      routes: [
        { name: 'accounts', match: 'POST /accounts/*', orderingKey: '/accounts/{key}/*' },
        { name: 'orders', match: 'POST /orders', orderingKey: 'x-customer' },
      ],
    });
  });
  after(async () => {
    await gw.stop();
    await upstream.stop();
  });

  const post = (path: string, body: string, headers: Record<string, string> = {}) =>
    fetch(`${gw.publicUrl}${path}`, { method: 'POST', headers: { ...json, ...headers }, body });
  /** The bodies the upstream received on `path`, in arrival order. */
  const arrived = (path: string) =>
    upstream.received.filter((r: Received) => r.url === path).map((r) => r.body.toString('utf8'));

  it('replays one key’s requests in capture order once the upstream is back; each key on its own', async () => {
    await upstream.stop(); // connection refused
    const sent: Array<{ path: string; body: string; res: Response }> = [];
    // Interleaved keys, each request sent after the previous one was answered.
    for (let i = 1; i <= 5; i++) {
      for (const key of ['a', 'b']) {
        const path = `/accounts/${key}/transfers`;
        const body = JSON.stringify({ key, n: i });
        sent.push({ path, body, res: await post(path, body) });
      }
    }
    for (const { res } of sent) assert.equal(res.status, 202);
    const reasons = sent.map(({ res }) => res.headers.get('spillway-failover-reason'));
    assert.match(reasons[0]!, /unreachable|divert/);
    assert.ok(
      reasons.slice(2).every((reason) => /ordering key/.test(reason ?? '')),
      `later requests wait behind their key: ${reasons.join(' | ')}`,
    );
    await upstream.start();
    await Promise.all(sent.map(({ res }) => gw.settled(operationIdOf(res), 30_000)));
    for (const key of ['a', 'b']) {
      const path = `/accounts/${key}/transfers`;
      assert.deepEqual(
        arrived(path),
        sent.filter((s) => s.path === path).map((s) => s.body),
        `key ${key}: the upstream saw its requests in capture order`,
      );
    }
  });

  it('captures a live request behind its key’s waiting requests, and lets other keys through', async () => {
    await gw.store.setReplayPaused('orders', true); // the backlog stays until resumed
    const first = await post('/orders', '"c1"', { 'x-customer': 'c', prefer: 'respond-async, wait=0' });
    assert.equal(first.status, 202);
    const second = await post('/orders', '"c2"', { 'x-customer': 'c' });
    assert.equal(second.status, 202, 'the upstream is up, but c1 is waiting');
    assert.match(second.headers.get('spillway-failover-reason') ?? '', /ordering key/);
    const other = await post('/orders', '"d1"', { 'x-customer': 'd' });
    assert.equal(other.status, 200, 'another key goes straight through');
    const unkeyed = await post('/orders', '"none"');
    assert.equal(unkeyed.status, 200, 'a request without the key is not ordered');
    assert.deepEqual(arrived('/orders'), ['"d1"', '"none"'], 'c2 did not go ahead of c1');
    await gw.store.setReplayPaused('orders', false);
    await gw.settled(operationIdOf(first), 30_000);
    await gw.settled(operationIdOf(second), 30_000);
    assert.deepEqual(arrived('/orders'), ['"d1"', '"none"', '"c1"', '"c2"']);
    const third = await post('/orders', '"c3"', { 'x-customer': 'c' });
    assert.equal(third.status, 200, 'once its key is drained, a request goes sync again');
  });

  it('refuses, rather than sends ahead, a request of a waiting key that may not be captured', async () => {
    await gw.store.setReplayPaused('orders', true);
    const first = await post('/orders', '"e1"', { 'x-customer': 'e', prefer: 'respond-async, wait=0' });
    assert.equal(first.status, 202);
    // Prefer: wait without respond-async: the client asked not to be answered 202.
    const refused = await post('/orders', '"e2"', { 'x-customer': 'e', prefer: 'wait=5' });
    assert.equal(refused.status, 409);
    assert.equal(refused.headers.get('content-type'), 'application/problem+json');
    assert.equal(((await refused.json()) as { code: string }).code, 'ordering-key-pending');
    assert.ok(!arrived('/orders').includes('"e2"'));
    await gw.store.setReplayPaused('orders', false);
    await gw.settled(operationIdOf(first), 30_000);
  });
});
