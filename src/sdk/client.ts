/**
 * The Spillway client: `fetch` that returns the final response whether the
 * gateway answered at once or with `202 Accepted`. On a Spillway `202` it
 * follows the operation by Server-Sent Events, falls back to polling the
 * status monitor at the server's `Retry-After`, then fetches the result.
 *
 * A partial answer (a read answered with a stale copy or a fallback, marked by
 * a `Cache-Status` member of Spillway's and carrying the refresh operation's
 * `Operation-Location`) is handed to `onPartial`; the call then resolves with
 * the fresh answer, the operation's result, or, with `partial: 'resolve'`,
 * with the partial answer itself (the rest follows from the handed operation).
 *
 * Zero dependencies, no `node:` imports: only fetch, AbortController,
 * TextDecoder, ReadableStream and setTimeout, so it runs in Node.js and in
 * browsers alike.
 */
import { parseRetryAfter } from './retry-after.ts';
import { readSse, type SseEvent } from './sse.ts';

export type OperationStatus = 'NotStarted' | 'Running' | 'Succeeded' | 'Failed' | 'Canceled';

/** What `onPartial` is handed with a partial answer: its refresh operation, and a way to its fresh answer. */
export interface PartialOperation extends AcceptedOperation {
  /**
   * Follows the refresh operation and resolves with its result, the fresh
   * answer (with `partial: 'resolve'`; in the default mode the call itself
   * resolves with it). Bounded by the call's `timeoutMs` again, from when it is called.
   */
  final(): Promise<Response>;
}

/** What `onAccepted` is told when the gateway answers `202`. */
export interface AcceptedOperation {
  /** The operation id, `op_…`. */
  id: string;
  /** The status monitor, from `Operation-Location`. */
  monitorUrl: string;
  /** The result URL, from `Location`. */
  resultUrl: string;
  /** The status in the `202`'s body; `undefined` when it had none (`Prefer: return=minimal`). */
  status: OperationStatus | undefined;
}

export type FetchInput = Parameters<typeof fetch>[0];
export type FetchLike = (input: FetchInput, init?: RequestInit) => Promise<Response>;

export interface ClientOptions {
  /** The fetch to send every request with (default: the global `fetch`). */
  fetch?: FetchLike;
  /**
   * The longest a call may take until its final response is returned, `202`,
   * waiting and result included; past it the call rejects with a
   * `DOMException` named `TimeoutError`. Default: no limit.
   */
  timeoutMs?: number;
  /** Delay between polls when the server sends no `Retry-After`, and the base of the backoff after errors. Default 1000. */
  pollIntervalMs?: number;
  /** Called once, synchronously, when the gateway answers `202`; a throw rejects the call. */
  onAccepted?: (operation: AcceptedOperation) => void;
  /**
   * Called once, synchronously, with a partial answer (a stale copy or a
   * fallback, `Cache-Status: Spillway; …`) and its refresh operation; its body
   * is the caller's to read. A throw rejects the call.
   */
  onPartial?: (response: Response, operation: PartialOperation) => void;
  /**
   * What the call resolves with after a partial answer: `'follow'` (default)
   * the fresh answer, once the refresh operation has finished; `'resolve'`
   * the partial answer at once (its operation's `final()` gives the rest).
   */
  partial?: 'follow' | 'resolve';
  /** Follow operations by Server-Sent Events first (default `true`); `false` polls only. */
  sse?: boolean;
  /** An event stream silent for this long is given up for polling. Default 60000 (the server sends a heartbeat every 15 s). */
  sseIdleMs?: number;
  /**
   * Request headers carried from the original request to the status monitor,
   * events and result, so the gateway knows the caller: an operation created
   * with a credential is visible only to that credential (the gateway's
   * `tenantHeader`). Carried only to the origin the request went to.
   * Default `['authorization']`.
   */
  followHeaders?: readonly string[];
}

/** Per-call options; they override the client's. */
export type CallOptions = Pick<
  ClientOptions,
  'timeoutMs' | 'onAccepted' | 'onPartial' | 'partial' | 'pollIntervalMs' | 'sse' | 'followHeaders'
>;

