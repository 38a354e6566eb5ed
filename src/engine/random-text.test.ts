import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { randomText } from './random-text.ts';

describe('randomText', () => {
  it('never hands out the same bytes twice, across many refills of its pool', () => {
    // 3,000 draws of 18 bytes span 13 pools of 4 KiB, each draw that would cross a pool's end
    // taking fresh bytes: any reuse of an offset, within a pool or after a refill, repeats a draw.
    const seen = new Set<string>();
    for (let i = 0; i < 3_000; i++) seen.add(randomText(18, 'hex'));
    assert.equal(seen.size, 3_000);
  });

  it('gives the length asked for, in the encoding asked for, at any offset in the pool', () => {
    for (const bytes of [1, 7, 8, 16, 18, 4096]) {
      assert.match(randomText(bytes, 'hex'), new RegExp(`^[0-9a-f]{${bytes * 2}}$`));
      assert.equal(Buffer.from(randomText(bytes, 'base64url'), 'base64url').length, bytes);
    }
    assert.throws(() => randomText(4097, 'hex'), RangeError);
  });
});
