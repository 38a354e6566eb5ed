/**
 * The OperationStore conformance suite: one suite per part of the port
 * (src/store/port.ts), each run unchanged against every adapter on the shared
 * store fixture (store-fixture.ts). Sealing (encryption at rest, rekey) opens
 * its stores under several keys and has its own factory.
 */
import { eventLogConformance } from './event-log-conformance.ts';
import { idempotencyConformance } from './idempotency-conformance.ts';
import { lifecycleConformance } from './lifecycle-conformance.ts';
import { operatorConformance } from './operator-conformance.ts';
import { orderingConformance } from './ordering-conformance.ts';
import { queueConformance } from './queue-conformance.ts';
import { routeControlsConformance } from './route-controls-conformance.ts';
import { staleCopyConformance } from './stale-copy-conformance.ts';
import type { StoreFactory } from './store-fixture.ts';
import { webhookOutboxConformance } from './webhook-outbox-conformance.ts';

export { newOperation, type StoreFactory } from './store-fixture.ts';

/** Every part's suite against the adapter `factory` opens. */
export function storeConformance(name: string, factory: StoreFactory): void {
  queueConformance(name, factory);
  orderingConformance(name, factory);
  idempotencyConformance(name, factory);
  eventLogConformance(name, factory);
  webhookOutboxConformance(name, factory);
  routeControlsConformance(name, factory);
  operatorConformance(name, factory);
  staleCopyConformance(name, factory);
  lifecycleConformance(name, factory);
}
