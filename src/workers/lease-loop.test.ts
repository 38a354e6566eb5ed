import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock } from '../../test/support/manual-clock.ts';
import { LeaseLoop } from './lease-loop.ts';

/** Lets the loop's awaits (lease, idleDelay) settle: no time passes on the ManualClock. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

/**
 * A loop that never finds anything, whose idle delay is `idleDelayMs`, and
 * that is asked to wake in `wakeInMs` during its first look (as a capture
 * arriving meanwhile does). `looks` are the times of its looks, from its start.
 */
function loopWakingDuringItsFirstLook(clock: ManualClock, idleDelayMs: number, wakeInMs: number) {
  const started = clock.now();
  const looks: number[] = [];
  const loop: LeaseLoop<never> = new LeaseLoop<never>({
    clock,
    freeSlots: () => 1,
    lease: async () => {
      looks.push(clock.now() - started);
      if (looks.length === 1) loop.wakeIn(wakeInMs);
      return [];
    },
    run: async () => {},
    idleDelay: async () => idleDelayMs,
    pollIntervalMs: 1_000,
    onError: (error) => assert.fail(error as Error),
  });
  loop.start();
  return { loop, looks };
}

async function advance(clock: ManualClock, ms: number) {
  clock.advance(ms);
  await settle();
}

describe('LeaseLoop', () => {
  it('looks again after its idle delay even when a later wake-up was asked for during the look', async () => {
    // A capture made while the route diverts wakes the loop for its due time, the end of the open
    // period (seconds away); the idle delay says a probe's turn comes sooner. The sooner one wins:
    // this kept the first replay after a short outage waiting for the open period to end.
    const clock = new ManualClock();
    const { loop, looks } = loopWakingDuringItsFirstLook(clock, 100, 5_000);
    await advance(clock, 0);
    await advance(clock, 100);
    assert.deepEqual(looks, [0, 100]);
    await advance(clock, 100);
    assert.deepEqual(looks, [0, 100, 200], 'and on at its idle delay');
    await loop.stop(0);
  });

  it('keeps a sooner wake-up asked for during the look over its idle delay', async () => {
    const clock = new ManualClock();
    const { loop, looks } = loopWakingDuringItsFirstLook(clock, 1_000, 10);
    await advance(clock, 0);
    await advance(clock, 10);
    assert.deepEqual(looks, [0, 10]);
    await loop.stop(0);
  });
});
