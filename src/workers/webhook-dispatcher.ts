/**
 * The webhook dispatcher: leases due deliveries from the store's outbox, makes
 * one attempt each (src/delivery/webhooks/sender.ts), decides what the outcome
 * means (schedule.ts) and records the attempt with it, fenced by the lease.
 * It runs in `spillway serve` and in `spillway worker`; any number of them may
 * share a PostgreSQL store, and the store's leasing keeps each delivery in
 * flight at one place at a time and never sends a delivered one again.
 *
 * It is woken by the store's change notices (a terminal status change, in this
 * process or, on PostgreSQL, in another), at most every WAKE_SPACING_MS so a
 * burst of captures does not become a burst of lease queries, by its own timer
 * when the next retry falls due, and by a poll as the backstop. `runOnce()` is
 * the manual trigger tests drive with a ManualClock.
 *
 * It only leases deliveries to endpoints it knows (has secrets for): during a
 * rolling change of subscriptions, a process without the new one leaves its
 * deliveries to the processes that have it, rather than failing them.
 *
 * Delivery is at least once: an attempt whose 2xx is not recorded (a crash, the
 * store down past the retry window) is made again after its lease runs out,
 * with the same webhook-id, which receivers deduplicate on.
 */
import type { Clock } from '../clock.ts';
import type { CallbackGuard } from '../delivery/webhooks/callback-guard.ts';
import { CALLBACK_ENDPOINT, webhookIdOf, webhookMessage } from '../delivery/webhooks/message.ts';
import { decideAfterDelivery, type WebhookSchedule } from '../delivery/webhooks/schedule.ts';
import { WebhookSender } from '../delivery/webhooks/sender.ts';
import type { WebhookSecret } from '../delivery/webhooks/signing.ts';
import type { Webhooks } from '../delivery/webhooks/webhooks.ts';
import { endSpan, remoteContext, SpanKind, startSpan, traceHeadersOf } from '../engine/spans.ts';
import { LifecycleEvents, traceIdOf } from '../events/lifecycle.ts';
import type { EventLog, LeasedWebhookDelivery, WebhookAttemptRecord, WebhookOutbox } from '../store/port.ts';
import { LeaseLoop } from './lease-loop.ts';

/** Notices closer together than this share one lease query. */
const WAKE_SPACING_MS = 25;
/** A lease outlives its attempt (time limit + name resolution) by this much. */
const LEASE_MARGIN_MS = 10_000;

export interface WebhookEndpoint {
  /** Every one signs each attempt (rotation). */
  secrets: readonly WebhookSecret[];
  /** The allow-list and address checks for this endpoint's URLs. */
  guard: CallbackGuard;
}

export interface WebhookDispatcherOptions {
  /** Deliveries to lease and record, and the log's watch to wake on a terminal event. */
  store: WebhookOutbox & Pick<EventLog, 'watch'>;
  clock: Clock;
  /** Lease owner name of this process. */
  owner: string;
  /** The endpoints this process delivers to, by name ("callback" and subscriptions): who signs, what may be reached. */
  endpoints: ReadonlyMap<string, WebhookEndpoint>;
  schedule: WebhookSchedule;
  /** One attempt's time limit. */
  timeoutMs: number;
  /** Attempts in flight at once. */
  concurrency: number;
  pollIntervalMs: number;
  /** Base of the links in the events (the result URL). */
  publicUrl: () => string;
  random?: () => number;
  /** Where every attempt (`webhook:*`) and the loop's errors are told, for logs and metrics. */
  events?: LifecycleEvents;
}

export class WebhookDispatcher {
  readonly #options: WebhookDispatcherOptions;
  readonly #events: LifecycleEvents;
  readonly #sender: WebhookSender;
  readonly #loop: LeaseLoop<LeasedWebhookDelivery>;
  readonly #endpointNames: string[];
  #lastLeaseAt = Number.NEGATIVE_INFINITY;
  #unwatch: (() => void) | undefined;

