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
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import { whenAborted } from './in-flight.ts';
import {
  type ForwardRequest,
  InProcessUpstreamError,
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
  const body = response.body
    ? Readable.fromWeb(response.body as NodeReadableStream<Uint8Array>)
    : Readable.from([]);
  // Past the attempt's limit the body is abandoned like a socket's: its reader sees the reason.
  const abort = () => body.destroy(signal.reason as Error);
  signal.addEventListener('abort', abort, { once: true });
  body.once('close', () => signal.removeEventListener('abort', abort));
  return { statusCode: response.status, headers, body };
}
