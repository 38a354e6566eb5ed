import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { request } from 'undici';
import {
  type AddressClass,
  CallbackGuard,
  classifyAddress,
  normalizeOrigin,
  type ResolvedAddress,
} from './callback-guard.ts';

/** A resolver from a table; names not in it fail like NXDOMAIN. */
const resolverOf =
  (table: Record<string, string[]>) =>
  async (hostname: string): Promise<ResolvedAddress[]> => {
    const found = table[hostname];
    if (!found) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
    return found.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };

describe('classifyAddress', () => {
  const cases: Array<[string, AddressClass | undefined]> = [
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['10.1.2.3', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['172.32.0.1', undefined],
    ['192.168.1.1', 'private'],
    ['169.254.169.254', 'metadata'],
    ['169.254.1.1', 'link-local'],
    ['100.64.0.1', 'shared'],
    ['100.127.255.255', 'shared'],
    ['100.128.0.1', undefined],
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'unspecified'],
    ['224.0.0.1', 'multicast'],
    ['239.255.255.255', 'multicast'],
    ['240.0.0.1', 'reserved'],
    ['255.255.255.255', 'reserved'],
    ['192.0.2.10', 'documentation'],
    ['198.18.0.1', 'reserved'],
    ['93.184.216.34', undefined],
    ['8.8.8.8', undefined],
    ['::1', 'loopback'],
    ['::', 'unspecified'],
    ['fc00::1', 'unique-local'],
    ['fd12:3456::1', 'unique-local'],
    ['fe80::1', 'link-local'],
    ['fe80::1%eth0', 'link-local'],
    ['febf::1', 'link-local'],
    ['ff02::1', 'multicast'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['::ffff:10.0.0.1', 'private'],
    ['::ffff:169.254.169.254', 'metadata'],
    ['::ffff:93.184.216.34', undefined],
    ['0:0:0:0:0:ffff:c0a8:0101', 'private'],
    ['64:ff9b::10.0.0.1', 'private'],
    ['2002:0a00:0001::1', 'private'],
    ['fd00:ec2::254', 'metadata'],
    ['2001:db8::1', 'documentation'],
    ['::127.0.0.1', 'reserved'],
    ['2606:4700::1111', undefined],
    ['2a00:1450:4001:80b::200e', undefined],
    ['not an address', 'reserved'],
  ];
  for (const [address, expected] of cases) {
    it(`${address} is ${expected ?? 'public'}`, () => {
      assert.equal(classifyAddress(address), expected);
    });
  }
});

describe('CallbackGuard', () => {
  const allow = new Set(
    [
      'https://hooks.example',
      'http://127.0.0.1',
      'http://169.254.169.254',
      'http://[::1]',
      'https://internal.example',
      'https://rebind.example',
      'http://[::ffff:a00:1]',
    ].map(normalizeOrigin),
  );
  const resolve = resolverOf({
    'hooks.example': ['93.184.216.34', '2606:4700::1111'],
    'internal.example': ['10.0.0.7'],
    'mixed.example': ['93.184.216.34', '10.0.0.7'],
  });
  const production = new CallbackGuard({ allowOrigins: allow, allowPrivateNetworks: false, resolve });

  it('allows an allow-listed origin whose every address is public', async () => {
    const check = await production.check('https://hooks.example/webhooks?x=1#frag');
    assert.ok(check.ok, JSON.stringify(check));
    assert.equal(check.url.href, 'https://hooks.example/webhooks?x=1');
    assert.equal(check.addresses.length, 2);
  });

  it('refuses origins off the allow-list exactly: another port, scheme or host', async () => {
    for (const url of [
      'https://hooks.example:8443/x',
      'http://hooks.example/x',
      'https://evil.example/x',
      'https://sub.hooks.example/x',
    ]) {
      const check = await production.check(url);
      assert.equal(check.ok, false, url);
      assert.match((check as { reason: string }).reason, /not on the allow-list/);
    }
  });

  it('refuses what is not an http(s) URL, and credentials in it', async () => {
    for (const [url, reason] of [
      ['/relative', /not an absolute URL/],
      ['ftp://hooks.example/x', /scheme ftp/],
      ['https://user:pw@hooks.example/x', /user name or password/],
      [`https://hooks.example/${'x'.repeat(2100)}`, /longer than/],
    ] as const) {
      const check = await production.check(url);
      assert.equal(check.ok, false, url);
      assert.match((check as { reason: string }).reason, reason);
    }
  });

  it('production policy refuses loopback, metadata, IPv6 loopback, and a name resolving to 10.x', async () => {
    for (const [url, kind] of [
      ['http://127.0.0.1/hook', 'loopback'],
      ['http://169.254.169.254/latest/meta-data', 'metadata'],
      ['http://[::1]/hook', 'loopback'],
      ['https://internal.example/hook', 'private'],
      ['http://[::ffff:10.0.0.1]/hook', 'private'],
    ] as const) {
      const check = await production.check(url);
      assert.equal(check.ok, false, url);
      assert.match((check as { reason: string }).reason, new RegExp(`a ${kind} address`), url);
    }
  });

  it('refuses a name if any one of its addresses is private, and a name that does not resolve', async () => {
    const guard = new CallbackGuard({
      allowOrigins: new Set(['https://mixed.example', 'https://nowhere.example']),
      allowPrivateNetworks: false,
      resolve,
    });
    assert.match(
      ((await guard.check('https://mixed.example/')) as { reason: string }).reason,
      /resolves to 10\.0\.0\.7, a private address/,
    );
    assert.match(
      ((await guard.check('https://nowhere.example/')) as { reason: string }).reason,
      /cannot be resolved \(ENOTFOUND\)/,
    );
  });

  it('gives up on a name that does not resolve in time', async () => {
    const guard = new CallbackGuard({
      allowOrigins: new Set(['https://slow.example']),
      allowPrivateNetworks: false,
      resolve: () => new Promise(() => {}),
      resolveTimeoutMs: 20,
    });
    assert.match(
      ((await guard.check('https://slow.example/')) as { reason: string }).reason,
      /did not resolve within 20 ms/,
    );
  });

  it('allowPrivateNetworks lets loopback and private through, never metadata', async () => {
    const lenient = new CallbackGuard({ allowOrigins: allow, allowPrivateNetworks: true, resolve });
    assert.ok((await lenient.check('http://127.0.0.1/hook')).ok);
    assert.ok((await lenient.check('http://[::1]/hook')).ok);
    assert.ok((await lenient.check('https://internal.example/hook')).ok);
    const metadata = await lenient.check('http://169.254.169.254/');
    assert.equal(metadata.ok, false);
    assert.match((metadata as { reason: string }).reason, /metadata address, never a webhook receiver/);
  });

  it('an empty allow-list refuses everything, saying callbacks are off', async () => {
    const off = new CallbackGuard({ allowOrigins: new Set(), allowPrivateNetworks: true, resolve });
    assert.equal(off.enabled, false);
    assert.match(((await off.check('http://127.0.0.1/')) as { reason: string }).reason, /not enabled/);
  });

  it('normalizes allow-list origins and refuses anything more than an origin', () => {
    assert.equal(normalizeOrigin('HTTPS://Hooks.Example:443'), 'https://hooks.example');
    assert.equal(normalizeOrigin('http://127.0.0.1:8080/'), 'http://127.0.0.1:8080');
    for (const bad of ['https://hooks.example/path', 'https://hooks.example?x', 'ftp://x', 'nope']) {
      assert.throws(() => normalizeOrigin(bad));
    }
  });

  it('the dispatcher connects only to addresses it has just checked: DNS rebinding is refused at connect', async () => {
    let hits = 0;
    const server = createServer((_req, res) => {
      hits++;
      res.end('ok');
    });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    const { port } = server.address() as AddressInfo;
    let answer = '93.184.216.34';
    let lookups = 0;
    // Public at registration, loopback when the connection is made.
    const rebinding = async (): Promise<ResolvedAddress[]> => {
      lookups++;
      return [{ address: answer, family: 4 }];
    };
    const guard = new CallbackGuard({
      allowOrigins: new Set([`http://rebind.example:${port}`]),
      allowPrivateNetworks: false,
      resolve: rebinding,
    });
    try {
      assert.ok((await guard.check(`http://rebind.example:${port}/hook`)).ok);
      answer = '127.0.0.1';
      await assert.rejects(
        request(`http://rebind.example:${port}/hook`, { dispatcher: guard.dispatcher }),
        (error: Error & { code?: string; cause?: { code?: string } }) =>
          /loopback address/.test(`${error.message} ${(error.cause as Error | undefined)?.message}`),
      );
      assert.equal(hits, 0, 'nothing reached the loopback server');
      assert.ok(lookups >= 2, 'the connection resolved the name again');

      // With private networks allowed, the same dispatcher reaches the checked loopback address.
      const lenient = new CallbackGuard({
        allowOrigins: new Set([`http://rebind.example:${port}`]),
        allowPrivateNetworks: true,
        resolve: rebinding,
      });
      const res = await request(`http://rebind.example:${port}/hook`, { dispatcher: lenient.dispatcher });
      assert.equal(await res.body.text(), 'ok');
      assert.equal(hits, 1);
      await lenient.close();
    } finally {
      await guard.close();
      await new Promise((done) => server.close(done));
    }
  });
});
