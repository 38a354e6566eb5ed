/**
 * What every store conformance suite shares: one store per test, opened on a
 * fresh ManualClock before it and closed after it, and the helpers the
 * suites build operations and leases with.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach } from 'node:test';
import { newOperationId } from '../../src/engine/operation-id.ts';
import type { LeasedOperation, NewOperation, OperationStore } from '../../src/store/port.ts';
import { ManualClock } from '../support/manual-clock.ts';

export type StoreFactory = (
  clock: ManualClock,
) => Promise<{ store: OperationStore; reopen(): Promise<OperationStore> }>;

export function newOperation(clock: ManualClock, overrides: Partial<NewOperation> = {}): NewOperation {
  return {
    id: newOperationId(),
    route: 'default',
    request: {
      method: 'POST',
      path: '/payments',
      query: 'a=1',
      headers: [
        ['content-type', 'application/json'],
        ['x-multi', '1'],
        ['x-multi', '2'],
      ],
      body: new Uint8Array(randomBytes(64)),
    },
    priority: 0,
    idempotencyKey: null,
    tenant: null,
    traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    tracestate: null,
    attempts: 0,
    nextAttemptAt: clock.now(),
    outcomeUnknown: false,
    ...overrides,
  };
}

export const lease = (store: OperationStore, owner = 'w1', limit = 10, leaseMs = 1_000) =>
  store.lease({ owner, limit, leaseMs });

/** The token of the lease on `id` among `leased`. */
export const tokenOf = (leased: LeasedOperation[], id: string): string => {
  const held = leased.find((op) => op.id === id);
  assert.ok(held, `${id} was leased`);
  return held.leaseToken;
};

/** The store of the running test; a test that reopens it sets `store`, and that one is closed after it. */
export interface StoreFixture {
  clock: ManualClock;
  store: OperationStore;
  reopen(): Promise<OperationStore>;
}

/** Opens a store from `factory` before each test of the enclosing describe, and closes it after. */
export function storeFixture(factory: StoreFactory): StoreFixture {
  const fx = {} as StoreFixture;
  beforeEach(async () => {
    fx.clock = new ManualClock();
    const opened = await factory(fx.clock);
    fx.store = opened.store;
    fx.reopen = opened.reopen;
  });
  afterEach(async () => {
    await fx.store.close();
  });
  return fx;
}
