import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { StoredValueUnreadableError } from '../errors.ts';
import { MessageSealer, newStoreKey, StoreKeyring } from './sealed-values.ts';

const headers: Array<[string, string]> = [['authorization', 'Bearer t0ken']];
const body = new Uint8Array(Buffer.from('secret body'));

describe('sealed values', () => {
  const k1 = newStoreKey();
  const k2 = newStoreKey();

  it('keys must be base64 of 32 bytes, listed once; messages never repeat the key', () => {
    assert.throws(() => StoreKeyring.parse('c2hvcnQ='), /exactly 32 random bytes.*holds 5 bytes/);
    assert.throws(
      () => StoreKeyring.parse('not-base64-at-all!'),
      (error: Error) => /is not base64/.test(error.message) && !error.message.includes('at-all!'),
    );
    assert.throws(() => StoreKeyring.parse(`${k1},${k1}`), /listed twice/);
    assert.throws(() => StoreKeyring.parse(' , '), /empty/);
    const ring = StoreKeyring.parse(`${k2} ${k1}`);
    assert.equal(ring.keys.length, 2);
    assert.equal(ring.newest.id, StoreKeyring.parse(k2).newest.id);
    assert.match(ring.newest.id, /^[0-9a-f]{16}$/);
    assert.deepEqual(StoreKeyring.parse([k2, k1]).ids, ring.ids);
  });

  it('seals under the newest key and opens with any listed key', () => {
    const sealed = new MessageSealer(StoreKeyring.parse([k1])).seal(headers, body, 'op_1/request');
    assert.ok(!Buffer.from(sealed.body).includes('secret body'));
    assert.ok(!sealed.headers.includes('t0ken'));
    const opened = new MessageSealer(StoreKeyring.parse([k2, k1])).open(
      JSON.parse(sealed.headers),
      sealed.body,
      'op_1/request',
    );
    assert.deepEqual(opened.headers, headers);
    assert.equal(Buffer.from(opened.body).toString(), 'secret body');
  });

  it('without a keyring writes and reads plaintext exactly as before', () => {
    const plain = new MessageSealer();
    const stored = plain.seal(headers, body, 'op_1/request');
    assert.equal(stored.headers, JSON.stringify(headers));
    assert.equal(stored.body, body);
    assert.deepEqual(plain.open(JSON.parse(stored.headers), stored.body, 'op_1/request').headers, headers);
  });

  it('an altered or moved value is a typed error, never garbage', () => {
    const sealer = new MessageSealer(StoreKeyring.parse([k1]));
    const sealed = sealer.seal(headers, body, 'op_1/request');
    const flipped = Buffer.from(sealed.body);
    flipped[flipped.byteLength - 1]! ^= 1;
    const reasonOf = (f: () => unknown) => {
      try {
        f();
      } catch (error) {
        assert.ok(error instanceof StoredValueUnreadableError, String(error));
        return error.reason;
      }
      assert.fail('opened');
    };
    assert.equal(
      reasonOf(() => sealer.open(JSON.parse(sealed.headers), flipped, 'op_1/request')),
      'altered',
    );
    // Sealed for another row: the authenticated context does not match.
    assert.equal(
      reasonOf(() => sealer.open(JSON.parse(sealed.headers), sealed.body, 'op_2/request')),
      'altered',
    );
    assert.equal(
      reasonOf(() => sealer.open('sealed:9:x:y', sealed.body, 'op_1/request')),
      'unknown-format',
    );
    assert.equal(
      reasonOf(() => new MessageSealer().open(JSON.parse(sealed.headers), sealed.body, 'r')),
      'no-key',
    );
  });
});