export interface SpillwayClient {
  /**
   * Sends the request as given (nothing is added to it; send
   * `Prefer: respond-async` yourself to ask for the async answer) and resolves
   * with the final response: the gateway's answer when it is not a Spillway
   * `202`, otherwise the operation's result once it is finished.
   */
  fetch(input: FetchInput, init?: RequestInit, options?: CallOptions): Promise<Response>;
}

const TERMINAL: ReadonlySet<string> = new Set(['Succeeded', 'Failed', 'Canceled']);
const STATUSES: ReadonlyMap<string, OperationStatus> = new Map(
  (['NotStarted', 'Running', 'Succeeded', 'Failed', 'Canceled'] as const).map((s) => [s.toLowerCase(), s]),
);
const EVENT_PREFIX = 'dev.spillway.operation.';
const MONITOR_PATH = /\/_spillway\/operations\/([^/]+)$/;
const MAX_CONSECUTIVE_ERRORS = 10;
const MIN_POLL_MS = 100;
const MAX_BACKOFF_MS = 30_000;

export function createClient(options: ClientOptions = {}): SpillwayClient {
  return {
    fetch: (input, init, callOptions) => spillwayFetch({ ...options, ...callOptions }, input, init),
  };
}

/** A client with the default options. */
export const spillway: SpillwayClient = createClient();

async function spillwayFetch(
  options: ClientOptions,
  input: FetchInput,
  init?: RequestInit,
): Promise<Response> {
  const send: FetchLike = options.fetch ?? ((i, o) => globalThis.fetch(i, o));
  const callerSignal = init?.signal ?? (isRequest(input) ? input.signal : undefined);
  return withinLimits(options, callerSignal, async (signal) => {
    const first = await send(input, { ...init, signal });
    const followInit = (operation: AcceptedOperation): RequestInit => ({
      headers: carriedHeaders(options, input, init, operation.monitorUrl),
      ...(init?.credentials ? { credentials: init.credentials } : {}),
    });
    const partial = partialOperation(first, input);
    if (partial) {
      const rest = (s: AbortSignal) => follow(options, send, partial, Date.now(), s, followInit(partial));
      options.onPartial?.(first, { ...partial, final: () => withinLimits(options, undefined, rest) });
      return options.partial === 'resolve' ? first : await rest(signal);
    }
    const operation = acceptedOperation(first, input);
    if (!operation) return first;
    const acceptedAt = Date.now();
    operation.status = statusOf(await bodyJson(first));
    const firstPollAt = acceptedAt + (parseRetryAfter(first.headers.get('retry-after')) ?? 0);
    options.onAccepted?.({ ...operation });
    return await follow(options, send, operation, firstPollAt, signal, followInit(operation));
  });
}

