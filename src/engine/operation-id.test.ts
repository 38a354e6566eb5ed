import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isOperationId, newOperationId } from './operation-id.ts';

describe('operation ids', () => {
  it('compare as strings in the order they were made, across every symbol of the time prefix', () => {
    // One id per millisecond step that changes each of the 8 time symbols in turn, up to the year 10000.
    const times = [
      0,
      1,
      63,
      64,
      4_095,
      4_096,
      2 ** 24,
      2 ** 30,
      2 ** 36,
      2 ** 42,
      Date.now(),
      253_402_300_799_999,
    ];
    times.sort((a, b) => a - b);
    const ids = times.map((t) => newOperationId(t));
    for (let i = 1; i < ids.length; i++)
      assert.ok(
        ids[i - 1]! < ids[i]!,
        `${ids[i - 1]} (at ${times[i - 1]}) sorts before ${ids[i]} (at ${times[i]})`,
      );
  });

  it('keep 96 random bits: ids made in the same millisecond differ, and only after the time prefix', () => {
    const at = Date.UTC(2026, 11, 3);
    const ids = Array.from({ length: 2_000 }, () => newOperationId(at));
    assert.equal(new Set(ids).size, ids.length);
    assert.equal(new Set(ids.map((id) => id.slice(0, 11))).size, 1, 'one time prefix for one millisecond');
    assert.equal(new Set(ids.map((id) => id.slice(11))).size, ids.length);
  });

  it('have the documented shape: op_ and 24 URL-safe characters', () => {
    for (const id of [newOperationId(), newOperationId(0), newOperationId(253_402_300_799_999)])
      assert.ok(isOperationId(id), id);
    assert.ok(!isOperationId('op_short'));
    assert.ok(!isOperationId(`op_${'a'.repeat(23)}/`));
  });
});
