/**
 * CORS preflights on proxied routes. A preflight (an `OPTIONS` with `Origin`
 * and `Access-Control-Request-Method`, Fetch §4.8) is not work: replaying it
 * later would do nothing for anyone. It goes to the upstream, whose own CORS
 * policy answers, whenever the upstream can answer; it is never captured.
 *
 * When the upstream cannot answer it (the route diverts, the attempt fails, is
 * refused or runs out of budget), Spillway answers in its place, so that the
 * request the browser announced reaches Spillway and gets its 202: for an
 * origin in `corsOrigins`, a grant of exactly the method and headers asked for;
 * for any other origin, a problem and no grant. It never grants an origin that
 * `corsOrigins` does not list.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendProblem } from './problem-response.ts';

/** Whether the request is a CORS preflight (an ordinary `OPTIONS` has no Access-Control-Request-Method). */
export function isPreflight(req: IncomingMessage): boolean {
  return (
    req.method === 'OPTIONS' &&
    req.headers.origin !== undefined &&
    req.headers['access-control-request-method'] !== undefined
  );
}

/**
 * How long a browser may keep Spillway's grant: 5 s, Fetch's default when the
 * header is absent, said aloud. Short, so that the grant does not outlive the
 * outage by more than a few seconds (the upstream's own preflight answer then
 * decides again); not 0, so that a page sending a burst of calls to a diverted
 * route does not pay a preflight for every one.
 */
const MAX_AGE_S = '5';

/** Either answer depends on these request fields: caches must key on them. */
const VARY = 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers';

/** A method is one token; requested headers a comma-separated list of tokens (Fetch §4.8). */
const TOKEN = "[!#$%&'*+.^_`|~0-9A-Za-z-]+";
const METHOD = new RegExp(`^${TOKEN}$`);
const HEADER_LIST = new RegExp(`^[\\t ]*(?:${TOKEN}[\\t ]*(?:,[\\t ]*${TOKEN}[\\t ]*)*)?$`);

/**
 * Answers a preflight the upstream could not answer (`why`: the reason it would
 * have failed over, or the problem it would have had): the grant for an allowed
 * origin, `503 preflight-not-answered` with `Retry-After` for any other.
 * `ownHeaders`: Spillway's own headers on this route (src/gateway/proxy.ts).
 */
export function answerPreflight(
  req: IncomingMessage,
  res: ServerResponse,
  allowed: ReadonlySet<string>,
  why: { reason: string; retryAfterSeconds: number },
  ownHeaders: Record<string, string>,
): void {
  const origin = req.headers.origin!;
  if (!allowed.has(origin)) {
    sendProblem(
      res,
      'preflight-not-answered',
      `The upstream cannot answer this CORS preflight now (${why.reason}), and Spillway answers preflights in its place only for the origins listed in corsOrigins, which do not include ${origin}. Nothing was stored. Retry after the Retry-After delay; operators: add the origin to corsOrigins so that browsers there can use the failover path.`,
      { ...ownHeaders, vary: VARY, 'retry-after': why.retryAfterSeconds },
    );
    return;
  }
  const method = String(req.headers['access-control-request-method']).trim();
  const headers = req.headers['access-control-request-headers'];
  if (!METHOD.test(method) || (headers !== undefined && !HEADER_LIST.test(headers))) {
    sendProblem(
      res,
      'bad-request',
      'This CORS preflight is malformed: Access-Control-Request-Method must be one method name, and Access-Control-Request-Headers a comma-separated list of header names. Browsers send them well formed; fix the client that sent this one.',
      ownHeaders,
    );
    return;
  }
  res.writeHead(204, {
    'access-control-allow-origin': origin,
    'access-control-allow-credentials': 'true',
    'access-control-allow-methods': method,
    ...(headers?.trim() ? { 'access-control-allow-headers': headers.trim() } : {}),
    'access-control-max-age': MAX_AGE_S,
    vary: VARY,
  });
  res.end();
}
