/**
 * The public port: proxied routes, and the operations API under `/_spillway/`,
 * on the hardened shell (src/gateway/edge-server.ts): malformed HTTP, slow
 * clients and unexpected errors are answered problem+json there.
 *
 * `maxInFlight` bounds the requests being handled. A request is refused at
 * once, before anything is read, while the bound is full; otherwise a proxied
 * request takes its place only once its body is read, so clients that upload
 * slowly cannot hold the places others need (bodyTimeoutMs bounds them
 * apart). Event streams leave the bound once they start: they have their own
 * (`sse.maxStreams`).
 */
import type { Server } from 'node:http';
import { Admission } from './admission.ts';
import { createEdgeServer, type EdgeServerOptions } from './edge-server.ts';
import { type OperationsApiOptions, RESERVED_PREFIX, serveOperationsApi } from './operations-api.ts';
import { sendProblem } from './problem-response.ts';
import { type ProxyOptions, proxy } from './proxy.ts';

export type PublicServerOptions = ProxyOptions &
  OperationsApiOptions & {
    /** Requests handled at once; past it, 503 overloaded (invariant 3: everything is bounded). */
    maxInFlight: number;
    /** Time for a request's header section to arrive; past it, 408. */
    headersTimeoutMs: number;
    /** A client closed its connection mid-request (no error: logged at debug). */
    onClientAbort: EdgeServerOptions['onClientAbort'];
  };

export function createPublicServer(options: PublicServerOptions): Server {
  const inFlight = new Admission(options.maxInFlight, 'requests are in flight (maxInFlight)', 1);
  const streams = new Admission(options.sse.maxStreams, 'event streams are open (sse.maxStreams)', 5);
  return createEdgeServer(
    (req, res) => {
      if (inFlight.full) {
        res.setHeader('connection', 'close'); // the body is not read
        inFlight.refuse(res);
        return;
      }
      const target = splitTarget(req.url ?? '');
      if (!target) {
        sendProblem(
          res,
          'bad-request',
          `The request target ${JSON.stringify(req.url)} is not a path. Send origin-form, like /payments?x=1.`,
        );
        return;
      }
      if (target.path.startsWith(RESERVED_PREFIX)) {
        const leave = inFlight.enter(res)!; // not full: looked at just above
        return serveOperationsApi(req, res, target, options, { leave, streams });
      }
      return proxy(req, res, target, options, inFlight);
    },
    {
      name: 'public',
      headersTimeoutMs: options.headersTimeoutMs,
      onError: options.onError,
      onClientAbort: options.onClientAbort,
    },
  );
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
