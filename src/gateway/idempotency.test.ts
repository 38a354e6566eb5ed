import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fingerprint, lookupKey, parseIdempotencyKey } from './idempotency.ts';

describe('parseIdempotencyKey', () => {
  const key = (lines: string | string[] | undefined, method = 'POST') => parseIdempotencyKey(method, lines);

  it('reads bare keys and RFC 9651 strings, escapes included, as the same key', () => {
    assert.deepEqual(key('abc'), { kind: 'key', key: 'abc' });
    assert.deepEqual(key('"abc"'), { kind: 'key', key: 'abc' });
    assert.deepEqual(key('  "a \\"b\\" \\\\c"  '), { kind: 'key', key: 'a "b" \\c' });
    assert.deepEqual(key('"with space"'), { kind: 'key', key: 'with space' });
  });

  it('refuses what is not one valid key, saying why', () => {
    for (const bad of [
      '"open',
      '"a"b"',
      '"bad \\x escape"',
      '""',
      '',
      'two words',
      'caf\u00e9',
      'a\u0001b',
      'k'.repeat(256),
    ]) {
      const parsed = key(bad);
      assert.equal(parsed.kind, 'invalid', JSON.stringify(bad));
      assert.ok(parsed.kind === 'invalid' && parsed.why.length > 0);
    }
    assert.equal(key(['a', 'b']).kind, 'invalid', 'two field lines');
    assert.equal(key('k'.repeat(255)).kind, 'key');
  });

  it('ignores keys on safe methods and absent fields', () => {
    assert.equal(key('abc', 'GET').kind, 'absent');
    assert.equal(key('abc', 'HEAD').kind, 'absent');
    assert.equal(key(undefined).kind, 'absent');
    assert.equal(key('abc', 'DELETE').kind, 'key');
  });
});

describe('lookupKey and fingerprint', () => {
  it('scope a key to tenant, method and route', () => {
    const base = lookupKey('t1', 'POST', 'payments', 'k');
    assert.equal(lookupKey('t1', 'POST', 'payments', 'k'), base);
    for (const other of [
      lookupKey('t2', 'POST', 'payments', 'k'),
      lookupKey(null, 'POST', 'payments', 'k'),
      lookupKey('t1', 'PUT', 'payments', 'k'),
      lookupKey('t1', 'POST', 'orders', 'k'),
      lookupKey('t1', 'POST', 'payments', 'k2'),
    ])
      assert.notEqual(other, base);
  });

  it('tell requests apart by method, target, content type and body bytes', () => {
    const request = {
      method: 'POST',
      path: '/payments',
      query: 'a=1',
      contentType: 'application/json',
      body: new Uint8Array([1, 2, 3]),
    };
    const base = fingerprint(request);
    assert.equal(fingerprint({ ...request, body: new Uint8Array([1, 2, 3]) }), base);
    for (const change of [
      { method: 'PUT' },
      { path: '/payment' },
      { query: 'a=2' },
      { contentType: 'text/plain' },
      { contentType: undefined },
      { body: new Uint8Array([1, 2, 4]) },
    ])
      assert.notEqual(fingerprint({ ...request, ...change }), base, JSON.stringify(change));
  });
});
