/**
 * `spillway webhooks deliveries|disabled|enable|resend` as a user runs them: the real
 * bin/spillway.js in a child process, against a gateway started in-process
 * whose subscription's receiver answered 410.
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { newWebhookSecret } from '../../src/delivery/webhooks/signing.ts';
import { newOperationId } from '../../src/engine/operation-id.ts';
import { spillway } from '../support/cli.ts';
import { jsonOf, operationIdOf, startGateway, type TestGateway } from '../support/harness.ts';
import { closedPort, TestUpstream } from '../support/test-upstream.ts';
import { WebhookReceiver } from '../support/webhook-receiver.ts';

/** A gateway whose "ledger" subscription was disabled by its receiver's 410; `id` is that operation. */
async function disabledLedger(t: TestContext, rx: WebhookReceiver) {
  const upstream = await new TestUpstream().start();
  upstream.behaviour = () => ({ kind: 'respond', status: 201, body: 'ok' });
  t.after(() => upstream.stop());
  rx.answer = () => ({ status: 410 });
  const gw: TestGateway = await startGateway({
    upstream: upstream.url,
    webhooks: {
      secrets: [newWebhookSecret()],
      allowPrivateNetworks: true,
      subscriptions: [{ name: 'ledger', url: `${rx.origin}/ledger` }],
    },
  });
  t.after(() => gw.stop());
  const res = await fetch(`${gw.publicUrl}/payments`, {
    method: 'POST',
    headers: { prefer: 'respond-async, wait=0' },
    body: 'x',
  });
  const id = operationIdOf(res);
  let seq = 0;
  for (let i = 0; i < 500 && seq === 0; i++) {
    const d = (await gw.store.webhookDeliveries(id)).find((x) => x.state === 'disabled');
    if (d) seq = d.seq;
    else await new Promise((r) => setTimeout(r, 20));
  }
  assert.ok(seq > 0, 'the delivery was disabled');
  return { gw, id, seq, admin: ['--admin-url', `http://127.0.0.1:${gw.adminPort}`] };
}

