/**
 * Spillway in-process: the whole gateway as a value, with no port of its own.
 * `fetch(request)` and `handle(req, res)` serve the proxied routes and
 * `/_spillway/` exactly as `spillway serve` does (they run the same parts,
 * built by buildGatewayParts), and the replay workers run in this process.
 *
 * The upstream is a URL, or a function `(request) => Promise<Response>` that
 * sync attempts and replays call directly. Starting is asynchronous (the
 * store opens, PostgreSQL migrates) but `createSpillway` is not: requests
 * wait for the start, and `ready()` tells when it is done or why it failed.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Clock, systemClock } from '../clock.ts';
import { buildConfig, ConfigError } from '../config/config.ts';
import { type FetchHandler, FetchUpstream } from '../engine/fetch-upstream.ts';
import { HttpUpstream } from '../engine/upstream.ts';
import { type ErrorCode, problem } from '../errors.ts';
import { LifecycleEvents } from '../events/lifecycle.ts';
import { sendProblem } from '../gateway/problem-response.ts';
import { subscribeLogs } from '../ops/log-subscriber.ts';
import { createLogger, type Logger } from '../ops/logger.ts';
import { defaultInstanceId } from '../ops/process-parts.ts';
import { buildGatewayParts } from '../ops/spillway.ts';
import { InMemoryHttp } from './in-memory-http.ts';

export interface CreateSpillwayOptions {
  /** The upstream's http(s) URL, or a function called in-process for every attempt (a Hono app's `fetch`). */
  upstream?: string | FetchHandler;
  /** An SQLite file path (default `spillway.db` in the working directory) or a postgres:// URL. */
  store?: string;
  /**
   * Everything else, in the shape of the config file (docs/configuration.md):
   * routes, routeDefaults, replay, webhooks… Ports and hosts are not used.
   * `upstream` and `store` given above win over the same keys here.
   */
  config?: Record<string, unknown>;
  /** Default: JSON lines on stdout at SPILLWAY_LOG_LEVEL (info). */
  logger?: Logger;
  /** The lifecycle event stream to emit on (default: a new one); subscribe to it for metrics or traces. */
  events?: LifecycleEvents;
  clock?: Clock;
  /** Lease owner name; default host:pid:random. */
  instanceId?: string;
}