  constructor(options: WebhookDispatcherOptions) {
    this.#options = options;
    this.#events = options.events ?? new LifecycleEvents();
    this.#sender = new WebhookSender(options.clock);
    this.#endpointNames = [...options.endpoints.keys()];
    const { store, owner, clock, concurrency, timeoutMs, pollIntervalMs } = options;
    this.#loop = new LeaseLoop({
      clock,
      pollIntervalMs,
      unref: true,
      freeSlots: (inFlight) => concurrency - inFlight,
      lease: (limit) => {
        this.#lastLeaseAt = clock.now();
        return store.leaseWebhookDeliveries({
          owner,
          limit,
          leaseMs: timeoutMs + LEASE_MARGIN_MS,
          endpoints: this.#endpointNames,
        });
      },
      run: (delivery, shutdown) => this.#deliver(delivery, shutdown),
      onError: (error, delivery) =>
        this.#events.emit({
          type: 'background:error',
          at: clock.now(),
          source: 'webhooks',
          ...(delivery ? { operationId: delivery.operationId } : {}),
          error,
        }),
      idleDelay: async () => {
        const due = await store.nextWebhookDueAt(this.#endpointNames);
        return due === undefined ? pollIntervalMs : Math.min(pollIntervalMs, Math.max(0, due - clock.now()));
      },
    });
  }

  /** Starts the loop and listens for the store's notices. Safe to call twice. */
  start(): void {
    if (this.#loop.running || this.#endpointNames.length === 0) return;
    this.#unwatch = this.#options.store.watch(() => this.wake());
    this.#loop.start();
  }

  /** Something may have become deliverable: look soon, unless a look is planned sooner. */
  wake(): void {
    const now = this.#options.clock.now();
    this.#loop.wakeIn(Math.max(now, this.#lastLeaseAt + WAKE_SPACING_MS) - now);
  }

  /** Leases as many due deliveries as there are free slots and starts them; resolves with how many. */
  runOnce(): Promise<number> {
    return this.#loop.runOnce();
  }

  /** Resolves when no attempt is in flight. */
  idle(): Promise<void> {
    return this.#loop.idle();
  }

  /** Stops leasing, waits up to `graceMs` for attempts in flight, then aborts the rest and hands them back. */
  async stop(graceMs: number): Promise<void> {
    this.#unwatch?.();
    this.#unwatch = undefined;
    await this.#loop.stop(graceMs);
  }

  async #deliver(delivery: LeasedWebhookDelivery, shutdown: AbortSignal): Promise<void> {
    const { store, clock, schedule, timeoutMs, endpoints, publicUrl, random } = this.#options;
    const { secrets, guard } = endpoints.get(delivery.endpoint)!; // leased for the endpoints given only
    const attempt = delivery.attempts + 1;
    // In the operation's trace, across processes: the receiver sees this span as its parent.
    const span = startSpan(
      `webhook ${delivery.endpoint}`,
      SpanKind.CLIENT,
      remoteContext(delivery.traceparent, delivery.tracestate),
      {
        'http.request.method': 'POST',
        'spillway.webhook.endpoint': delivery.endpoint,
        'spillway.webhook.id': webhookIdOf(delivery.operationId, delivery.seq, delivery.endpoint),
        'spillway.attempt': attempt,
        'messaging.message.id': delivery.operationId,
      },
    );
    const trace = traceHeadersOf(span) ?? delivery;
    const message = webhookMessage(delivery.event, delivery.endpoint, publicUrl(), trace);
    const { outcome, report } = await this.#sender.send({
      url: delivery.url,
      guard,
      message,
      secrets,
      timeoutMs,
      signal: shutdown,
    });
    if (shutdown.aborted) {
      // Shutting down mid-attempt: hand it back, due at once for whoever is still running.
      await store.releaseWebhookDelivery(delivery, delivery.leaseToken);
      endSpan(span, {}, { type: 'abandoned' });
      return;
    }
    const decision = decideAfterDelivery(outcome, attempt, schedule, random);
    const record: WebhookAttemptRecord = {
      attempt: report,
      next:
        decision.kind === 'retry'
          ? { state: 'pending', nextAttemptAt: clock.now() + decision.delayMs }
          : { state: decision.kind },
      lastError: decision.kind === 'delivered' ? null : decision.reason,
      // A subscription's 410 stops it for every process; a callback's ends only its own delivery.
      disableEndpoint: decision.kind === 'disabled' && delivery.endpoint !== CALLBACK_ENDPOINT,
    };
    let held: boolean;
    try {
      held = await store.recordWebhookAttempt(delivery, delivery.leaseToken, record);
    } catch (error) {
      endSpan(span, {}, { type: 'store-unavailable' }); // not recorded: the lease runs out and it is sent again
      throw error;
    }
    endSpan(
      span,
      {
        'spillway.outcome': held ? decision.kind : 'lost-lease',
        ...(report.status === null ? {} : { 'http.response.status_code': report.status }),
      },
      decision.kind === 'delivered' ? undefined : { type: decision.kind, message: decision.reason },
    );
    this.#events.emit({
      type: held ? `webhook:${decision.kind}` : 'webhook:lost-lease',
      at: clock.now(),
      webhookId: webhookIdOf(delivery.operationId, delivery.seq, delivery.endpoint),
      operationId: delivery.operationId,
      endpoint: delivery.endpoint,
      attempt,
      status: report.status,
      error: record.lastError,
      durationMs: report.latencyMs,
      traceId: traceIdOf(delivery.traceparent),
      ...(record.next.state === 'pending' ? { nextAttemptAt: record.next.nextAttemptAt } : {}),
    });
  }
}

/** The dispatcher of a process, from its webhook setup. */
export function dispatcherFor(
  webhooks: Webhooks,
  options: Pick<WebhookDispatcherOptions, 'store' | 'clock' | 'owner' | 'publicUrl' | 'events'>,
): WebhookDispatcher {
  const { config } = webhooks;
  return new WebhookDispatcher({
    ...options,
    endpoints: webhooks.endpoints(),
    schedule: config.schedule,
    timeoutMs: config.timeoutMs,
    concurrency: config.concurrency,
    pollIntervalMs: config.pollIntervalMs,
  });
}
