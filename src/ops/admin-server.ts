/**
 * The admin port (loopback by default): liveness and readiness for
 * orchestrators, and the health API for operators. `/readyz` is 200 only while
 * the store is open and the public port is listening.
 *
 *   GET /healthz, GET /readyz
 *   GET /metrics                             Prometheus exposition (src/ops/metrics.ts)
 *   GET /api/health                          every route's health state, signals, backlog and dead letters
 *   /api/operations…, PUT /api/routes/{route}/replay   the operations admin API (admin/operations-admin.ts)
 *   GET / and /dashboard/…                   the dashboard's static files (admin/dashboard-files.ts)
 *   PUT /api/routes/{route}/override         body forced-async | forced-sync | none
 *   GET /api/webhooks/deliveries?state=      deliveries in a state, of every operation (admin/deliveries-admin.ts)
 *   GET /api/webhooks/endpoints/disabled     subscription URLs disabled by a 410
 *   POST /api/webhooks/endpoints/{name}/enable
 *   POST /api/operations/{id}/deliveries/{endpoint}/{seq}/resend
 *
 * The webhook actions are Standard Webhooks' "manual replay" (http-standards.md
 * §4.3): they go through the store, so they act for every process sharing it,
 * and never send anything themselves: a re-sent delivery is pending again and
 * the dispatchers send it, fenced by their leases like any other.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { webhookIdOf } from '../delivery/webhooks/message.ts';
import type { Webhooks } from '../delivery/webhooks/webhooks.ts';
import {
  createEdgeServer,
  decodedSegment as decoded,
  type EdgeServerOptions,
} from '../gateway/edge-server.ts';
import { sendJson } from '../gateway/operations-api.ts';
import { sendProblem } from '../gateway/problem-response.ts';
import type { HealthMonitor } from '../policy/health/health-monitor.ts';
import type { DisabledWebhookEndpoint, WebhookOutbox } from '../store/port.ts';
import { readText } from './admin/admin-http.ts';
import { type AdminTokens, authorize } from './admin/admin-token.ts';
import { serveDashboard } from './admin/dashboard-files.ts';
import { DELIVERIES_PATH, listDeliveries } from './admin/deliveries-admin.ts';
import { healthView } from './admin/health-view.ts';
import { type OperationsAdminOptions, serveOperationsAdmin } from './admin/operations-admin.ts';
import type { Metrics } from './metrics.ts';

export interface AdminOptions {
  /** The time limits of the hardened shell (src/gateway/edge-server.ts), as on the public port. */
  edge: { headersTimeoutMs: number; bodyTimeoutMs: number };
  /** An unexpected error, answered 500 (src/gateway/edge-server.ts). */
  onError: EdgeServerOptions['onError'];
  /** A client that left mid-request: not an error. */
  onClientAbort: EdgeServerOptions['onClientAbort'];
  isReady: () => boolean;
  health?: HealthMonitor;
  /** The webhook operator actions; not served without. */
  webhooks?: WebhookAdmin;
  /** The operations admin API, and the store counts /api/health shows. */
  operations: OperationsAdminOptions;
  /** Bearer tokens; without an admin token the port is open (and bound to loopback only). */
  tokens: AdminTokens;
  /** Served at /metrics. */
  metrics?: Metrics;
}

/** What the webhook operator actions need of the process. */
export interface WebhookAdmin {
  store: WebhookOutbox;
  /**
   * The endpoints this process delivers to, by name: a subscription's URL as
   * configured now (a re-send goes there), null for "callback" (each delivery
   * keeps its own URL).
   */
  endpoints: ReadonlyMap<string, string | null>;
  /** Looks for due deliveries at once (the dispatcher; it also polls, and other processes find them so). */
  wake: () => void;
}

/** The webhook operator actions of a process, from its webhook setup and its dispatcher. */
export function webhookAdmin(
  store: WebhookOutbox,
  setup: Webhooks,
  dispatcher: { wake(): void },
): WebhookAdmin {
  const urls = new Map(setup.config.subscriptions.map((s) => [s.name, s.url]));
  return {
    store,
    endpoints: new Map([...setup.endpoints().keys()].map((name) => [name, urls.get(name) ?? null])),
    wake: () => dispatcher.wake(),
  };
}

