/**
 * The node:http shell both ports stand on, hardened for the public edge. It
 * must never let one request take the process down, and every answer it
 * writes, Node's own refusals included, is problem+json with a code from
 * src/errors.ts:
 *
 * - The request listener is guarded: an exception or a rejected promise
 *   becomes a 500 `internal-error` for that request alone, and is logged;
 *   a client that left mid-request (ClientAbortError) is logged at debug.
 * - Malformed HTTP (Node's `clientError`) is answered 400, 431 or 408.
 * - An HTTP/1.1 request without exactly one Host is 400 (Node's is bare).
 * - An `Expect` other than 100-continue is 417 (Node's is bare). For
 *   100-continue the handler decides: `100 Continue` is sent only when the
 *   body is about to be read (src/gateway/request-body.ts), so a request
 *   refused at once (overloaded, too large) never has its body sent.
 * - The header section must arrive within `headersTimeoutMs`: else 408.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { StoredValueUnreadableError, StoreUnavailableError } from '../errors.ts';
import { sendProblem, sendRawProblem } from './problem-response.ts';
import { BodyRefused, ClientAbortError } from './request-body.ts';

/** Which request, for the log: never a header value or a body. */
export interface RequestFacts {
  port: 'public' | 'admin';
  method: string;
  path: string;
}

export interface EdgeServerOptions {
  /** Which port, in the facts given to the callbacks. */
  name: RequestFacts['port'];
  /** Time for a request's header section to arrive, from its first byte. */
  headersTimeoutMs: number;
  /** How long an idle keep-alive connection is kept. */
  keepAliveTimeoutMs?: number;
  /** An unexpected error while handling a request (it was answered 500 or 503 when it still could be). */
  onError: (error: unknown, request?: RequestFacts) => void;
  /** A client closed its connection mid-request: no error of Spillway's (logged at debug). */
  onClientAbort: (request: RequestFacts & { receivedBytes: number }) => void;
}

/**
 * How each response under way fails, as the shell that received its request would have it: the
 * shell's own function, kept on the response (no closure and no WeakMap entry per request).
 */
const FAIL = Symbol('spillway.fail');
type Failing = ServerResponse & {
  [FAIL]?: (req: IncomingMessage, res: ServerResponse, error: unknown) => void;
};

/**
 * Fails a request the way the shell does (500 `internal-error`, or 503 for an unavailable store,
 * reported through its onError; a ClientAbortError as an abort): for work a handler started
 * without returning its promise.
 */
export function failRequest(res: ServerResponse, error: unknown): void {
  const fail = (res as Failing)[FAIL];
  if (fail) fail(res.req, res, error);
  else sendProblem(res, 'internal-error', 'Spillway could not handle this request. Retry later.');
}

/**
 * The response under way on a connection, kept on its socket: Node's parser errors must not write
 * over it. A property rather than a WeakMap entry, which was rewritten on every request.
 */
const ANSWERING = Symbol('spillway.answering');
type Answering = Socket & { [ANSWERING]?: ServerResponse };

/** A request handler; a promise it returns is awaited for errors. */
export type EdgeHandler = (req: IncomingMessage, res: ServerResponse) => unknown;

/** Node's whole-request limit, kept at its default unless the header limit is longer. */
const REQUEST_TIMEOUT_MS = 300_000;

