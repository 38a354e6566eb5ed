/**
 * The proxied routes: read and bound the request, settle its budget from the
 * route and `Prefer`, let the engine try the upstream, and write what it says:
 * the upstream's answer unchanged, a 202 with the operation, or a problem.
 * A CORS preflight is never captured: the upstream answers it, or Spillway in
 * its place (src/gateway/preflight.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Clock } from '../clock.ts';
import type { CallbackDecision, Webhooks } from '../delivery/webhooks/webhooks.ts';
import type { FailoverEngine, Submission } from '../engine/failover-engine.ts';
import { endToEnd, FORWARDING_FIELDS, flatEndToEnd, type HeaderRecord } from '../engine/http-fields.ts';
import { contextWith, endSpan, remoteContext, SpanKind, startSpan } from '../engine/spans.ts';
import type { StaleCopies } from '../engine/stale-copies.ts';
import type { RoutePolicy } from '../policy/route-policy.ts';
import { acceptedStaleness } from '../policy/stale-if-error.ts';
import { sendAccepted } from './accepted-response.ts';
import { callerTenant } from './access.ts';
import type { Admission } from './admission.ts';
import { corsHeaders } from './cors.ts';
import type { RequestFacts } from './edge-server.ts';
import { type ForwardingOptions, forwardingFields } from './forwarding.ts';
import { type GateStore, type HeldClaim, keepForReplay, passIdempotencyGate } from './idempotency-gate.ts';
import { keepAsCopy, sendPartial } from './partial-answers.ts';
import { parsePrefer } from './prefer.ts';
import { answerPreflight, isPreflight } from './preflight.ts';
import { sendProblem } from './problem-response.ts';
import { type BodyOutcome, hasBody, readRequestBody, refuseBody } from './request-body.ts';

export interface ProxyOptions {
  engine: FailoverEngine;
  store: GateStore;
  clock: Clock;
  routes: readonly RoutePolicy[];
  publicUrl: string;
  maxBodyBytes: number;
  /** A body with no progress for this long is answered 408. */
  bodyTimeoutMs: number;
  /** Which forwarding fields go upstream, and whose incoming ones are believed. */
  forwarding: ForwardingOptions;
  /** Largest synchronous answer kept for Idempotency-Key replay. */
  maxResultBytes: number;
  /** How long an Idempotency-Key is remembered. */
  idempotencyTtlMs: number;
  /** The header whose value identifies the caller's tenant (src/gateway/access.ts). */
  tenantHeader: string;
  /** Browser origins that may read Spillway's own answers (the 202 above all). */
  corsOrigins: ReadonlySet<string>;
  /** `Spillway-Callback` checks and the routes' subscriptions; absent: no webhooks. */
  webhooks?: Webhooks;
  /** Stale copies and fallbacks for reads; absent: no route has staleIfErrorMs or a fallback. */
  staleCopies?: StaleCopies;
  /** An unexpected error; `request` says which request when the HTTP shell reports it. */
  onError: (error: unknown, request?: RequestFacts) => void;
}

