/**
 * Header handling shared by the forwarding and capture paths (RFC 9110 §7.6.1):
 * hop-by-hop fields never cross Spillway, in either direction.
 */
import type { HeaderList } from '../store/port.ts';

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/**
 * The forwarding fields (RFC 7239 and the X-Forwarded-* de facto standard):
 * the edge works them out when a request arrives, and a capture keeps them
 * whatever a route's captureHeaders says, so a replay tells the upstream the
 * same client as the sync attempt did.
 */
export const FORWARDING_FIELDS: ReadonlySet<string> = new Set([
  'forwarded',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
]);

export type HeaderRecord = Record<string, string | string[] | undefined>;

/**
 * `Connection` values that name no other field: the usual ones, on nearly every
 * message, so they are answered without splitting (this runs twice per request).
 */
const NAMES_NOTHING = new Set(['keep-alive', 'close', 'Keep-Alive', 'Close']);
const NO_DROP: ReadonlySet<string> = new Set();

/** Field names this message's `Connection` field lists: hop-by-hop for this message only. */
function namedByConnection(connection: string | string[] | undefined): Set<string> | undefined {
  if (connection === undefined) return undefined;
  if (typeof connection === 'string' && NAMES_NOTHING.has(connection)) return undefined;
  const names = [connection].flat().flatMap((v) => v.split(','));
  return new Set(names.map((n) => n.trim().toLowerCase()));
}

/** End-to-end fields of a header record, as a list (multi-valued fields become several pairs). */
export function endToEnd(headers: HeaderRecord, alsoDrop: ReadonlySet<string> = NO_DROP): HeaderList {
  const named = namedByConnection(headers.connection);
  const list: HeaderList = [];
  for (const name in headers) {
    const value = headers[name];
    if (!isEndToEnd(name, value, alsoDrop, named)) continue;
    if (typeof value === 'string') list.push([name, value]);
    else for (const v of value) list.push([name, v]);
  }
  return list;
}

/**
 * The same fields as `endToEnd`, flat (`[name, value, name, value…]`), for writing a head at
 * once: no pair per field, for an answer passed straight through.
 */
export function flatEndToEnd(headers: HeaderRecord): string[] {
  const named = namedByConnection(headers.connection);
  const flat: string[] = [];
  for (const name in headers) {
    const value = headers[name];
    if (!isEndToEnd(name, value, NO_DROP, named)) continue;
    if (typeof value === 'string') flat.push(name, value);
    else for (const v of value) flat.push(name, v);
  }
  return flat;
}

function isEndToEnd(
  name: string,
  value: string | string[] | undefined,
  alsoDrop: ReadonlySet<string>,
  named: Set<string> | undefined,
): value is string | string[] {
  return value !== undefined && !HOP_BY_HOP.has(name) && !alsoDrop.has(name) && !named?.has(name);
}

/**
 * Flattens a header list into undici's / node:http's `[name, value, name, value…]` form, with
 * `last` after the list when given (sized for it at once: a push would grow the array).
 */
export function flatHeaders(list: HeaderList, last?: readonly [string, string]): string[] {
  // A loop, not list.flat(): flat() is several times slower, and this runs twice per request.
  const n = list.length * 2;
  const flat = new Array<string>(last ? n + 2 : n);
  for (let i = 0; i < list.length; i++) {
    const [name, value] = list[i]!;
    flat[2 * i] = name;
    flat[2 * i + 1] = value;
  }
  if (last) {
    flat[n] = last[0];
    flat[n + 1] = last[1];
  }
  return flat;
}

export function headerValue(list: HeaderList, name: string): string | undefined {
  return list.find(([n]) => n === name)?.[1];
}
