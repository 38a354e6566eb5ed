/**
 * Function-level failover (`spillway.define`): a plain async function gets
 * the failover of a route, through the same engine, store, replay workers,
 * retry rules and delivery channels as HTTP requests. Nothing is duplicated;
 * a defined function maps onto the operation model like this:
 *
 * - the function is a **route** named `fn:<name>`, its policy built from the
 *   define options over the config's routeDefaults;
 * - a call is a **captured request** `POST /_spillway/functions/<name>` whose
 *   body is the JSON input and whose `Idempotency-Key` header is the key every
 *   run sees (`ctx.idempotencyKey`); POST, so a run that may have had effects
 *   is run again only when the function declares honoursIdempotencyKey;
 * - the functions are an **upstream** (this module's DefinedFunctions): a
 *   return value is a 200 whose body is the value as JSON, kept as the
 *   operation's result; `NotProcessedError` means nothing was done (like an
 *   unreachable upstream: always safe to run again); any other throw means
 *   the outcome is unknown (like a connection broken mid-request);
 * - a function defined in no process sharing the store is never leased:
 *   each process leases the function routes it defines (LeaseRequest.functions).
 *
 * The `/_spillway/functions/` prefix is reserved, so no HTTP request can
 * reach a function; the monitor, result, SSE and webhooks of `/_spillway/`
 * serve its operations like any other.
 */
import { Readable } from 'node:stream';
import { ConfigError, FUNCTION_ROUTE_PREFIX } from '../config/config.ts';
import { whenAborted } from '../engine/in-flight.ts';
import {
  type ForwardRequest,
  InProcessUpstreamError,
  type Upstream,
  type UpstreamResponse,
} from '../engine/upstream.ts';
import type { RoutePolicy } from '../policy/route-policy.ts';
import type { Operation, OperationError } from '../store/port.ts';

/** Where a defined function's calls are sent, as if to an upstream. Reserved: never proxied. */
export const FUNCTIONS_PATH = '/_spillway/functions/';

export const functionRouteName = (name: string): string => `${FUNCTION_ROUTE_PREFIX}${name}`;

/** What every run of a defined function is told. */
export interface FunctionContext {
  /** The same on every run of one call: pass it on to the dependency, so that it can deduplicate. */
  idempotencyKey: string;
  /** 1 for the first run, counting on through replays (a run lost in a crash counts too). */
  attempt: number;
  /** Fires at the run's time limit (attemptTimeoutMs) or at shutdown. */
  signal: AbortSignal;
}

export type DefinedFunction<I, O> = (input: I, ctx: FunctionContext) => Promise<O> | O;

/**
 * Throw it from a defined function to say that it did nothing (its dependency
 * refused, or could not be reached): the call is run again later, after
 * backoff, whatever honoursIdempotencyKey says.
 */
export class NotProcessedError extends Error {
  override name = 'NotProcessedError';
}

/** The defined functions of this process, as an upstream for the engine and the replay workers. */
export class DefinedFunctions implements Upstream {
  readonly #functions = new Map<string, DefinedFunction<unknown, unknown>>();

  has(name: string): boolean {
    return this.#functions.has(name);
  }

  add(name: string, fn: DefinedFunction<unknown, unknown>): void {
    this.#functions.set(name, fn);
  }

  /** Their route names, for the lease. */
  routes(): string[] {
    return [...this.#functions.keys()].map(functionRouteName);
  }

  async send(request: ForwardRequest, signal: AbortSignal): Promise<UpstreamResponse> {
    const name = request.path.slice(FUNCTIONS_PATH.length);
    const fn = this.#functions.get(name);
    if (!fn) {
      // Only a process that defines it leases it; this is the guard behind that rule.
      throw new InProcessUpstreamError('SPILLWAY_NOT_PROCESSED', `no function "${name}" is defined here`);
    }
    const ctx: FunctionContext = {
      idempotencyKey: request.headers.find(([header]) => header === 'idempotency-key')?.[1] ?? '',
      attempt: request.attempt ?? 1,
      signal,
    };
    const input: unknown = JSON.parse(Buffer.from(request.body).toString('utf8'));
    const run = (async () => {
      try {
        return await fn(input, ctx);
      } catch (error) {
        throw failure(name, error);
      }
    })();
    const value = await Promise.race([run, whenAborted(signal)]);
    let text: string | undefined;
    try {
      text = JSON.stringify(value);
    } catch (error) {
      throw failure(name, error, 'returned a value that is not JSON');
    }
    return {
      statusCode: 200,
      headers: { 'content-type': 'application/json' },
      body: Readable.from(text === undefined ? [] : [Buffer.from(text)]),
    };
  }

  async close(): Promise<void> {}
}

/** The operation's error says what the function threw: it is the app's own code, with nothing to hide. */
function failure(name: string, error: unknown, what = 'threw'): InProcessUpstreamError {
  const said = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return error instanceof NotProcessedError
    ? new InProcessUpstreamError('SPILLWAY_NOT_PROCESSED', `${name} did not run (${error.message})`, {
        cause: error,
      })
    : new InProcessUpstreamError('SPILLWAY_FUNCTION_FAILED', `${name} ${what} (${said})`, { cause: error });
}

/** Routes every call to a function to the functions, and everything else to the app's upstream. */
export class UpstreamSwitch implements Upstream {
  readonly #functions: DefinedFunctions;
  readonly #upstream: Upstream | undefined;

