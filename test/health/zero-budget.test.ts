/**
 * A budget already spent when the call starts (`Prefer: wait=0` without
 * respond-async, or a budget used up while the body was read) is spent at
 * once, whatever the upstream's speed. It used to be a timer of 0 ms racing
 * the upstream's answer: on a fast loopback upstream the answer could win and
 * the client got the upstream's 201 instead of its 504 (seen in a clean CI
 * run of test/standards/openapi.test.ts). The injected clock here fires no
 * timer unless told, so the race is decided the way it must be, every time.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildConfig } from '../../src/config/config.ts';
import { FailoverEngine } from '../../src/engine/failover-engine.ts';
import { HttpUpstream } from '../../src/engine/upstream.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { ManualClock } from '../support/manual-clock.ts';
import { TestUpstream } from '../support/test-upstream.ts';

describe('a spent budget', () => {
  it('answers upstream-timeout even when the upstream answers at once', async () => {
    const upstream = await new TestUpstream().start();
    upstream.behaviour = () => ({ kind: 'respond', status: 201, body: 'made' });
    const clock = new ManualClock();
    const store = new SqliteStore({ path: ':memory:', clock });
    const client = new HttpUpstream(upstream.url);
    const engine = new FailoverEngine({
      store,
      upstream: client,
      clock,
      instanceId: 'test',
      maxResultBytes: 1_000_000,
    });
    const route = buildConfig({ upstream: upstream.url }).routes.at(-1)!;
    try {
      for (const budgetMs of [0, 100]) {
        const answer = await engine.submit({
          route,
          request: { method: 'POST', path: '/pay', query: '', headers: [], body: Buffer.from('{}') },
          // Received `budgetMs` ago: with 0 the budget is spent by its own size, with 100 by the wait.
          receivedAt: clock.now() - budgetMs,
          budgetMs,
          mayFailover: false,
          tenant: null,
        });
        assert.equal(answer.kind, 'failed', `budget ${budgetMs}: ${JSON.stringify(answer)}`);
        assert.equal(answer.kind === 'failed' && answer.code, 'upstream-timeout');
      }
    } finally {
      await client.close();
      await store.close();
      await upstream.stop();
    }
  });
});