export interface EmbeddedSpillway {
  /** Serves one request: a proxied route (sync answer or 202) or `/_spillway/…`. */
  fetch(request: Request): Promise<Response>;
  /** The same, as a node:http listener (for a server or a framework's raw request). */
  handle(req: IncomingMessage, res: ServerResponse): void;
  /** Resolves once the store is open and replay runs; rejects with the reason Spillway could not start. */
  ready(): Promise<void>;
  /**
   * Stops taking requests, lets those under way, adopted attempts and replays
   * finish within shutdownGraceMs, hands back the rest, closes the store.
   * Safe to call twice.
   */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** The origin function upstreams are given in the config, which wants a URL: never contacted. */
const IN_PROCESS_ORIGIN = 'http://in-process.invalid';

export function createSpillway(options: CreateSpillwayOptions = {}): EmbeddedSpillway {
  const raw = { ...options.config };
  const target = (options.upstream ?? raw.upstream) as string | FetchHandler | undefined;
  if (typeof target !== 'string' && typeof target !== 'function') {
    throw new ConfigError(
      `upstream must be an http(s) URL or a function (request: Request) => Promise<Response>, got ${target === undefined ? 'nothing' : typeof target}.`,
    );
  }
  const config = buildConfig({
    ...raw,
    upstream: typeof target === 'string' ? target : IN_PROCESS_ORIGIN,
    ...(options.store === undefined ? {} : { store: options.store }),
  });
  const log = options.logger ?? createLogger();
  const events = options.events ?? new LifecycleEvents();
  const unsubscribeLogs = subscribeLogs(events, log);
  const upstream =
    typeof target === 'string'
      ? new HttpUpstream(target)
      : new FetchUpstream(target, config.publicUrl ?? 'http://localhost');
  const starting = buildGatewayParts(config, {
    clock: options.clock ?? systemClock,
    events,
    instanceId: options.instanceId ?? defaultInstanceId(),
    upstream,
  }).then((parts) => {
    parts.start();
    return { parts, http: new InMemoryHttp(parts.publicServer) };
  });
  // Requests and ready() report it too; the log says it even when nobody asks.
  starting.catch((error: unknown) => log.error({ err: error }, 'spillway could not start'));

  const handled = new RequestsUnderWay();
  let closing: Promise<void> | undefined;
  const refusal = (error?: unknown): { code: ErrorCode; detail: string } =>
    error === undefined
      ? {
          code: 'store-unavailable',
          detail: 'Spillway is closed (close() was called): nothing was stored or forwarded. Retry later.',
        }
      : {
          code: 'store-unavailable',
          detail: `Spillway could not start (${(error as Error).message}): nothing was stored or forwarded. Retry later.`,
        };

  const close = () => {
    closing ??= (async () => {
      let started: Awaited<typeof starting>;
      try {
        started = await starting;
      } catch {
        await upstream.close();
        unsubscribeLogs();
        return; // nothing was started; the failure was logged
      }
      const { parts, http } = started;
      // Event streams end now, or they would hold the requests open.
      parts.hub.close();
      const graceMs = config.shutdownGraceMs;
      const requestsDone = Promise.all([
        withGrace(http.close(), graceMs, () => http.destroy()),
        handled.idle(graceMs),
      ]);
      await parts.stop(graceMs, requestsDone);
      unsubscribeLogs();
    })();
    return closing;
  };

  return {
    async fetch(request) {
      if (closing) return problemResponse(refusal());
      let started: Awaited<typeof starting>;
      try {
        started = await starting;
      } catch (error) {
        return problemResponse(refusal(error));
      }
      return started.http.fetch(request);
    },
    handle(req, res) {
      if (closing) {
        const { code, detail } = refusal();
        sendProblem(res, code, detail, { 'retry-after': 5 });
        return;
      }
      handled.add(res);
      starting.then(
        ({ parts }) => parts.publicServer.emit('request', req, res),
        (error: unknown) => {
          const { code, detail } = refusal(error);
          sendProblem(res, code, detail, { 'retry-after': 5 });
        },
      );
    },
    ready: () => starting.then(() => {}),
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** The problem+json answer of `fetch` when nothing can be served. */
function problemResponse({ code, detail }: { code: ErrorCode; detail: string }): Response {
  const doc = problem(code, detail);
  return new Response(JSON.stringify(doc), {
    status: doc.status,
    headers: { 'content-type': 'application/problem+json', 'cache-control': 'no-store', 'retry-after': '5' },
  });
}

/** Responses of `handle` not yet closed, so that close() can wait for them. */
class RequestsUnderWay {
  readonly #open = new Set<ServerResponse>();
  #waiters: Array<() => void> = [];

  add(res: ServerResponse): void {
    this.#open.add(res);
    res.once('close', () => {
      this.#open.delete(res);
      if (this.#open.size === 0) for (const wake of this.#waiters.splice(0)) wake();
    });
  }

  /** Resolves once every response has closed, or after `graceMs` (the rest are the host server's to end). */
  idle(graceMs: number): Promise<void> {
    if (this.#open.size === 0) return Promise.resolve();
    return withGrace(new Promise<void>((resolve) => this.#waiters.push(resolve)), graceMs);
  }
}

/** Waits for `work` up to `graceMs`; past it, calls `giveUp` and waits for that instead. */
async function withGrace(work: Promise<unknown>, graceMs: number, giveUp?: () => Promise<unknown>) {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), graceMs);
  });
  const outcome = await Promise.race([work.then(() => 'done' as const), late]);
  clearTimeout(timer);
  if (outcome === 'late' && giveUp) await giveUp();
}