  constructor(functions: DefinedFunctions, upstream: Upstream | undefined) {
    this.#functions = functions;
    this.#upstream = upstream;
  }

  send(request: ForwardRequest, signal: AbortSignal): Promise<UpstreamResponse> {
    if (request.path.startsWith(FUNCTIONS_PATH)) return this.#functions.send(request, signal);
    if (!this.#upstream) {
      // Not leased without an upstream (proxiedRoutes: false); not proxied either (createSpillway answers 404).
      return Promise.reject(
        new InProcessUpstreamError('SPILLWAY_NOT_PROCESSED', 'no upstream is configured'),
      );
    }
    return this.#upstream.send(request, signal);
  }

  async close(): Promise<void> {
    await this.#upstream?.close();
  }
}

/** What a call or a later look at it came to. */
export type FunctionOutcome<O> =
  /** The function returned `value` (in time for the call, or in a later run). */
  | { status: 'done'; value: O }
  /** The input is stored durably; a run is under way or due. `attempts` made so far. */
  | { status: 'pending'; id: string; attempts: number }
  /** Given up: `error` is the last run's (or why it was not run again); dead-lettered ones can be redriven. */
  | { status: 'failed'; id: string; error: OperationError; deadLettered: boolean; attempts: number }
  | { status: 'canceled'; id: string };

/** The outcome an operation of a defined function stands for. */
export function functionOutcome<O>(op: Operation): FunctionOutcome<O> {
  switch (op.status) {
    case 'Succeeded':
      return { status: 'done', value: parseValue(op.result?.body) as O };
    case 'Failed':
      return {
        status: 'failed',
        id: op.id,
        error: op.error ?? { code: 'upstream-failed', message: 'The function failed.' },
        deadLettered: op.deadLetteredAt !== null,
        attempts: op.attempts,
      };
    case 'Canceled':
      return { status: 'canceled', id: op.id };
    default:
      return { status: 'pending', id: op.id, attempts: op.attempts };
  }
}

export function parseValue(body: Uint8Array | undefined): unknown {
  if (!body || body.byteLength === 0) return undefined;
  return JSON.parse(Buffer.from(body).toString('utf8'));
}

/** The policy keys a definition may set; the rest are fixed by what a function is. */
export interface DefineOptions {
  /** How long `call` waits for the function before answering `accepted` (it runs on: adoption). */
  budgetMs?: number;
  /** Time limit of one run, from its start; its signal fires then. Longer than budgetMs. */
  attemptTimeoutMs?: number;
  /** Runs in all, the first included, before the call is dead-lettered. */
  maxAttempts?: number;
  /** Age after which a call is dead-lettered instead of run again. */
  maxAgeMs?: number;
  /** Delay before a run again: full jitter over initialMs · multiplier^(n-1), capped at maxMs. */
  backoff?: { initialMs?: number; maxMs?: number; multiplier?: number };
  /** The function deduplicates by ctx.idempotencyKey: a run that may have had effects may run again. */
  honoursIdempotencyKey?: boolean;
  /** Higher is run first among waiting calls. */
  priority?: number;
  /** When to stop trying calls in time and capture them at once (docs/policy.md). */
  health?: Record<string, unknown>;
}

const DEFINE_KEYS = new Set([
  'budgetMs',
  'attemptTimeoutMs',
  'maxAttempts',
  'maxAgeMs',
  'backoff',
  'honoursIdempotencyKey',
  'priority',
  'health',
]);

/** A defined function's route, fields fixed by what a function call is. */
export function functionRoute(
  name: string,
  options: DefineOptions,
  build: (route: Record<string, unknown>, at: string) => RoutePolicy,
): RoutePolicy {
  const at = `define(${JSON.stringify(name)}) options.`;
  for (const key of Object.keys(options)) {
    if (!DEFINE_KEYS.has(key)) {
      throw new ConfigError(`Unknown option "${at}${key}". Known: ${[...DEFINE_KEYS].join(', ')}.`);
    }
  }
  return build(
    {
      ...options,
      name: functionRouteName(name),
      match: `POST ${FUNCTIONS_PATH}${name}`,
      failover: true,
      // A function answers 200 or throws: no status of its own means "come back later".
      failoverStatuses: [503],
      captureHeaders: ['content-type', 'idempotency-key', 'traceparent', 'tracestate'],
      idempotencyKeys: 'off',
      rejectInvalidJson: false,
    },
    at,
  );
}
