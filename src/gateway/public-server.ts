/**
 * The public port: proxied routes, and the operations API under `/_spillway/`.
 * A thin node:http shell; malformed HTTP is answered 400 problem+json too.
 */
import { createServer, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { problem } from '../errors.ts';
import { type OperationsApiOptions, RESERVED_PREFIX, serveOperationsApi } from './operations-api.ts';
import { sendProblem } from './problem-response.ts';
import { type ProxyOptions, proxy } from './proxy.ts';

export type PublicServerOptions = ProxyOptions &
  OperationsApiOptions & {
    /** Requests handled at once; past it, 503 overloaded (invariant 3: everything is bounded). */
    maxInFlight: number;
    onError: (error: unknown) => void;
  };

export function createPublicServer(options: PublicServerOptions): Server {
  let inFlight = 0;
  const server = createServer({ keepAliveTimeout: 5_000 }, (req, res) => {
    const receivedAt = options.clock.now();
    if (inFlight >= options.maxInFlight) {
      res.setHeader('connection', 'close'); // the body is not read
      sendProblem(
        res,
        'overloaded',
        `Over ${options.maxInFlight} requests are in flight (maxInFlight). Retry after the Retry-After delay.`,
        { 'retry-after': 1 },
      );
      return;
    }
    inFlight++;
    res.once('close', () => inFlight--);
    const target = splitTarget(req.url ?? '');
    const work = !target
      ? Promise.resolve(
          sendProblem(
            res,
            'bad-request',
            `The request target ${JSON.stringify(req.url)} is not a path. Send origin-form, like /payments?x=1.`,
          ),
        )
      : target.path.startsWith(RESERVED_PREFIX)
        ? serveOperationsApi(req, res, target, options)
        : proxy(req, res, target, receivedAt, options);
    work.catch((error: unknown) => {
      options.onError(error);
      if (error instanceof Error && error.name === 'StoreUnavailableError') {
        sendProblem(res, 'store-unavailable', `${error.message} Retry later.`, { 'retry-after': 5 });
      } else {
        sendProblem(
          res,
          'internal-error',
          'Spillway could not handle this request; the error is in its log. Retry later.',
        );
      }
    });
  });
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => {
    if (!socket.writable) return;
    const tooLarge = error.code === 'HPE_HEADER_OVERFLOW';
    const doc = tooLarge
      ? problem('header-too-large', 'The request header fields are too large. Send fewer or shorter headers.')
      : problem(
          'bad-request',
          `The request is not valid HTTP/1.1 (${error.code ?? error.message}). Fix the client.`,
        );
    const body = JSON.stringify(doc);
    socket.end(
      `HTTP/1.1 ${doc.status} ${doc.title}\r\nContent-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  });
  return server;
}

/** Splits an origin-form (or absolute-form) request target into path and raw query. */
function splitTarget(url: string): { path: string; query: string } | undefined {
  let target = url;
  if (!target.startsWith('/')) {
    try {
      const parsed = new URL(target);
      target = parsed.pathname + parsed.search;
    } catch {
      return undefined;
    }
  }
  const q = target.indexOf('?');
  return q === -1 ? { path: target, query: '' } : { path: target.slice(0, q), query: target.slice(q + 1) };
}
