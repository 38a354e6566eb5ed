/**
 * The admin port (loopback by default): liveness and readiness for
 * orchestrators, and the health API for operators. `/readyz` is 200 only while
 * the store is open and the public port is listening.
 *
 *   GET /healthz, GET /readyz
 *   GET /api/health                          every route's health state and signals
 *   PUT /api/routes/{route}/override         body forced-async | forced-sync | none
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { sendJson } from '../gateway/operations-api.ts';
import { sendProblem } from '../gateway/problem-response.ts';
import type { HealthMonitor } from '../policy/health/health-monitor.ts';

export interface AdminOptions {
  isReady: () => boolean;
  health?: HealthMonitor;
}

const OVERRIDES = new Set(['forced-async', 'forced-sync', 'none']);

export function createAdminServer({ isReady, health }: AdminOptions): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (path === '/healthz') return sendJson(res, 200, { status: 'ok' });
    if (path === '/readyz') {
      const ready = isReady();
      return sendJson(
        res,
        ready ? 200 : 503,
        { status: ready ? 'ready' : 'not-ready' },
        { 'cache-control': 'no-store' },
      );
    }
    if (health && path === '/api/health' && req.method === 'GET') {
      const routes = health.snapshot().map((s) => ({ ...s, since: new Date(s.since).toISOString() }));
      return sendJson(res, 200, { routes }, { 'cache-control': 'no-store' });
    }
    const override = /^\/api\/routes\/([^/]+)\/override$/.exec(path);
    if (health && override) {
      if (req.method !== 'PUT') {
        return sendProblem(res, 'method-not-allowed', `${req.method} is not supported here; use PUT.`, {
          allow: 'PUT',
        });
      }
      const route = decodeURIComponent(override[1]!);
      if (!health.has(route)) {
        return sendProblem(
          res,
          'not-found',
          `No route is named ${JSON.stringify(route)}. GET /api/health lists them.`,
        );
      }
      void readOverride(req).then(async (value) => {
        if (value === undefined) {
          return sendProblem(
            res,
            'bad-request',
            'Send forced-async, forced-sync or none, as text or as {"override": "…"}.',
          );
        }
        try {
          await health.setOverride(route, value === 'none' ? null : value);
        } catch (error) {
          return sendProblem(
            res,
            'store-unavailable',
            `The override could not be stored: ${(error as Error).message}`,
            {
              'retry-after': 5,
            },
          );
        }
        const snapshot = health.snapshot().find((s) => s.route === route)!;
        sendJson(res, 200, { ...snapshot, since: new Date(snapshot.since).toISOString() });
      });
      return;
    }
    sendProblem(
      res,
      'not-found',
      `Nothing is served at ${path} on the admin port. Try /healthz, /readyz or /api/health.`,
    );
  });
}

async function readOverride(
  req: IncomingMessage,
): Promise<'forced-async' | 'forced-sync' | 'none' | undefined> {
  let text = '';
  for await (const chunk of req) {
    text += chunk;
    if (text.length > 1_000) return undefined;
  }
  let value: unknown = text.trim();
  if (text.trim().startsWith('{')) {
    try {
      value = (JSON.parse(text) as { override?: unknown }).override;
    } catch {
      return undefined;
    }
  }
  return typeof value === 'string' && OVERRIDES.has(value)
    ? (value as 'forced-async' | 'forced-sync' | 'none')
    : undefined;
}
