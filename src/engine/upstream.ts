/**
 * The upstream port: what the engine and the replay workers send requests
 * to. `HttpUpstream` is one pooled undici client for an origin URL; an
 * in-process function is another implementation (fetch-upstream.ts). Each
 * tells, when a call fails, whether the request can have reached the
 * upstream — the fact retry safety rests on.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { type Dispatcher, Pool } from 'undici';
import type { HeaderList } from '../store/port.ts';
import { offAbort, onAbort } from './abort-hook.ts';
import { flatHeaders } from './http-fields.ts';
import { StreamedAnswer } from './streamed-answer.ts';
import type { UpstreamResponse } from './upstream-response.ts';

export interface ForwardRequest {
  method: string;
  path: string;
  query: string;
  headers: HeaderList;
  body: Uint8Array;
  /** Which attempt this is, 1 for the sync attempt (and when absent); replays count on from the operation's attempts. */
  attempt?: number;
}

export { type SilenceWatch, type UpstreamResponse, whenBodyCloses } from './upstream-response.ts';

export interface Upstream {
  /**
   * Sends the request; resolves at the response headers. `signal` bounds the
   * whole attempt: once it fires the call rejects (or its body errors) with
   * the signal's reason, even if the upstream carries on.
   */
  send(request: ForwardRequest, signal: AbortSignal): Promise<UpstreamResponse>;
  /** Releases what the upstream holds. Called after shutdown has drained or abandoned every attempt. */
  close(): Promise<void>;
}

export interface UpstreamOptions {
  /** Pooled connections to the upstream. */
  connections?: number;
  connectTimeoutMs?: number;
}

// Errors raised before a single byte of the request left: resending is always safe.
const NOT_SENT_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
  'SPILLWAY_NOT_PROCESSED',
]);

/** True when the failure happened before the request can have reached the upstream. */
export function failedBeforeSending(error: unknown): boolean {
  const code = (error as { code?: string }).code;
  return code !== undefined && NOT_SENT_CODES.has(code);
}

// What each failure means, in words fit for a client: the driver's own messages name the
// upstream's address, which a client must not learn (http-standards §7.4).
const PHRASES: Record<string, string> = {
  ECONNREFUSED: 'the upstream refused the connection',
  ENOTFOUND: "the upstream's host name did not resolve",
  EAI_AGAIN: "the upstream's host name did not resolve",
  EHOSTUNREACH: 'the upstream host is unreachable',
  ENETUNREACH: "the upstream's network is unreachable",
  EADDRNOTAVAIL: 'no local address was available to reach the upstream',
  UND_ERR_CONNECT_TIMEOUT: 'connecting to the upstream timed out',
  ECONNRESET: 'the upstream closed the connection',
  EPIPE: 'the upstream closed the connection',
  UND_ERR_SOCKET: 'the connection to the upstream failed',
  UND_ERR_CLOSED: 'the connection to the upstream was closed',
  UND_ERR_HEADERS_TIMEOUT: 'the upstream did not send response headers in time',
  UND_ERR_BODY_TIMEOUT: 'the upstream stopped sending the response body',
  UND_ERR_ABORTED: 'the attempt was aborted',
  SPILLWAY_ATTEMPT_TIMEOUT: 'the attempt took longer than its attemptTimeoutMs',
};

/**
 * An in-process upstream's own failure. Its message is written by Spillway
 * (or by the code that defined the function) for the operation's error, so it
 * is shown as it is: there is no address to hide. `SPILLWAY_NOT_PROCESSED`
 * says nothing was done (safe to run again); `SPILLWAY_FUNCTION_FAILED` that
 * the call may have had effects.
 */
export class InProcessUpstreamError extends Error {
  override name = 'InProcessUpstreamError';
  readonly code: 'SPILLWAY_NOT_PROCESSED' | 'SPILLWAY_FUNCTION_FAILED';
  constructor(code: InProcessUpstreamError['code'], message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

/** A failure to reach the upstream, described without its address: `<what happened> (<code>)`. */
export function describeError(error: unknown): string {
  if (error instanceof InProcessUpstreamError) return error.message;
  const { code, name } = error as { code?: string; name?: string };
  if (code) return `${PHRASES[code] ?? 'the upstream call failed'} (${code})`;
  return `the upstream call failed (${name ?? 'unknown error'})`;
}

const VIA = ['via', '1.1 spillway'] as const;

/** The upstream at an http(s) URL, over one pool of connections. */
export class HttpUpstream implements Upstream {
  readonly #pool: Pool;
  readonly #basePath: string;

  constructor(origin: string, options: UpstreamOptions = {}) {
    const url = new URL(origin);
    this.#basePath = url.pathname.replace(/\/+$/, '');
    this.#pool = new Pool(url.origin, {
      connections: options.connections ?? 128,
      connectTimeout: options.connectTimeoutMs ?? 5_000,
      // Time limits are per attempt, set on each request.
      headersTimeout: 0,
      bodyTimeout: 0,
    });
  }

  send(request: ForwardRequest, signal: AbortSignal): Promise<UpstreamResponse> {
    const body = request.body.byteLength > 0 ? request.body : null;
    // A gateway must add Via to what it forwards (RFC 9110 §7.6.3).
    const headers = flatHeaders(request.headers, VIA);
    return new Promise((resolve, reject) => {
      // `dispatch` rather than `request`: no Readable per answer unless a reader asks for one (streamed-answer.ts).
      this.#pool.dispatch(
        {
          method: request.method as Dispatcher.HttpMethod,
          path: this.#basePath + request.path + (request.query ? `?${request.query}` : ''),
          headers,
          body,
        },
        new AnswerHandler(signal, resolve, reject),
      );
    });
  }

  async close(): Promise<void> {
    await this.#pool.destroy();
  }
}

/**
 * One call's dispatch handler: resolves at the response headers with a
 * StreamedAnswer, then feeds it the body. The signal aborts the call at any
 * point, as `request({ signal })` does: before the headers the promise
 * rejects with the signal's reason, after them the body fails with it.
 */
class AnswerHandler implements Dispatcher.DispatchHandler {
  readonly #signal: AbortSignal;
  #resolve: ((answer: UpstreamResponse) => void) | undefined;
  readonly #reject: (error: unknown) => void;
  #controller: Dispatcher.DispatchController | undefined;
  #answer: StreamedAnswer | undefined;
  readonly #onAbort = () => this.#controller?.abort(this.#signal.reason as Error);
  readonly #detach = () => offAbort(this.#signal, this.#onAbort);

  constructor(
    signal: AbortSignal,
    resolve: (answer: UpstreamResponse) => void,
    reject: (error: unknown) => void,
  ) {
    this.#signal = signal;
    this.#resolve = resolve;
    this.#reject = reject;
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.#signal.aborted) controller.abort(this.#signal.reason as Error);
    else onAbort(this.#signal, this.#onAbort);
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
  ): void {
    if (statusCode < 200) return; // 1xx: the final answer follows
    const answer = new StreamedAnswer(controller, statusCode, headers);
    this.#answer = answer;
    answer.onClose(this.#detach);
    const resolve = this.#resolve!;
    this.#resolve = undefined;
    resolve(answer);
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.#answer?.data(chunk);
  }

  onResponseEnd(): void {
    this.#answer?.ended();
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    if (this.#answer) {
      this.#answer.failed(error);
      return;
    }
    this.#detach();
    this.#resolve = undefined;
    this.#reject(error);
  }
}
