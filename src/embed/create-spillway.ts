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

import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Clock, systemClock } from '../clock.ts';
import { buildConfig, ConfigError, routeOverDefaults } from '../config/config.ts';
import type { SpillwayConfig } from '../config/schema.ts';
import { type FetchHandler, FetchUpstream } from '../engine/fetch-upstream.ts';
import { HttpUpstream } from '../engine/upstream.ts';
import { type ErrorCode, problem, StoreUnavailableError } from '../errors.ts';
import { LifecycleEvents } from '../events/lifecycle.ts';
import { RESERVED_PREFIX } from '../gateway/operations-api.ts';
import { sendProblem } from '../gateway/problem-response.ts';
import { subscribeLogs } from '../ops/log-subscriber.ts';
import { createLogger, type Logger } from '../ops/logger.ts';
import { defaultInstanceId } from '../ops/process-parts.ts';
import { buildGatewayParts } from '../ops/spillway.ts';
import {
  type DefinedFunction,
  DefinedFunctions,
  type DefineOptions,
  FUNCTIONS_PATH,
  type FunctionOutcome,
  functionOutcome,
  functionRoute,
  parseValue,
  UpstreamSwitch,
} from './functions.ts';
import { InMemoryHttp } from './in-memory-http.ts';

export interface CreateSpillwayOptions {
  /** The upstream's http(s) URL, or a function called in-process for every attempt (a Hono app's `fetch`). */
  upstream?: string | FetchHandler;
  /** An SQLite file path (default `spillway.db` in the working directory) or a postgres:// URL. */
  store?: string;
  /**
   * Everything else, in the shape of the config file (docs/configuration.md):
   * routes, routeDefaults, replay, webhooks… Ports and hosts are not used.
   * `upstream` and `store` given above win over the same keys here. Typed by
   * the config schema, so the compiler checks option names and value types;
   * buildConfig still checks ranges and cross-field rules at run time.
   */
  config?: SpillwayConfig;
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
  /**
   * Gives a plain async function the failover of a route: `call(input)`
   * answers `done` with its value when it returns within the budget, or
   * `accepted` with an id once the JSON input is stored; later runs (here, or
   * in any process that defines the same name on the same store) call it
   * again with the stored input. docs/embedding.md#function-level-failover.
   */
  define<I = unknown, O = unknown>(
    name: string,
    fn: DefinedFunction<I, O>,
    options?: DefineOptions,
  ): SpillwayFunction<I, O>;
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

/** A defined function (EmbeddedSpillway.define). */
export interface SpillwayFunction<I, O> {
  readonly name: string;
  /**
   * Runs the function, waiting up to its budget. Rejects only when the input
   * could not be stored (then nothing will run it): a store that is down, or
   * Spillway closed. `idempotencyKey` replaces the key every run sees (an
   * order id, say: two calls with one key then carry it both).
   */
  call(input: I, options?: { idempotencyKey?: string }): Promise<CallOutcome<O>>;
  /** The outcome of an accepted call; undefined for an id that is no call of this function (or was purged). */
  result(id: string): Promise<FunctionOutcome<O> | undefined>;
}

export type CallOutcome<O> = { status: 'done'; value: O } | { status: 'accepted'; id: string };

/** The origin function upstreams are given in the config, which wants a URL: never contacted. */
const IN_PROCESS_ORIGIN = 'http://in-process.invalid';

export function createSpillway(options: CreateSpillwayOptions = {}): EmbeddedSpillway {
  const raw = { ...options.config };
  const target = (options.upstream ?? raw.upstream) as string | FetchHandler | undefined;
  if (target !== undefined && typeof target !== 'string' && typeof target !== 'function') {
    throw new ConfigError(
      `upstream must be an http(s) URL or a function (request: Request) => Promise<Response>, got ${typeof target}.`,
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
  const clock = options.clock ?? systemClock;
  const functions = new DefinedFunctions();
  const upstream = new UpstreamSwitch(
    functions,
    target === undefined
      ? undefined
      : typeof target === 'string'
        ? new HttpUpstream(target)
        : new FetchUpstream(target, config.publicUrl ?? 'http://localhost'),
  );
  const starting = buildGatewayParts(config, {
    clock,
    events,
    instanceId: options.instanceId ?? defaultInstanceId(),
    upstream,
    functions: () => functions.routes(),
    proxiedRoutes: target !== undefined,
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

  /** Without an upstream only `/_spillway/` is served (define alone). */
  const unserved = (path: string) =>
    target === undefined && !path.startsWith(RESERVED_PREFIX)
      ? `Nothing is served at ${path}: this Spillway has no upstream (createSpillway without upstream), only /_spillway/.`
      : undefined;

  const define = <I, O>(
    name: string,
    fn: DefinedFunction<I, O>,
    defineOptions: DefineOptions = {},
  ): SpillwayFunction<I, O> => {
    if (!/^[A-Za-z0-9_.-]{1,100}$/.test(name)) {
      throw new ConfigError(
        `define(${JSON.stringify(name)}): a function's name is 1–100 letters, digits, "_", "." or "-".`,
      );
    }
    if (functions.has(name)) throw new ConfigError(`define(${JSON.stringify(name)}): already defined here.`);
    const route = functionRoute(name, defineOptions, (r, at) => routeOverDefaults(raw, r, at));
    functions.add(name, fn as DefinedFunction<unknown, unknown>);
    // Before the catch-all, which stays last: the replay workers find its policy by name.
    config.routes.splice(config.routes.length - 1, 0, route);
    const running = async () => {
      if (closing) throw new StoreUnavailableError(refusal().detail);
      const { parts } = await starting;
      parts.health.add(route);
      return parts;
    };
    return {
      name,
      async call(input, callOptions = {}) {
        const text = JSON.stringify(input);
        if (text === undefined) throw new TypeError(`${name}: the input must be JSON, got ${typeof input}.`);
        const body = Buffer.from(text);
        if (body.byteLength > config.maxBodyBytes) {
          throw new RangeError(
            `${name}: the input is ${body.byteLength} bytes as JSON, over maxBodyBytes (${config.maxBodyBytes}).`,
          );
        }
        const parts = await running();
        const subscriptions = parts.webhookSetup.subscriptionsFor(route.name);
        const answer = await parts.engine.submit({
          route,
          request: {
            method: 'POST',
            path: `${FUNCTIONS_PATH}${name}`,
            query: '',
            headers: [
              ['content-type', 'application/json'],
              ['idempotency-key', callOptions.idempotencyKey ?? `spillway-${randomUUID()}`],
            ],
            body,
          },
          receivedAt: clock.now(),
          budgetMs: route.budgetMs,
          mayFailover: true,
          tenant: null,
          ...(subscriptions.length > 0 ? { webhooks: { callbackUrl: null, subscriptions } } : {}),
        });
        switch (answer.kind) {
          case 'sync': {
            const chunks: Buffer[] = [];
            for await (const chunk of answer.response.body) chunks.push(chunk as Buffer);
            return { status: 'done', value: parseValue(Buffer.concat(chunks)) as O };
          }
          case 'accepted':
            return { status: 'accepted', id: answer.operation.id };
          case 'partial':
            // Never for a function (a POST that does not ask for partial answers); its operation is the call's.
            if (answer.operation) return { status: 'accepted', id: answer.operation.id };
            throw new StoreUnavailableError(`${name}: ${answer.reason}`);
          case 'failed':
            // Nothing was stored: the caller must know that no run will follow.
            throw new StoreUnavailableError(`${name}: ${answer.detail}`);
          case 'unanswered':
            // Never for a function: its call is work (no notWork), and work is captured.
            throw new Error(`${name}: not captured (${answer.reason})`);
        }
      },
      async result(id) {
        const parts = await running();
        const op = await parts.store.get(id);
        return op?.route === route.name ? functionOutcome<O>(op) : undefined;
      },
    };
  };

  return {
    define,
    async fetch(request) {
      if (closing) return problemResponse(refusal());
      const missing = unserved(new URL(request.url).pathname);
      if (missing) return problemResponse({ code: 'not-found', detail: missing });
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
      const missing = unserved((req.url ?? '').split('?')[0] ?? '');
      if (missing) {
        sendProblem(res, 'not-found', missing);
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
