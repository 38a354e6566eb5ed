/**
 * Where a request carrying an Idempotency-Key meets its record (http-standards
 * §3.3): the first request with a key claims it and goes on; a retry gets the
 * first request's answer back with `Idempotent-Replayed: true` (the upstream's
 * own answer, errors included, or the same 202 and operation); a retry while
 * the first is still being answered gets 409, and a different request under
 * the same key 422. Spillway's own rejections are not kept (Stripe's rule), so
 * a corrected retry goes through: the claim is released.
 */
import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { Clock } from '../clock.ts';
import { endToEnd, type HeaderRecord, headerValue } from '../engine/http-fields.ts';
import { LEASE_MARGIN_MS } from '../engine/lease-heartbeat.ts';
import type { UpstreamResponse } from '../engine/upstream.ts';
import type { RoutePolicy } from '../policy/route-policy.ts';
import type { HeaderList, IdempotencyKeys, OperationQueue } from '../store/port.ts';
import { sendAccepted } from './accepted-response.ts';
import { storedWithOwnHeaders } from './cors.ts';
import { fingerprint, keyApplies, lookupKey, parseIdempotencyKey } from './idempotency.ts';
import { sendProblem } from './problem-response.ts';

/** The records, and the operation a duplicate of an accepted request is answered with. */
export type GateStore = IdempotencyKeys & Pick<OperationQueue, 'get'>;

export interface GateContext {
  store: GateStore;
  clock: Clock;
  publicUrl: string;
  /** How long a key is remembered. */
  ttlMs: number;
  route: RoutePolicy;
  tenant: string | null;
  request: { method: string; path: string; query: string; headers: HeaderList; body: Uint8Array };
  /** Headers every answer Spillway writes on this route carries (Vary, CORS). */
  ownHeaders: Record<string, string>;
}

/** A claim this request holds on its key: the capture or the kept answer settles it. */
export interface HeldClaim {
  key: string;
  token: string;
}

export const KEY_DOCS = 'https://spillway.dev/docs/http-api#idempotency-key';

/**
 * Checks the request's key. Resolves `answered` when the response was written
 * here (a replay or a problem); otherwise the request goes on, holding the
 * claim when it carries a key.
 */
export async function passIdempotencyGate(
  fieldLines: string | string[] | undefined,
  res: ServerResponse,
  ctx: GateContext,
): Promise<{ kind: 'answered' } | { kind: 'go'; claim?: HeldClaim }> {
  const { route, request, store, clock, ownHeaders } = ctx;
  if (route.idempotencyKeys === 'off') return { kind: 'go' };
  const parsed = parseIdempotencyKey(request.method, fieldLines);
  if (parsed.kind === 'invalid') {
    sendProblem(
      res,
      'idempotency-key-invalid',
      `The Idempotency-Key is not valid: ${parsed.why}.`,
      ownHeaders,
    );
    return { kind: 'answered' };
  }
  if (parsed.kind === 'absent') {
    if (route.idempotencyKeys === 'required' && keyApplies(request.method)) {
      sendProblem(
        res,
        'idempotency-key-missing',
        `Route "${route.name}" requires an Idempotency-Key on ${request.method} requests. Send a fresh random key (a UUID), and the same key on every retry of this request.`,
        { ...ownHeaders, link: `<${KEY_DOCS}>; rel="describedby"` },
      );
      return { kind: 'answered' };
    }
    return { kind: 'go' };
  }

  const now = clock.now();
  const claim = {
    key: lookupKey(ctx.tenant, request.method, route.name, parsed.key),
    token: randomUUID(),
    fingerprint: fingerprint({
      ...request,
      contentType: headerValue(request.headers, 'content-type'),
    }),
    // The first request may take its whole attempt to answer; past that its claimant is presumed dead.
    lockedUntil: now + route.attemptTimeoutMs + LEASE_MARGIN_MS,
    expiresAt: now + ctx.ttlMs,
  };
  const record = await store.claimIdempotencyKey(claim);
  if (record === undefined) return { kind: 'go', claim: { key: claim.key, token: claim.token } };

  if (record.fingerprint !== claim.fingerprint) {
    sendProblem(
      res,
      'idempotency-key-reused',
      'This Idempotency-Key was first used with a different request (method, target, content type or body). Use a new key for a new request.',
      ownHeaders,
    );
    return { kind: 'answered' };
  }
  const replayed = { ...ownHeaders, 'idempotent-replayed': 'true' };
  switch (record.state) {
    case 'completed': {
      const { response } = record;
      res.writeHead(response.status, storedWithOwnHeaders(response.headers, replayed));
      res.end(response.body);
      return { kind: 'answered' };
    }
    case 'accepted': {
      const op = await store.get(record.operationId);
      if (op) {
        sendAccepted(res, op, ctx.publicUrl, clock.now(), replayed);
        return { kind: 'answered' };
      }
      break; // deleted by retention between the two reads: as good as in progress for a moment
    }
  }
  sendProblem(
    res,
    'idempotency-key-in-use',
    'The first request with this Idempotency-Key is still being answered. Retry after the Retry-After delay with the same key to get its answer.',
    { ...ownHeaders, 'retry-after': 1 },
  );
  return { kind: 'answered' };
}

/**
 * Streams the upstream's synchronous answer to the client and keeps it for
 * replay. The response ends only once the answer is stored, so a client that
 * has the whole answer and retries gets the replay, never a 409. The answer is
 * kept even if the client goes away mid-body (that is when it will retry); one
 * that cannot be kept whole (over `maxBytes`, or cut off) releases the claim,
 * so a retry is sent on with the same key. So does a "not processed, come back
 * later" answer (the route's failover statuses, when it could not fail over):
 * replaying a 503 for a day would defeat the retry. Returns false, having
 * released the claim and written nothing, when the answer is not to be kept:
 * the caller streams it as usual.
 */
export function keepForReplay(
  response: UpstreamResponse,
  res: ServerResponse,
  claim: HeldClaim,
  options: {
    store: IdempotencyKeys;
    maxBytes: number;
    notProcessed: ReadonlySet<number>;
    onError: (error: unknown) => void;
  },
): boolean {
  const { store, maxBytes, onError } = options;
  const settle = (write: Promise<void>) => write.catch(onError);
  if (options.notProcessed.has(response.statusCode)) {
    void settle(store.releaseIdempotencyKey(claim.key, claim.token));
    return false;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  let kept = true;
  response.body.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size > maxBytes) kept = false;
    else if (kept) chunks.push(chunk);
  });
  response.body.once('end', () => {
    const answer = {
      status: response.statusCode,
      headers: endToEnd(response.headers as HeaderRecord),
      body: Buffer.concat(chunks),
    };
    const stored = kept
      ? store.completeIdempotencyKey(claim.key, claim.token, answer)
      : store.releaseIdempotencyKey(claim.key, claim.token);
    void settle(stored).finally(() => res.end());
  });
  response.body.pipe(res, { end: false });
  response.body.once('error', () => void settle(store.releaseIdempotencyKey(claim.key, claim.token)));
  res.once('close', () => {
    if (response.body.readableEnded) return;
    // The client left: read the rest anyway, so its retry finds the answer.
    response.body.unpipe(res);
    response.body.resume();
  });
  return true;
}
