/**
 * FIFO per key for operators: a dead letter at the head of its ordering key
 * holds the rest of the key back; the admin API and `spillway ops` show the
 * key as blocked (and the operations as blocking or waiting behind it); a
 * discard lets the next one go.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { opsCommand } from '../../src/ops/ops-commands.ts';
import { jsonOf, operationIdOf, startGateway } from '../support/harness.ts';
import { TestUpstream } from '../support/test-upstream.ts';

const TOKEN = randomUUID();

describe('FIFO per key: a dead letter blocks its key', () => {
  it('shows the blocked key and lets the next operation go once the dead letter is discarded', async (t) => {
    const upstream = await new TestUpstream().start();
    t.after(() => upstream.stop());
    upstream.behaviour = () => ({ kind: 'respond', status: 503 });
    await using gw = await startGateway({
      upstream: upstream.url,
      adminToken: TOKEN,
      routes: [
        {
          name: 'accounts',
          match: 'POST /accounts/*',
          orderingKey: '/accounts/{key}/*',
          maxAttempts: 2,
          health: { minCalls: 1_000 },
        },
      ],
    });
    const env = { SPILLWAY_ADMIN_URL: `http://127.0.0.1:${gw.adminPort}`, SPILLWAY_ADMIN_TOKEN: TOKEN };
    const post = (body: string) =>
      fetch(`${gw.publicUrl}/accounts/acct-7/transfers`, { method: 'POST', body });
    const head = operationIdOf(await post('first'));
    const behind = operationIdOf(await post('second'));
    assert.ok((await gw.settled(head)).deadLetteredAt, 'the head is dead-lettered');
    const waiting = await gw.store.get(behind);
    assert.equal(waiting?.status, 'NotStarted');
    assert.equal(waiting?.keyBlocked, true, 'the next one waits behind the dead letter');
    assert.equal(upstream.count('second'), 0, 'it never reached the upstream');

    const admin = `http://127.0.0.1:${gw.adminPort}`;
    const auth = { authorization: `Bearer ${TOKEN}` };
    const { blockedKeys } = await jsonOf(
      await fetch(`${admin}/api/ordering-keys/blocked`, { headers: auth }),
    );
    assert.deepEqual(
      blockedKeys.map((k: { orderingKey: string; deadLetteredOperationId: string; waiting: number }) => [
        k.orderingKey,
        k.deadLetteredOperationId,
        k.waiting,
      ]),
      [['-/acct-7', head, 1]],
    );
    const shown = await jsonOf(await fetch(`${admin}/api/operations/${behind}`, { headers: auth }));
    assert.equal(shown.orderingKey, '-/acct-7');
    assert.equal(shown.waitingBehindOrderingKey, true);
    const listed = await opsCommand(['blocked-keys'], env);
    assert.equal(listed.code, 0);
    assert.match(listed.out!, /accounts\s+-\/acct-7\s+op_\S+\s+\S+\s+1/);
    assert.match((await opsCommand(['show', head], env)).out!, /this dead letter blocks the key/);

    upstream.behaviour = () => ({ kind: 'respond', status: 201, body: 'ok' });
    assert.equal((await opsCommand(['discard', head], env)).code, 0);
    assert.equal((await gw.settled(behind)).status, 'Succeeded', 'the next one went once it was discarded');
    assert.equal(
      (await opsCommand(['blocked-keys'], env)).out,
      'No ordering key is blocked by a dead letter.',
    );
  });
});
