/**
 * Forwarding fields (X-Forwarded-For/-Proto/-Host, RFC 7239 Forwarded): the
 * upstream learns who the client is; what a client claims in those fields is
 * believed only from a trusted proxy; and a replay tells the upstream the same
 * client as the sync attempt did, whatever the route's captureHeaders.
 */
import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import { describe, it } from 'node:test';
import { buildConfig, ConfigError } from '../../src/config/config.ts';
import { operationIdOf, startGateway } from '../support/harness.ts';
import { TestUpstream } from '../support/test-upstream.ts';

const SPOOFED = {
  'x-forwarded-for': '203.0.113.9',
  'x-forwarded-proto': 'https',
  'x-forwarded-host': 'evil.example',
  forwarded: 'for=203.0.113.9;proto=https',
};

const forwardingOf = (headers: IncomingHttpHeaders) =>
  Object.fromEntries(
    ['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'forwarded']
      .filter((name) => headers[name] !== undefined)
      .map((name) => [name, headers[name]]),
  );

async function forwarded(config: Record<string, unknown>, headers: Record<string, string>) {
  await using upstream = await new TestUpstream().start();
  await using gw = await startGateway({ upstream: upstream.url, ...config });
  const res = await fetch(`${gw.publicUrl}/payments`, { method: 'POST', headers, body: '{}' });
  assert.equal(res.status, 200);
  await res.arrayBuffer();
  return { seen: forwardingOf(upstream.received[0]!.headers), host: `127.0.0.1:${gw.port}` };
}

describe('forwarding fields', () => {
  it('from an untrusted client: its own fields are dropped, Spillway writes X-Forwarded-For/-Proto/-Host', async () => {
    const { seen, host } = await forwarded({}, SPOOFED);
    assert.deepEqual(seen, {
      'x-forwarded-for': '127.0.0.1',
      'x-forwarded-proto': 'http',
      'x-forwarded-host': host,
    });
  });

  it('from a trusted proxy (trustedProxies): its chain is extended and its proto and host kept', async () => {
    const { seen } = await forwarded({ trustedProxies: ['10.0.0.0/8', '127.0.0.1/32'] }, SPOOFED);
    assert.deepEqual(seen, {
      'x-forwarded-for': '203.0.113.9, 127.0.0.1',
      'x-forwarded-proto': 'https',
      'x-forwarded-host': 'evil.example',
      forwarded: 'for=203.0.113.9;proto=https', // a family Spillway does not write: passed on as the proxy sent it
    });
  });

  it('forwardedHeaders "forwarded" writes RFC 7239 Forwarded instead (quoting a host with a port), "both" writes both', async () => {
    const untrusted = await forwarded({ forwardedHeaders: 'forwarded' }, SPOOFED);
    assert.deepEqual(untrusted.seen, { forwarded: `for=127.0.0.1;host="${untrusted.host}";proto=http` });
    const trusted = await forwarded({ forwardedHeaders: 'both', trustedProxies: '127.0.0.1' }, SPOOFED);
    assert.deepEqual(trusted.seen, {
      'x-forwarded-for': '203.0.113.9, 127.0.0.1',
      'x-forwarded-proto': 'https',
      'x-forwarded-host': 'evil.example',
      forwarded: `for=203.0.113.9;proto=https, for=127.0.0.1;host="${trusted.host}";proto=http`,
    });
  });

  it('a replay sends the same forwarding fields as the sync attempt, though captureHeaders does not list them', async () => {
    await using upstream = await new TestUpstream().start();
    let calls = 0;
    upstream.behaviour = () => (++calls === 1 ? { kind: 'respond', status: 503 } : { kind: 'echo' });
    await using gw = await startGateway({
      upstream: upstream.url,
      trustedProxies: ['127.0.0.1'],
      forwardedHeaders: 'both',
      routeDefaults: { captureHeaders: ['content-type'] },
    });
    const res = await fetch(`${gw.publicUrl}/payments`, {
      method: 'POST',
      headers: { ...SPOOFED, 'content-type': 'application/json' },
      body: '{}',
    });
    assert.equal(res.status, 202);
    const op = await gw.settled(operationIdOf(res));
    assert.equal(op.status, 'Succeeded');
    assert.equal(upstream.received.length, 2);
    const [sync, replay] = upstream.received.map((r) => forwardingOf(r.headers));
    assert.equal(sync!['x-forwarded-for'], '203.0.113.9, 127.0.0.1');
    assert.deepEqual(replay, sync);
  });

  it('trustedProxies and forwardedHeaders are validated, naming the option and the bad value', () => {
    const build = (extra: Record<string, unknown>) => () =>
      buildConfig({ upstream: 'http://127.0.0.1:9', ...extra });
    for (const bad of ['10.0.0.0/33', 'fd00::/129', 'not-an-address', '10.0.0.1/8/1', '10.0.0.0/x']) {
      assert.throws(build({ trustedProxies: [bad] }), (error: Error) => {
        assert.ok(error instanceof ConfigError);
        assert.match(error.message, /^trustedProxies/);
        assert.ok(error.message.includes(JSON.stringify(bad)), error.message);
        return true;
      });
    }
    assert.throws(build({ trustedProxies: 7 }), /trustedProxies must list/);
    assert.throws(build({ forwardedHeaders: 'x-real-ip' }), /forwardedHeaders must be one of .*"x-real-ip"/);
    const ok = buildConfig({ upstream: 'http://127.0.0.1:9', trustedProxies: '10.0.0.0/8, ::1' });
    assert.ok(ok.trustedProxies.check('10.1.2.3', 'ipv4'));
    assert.ok(ok.trustedProxies.check('::1', 'ipv6'));
    assert.ok(!ok.trustedProxies.check('11.0.0.1', 'ipv4'));
  });
});
