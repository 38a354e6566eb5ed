/**
 * Small HTTP helpers of the admin API modules: method checks, path segments,
 * bounded JSON bodies, and store actions whose failures become problem+json
 * (a store that cannot answer is a 503 the operator can retry).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { systemClock } from '../../clock.ts';
import { failRequest } from '../../gateway/edge-server.ts';
import { sendProblem } from '../../gateway/problem-response.ts';
import { readRequestBodyOrRefuse } from '../../gateway/request-body.ts';

/** Request bodies of the admin API are small JSON documents. */
const MAX_BODY_BYTES = 16 * 1024;

/** True when the request uses `method`; otherwise answers 405 with Allow. */
export function allowOnly(
  req: IncomingMessage,
  res: ServerResponse,
  method: 'GET' | 'POST' | 'PUT',
): boolean {
  if (req.method === method) return true;
  sendProblem(res, 'method-not-allowed', `${req.method} is not supported here; use ${method}.`, {
    allow: method,
  });
  return false;
}

/** A percent-decoded path segment; undefined (and a 400 sent) when it is not encoded correctly. */
export function segment(res: ServerResponse, raw: string): string | undefined {
  try {
    return decodeURIComponent(raw);
  } catch {
    sendProblem(
      res,
      'bad-request',
      `The path segment ${JSON.stringify(raw)} is not percent-encoded correctly.`,
    );
    return undefined;
  }
}

/** Thrown for a request body the client must fix; answered 400 with its message. */
export class BadBody extends Error {}

/** A page of an admin list: this many unless `limit` says otherwise. */
export const DEFAULT_PAGE = 50;
/** The most a page of an admin list holds. */
export const MAX_PAGE = 500;

/** A `limit` from a query or body: `fallback` without one; BadBody unless an integer from 1 to `max`. */
export function limitOf(raw: string | null, fallback: number, max: number): number {
  if (raw === null) return fallback;
  if (!/^[1-9][0-9]*$/.test(raw) || Number(raw) > max) {
    throw new BadBody(`limit must be an integer from 1 to ${max}, got ${JSON.stringify(raw)}.`);
  }
  return Number(raw);
}

/**
 * A page of `limit` from what a store listed for `limit + 1`: the one past the page says a next page
 * exists, which starts after the page's last item (`cursorOf`).
 */
export function pageOf<T>(
  found: readonly T[],
  limit: number,
  cursorOf: (last: T) => string,
): { page: T[]; nextCursor: string | null } {
  const page = found.slice(0, limit);
  const last = page.at(-1);
  return { page, nextCursor: found.length > limit && last !== undefined ? cursorOf(last) : null };
}

/**
 * The request body as text, at most MAX_BODY_BYTES, through the edge's bounded reader: a body over
 * it is answered 413 and one that stalls for `idleMs` 408 (BodyRefused, already answered), a client
 * that leaves is a ClientAbortError (src/gateway/request-body.ts).
 */
export async function readText(req: IncomingMessage, res: ServerResponse, idleMs: number): Promise<string> {
  const body = await readRequestBodyOrRefuse(req, res, {
    maxBytes: MAX_BODY_BYTES,
    maxBytesOption: "the admin API's limit",
    idleMs,
    clock: systemClock,
  });
  return Buffer.from(body).toString('utf8');
}

/** The body as a JSON object; an empty body is `{}`. */
export async function readJsonObject(
  req: IncomingMessage,
  res: ServerResponse,
  idleMs: number,
): Promise<Record<string, unknown>> {
  const text = (await readText(req, res, idleMs)).trim();
  if (text === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new BadBody(`The body is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new BadBody('The body must be a JSON object.');
  }
  return parsed as Record<string, unknown>;
}

/**
 * Runs an action; a bad body is a 400, anything else fails the request as the edge does (a refused
 * body is answered already, an unavailable store is a 503, an abort is logged at debug, the rest is
 * a 500 that is logged).
 */
export function act(res: ServerResponse, action: () => Promise<void>): void {
  action().catch((error: unknown) => {
    if (error instanceof BadBody) sendProblem(res, 'bad-request', error.message);
    else failRequest(res, error);
  });
}