export async function proxy(
  req: IncomingMessage,
  res: ServerResponse,
  target: { path: string; query: string },
  options: ProxyOptions,
  inFlight: Admission,
): Promise<void> {
  const { engine, clock, routes, publicUrl } = options;
  const method = req.method ?? 'GET';
  const route = routes.find((r) => r.matches(method, target.path))!;
  // The incoming request's span (SERVER), a child of the client's traceparent when it sent one.
  const incoming = remoteContext(firstValue(req.headers.traceparent), firstValue(req.headers.tracestate));
  const span = startSpan(`${method} ${route.name}`, SpanKind.SERVER, incoming, {
    'http.request.method': method,
    'url.path': target.path,
    'spillway.route': route.name,
  });
  // A span that records nothing (no SDK, or not sampled) has nothing to end: no listener for it.
  if (span.isRecording())
    res.once('close', () =>
      endSpan(
        span,
        { 'http.response.status_code': res.statusCode },
        res.statusCode >= 500 ? { type: String(res.statusCode) } : undefined,
      ),
    );
  // A route that can answer 202 applies preferences, so caches must key on Prefer (RFC 7240 §2).
  // Spillway's own answers on this route also carry CORS for allowed origins (src/gateway/cors.ts).
  // Without an Origin (most requests) the same two shared, frozen sets: nothing is built per request.
  const cors =
    req.headers.origin === undefined ? undefined : corsHeaders(req.headers.origin, options.corsOrigins);
  const ownHeaders: Record<string, string> =
    cors === undefined
      ? route.failover
        ? VARY_PREFER
        : NO_HEADERS
      : { ...cors, ...(route.failover ? { vary: cors.vary ? 'Prefer, Origin' : 'Prefer' } : {}) };

  // A request without a body (most reads) skips the read and its await.
  const limits = hasBody(req) ? bodyLimits(options) : undefined;
  const read = limits ? await readRequestBody(req, res, limits) : EMPTY_BODY;
  if (read.kind !== 'read') {
    refuseBody(req, res, read.kind, limits!, ownHeaders);
    return;
  }
  // Counted only from here: a client still uploading holds no place (src/gateway/public-server.ts).
  if (!inFlight.hold(res)) {
    inFlight.refuse(res, ownHeaders);
    return;
  }
  const { body } = read;
  // The budget counts from here: the client waits for an answer once it has sent its request, and a
  // slow upload must not spend that wait (nor turn into a capture the client never asked for).
  const receivedAt = clock.now();

  if (route.rejectInvalidJson) {
    const broken = jsonProblem(req.headers['content-type'], body);
    if (broken) {
      sendProblem(res, 'invalid-json', broken, ownHeaders);
      return;
    }
  }

  // Checked before anything is stored or forwarded (the SSRF guard); never forwarded itself.
  // Most requests carry none: they skip the check (and its await) altogether.
  const callbackValues =
    req.headers['spillway-callback'] === undefined ? undefined : req.headersDistinct['spillway-callback'];
  const callback: CallbackDecision =
    callbackValues === undefined
      ? { kind: 'none' }
      : options.webhooks
        ? await options.webhooks.callbackFrom(callbackValues)
        : CALLBACKS_OFF;
  if (callback.kind === 'refused') {
    sendProblem(res, 'callback-not-allowed', callback.detail, ownHeaders);
    return;
  }
  const subscriptions = options.webhooks?.subscriptionsFor(route.name) ?? [];
  const webhooks =
    callback.kind === 'allowed' || subscriptions.length > 0
      ? { callbackUrl: callback.kind === 'allowed' ? callback.url : null, subscriptions }
      : undefined;

  const prefs = parsePrefer(req.headers.prefer);
  const headers = endToEnd(req.headers as HeaderRecord, NOT_FORWARDED);
  for (const field of forwardingFields(req, options.forwarding)) headers.push(field);
  if (prefs.forward) headers.push(['prefer', prefs.forward]);
  const request = { method, path: target.path, query: target.query, headers, body };
  const tenant = callerTenant(req.headers, options.tenantHeader);
  const keyField = req.headers['idempotency-key'];
  // Without a key, on a route that does not require one, the gate has nothing to do: no await.
  const gate =
    keyField === undefined && route.idempotencyKeys !== 'required'
      ? PASS
      : await passIdempotencyGate(keyField, res, {
          store: options.store,
          clock,
          publicUrl,
          ttlMs: options.idempotencyTtlMs,
          route,
          tenant,
          request,
          ownHeaders,
        });
  if (gate.kind === 'answered') return;
  const { claim } = gate;

  const respondAsync = route.failover && prefs.respondAsync;
  const wait = prefs.waitMs === undefined ? undefined : Math.min(prefs.waitMs, route.maxWaitMs);
  const submission: Submission = {
    route,
    request,
    tenant,
    receivedAt,
    trace: contextWith(incoming, span),
    // `wait` without `respond-async` is only a timeout hint: answered 504, never 202 (OData reading of RFC 7240).
    budgetMs: wait ?? route.budgetMs,
    mayFailover: route.failover && (respondAsync || wait === undefined),
    // Prefer: respond-async or Cache-Control: max-stale=0 keep the 202 (or the problem) as it was.
    // Only stale copies read it: without them the Cache-Control parse is skipped.
    acceptsPartial:
      options.staleCopies !== undefined && !prefs.respondAsync && acceptedStaleness(headers) > 0,
  };
  // Set only when there is one: spreading `{}` for the usual request allocates on every request.
  // A CORS preflight is not work: never captured; when the upstream cannot answer it, answered here.
  if (isPreflight(req)) submission.notWork = true;
  if (claim) submission.idempotency = claim;
  if (webhooks) submission.webhooks = webhooks;

  let answer: Awaited<ReturnType<FailoverEngine['submit']>>;
  try {
    answer = await engine.submit(submission);
  } catch (error) {
    if (claim) await options.store.releaseIdempotencyKey(claim.key, claim.token).catch(options.onError);
    throw error;
  }
  switch (answer.kind) {
    case 'sync': {
      const { response } = answer;
      const out = flatEndToEnd(response.headers as HeaderRecord);
      if (route.failover) mergeVary(out);
      res.writeHead(response.statusCode, out);
      // The healthy pass-through's usual case: nothing else reads the body, so it goes straight to the client.
      if (!options.staleCopies && claim === undefined && response.sendTo) {
        response.sendTo(res);
        return;
      }
      // Before the pipe below starts the flow: the stale copy sees every chunk the client does.
      if (options.staleCopies)
        keepAsCopy(response, route, { tenant, ...request }, options.staleCopies, clock);
      const keeping =
        claim !== undefined &&
        keepForReplay(response, res, claim, {
          store: options.store,
          maxBytes: options.maxResultBytes,
          notProcessed: route.failoverStatuses,
          onError: options.onError,
        });
      // Plain pipe: cheaper per request than stream.pipeline, which builds an AbortError on every success.
      if (!keeping) response.body.pipe(res);
      response.body.once('error', () => res.destroy());
      const left = () => {
        if (!keeping && !response.body.readableEnded) response.body.destroy();
      };
      // A client that left while the head was awaited closed before this: no limit ends a body streaming to nobody.
      if (res.destroyed) left();
      else res.once('close', left);
      return;
    }
    case 'accepted': {
      // The capture marked the key accepted in the same commit: a retry finds this operation.
      const minimal = respondAsync && prefs.returnMinimal;
      const applied = [respondAsync && 'respond-async', minimal && 'return=minimal']
        .filter(Boolean)
        .join(', ');
      sendAccepted(
        res,
        answer.operation,
        publicUrl,
        clock.now(),
        {
          'spillway-failover-reason': headerText(answer.reason),
          ...ownHeaders,
          ...(applied ? { 'preference-applied': applied } : {}),
        },
        minimal,
      );
      return;
    }
    case 'partial': {
      // Answered now; without a refresh operation the key is released, as for a problem.
      if (claim && !answer.operation)
        await options.store.releaseIdempotencyKey(claim.key, claim.token).catch(options.onError);
      sendPartial(res, method, answer.answer, answer.operation, publicUrl, {
        'spillway-failover-reason': headerText(answer.reason),
        ...ownHeaders,
      });
      return;
    }
    case 'unanswered':
      answerPreflight(req, res, options.corsOrigins, answer, ownHeaders);
      return;
    case 'failed': {
      // Spillway's own answer, not the upstream's: not kept, so a retry under the key is sent on.
      if (claim) await options.store.releaseIdempotencyKey(claim.key, claim.token).catch(options.onError);
      const headers: Record<string, string | number> = { ...ownHeaders };
      if (answer.retryAfterSeconds !== undefined) headers['retry-after'] = answer.retryAfterSeconds;
      sendProblem(res, answer.code, answer.detail, headers);
      return;
    }
  }
}

