import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock } from '../../test/support/manual-clock.ts';
import { LeaseLoop } from './lease-loop.ts';

/** Lets the loop's awaits (lease, idleDelay) settle: no time passes on the ManualClock. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('LeaseLoop', () => {
  it('looks again after its idle delay even when a later wake-up was asked for during the look', async () => {
    // A capture made while the route diverts wakes the loop for its due time, the end of the open
    // period (seconds away); the idle delay says a probe's turn comes sooner. The sooner one wins:
    // this kept the first replay after a short outage waiting for the open period to end.
    const clock = new ManualClock();
    const started = clock.now();
    const looks: number[] = [];
    const loop: LeaseLoop<never> = new LeaseLoop<never>({
      clock,
      freeSlots: () => 1,
      lease: async () => {
        looks.push(clock.now() - started);
        if (looks.length === 1) loop.wakeIn(5_000);
        return [];
      },
      run: async () => {},
      idleDelay: async () => 100,
      pollIntervalMs: 1_000,
      onError: (error) => assert.fail(error as Error),
    });
    loop.start();
    clock.advance(0);
    await settle();
    clock.advance(100);
    await settle();
    assert.deepEqual(looks, [0, 100]);
    clock.advance(100);
    await settle();
    assert.deepEqual(looks, [0, 100, 200], 'and on at its idle delay');
    await loop.stop(0);
  });

  it('keeps a sooner wake-up asked for during the look over its idle delay', async () => {
    const clock = new ManualClock();
    const started = clock.now();
    const looks: number[] = [];
    const loop: LeaseLoop<never> = new LeaseLoop<never>({
      clock,
      freeSlots: () => 1,
      lease: async () => {
        looks.push(clock.now() - started);
        if (looks.length === 1) loop.wakeIn(10);
        return [];
      },
      run: async () => {},
      idleDelay: async () => 1_000,
      pollIntervalMs: 1_000,
      onError: (error) => assert.fail(error as Error),
    });
    loop.start();
    clock.advance(0);
    await settle();
    clock.advance(10);
    await settle();
    assert.deepEqual(looks, [0, 10]);
    await loop.stop(0);
  });
});
