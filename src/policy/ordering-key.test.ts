import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { orderingKeyOf, parseOrderingKey } from './ordering-key.ts';

describe('ordering keys', () => {
  const request = (path: string, headers: Array<[string, string]> = []) => ({ path, headers });

  it('reads a header, scoped to the tenant', () => {
    const source = parseOrderingKey('X-Account-Id');
    assert.equal(orderingKeyOf(source, request('/p', [['x-account-id', 'acct-1']]), null), '-/acct-1');
    assert.equal(orderingKeyOf(source, request('/p', [['x-account-id', 'acct-1']]), 'T'), 'T/acct-1');
    assert.equal(orderingKeyOf(source, request('/p'), null), undefined, 'no header, no key');
  });

  it('reads the {key} segment of a path template whose earlier segments match', () => {
    const source = parseOrderingKey('/accounts/{key}/*');
    assert.equal(orderingKeyOf(source, request('/accounts/42/transfers'), null), '-/42');
    assert.equal(orderingKeyOf(source, request('/users/42/transfers'), null), undefined);
    assert.equal(orderingKeyOf(source, request('/accounts/'), null), undefined, 'an empty segment');
    assert.equal(orderingKeyOf(parseOrderingKey('/:v/{key}'), request('/v2/7'), null), '-/7');
  });

  it('keeps a long key as a digest', () => {
    const key = orderingKeyOf(parseOrderingKey('k'), request('/', [['k', 'x'.repeat(500)]]), null);
    assert.match(key!, /^-\/sha256:[\w-]{43}$/);
  });

  it('refuses a template without exactly one {key}, and a bad header name', () => {
    assert.throws(() => parseOrderingKey('/accounts/*'), /exactly one segment \{key\}/);
    assert.throws(() => parseOrderingKey('/{key}/{key}'), /exactly one/);
    assert.throws(() => parseOrderingKey('x account'), /header name/);
  });
});
