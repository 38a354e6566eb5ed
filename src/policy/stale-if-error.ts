/**
 * Stale-if-error, the deciding half (RFC 5861 §4, RFC 9111, RFC 9211): which
 * answers may be kept as a route's stale copy, under which cache key, and
 * whether a request accepts one. Pure: no I/O, the time passed in. The acting
 * half (keeping copies, answering with them) is src/engine/stale-copies.ts.
 *
 * The cache key is the resource (tenant, method, path, query: RFC 9111 §4's
 * primary key, made per tenant so one caller never sees another's copy) and
 * the variant (the values of the request fields the answer's `Vary` names,
 * §4.1).
 */
import { createHash } from 'node:crypto';
import type { HeaderList } from '../store/port.ts';

/** What identifies the request a copy answers. */
export interface ReadRequest {
  /** The caller's tenant digest (src/gateway/access.ts), null without one. */
  tenant: string | null;
  method: string;
  path: string;
  query: string;
  headers: HeaderList;
}

/** Methods whose answers are kept and answered with. */
export const STALE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD']);

/** Response fields never kept with a copy: Spillway writes its own Age and Cache-Status member. */
const NOT_KEPT = new Set(['age', 'set-cookie']);

/** Cache-Control directives (RFC 9111 §5.2), names lower-case; a directive without a value is `true`. */
export function cacheDirectives(values: readonly string[]): Map<string, string | true> {
  const directives = new Map<string, string | true>();
  for (const part of values.flatMap((v) => v.split(','))) {
    const [rawName, ...rest] = part.split('=');
    const name = rawName?.trim().toLowerCase();
    if (!name || directives.has(name)) continue;
    const value = rest
      .join('=')
      .trim()
      .replace(/^"(.*)"$/, '$1');
    directives.set(name, rest.length > 0 ? value : true);
  }
  return directives;
}

const valuesOf = (headers: HeaderList, name: string) => headers.filter(([n]) => n === name).map(([, v]) => v);

/** The request fields an answer varies on, lower-case and sorted; undefined for `Vary: *` (never matches). */
export function varyNames(response: HeaderList): string[] | undefined {
  const names = valuesOf(response, 'vary')
    .flatMap((v) => v.split(','))
    .map((n) => n.trim().toLowerCase())
    .filter(Boolean);
  if (names.includes('*')) return undefined;
  return [...new Set(names)].sort();
}

const digest = (parts: unknown) => createHash('sha256').update(JSON.stringify(parts)).digest('base64url');

/** The resource key: tenant, method, path and query. */
export function resourceKey(request: ReadRequest): string {
  return digest([request.tenant ?? '', request.method, request.path, request.query]);
}

/**
 * The variant key: the values of the named request fields, each list of
 * values joined and its whitespace normalised (RFC 9111 §4.1), absent ones
 * told apart from empty ones.
 */
export function variantKey(vary: readonly string[], request: HeaderList): string {
  return digest(
    vary.map((name) => {
      const values = valuesOf(request, name);
      return values.length === 0
        ? null
        : values
            .join(',')
            .replace(/\s*,\s*/g, ',')
            .trim();
    }),
  );
}

/** Why an answer may not be kept as a copy, or undefined when it may. */
export function whyNotKept(
  request: ReadRequest,
  response: { status: number; headers: HeaderList },
  keepPrivate: boolean,
): string | undefined {
  if (!STALE_METHODS.has(request.method)) return 'not a GET or HEAD';
  if (response.status < 200 || response.status > 299) return 'not a 2xx answer';
  if (varyNames(response.headers) === undefined) return 'Vary: *';
  if (cacheDirectives(valuesOf(request.headers, 'cache-control')).has('no-store'))
    return 'the request said Cache-Control: no-store';
  if (keepPrivate) return undefined;
  const directives = cacheDirectives(valuesOf(response.headers, 'cache-control'));
  if (directives.has('no-store')) return 'the answer said Cache-Control: no-store';
  if (directives.has('private')) return 'the answer said Cache-Control: private';
  return undefined;
}

/** The fields kept with a copy: the answer's end-to-end fields but its Age and cookies. */
export function keptFields(response: HeaderList): HeaderList {
  return response.filter(([name]) => !NOT_KEPT.has(name));
}

/** The upstream's own Age (RFC 9111 §5.1) in seconds, 0 when absent or malformed. */
export function initialAge(response: HeaderList): number {
  const value = valuesOf(response, 'age')[0]?.trim();
  return value !== undefined && /^\d{1,9}$/.test(value) ? Number(value) : 0;
}

/** A copy's current age in whole seconds (RFC 9111 §4.2.3): its initial age plus the time it was kept. */
export function currentAge(copy: { storedAt: number; initialAge: number }, now: number): number {
  return copy.initialAge + Math.max(0, Math.floor((now - copy.storedAt) / 1_000));
}

/**
 * How old a copy the request accepts, in seconds: `max-stale=N` caps it at N
 * (0 refuses stale answers, keeping today's behaviour); `max-stale` without a
 * value and no directive leave it to the route's staleIfErrorMs (Infinity here).
 */
export function acceptedStaleness(request: HeaderList): number {
  const maxStale = cacheDirectives(valuesOf(request, 'cache-control')).get('max-stale');
  if (maxStale === undefined || maxStale === true) return Number.POSITIVE_INFINITY;
  return /^\d+$/.test(maxStale) ? Number(maxStale) : Number.POSITIVE_INFINITY;
}

/** The `Cache-Status` member Spillway appends (RFC 9211 §2): a stale hit, or a fallback for a miss. */
export const CACHE_STATUS = {
  stale: 'Spillway; hit; detail=stale-if-error',
  fallback: 'Spillway; fwd=miss; detail=fallback',
} as const;