export function createEdgeServer(handler: EdgeHandler, options: EdgeServerOptions): Server {
  const port = options.name;

  const failed = (req: IncomingMessage, res: ServerResponse, error: unknown) => {
    const facts: RequestFacts = { port, method: req.method ?? '', path: pathOf(req) };
    if (error instanceof BodyRefused) return; // answered 413 or 408 already
    if (error instanceof ClientAbortError) {
      options.onClientAbort({ ...facts, receivedBytes: error.receivedBytes });
      res.destroy();
      return;
    }
    options.onError(error, facts);
    if (error instanceof StoreUnavailableError) {
      sendProblem(res, 'store-unavailable', `${error.message} Retry later.`, { 'retry-after': 5 });
    } else if (error instanceof StoredValueUnreadableError) {
      // The operator's to fix (a key to add); the key id is in the log, not in the answer.
      sendProblem(
        res,
        'stored-value-unreadable',
        'What Spillway stored for this request is encrypted under a key this gateway lacks. Retry later.',
      );
    } else {
      sendProblem(
        res,
        'internal-error',
        'Spillway could not handle this request; the error is in its log. Retry later.',
      );
    }
  };

  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    // A request emitted by an embedding app (src/embed) may come without a socket of ours.
    if (req.socket) (req.socket as Answering)[ANSWERING] = res;
    (res as Failing)[FAIL] = failed;
    if (req.httpVersionMajor !== 1) {
      // llhttp parses an HTTP/0.9-style request line ("GET /x"); nothing here speaks that.
      res.setHeader('connection', 'close');
      sendProblem(res, 'bad-request', 'Send HTTP/1.1 (or 1.0): the request line ends with HTTP/1.1.');
      return;
    }
    // RFC 9112 §3.2: an HTTP/1.1 request without Host, or with several, is refused.
    const hosts = hostFields(req.rawHeaders);
    if (req.httpVersion === '1.1' ? hosts !== 1 : hosts > 1) {
      res.setHeader('connection', 'close');
      sendProblem(
        res,
        'bad-request',
        hosts === 0
          ? 'An HTTP/1.1 request must carry a Host header. Send one (HTTP clients do by themselves).'
          : 'The request carries several Host headers. Send exactly one.',
      );
      return;
    }
    try {
      const done = handler(req, res);
      if (done instanceof Promise) done.catch((error: unknown) => failed(req, res, error));
    } catch (error) {
      failed(req, res, error);
    }
  };

  const server = createServer(
    {
      requireHostHeader: false, // checked above, answered problem+json
      headersTimeout: options.headersTimeoutMs,
      requestTimeout: Math.max(REQUEST_TIMEOUT_MS, options.headersTimeoutMs),
      // Node checks the limits on this beat: a quarter of the limit keeps the answer within 25% of it.
      connectionsCheckingInterval: Math.min(1_000, Math.max(10, Math.floor(options.headersTimeoutMs / 4))),
      keepAliveTimeout: options.keepAliveTimeoutMs ?? 5_000,
    },
    onRequest,
  );
  server.on('checkContinue', onRequest);
  server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
    res.setHeader('connection', 'close'); // the body may follow all the same
    sendProblem(
      res,
      'expectation-failed',
      `Spillway cannot meet Expect: ${JSON.stringify(req.headers.expect)}; the only expectation it knows is 100-continue. Send the request without it.`,
    );
  });
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => {
    const last = (socket as Answering)[ANSWERING];
    const underWay = last !== undefined && !last.writableEnded;
    if (!socket.writable || (underWay && last.headersSent) || CLIENT_GONE.has(error.code ?? '')) {
      socket.destroy();
      return;
    }
    const [code, detail] = clientErrorAnswer(error, underWay, options.headersTimeoutMs);
    sendRawProblem(socket, code, detail);
  });
  return server;
}

/** Socket errors that mean the client has gone: there is no one to answer. */
const CLIENT_GONE = new Set(['ECONNRESET', 'EPIPE', 'ERR_STREAM_DESTROYED', 'ERR_STREAM_WRITE_AFTER_END']);

/** The problem for an error of Node's HTTP parser (llhttp's `HPE_*` codes) or of its time limits. */
function clientErrorAnswer(
  error: NodeJS.ErrnoException & { reason?: string },
  bodyUnderWay: boolean,
  headersTimeoutMs: number,
): ['bad-request' | 'header-too-large' | 'request-timeout', string] {
  switch (error.code) {
    case 'HPE_HEADER_OVERFLOW':
      return [
        'header-too-large',
        'The request line and header fields are over 16 KiB. Send fewer or shorter headers (large cookies are the usual cause).',
      ];
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return [
        'request-timeout',
        bodyUnderWay
          ? `The request was not received within ${REQUEST_TIMEOUT_MS / 1000} s. Send it faster, or in smaller parts.`
          : `The request's header section did not arrive within ${headersTimeoutMs} ms (headersTimeoutMs). Send it at once.`,
      ];
    default: {
      const reason = error.reason ?? error.message;
      return [
        'bad-request',
        `The request is not valid HTTP/1.1 (${error.code ?? 'parse error'}: ${reason}). Fix the client: one Content-Length or Transfer-Encoding: chunked, well-formed header fields, CRLF line ends.`,
      ];
    }
  }
}

/** A path segment percent-decoded, or undefined when it does not decode (`%ZZ`, invalid UTF-8). */
export function decodedSegment(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

/** How many Host fields a request carries, counted in its raw headers (headersDistinct builds a map of all of them). */
function hostFields(raw: string[]): number {
  let count = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host') count++;
  }
  return count;
}

function pathOf(req: IncomingMessage): string {
  const url = req.url ?? '';
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}