describe('spillway webhooks', () => {
  it('disabled lists the disabled subscriptions (--json: the API answer); enable enables one and says what stays disabled', async (t) => {
    await using rx = await new WebhookReceiver().start();
    const { gw, admin } = await disabledLedger(t, rx);

    const table = await spillway(['webhooks', 'disabled', ...admin]);
    assert.equal(table.code, 0, table.stderr);
    const [header, row, blank, hint, ...rest] = table.stdout.trimEnd().split('\n');
    assert.deepEqual(rest, []);
    assert.match(header!, /^NAME +URL +DISABLED AT +REASON$/);
    assert.match(
      row!,
      new RegExp(
        `^ledger +${rx.origin}/ledger +\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ +The receiver answered 410 Gone\\.$`,
      ),
    );
    assert.equal(blank, '');
    assert.equal(hint, 'Enable one again with: spillway webhooks enable NAME');

    const json = await spillway(['webhooks', 'disabled', '--json'], {
      SPILLWAY_ADMIN_URL: `http://127.0.0.1:${gw.adminPort}`,
    });
    assert.equal(json.code, 0, json.stderr);
    const direct = await jsonOf(
      await fetch(`http://127.0.0.1:${gw.adminPort}/api/webhooks/endpoints/disabled`),
    );
    assert.deepEqual(JSON.parse(json.stdout), direct);

    const enabled = await spillway(['webhooks', 'enable', 'ledger', ...admin]);
    assert.equal(enabled.code, 0, enabled.stderr);
    assert.equal(
      enabled.stdout,
      [
        `Endpoint "ledger" is enabled again at ${rx.origin}/ledger: its new deliveries are sent.`,
        'Deliveries disabled while it was stay disabled; re-send each one wanted with:',
        '  spillway webhooks resend OPERATION-ID ledger SEQ',
        '',
      ].join('\n'),
    );
    assert.deepEqual(await gw.store.disabledWebhookEndpoints(), []);
    const none = await spillway(['webhooks', 'disabled', ...admin]);
    assert.equal(none.stdout, 'No webhook endpoint is disabled.\n');

    const again = await spillway(['webhooks', 'enable', 'ledger', ...admin]);
    assert.equal(again.code, 1);
    assert.equal(again.stderr, 'spillway: no endpoint named "ledger" is disabled. None is.\n');
  });

  it('deliveries lists the deliveries in a state, newest first (--json: the API answer), and says what to fix in a bad query', async (t) => {
    await using rx = await new WebhookReceiver().start();
    const { gw, id, seq, admin } = await disabledLedger(t, rx);

    const table = await spillway(['webhooks', 'deliveries', '--state', 'disabled', ...admin]);
    assert.equal(table.code, 0, table.stderr);
    const [header, row, blank, hint, ...rest] = table.stdout.trimEnd().split('\n');
    assert.deepEqual(rest, []);
    assert.match(header!, /^OPERATION-ID +ENDPOINT +SEQ +STATE +ATTEMPTS +AGE +NEXT +LAST ERROR$/);
    assert.match(
      row!,
      new RegExp(`^${id} +ledger +${seq} +disabled +1 +\\d+s +- +The receiver answered 410 Gone\\.$`),
    );
    assert.equal(blank, '');
    assert.equal(hint, 'Re-send one with: spillway webhooks resend OPERATION-ID ENDPOINT SEQ');

    const json = await spillway(['webhooks', 'deliveries', '--state', 'disabled', '--json'], {
      SPILLWAY_ADMIN_URL: `http://127.0.0.1:${gw.adminPort}`,
    });
    assert.equal(json.code, 0, json.stderr);
    const direct = await jsonOf(
      await fetch(`http://127.0.0.1:${gw.adminPort}/api/webhooks/deliveries?state=disabled`),
    );
    assert.deepEqual(JSON.parse(json.stdout), direct);

    const none = await spillway([
      'webhooks',
      'deliveries',
      '--state',
      'failed',
      '--endpoint',
      'ledger',
      ...admin,
    ]);
    assert.equal(none.stdout, 'No delivery is failed.\n');
    const missing = await spillway(['webhooks', 'deliveries', ...admin]);
    assert.equal(missing.code, 2);
    assert.match(
      missing.stderr,
      /^spillway webhooks deliveries: state is required: send one of pending, delivered, failed, disabled/,
    );
    const badLimit = await spillway([
      'webhooks',
      'deliveries',
      '--state',
      'failed',
      '--limit',
      '0',
      ...admin,
    ]);
    assert.equal(badLimit.code, 2);
    assert.match(badLimit.stderr, /limit must be an integer from 1 to 500, got "0"/);
  });

  it('resend re-sends a delivery with its webhook-id, and says why when it does not', async (t) => {
    await using rx = await new WebhookReceiver().start();
    const { gw, id, seq, admin } = await disabledLedger(t, rx);
    const webhookId = `msg_${id}_${seq}_ledger`;

    const blocked = await spillway(['webhooks', 'resend', id, 'ledger', String(seq), ...admin]);
    assert.equal(blocked.code, 1);
    assert.match(
      blocked.stderr,
      /^spillway: not re-sent: The endpoint "ledger" is disabled at .*: enable it first .*spillway webhooks enable ledger\), then re-send\.\n$/,
    );
    assert.equal((await spillway(['webhooks', 'enable', 'ledger', ...admin])).code, 0);

    rx.answer = () => ({ status: 204 });
    const resent = await spillway(['webhooks', 'resend', id, 'ledger', String(seq), ...admin]);
    assert.equal(resent.code, 0, resent.stderr);
    assert.match(
      resent.stdout,
      new RegExp(
        `^Re-sent ${webhookId} \\(it was disabled, after 1 attempt\\): pending, due \\S+Z, to ${rx.origin}/ledger\\.\\n` +
          `It keeps its webhook-id, so receivers deduplicate it\\. Follow it at /_spillway/operations/${id}/deliveries\\.\\n$`,
      ),
    );
    await rx.waitFor(2);
    assert.equal(rx.received[1]!.headers['webhook-id'], webhookId);
    for (let i = 0; i < 500; i++) {
      const [d] = await gw.store.webhookDeliveries(id);
      if (d?.state === 'delivered') break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const twice = await spillway(['webhooks', 'resend', id, 'ledger', String(seq), ...admin]);
    assert.equal(twice.code, 1);
    assert.match(twice.stderr, new RegExp(`^spillway: not re-sent: The delivery ${webhookId} was delivered`));

    const unknown = newOperationId();
    const missing = await spillway(['webhooks', 'resend', unknown, 'ledger', '3', ...admin]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, new RegExp(`^spillway: not re-sent: No delivery msg_${unknown}_3_ledger:`));

    const badSeq = await spillway(['webhooks', 'resend', id, 'ledger', 'x', ...admin]);
    assert.equal(badSeq.code, 2);
    assert.match(badSeq.stderr, /SEQ must be a positive integer .* got "x"\./);
    const short = await spillway(['webhooks', 'resend', id, 'ledger']);
    assert.equal(short.code, 2);
    assert.match(short.stderr, /spillway webhooks resend: expected 3 arguments, got 2/);
    const what = await spillway(['webhooks', 'frobnicate']);
    assert.equal(what.code, 2);
    assert.match(what.stderr, /expected deliveries, disabled, enable or resend, got "frobnicate"/);
    assert.equal(rx.received.length, 2, 'nothing more was sent');
  });

  it('says what to do when the admin port is unreachable, and documents the commands in the help', async () => {
    const port = await closedPort();
    for (const args of [
      ['deliveries', '--state', 'failed'],
      ['disabled'],
      ['enable', 'ledger'],
      ['resend', newOperationId(), 'ledger', '3'],
    ]) {
      const down = await spillway(['webhooks', ...args, '--admin-url', `http://127.0.0.1:${port}`]);
      assert.equal(down.code, 1, args.join(' '));
      assert.equal(
        down.stderr,
        `spillway: cannot reach the admin port at http://127.0.0.1:${port} (ECONNREFUSED). Is the gateway running? Point --admin-url or SPILLWAY_ADMIN_URL at its admin port.\n`,
      );
    }
    const help = await spillway(['--help']);
    assert.match(help.stdout, /spillway webhooks deliveries --state pending\|delivered\|failed\|disabled/);
    assert.match(help.stdout, /spillway webhooks disabled \[--json\] \[--admin-url URL\]/);
    assert.match(help.stdout, /spillway webhooks enable NAME \[--admin-url URL\]/);
    assert.match(help.stdout, /spillway webhooks resend OPERATION-ID ENDPOINT SEQ \[--admin-url URL\]/);
  });
});