const NO_HEADERS: Record<string, string> = Object.freeze({});
const VARY_PREFER: Record<string, string> = Object.freeze({ vary: 'Prefer' });
const bodyLimits = (options: ProxyOptions) => ({
  maxBytes: options.maxBodyBytes,
  maxBytesOption: 'maxBodyBytes',
  idleMs: options.bodyTimeoutMs,
  clock: options.clock,
});
const EMPTY_BODY: BodyOutcome = { kind: 'read', body: new Uint8Array(0) };
const PASS: { kind: 'go'; claim?: HeldClaim } = { kind: 'go' };

const firstValue = (value: string | string[] | undefined) => (Array.isArray(value) ? value[0] : value);

/**
 * Request fields not sent on as they came: Spillway's own, framing, `Expect` (the body is read whole
 * before forwarding, so there is nothing left to expect: undici refuses the field), and the forwarding
 * fields Spillway writes itself.
 */
const NOT_FORWARDED: ReadonlySet<string> = new Set([
  'host',
  'content-length',
  'expect',
  'prefer',
  'spillway-callback',
  ...FORWARDING_FIELDS,
]);

/**
 * Reasons are written for people and may hold `≥`; a header value must be
 * visible ASCII here, or Node refuses to write the head and the client of a
 * stored request would get a 500 instead of its 202.
 */
function headerText(text: string): string {
  return text
    .replaceAll('≥', '>=')
    .replaceAll('≤', '<=')
    .replace(/[^\t\x20-\x7e]/g, '?');
}

/** Without webhooks configured, a `Spillway-Callback` is refused rather than silently ignored. */
/** The answer to a `Spillway-Callback` on a gateway built without webhooks. */
const CALLBACKS_OFF: CallbackDecision = {
  kind: 'refused',
  detail:
    'Webhooks are not enabled on this gateway (no webhooks.callbackAllow), so Spillway-Callback cannot be honoured. Nothing was stored or sent; send the request without it and poll the operation.',
};

/** Adds Prefer to the upstream's Vary (in flat `[name, value…]` headers) unless it is already covered. */
function mergeVary(flat: string[]): void {
  let at = -1;
  for (let i = 0; i < flat.length; i += 2) {
    if (flat[i] === 'vary') {
      at = i + 1;
      break;
    }
  }
  if (at === -1) {
    flat.push('vary', 'Prefer');
    return;
  }
  const value = flat[at]!;
  const names = value.split(',').map((n) => n.trim().toLowerCase());
  if (!names.includes('*') && !names.includes('prefer')) flat[at] = `${value}, Prefer`;
}

/**
 * Why a body sent as JSON does not parse, or undefined when it does (or is
 * not JSON-typed, or empty): a request that can never succeed is refused
 * before it is captured, not replayed for a day (http-standards §2.6).
 */
function jsonProblem(contentType: string | undefined, body: Uint8Array): string | undefined {
  const type = contentType?.split(';')[0]?.trim().toLowerCase() ?? '';
  if (body.length === 0 || !(type === 'application/json' || type.endsWith('+json'))) return undefined;
  try {
    JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'));
    return undefined;
  } catch (error) {
    return `The body is sent as ${type} but is not valid JSON (${(error as Error).message}). Fix the body or its Content-Type.`;
  }
}
