/**
 * An in-process upstream: a function `(request: Request) => Promise<Response>`
 * (a Hono app's `fetch`, any Web-standard handler) called directly, with no
 * socket and no port. A replay calls the function again.
 *
 * The attempt's signal is the Request's `signal`. A function that ignores it
 * is not waited for past it: the call rejects with the signal's reason, as an
 * HTTP call is abandoned, and the function may still finish unobserved. A
 * function that throws (rather than answering, say, 500) may have had effects:
 * the outcome is unknown, and retry safety decides what follows.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import { whenAborted } from './in-flight.ts';
import {
  type ForwardRequest,
  InProcessUpstreamError,
  type SilenceWatch,
  type Upstream,
  type UpstreamResponse,
} from './upstream.ts';

export type FetchHandler = (request: Request) => Promise<Response> | Response;

/** Requests of these methods carry no body in a `Request`. */
const BODYLESS = new Set(['GET', 'HEAD']);

export class FetchUpstream implements Upstream {
  readonly #handler: FetchHandler;
  readonly #origin: string;

  /** `origin` is the scheme and host of the URLs the function sees (the app's public URL, when known). */
  constructor(handler: FetchHandler, origin = 'http://localhost') {
    this.#handler = handler;
    this.#origin = new URL(origin).origin;
  }

  async send(request: ForwardRequest, signal: AbortSignal): Promise<UpstreamResponse> {
    signal.throwIfAborted();
    const headers = new Headers();
    for (const [name, value] of request.headers) headers.append(name, value);
    // A gateway adds Via to what it forwards (RFC 9110 §7.6.3); it also tells the handler the call came through Spillway.
    headers.append('via', '1.1 spillway');
    const url = `${this.#origin}${request.path}${request.query ? `?${request.query}` : ''}`;
    const body = BODYLESS.has(request.method) || request.body.byteLength === 0 ? null : request.body;
    const call = (async () => {
      try {
        return await this.#handler(new Request(url, { method: request.method, headers, body, signal }));
      } catch (error) {
        if (signal.aborted) throw signal.reason;
        // The function's own words stay in the app's logs, not in an operation a client can read.
        throw new InProcessUpstreamError(
          'SPILLWAY_FUNCTION_FAILED',
          `the upstream function threw ${(error as Error)?.name ?? typeof error}`,
          { cause: error },
        );
      }
    })();
    const response = await Promise.race([call, whenAborted(signal)]);
    return toUpstreamResponse(response, signal);
  }

  async close(): Promise<void> {}
}

function toUpstreamResponse(response: Response, signal: AbortSignal): UpstreamResponse {
  const headers: IncomingHttpHeaders = {};
  for (const [name, value] of response.headers) {
    if (name === 'set-cookie') continue;
    headers[name] = value;
  }
  const cookies = response.headers.getSetCookie();
  if (cookies.length > 0) headers['set-cookie'] = cookies;
  return new FunctionAnswer(response.status, headers, response.body, signal);
}

/**
 * A function's Response as the engine takes it. Its body is read from the
 * Response's stream only as its reader asks, so a watch (`limitBySilence`)
 * counts only the time Spillway waits on the function for the next chunk,
 * never the time its reader is behind.
 */
class FunctionAnswer implements UpstreamResponse {
  readonly statusCode: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Readable;
  #watch: SilenceWatch | undefined;
  /** A read of the function's stream is under way: Spillway waits on the function. */
  #reading = false;

  constructor(
    statusCode: number,
    headers: IncomingHttpHeaders,
    stream: ReadableStream<Uint8Array> | null,
    signal: AbortSignal,
  ) {
    this.statusCode = statusCode;
    this.headers = headers;
    const body = stream ? this.#readableOf(stream.getReader()) : Readable.from([]);
    this.body = body;
    // Past the attempt's limit the body is abandoned like a socket's: its reader sees the reason.
    const abort = () => body.destroy(signal.reason as Error);
    signal.addEventListener('abort', abort, { once: true });
    body.once('close', () => signal.removeEventListener('abort', abort));
  }

  /** See UpstreamResponse.limitBySilence. */
  limitBySilence(watch: SilenceWatch): void {
    if (this.body.readableEnded || this.body.destroyed) return;
    this.#watch = watch;
    watch.heard();
    if (!this.#reading) watch.held();
  }

  #readableOf(reader: ReadableStreamDefaultReader<Uint8Array>): Readable {
    const body: Readable = new Readable({
      read: () => {
        this.#reading = true;
        this.#watch?.heard();
        reader.read().then(
          ({ done, value }) => {
            this.#reading = false;
            // The function answered: the limit counts afresh, now on the reader until it asks again.
            this.#watch?.heard();
            this.#watch?.held();
            body.push(done ? null : value);
          },
          (error: unknown) => body.destroy(error as Error),
        );
      },
      destroy: (error, callback) => {
        // The function's stream is told to stop, as Readable.fromWeb does; whether its cancel
        // succeeds changes nothing for the body, which ends with `error` either way.
        const done = () => callback(error);
        reader.cancel(error ?? undefined).then(done, done);
      },
    });
    return body;
  }
}