const OVERRIDES = new Set(['forced-async', 'forced-sync', 'none']);

export function createAdminServer(options: AdminOptions): Server {
  const { edge, isReady, health, webhooks, operations, tokens, metrics } = options;
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (!authorize(req, res, path, tokens)) return;
    if (serveDashboard(req, res, path)) return;
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
    if (metrics && path === '/metrics') {
      if (!onlyMethod(req, res, 'GET')) return;
      return (async () => {
        const text = await metrics.render();
        res.writeHead(200, { 'content-type': metrics.contentType, 'cache-control': 'no-store' });
        res.end(text);
      })();
    }
    if (health && path === '/api/health' && req.method === 'GET') {
      return (async () => {
        const view = await healthView(health, operations.store, operations.routes);
        sendJson(res, 200, view, { 'cache-control': 'no-store' });
      })();
    }
    if (serveOperationsAdmin(req, res, new URL(req.url ?? '/', 'http://admin'), operations)) return;
    const override = /^\/api\/routes\/([^/]+)\/override$/.exec(path);
    if (health && override) {
      if (req.method !== 'PUT') {
        return sendProblem(res, 'method-not-allowed', `${req.method} is not supported here; use PUT.`, {
          allow: 'PUT',
        });
      }
      const route = decoded(override[1]!);
      if (route === undefined) return badPath(res, path);
      if (!health.has(route)) {
        return sendProblem(
          res,
          'not-found',
          `No route is named ${JSON.stringify(route)}. GET /api/health lists them.`,
        );
      }
      return readOverride(req, res, edge.bodyTimeoutMs).then(async (value) => {
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
    }
    const served = webhooks ? serveWebhooks(req, res, path, webhooks) : false;
    if (served !== false) return served;
    sendProblem(
      res,
      'not-found',
      `Nothing is served at ${path} on the admin port. Try /healthz, /readyz or /api/health.`,
    );
  };
  return createEdgeServer(handler, {
    name: 'admin',
    headersTimeoutMs: edge.headersTimeoutMs,
    onError: options.onError,
    onClientAbort: options.onClientAbort,
  });
}

const ENABLE = /^\/api\/webhooks\/endpoints\/([^/]+)\/enable$/;
const RESEND = /^\/api\/operations\/([^/]+)\/deliveries\/([^/]+)\/([^/]+)\/resend$/;

/**
 * Answers the webhook paths: true once answered, or the promise of the answer
 * (whose failure the shell answers 500 or 503); false for any other path.
 */
function serveWebhooks(
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  admin: WebhookAdmin,
): boolean | Promise<void> {
  const { store } = admin;
  if (path === DELIVERIES_PATH) {
    if (onlyMethod(req, res, 'GET')) {
      listDeliveries(res, new URL(req.url ?? '/', 'http://admin').searchParams, store);
    }
    return true;
  }
  if (path === '/api/webhooks/endpoints/disabled') {
    if (!onlyMethod(req, res, 'GET')) return true;
    return (async () => {
      const endpoints = (await store.disabledWebhookEndpoints()).map(endpointView);
      sendJson(res, 200, { endpoints }, { 'cache-control': 'no-store' });
    })();
  }
  const enable = ENABLE.exec(path);
  if (enable) {
    const name = decoded(enable[1]!);
    if (!onlyMethod(req, res, 'POST')) return true;
    if (name === undefined) {
      badPath(res, path);
      return true;
    }
    return (async () => {
      const enabled = await store.enableWebhookEndpoint(name);
      if (enabled.length === 0) {
        return sendProblem(
          res,
          'webhook-endpoint-not-disabled',
          `No endpoint named ${JSON.stringify(name)} is disabled. GET /api/webhooks/endpoints/disabled lists those that are.`,
        );
      }
      sendJson(res, 200, { name, enabled: enabled.map(endpointView) });
    })();
  }
  const resend = RESEND.exec(path);
  if (!resend) return false;
  if (!onlyMethod(req, res, 'POST')) return true;
  const [operationId, endpoint, seqText] = [decoded(resend[1]!), decoded(resend[2]!), resend[3]!];
  if (operationId === undefined || endpoint === undefined) {
    badPath(res, path);
    return true;
  }
  if (!/^[1-9][0-9]{0,9}$/.test(seqText)) {
    sendProblem(
      res,
      'bad-request',
      `seq must be a positive integer, the terminal event's (as in the webhook-id msg_<operation id>_<seq>_<endpoint>), got ${JSON.stringify(seqText)}.`,
    );
    return true;
  }
  const seq = Number(seqText);
  const webhookId = webhookIdOf(operationId, seq, endpoint);
  if (!admin.endpoints.has(endpoint)) {
    sendProblem(
      res,
      'webhook-delivery-not-resendable',
      `This process does not deliver to the endpoint ${JSON.stringify(endpoint)} (it is not "callback" with callbacks allowed, nor one of its webhooks.subscriptions): a re-sent ${webhookId} would wait for a process that does. Re-send it through a gateway configured with it.`,
      {},
      { reason: 'endpoint-unknown' },
    );
    return true;
  }
  const target = admin.endpoints.get(endpoint) ?? undefined;
  return (async () => {
    const result = await store.resendWebhookDelivery({ operationId, seq, endpoint }, target);
    if (result.outcome === 'unknown') {
      return sendProblem(
        res,
        'webhook-delivery-not-found',
        `No delivery ${webhookId}: the operation is unknown or purged, got no delivery to ${JSON.stringify(endpoint)}, or its terminal event has another seq. GET /_spillway/operations/${operationId}/deliveries lists its deliveries.`,
      );
    }
    if (result.outcome === 'refused') {
      const detail = {
        pending: `The delivery ${webhookId} is pending (due, or an attempt is in flight): it is sent without a re-send. GET /_spillway/operations/${operationId}/deliveries shows when.`,
        delivered: `The delivery ${webhookId} was delivered (its receiver answered 2xx); a delivered webhook is not re-sent. The receiver can read the operation at /_spillway/operations/${operationId}.`,
        'endpoint-disabled': `The endpoint ${JSON.stringify(endpoint)} is disabled${target ? ` at ${target}` : ''}: enable it first (POST /api/webhooks/endpoints/${endpoint}/enable, or spillway webhooks enable ${endpoint}), then re-send.`,
      }[result.reason];
      return sendProblem(res, 'webhook-delivery-not-resendable', detail, {}, { reason: result.reason });
    }
    admin.wake();
    const { delivery } = result;
    sendJson(res, 200, {
      webhookId,
      operationId,
      seq,
      endpoint,
      url: delivery.url,
      state: delivery.state,
      previousState: result.previousState,
      attempts: delivery.attempts,
      nextAttemptAt: new Date(delivery.nextAttemptAt).toISOString(),
      lastError: delivery.lastError,
    });
  })();
}

const endpointView = (e: DisabledWebhookEndpoint) => ({
  name: e.endpoint,
  url: e.url,
  disabledAt: new Date(e.disabledAt).toISOString(),
  reason: e.reason,
});

/** True when the request uses `method`; otherwise answers 405 with Allow. */
function onlyMethod(req: IncomingMessage, res: ServerResponse, method: 'GET' | 'POST'): boolean {
  if (req.method === method) return true;
  sendProblem(res, 'method-not-allowed', `${req.method} is not supported here; use ${method}.`, {
    allow: method,
  });
  return false;
}

function badPath(res: ServerResponse, path: string): void {
  sendProblem(res, 'bad-request', `The path ${path} is not percent-encoded correctly.`);
}

/** The override a request body names; undefined when it names none. */
async function readOverride(
  req: IncomingMessage,
  res: ServerResponse,
  idleMs: number,
): Promise<'forced-async' | 'forced-sync' | 'none' | undefined> {
  const text = (await readText(req, res, idleMs)).trim();
  let value: unknown = text;
  if (text.startsWith('{')) {
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
