/**
 * Server-Sent Events for one operation (WHATWG HTML §9.2): the stored events
 * after `Last-Event-ID` first, then each new one as it is committed, then the
 * stream ends after the terminal event. A reconnect at or after the terminal
 * event gets 204, which tells EventSource to stop. Events come from the store,
 * so a gateway restart loses none; the store's watch is only a wake-up, with a
 * poll as the backstop. Heartbeat comments keep idle proxies from cutting in.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Clock } from '../clock.ts';
import { StoreUnavailableError } from '../errors.ts';
import { type EventLog, isTerminal, type OperationEvent, type OperationQueue } from '../store/port.ts';
import { toCloudEvent } from './cloud-event.ts';
import type { EventHub } from './event-hub.ts';

export interface SseOptions {
  /** The operation's events, and its status (a terminal one ends the stream). */
  store: EventLog & Pick<OperationQueue, 'get'>;
  hub: EventHub;
  clock: Clock;
  publicUrl: string;
  /** Reconnection delay suggested to clients (`retry:`), ms. */
  retryMs: number;
  /** Comment line this often on an idle stream, ms. */
  heartbeatMs: number;
  /** Re-read the store this often even without a notice, ms. */
  pollMs: number;
  /** Open streams at once; the gateway refuses more with 503 (src/gateway/operations-api.ts). */
  maxStreams: number;
  /**
   * Told of a store read that failed while streaming: an unavailable store
   * once per outage (the stream stays open and the next poll tries again),
   * any other failure once, ending the stream. Default: a process warning.
   */
  onError?: (error: unknown) => void;
}

/** The seq a `Last-Event-ID` (or `?lastEventId=`) names for this operation; 0 when absent or foreign. */
export function resumeAfter(id: string, lastEventId: string | undefined): number {
  if (!lastEventId?.startsWith(`${id}:`)) return 0;
  const seq = Number(lastEventId.slice(id.length + 1));
  return Number.isSafeInteger(seq) && seq > 0 ? seq : 0;
}

/** Streams the events of an operation known to exist. `headers` are added to the 200 or 204 (CORS). */
export async function streamEvents(
  req: IncomingMessage,
  res: ServerResponse,
  id: string,
  after: number,
  headers: Record<string, string>,
  options: SseOptions,
): Promise<void> {
  const { store, hub, clock, publicUrl } = options;
  const backlog = await store.events(id, after);
  const done = (await store.get(id))?.status;
  if (backlog.length === 0 && done !== undefined && isTerminal(done) && after > 0) {
    res.writeHead(204, headers);
    res.end();
    return;
  }
  res.writeHead(200, {
    ...headers,
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-store',
    'x-accel-buffering': 'no',
  });
  res.flushHeaders();
  res.write(`retry: ${options.retryMs}\n\n`);

  let last = after;
  let ended = false;
  let pumping: Promise<void> | undefined;
  let again = false;
  /** The store has been unavailable since the last read that succeeded (told once). */
  let outage = false;
  const report =
    options.onError ??
    ((error: unknown) =>
      process.emitWarning(`SSE store read failed: ${(error as Error)?.message ?? String(error)}`, {
        code: 'SPILLWAY_SSE_ERROR',
      }));
  // One live timer per loop, whatever the stream's age: memory per stream stays constant.
  const stops: Array<() => void> = [];
  let unfollow = () => {};

  const end = () => {
    if (ended) return;
    ended = true;
    unfollow();
    for (const stop of stops) stop();
    res.end();
  };
  const write = (events: OperationEvent[]) => {
    for (const event of events) {
      if (ended || event.seq <= last) continue;
      const cloudEvent = toCloudEvent(event, publicUrl);
      // JSON.stringify never emits a raw CR or LF, so one data line always holds the whole event.
      res.write(`id: ${cloudEvent.id}\nevent: ${cloudEvent.type}\ndata: ${JSON.stringify(cloudEvent)}\n\n`);
      last = event.seq;
      if (isTerminal(event.status)) end();
    }
  };
  // One read at a time; a notice that arrives during a read asks for one more.
  const pump = (): void => {
    if (ended) return;
    if (pumping) {
      again = true;
      return;
    }
    pumping = store
      .events(id, last)
      .then(
        (events) => {
          outage = false;
          write(events);
        },
        (error: unknown) => {
          if (error instanceof StoreUnavailableError) {
            // Passing: the stream stays open and the next poll tries again; told once per outage.
            if (!outage) report(error);
            outage = true;
            return;
          }
          // Not passing (a bug, an unreadable value): told, and the stream ends; the client
          // reconnects with Last-Event-ID and loses nothing.
          report(error);
          end();
        },
      )
      .finally(() => {
        pumping = undefined;
        if (again && !ended) {
          again = false;
          pump();
        }
      });
  };
  const every = (ms: number, fn: () => void) => {
    const tick = () => {
      if (ended) return;
      fn();
      if (!ended) timer = clock.setTimeout(tick, ms);
    };
    let timer = clock.setTimeout(tick, ms);
    stops.push(() => clock.clearTimeout(timer));
  };

  write(backlog);
  if (ended) return;
  unfollow = hub.follow(id, pump, end);
  every(options.pollMs, pump);
  every(options.heartbeatMs, () => res.write(': heartbeat\n\n'));
  req.once('close', end);
  res.once('close', end);
  pump(); // anything committed between the backlog read and the follow
}
