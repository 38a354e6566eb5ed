/**
 * The admin port's bearer token (docs/operations.md#admin-token). With
 * SPILLWAY_ADMIN_TOKEN set, the admin API and `/metrics` need
 * `Authorization: Bearer <token>`; `/metrics` also takes the scrape token
 * SPILLWAY_METRICS_TOKEN when one is set, which opens nothing else.
 * `/healthz` and `/readyz` stay open for orchestrators' probes, and so do the
 * dashboard's static files: they are the package's own code and hold no data;
 * every call they make for data carries the token the operator typed in.
 *
 * Without a token the admin port is only safe on loopback: `serve` and
 * `worker` refuse to bind it anywhere else.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import { sendProblem } from '../../gateway/problem-response.ts';

export interface AdminTokens {
  /** Protects the admin API, the dashboard's data and /metrics. */
  admin: string | undefined;
  /** Also accepted on /metrics, and nowhere else. */
  metrics: string | undefined;
}

/** Paths anyone who reaches the port may read: probes, and the dashboard's static files. */
export const isOpenPath = (path: string): boolean =>
  path === '/healthz' || path === '/readyz' || path === '/' || path.startsWith('/dashboard/');

/** True when the request may go on; otherwise answers 401 and returns false. */
export function authorize(
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  tokens: AdminTokens,
): boolean {
  if (tokens.admin === undefined || isOpenPath(path)) return true;
  const given = bearerOf(req.headers.authorization);
  const accepted = path === '/metrics' ? [tokens.admin, tokens.metrics] : [tokens.admin];
  if (given !== undefined && accepted.some((token) => token !== undefined && sameToken(given, token)))
    return true;
  sendProblem(
    res,
    'unauthorized',
    given === undefined
      ? 'The admin port needs Authorization: Bearer <SPILLWAY_ADMIN_TOKEN>.'
      : 'The bearer token is not the admin token (SPILLWAY_ADMIN_TOKEN).',
    { 'www-authenticate': 'Bearer realm="spillway-admin"' },
  );
  return false;
}

function bearerOf(header: string | undefined): string | undefined {
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header ?? '');
  return match?.[1];
}

/** Compares digests, so the time taken says nothing about how much of the token matched. */
function sameToken(given: string, expected: string): boolean {
  const digest = (text: string) => createHash('sha256').update(text).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

/** The admin port bound to `host` without a token would be open to whoever reaches that address. */
export class AdminExposedError extends Error {
  override name = 'AdminExposedError';
}

/** Refuses an admin port off loopback without SPILLWAY_ADMIN_TOKEN. */
export function assertAdminBindable(host: string, token: string | undefined): void {
  if (token !== undefined || isLoopback(host)) return;
  throw new AdminExposedError(
    `refusing to bind the admin port to ${host} without a token: set SPILLWAY_ADMIN_TOKEN (e.g. openssl rand -hex 32), or keep adminHost on loopback (127.0.0.1).`,
  );
}

function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  const bare = host.replace(/^\[|\]$/g, '');
  if (isIP(bare) === 4) return bare.startsWith('127.');
  return bare === '::1' || /^::ffff:127\./i.test(bare);
}