/** Runs `work` under the caller's signal and the `timeoutMs`, whichever ends first. */
async function withinLimits<T>(
  options: ClientOptions,
  callerSignal: AbortSignal | null | undefined,
  work: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  callerSignal?.throwIfAborted();
  const controller = new AbortController();
  const signal = controller.signal;
  const onCallerAbort = () => controller.abort(callerSignal?.reason);
  callerSignal?.addEventListener('abort', onCallerAbort, { once: true });
  const timer =
    options.timeoutMs === undefined
      ? undefined
      : setTimeout(
          () =>
            controller.abort(
              new DOMException(`No final response within ${options.timeoutMs} ms`, 'TimeoutError'),
            ),
          options.timeoutMs,
        );
  try {
    return await work(signal);
  } catch (error) {
    // Our own abort (the caller's signal or the timeout) rejects with its reason,
    // whatever error the fetch implementation turned it into.
    callerSignal?.removeEventListener('abort', onCallerAbort);
    if (signal.aborted) throw signal.reason;
    controller.abort(error); // ends any request still open
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

type Outcome = { kind: 'terminal'; resultUrl: string | undefined } | { kind: 'poll' }; // SSE unavailable, or ended without the terminal event

/** Waits for the operation to finish, then answers its result. */
async function follow(
  options: ClientOptions,
  send: FetchLike,
  operation: AcceptedOperation,
  firstPollAt: number,
  signal: AbortSignal,
  followInit: RequestInit,
): Promise<Response> {
  const pollIntervalMs = options.pollIntervalMs ?? 1_000;
  const get = (url: string, accept: string, s = signal) => send(url, withAccept(followInit, accept, s));
  let resultUrl = operation.resultUrl;
  let terminal = operation.status !== undefined && TERMINAL.has(operation.status);
  let useSse = options.sse !== false;
  let delay = Math.max(0, firstPollAt - Date.now());
  let errors = 0;
  const failed = (error: unknown, retryAfter?: number) => {
    if (signal.aborted) throw signal.reason;
    errors += 1;
    if (errors > MAX_CONSECUTIVE_ERRORS) throw error;
    delay = retryAfter ?? Math.min(pollIntervalMs * 2 ** (errors - 1), MAX_BACKOFF_MS);
  };

  for (;;) {
    if (terminal) {
      let res: Response;
      try {
        res = await get(resultUrl, '*/*');
      } catch (error) {
        failed(error);
        await sleep(delay, signal);
        continue;
      }
      // Any answer but 202 is the result: the upstream's (5xx included) or a problem+json.
      if (res.status !== 202) return res;
      // Not finished after all (a stale read): back to the monitor.
      delay = Math.max(parseRetryAfter(res.headers.get('retry-after')) ?? pollIntervalMs, MIN_POLL_MS);
      discard(res);
      terminal = false;
      useSse = false;
      continue;
    }

    if (useSse) {
      useSse = false; // one stream; if it fails or ends early, polling takes over
      const outcome = await followEvents(send, `${operation.monitorUrl}/events`, signal, options, followInit);
      if (outcome.kind === 'terminal') {
        terminal = true;
        resultUrl = outcome.resultUrl ?? resultUrl;
      } else {
        delay = Math.max(0, firstPollAt - Date.now());
      }
      continue;
    }

    await sleep(delay, signal);
    let res: Response;
    try {
      res = await get(operation.monitorUrl, 'application/json');
    } catch (error) {
      failed(error);
      continue;
    }
    const retryAfter = parseRetryAfter(res.headers.get('retry-after'));
    if (res.status === 200) {
      const monitor = await bodyJson(res).catch(() => undefined);
      const status = statusOf(monitor);
      if (status === undefined) {
        failed(new Error('The status monitor answered no status'), retryAfter);
        continue;
      }
      errors = 0;
      if (TERMINAL.has(status)) {
        terminal = true;
        const location = (monitor as { resourceLocation?: unknown }).resourceLocation;
        if (typeof location === 'string') resultUrl = new URL(location, operation.monitorUrl).href;
      } else {
        delay = Math.max(retryAfter ?? pollIntervalMs, MIN_POLL_MS);
      }
      continue;
    }
    if (res.status >= 500 || res.status === 408 || res.status === 429) {
      discard(res);
      failed(new Error(`The status monitor answered ${res.status}`), retryAfter);
      continue;
    }
    // 404 or 410: the operation is unknown or past retention; its problem+json is the answer.
    return res;
  }
}

/** Reads the operation's event stream until its terminal event. Never rejects but for our own abort. */
async function followEvents(
  send: FetchLike,
  url: string,
  signal: AbortSignal,
  options: ClientOptions,
  followInit: RequestInit,
): Promise<Outcome> {
  const stream = new AbortController();
  const onAbort = () => stream.abort(signal.reason);
  signal.addEventListener('abort', onAbort, { once: true });
  const idleMs = options.sseIdleMs ?? 60_000;
  let idle: ReturnType<typeof setTimeout> | undefined;
  const arm = () => {
    clearTimeout(idle);
    idle = setTimeout(
      () => stream.abort(new DOMException('The event stream went silent', 'TimeoutError')),
      idleMs,
    );
  };
  let outcome = { kind: 'poll' } as Outcome;
  try {
    arm();
    const res = await send(url, withAccept(followInit, 'text/event-stream', stream.signal));
    const type = res.headers.get('content-type') ?? '';
    if (res.status !== 200 || !/^text\/event-stream\s*(;|$)/i.test(type) || !res.body) {
      discard(res); // 204 (already terminal), 404, a proxy's error page…: poll instead
      return outcome;
    }
    await readSse(res.body, {
      onBytes: arm,
      onEvent: (event) => {
        const seen = eventStatus(event);
        if (seen && TERMINAL.has(seen.status)) outcome = { kind: 'terminal', resultUrl: seen.resultUrl };
      },
      done: () => outcome.kind === 'terminal',
    });
    return outcome;
  } catch {
    if (signal.aborted) throw signal.reason;
    return outcome; // network error, or silent too long
  } finally {
    clearTimeout(idle);
    signal.removeEventListener('abort', onAbort);
    stream.abort(); // whatever is left of the stream
  }
}

/** The status (and result URL) an event announces, from its CloudEvents data, else from its type. */
function eventStatus(
  event: SseEvent,
): { status: OperationStatus; resultUrl: string | undefined } | undefined {
  if (!event.type.startsWith(EVENT_PREFIX)) return undefined;
  let data: unknown;
  try {
    data = (JSON.parse(event.data) as { data?: unknown }).data;
  } catch {
    data = undefined;
  }
  const status = statusOf(data) ?? STATUSES.get(event.type.slice(EVENT_PREFIX.length));
  if (!status) return undefined;
  const location = (data as { resultLocation?: unknown } | undefined)?.resultLocation;
  return { status, resultUrl: typeof location === 'string' ? location : undefined };
}

/**
 * The refresh operation of a partial answer: not a `202`, marked by a
 * `Cache-Status` member of Spillway's, with an `Operation-Location`.
 */
function partialOperation(res: Response, input: FetchInput): AcceptedOperation | undefined {
  if (res.status === 202) return undefined;
  const members = (res.headers.get('cache-status') ?? '').split(',').map((m) => m.trim().split(';')[0]);
  if (!members.includes('Spillway')) return undefined;
  return operationOf(res, input);
}

/** The operation a response announces, if it is a Spillway `202`. */
function acceptedOperation(res: Response, input: FetchInput): AcceptedOperation | undefined {
  return res.status === 202 ? operationOf(res, input) : undefined;
}

/** The operation a Spillway answer's `Operation-Location` names. */
function operationOf(res: Response, input: FetchInput): AcceptedOperation | undefined {
  const operationLocation = res.headers.get('operation-location');
  if (!operationLocation) return undefined;
  const base = res.url || urlOf(input);
  try {
    const monitor = new URL(operationLocation, base);
    const match = MONITOR_PATH.exec(monitor.pathname);
    if (!match?.[1]) return undefined; // some other API's 202: not ours to follow
    const location = res.headers.get('location');
    return {
      id: decodeURIComponent(match[1]),
      monitorUrl: monitor.href,
      resultUrl: location ? new URL(location, base).href : `${monitor.href}/result`,
      status: undefined,
    };
  } catch {
    return undefined;
  }
}

function urlOf(input: FetchInput): string | undefined {
  const href = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
  const page = (globalThis as { location?: { href?: string } }).location?.href;
  try {
    return new URL(href, page).href;
  } catch {
    return undefined;
  }
}

/** The `followHeaders` of the original request, when the operation lives on the origin it was sent to. */
function carriedHeaders(
  options: ClientOptions,
  input: FetchInput,
  init: RequestInit | undefined,
  monitorUrl: string,
): Record<string, string> {
  const sentTo = urlOf(input);
  if (sentTo === undefined || new URL(sentTo).origin !== new URL(monitorUrl).origin) return {};
  const sent = new Headers(init?.headers ?? (isRequest(input) ? input.headers : undefined));
  const carried: Record<string, string> = {};
  for (const name of options.followHeaders ?? ['authorization']) {
    const value = sent.get(name);
    if (value !== null) carried[name.toLowerCase()] = value;
  }
  return carried;
}

function withAccept(base: RequestInit, accept: string, signal: AbortSignal): RequestInit {
  return { ...base, headers: { ...(base.headers as Record<string, string>), accept }, signal };
}

function isRequest(input: FetchInput): input is Request {
  return typeof Request !== 'undefined' && input instanceof Request;
}

function statusOf(value: unknown): OperationStatus | undefined {
  const status = (value as { status?: unknown } | undefined)?.status;
  return typeof status === 'string' ? STATUSES.get(status.toLowerCase()) : undefined;
}

async function bodyJson(res: Response): Promise<unknown> {
  const text = await res.text();
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function discard(res: Response): void {
  // Deliberately ignored: the body is not wanted, and one that already ended or broke has nothing to cancel.
  res.body?.cancel().catch(() => {});
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    if (ms <= 0) return resolve();
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
