import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parsePrefer } from './prefer.ts';

describe('parsePrefer (RFC 7240)', () => {
  it('reads respond-async and wait, case-insensitively, across field lines', () => {
    assert.deepEqual(parsePrefer('RESPOND-ASYNC, WAIT=1'), {
      respondAsync: true,
      waitMs: 1_000,
      returnMinimal: false,
      forward: undefined,
    });
    const lines = parsePrefer(['respond-async', 'wait=2']);
    assert.equal(lines.respondAsync, true);
    assert.equal(lines.waitMs, 2_000);
  });

  it('lets the first occurrence win', () => {
    assert.equal(parsePrefer('wait=1, wait=10, respond-async').waitMs, 1_000);
    assert.equal(parsePrefer('return=minimal, return=representation').returnMinimal, true);
  });

  it('ignores malformed and unknown preferences, never failing', () => {
    for (const bad of ['wait=abc', 'wait=-1', 'wait=1.5', 'wait=']) {
      const p = parsePrefer(`${bad}, respond-async`);
      assert.equal(p.waitMs, undefined, bad);
      assert.equal(p.respondAsync, true, bad);
    }
    const p = parsePrefer('foo=bar; baz, respond-async; x="a,b;c"');
    assert.equal(p.respondAsync, true);
    assert.equal(p.forward, 'foo=bar; baz');
    assert.deepEqual(parsePrefer('@@@, ,,').respondAsync, false);
  });

  it('accepts empty and quoted values', () => {
    assert.equal(parsePrefer('respond-async=""').respondAsync, true);
    assert.equal(parsePrefer('wait="1", respond-async').waitMs, 1_000);
  });

  it('forwards everything but the consumed respond-async and wait', () => {
    assert.equal(
      parsePrefer('respond-async, return=minimal, handling=strict, wait=5').forward,
      'return=minimal, handling=strict',
    );
    assert.equal(parsePrefer('respond-async, wait=5').forward, undefined);
  });
});
