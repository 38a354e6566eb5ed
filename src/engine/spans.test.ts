import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatTraceparent, newTraceparent, parseTraceparent } from './spans.ts';

describe('traceparent', () => {
  it('parses a valid one and formats it back', () => {
    const value = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const context = parseTraceparent(value, 'a=1');
    assert.ok(context);
    assert.equal(context.traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
    assert.equal(context.traceState?.get('a'), '1');
    assert.equal(formatTraceparent(context), value);
  });

  it('refuses version ff, zero ids, extra fields on version 00, and garbage', () => {
    for (const bad of [
      'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
      `00-${'0'.repeat(32)}-00f067aa0ba902b7-01`,
      `00-4bf92f3577b34da6a3ce929d0e0e4736-${'0'.repeat(16)}-01`,
      '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra',
      'not a traceparent',
      '',
    ]) {
      assert.equal(parseTraceparent(bad), undefined, bad);
    }
  });

  it('accepts a later version with extra fields (W3C forward compatibility)', () => {
    assert.ok(parseTraceparent('01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future'));
  });

  it('starts new, valid, unsampled traces', () => {
    const a = newTraceparent();
    assert.ok(parseTraceparent(a));
    assert.match(a, /-00$/);
    assert.notEqual(a, newTraceparent());
  });
});
