/**
 * Configuration: every default in one object, documented beside its option,
 * and validation in one place whose errors name the option and the bad value.
 * Sources, later wins: defaults < config file (JSON) < environment < flags.
 */
import { readFileSync } from 'node:fs';
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { normalizeOrigin } from '../delivery/webhooks/callback-guard.ts';
import { CALLBACK_ENDPOINT, ENDPOINT_NAME } from '../delivery/webhooks/message.ts';
import { STANDARD_DELAYS_MS } from '../delivery/webhooks/schedule.ts';
import { parseWebhookSecrets } from '../delivery/webhooks/signing.ts';
import type { WebhookConfig, WebhookSubscription } from '../delivery/webhooks/webhooks.ts';
import type { StaleCacheBounds } from '../engine/stale-copies.ts';
import type { ForwardedHeaders } from '../gateway/forwarding.ts';
import { type OrderingKeySource, parseOrderingKey } from '../policy/ordering-key.ts';
import { compileMatcher } from '../policy/route-match.ts';
import type { Fallback, RoutePolicy } from '../policy/route-policy.ts';
import type { HeaderList, StoredResponse, WebhookEventName } from '../store/port.ts';

export const MiB = 1024 * 1024;

/** Route policy defaults; a route in the config file overrides any of them. */
export const routeDefaults = {
  /** Try sync first and fail over to 202; false answers 502/504 instead. */
  failover: true,
  /** The client's wait for the sync attempt's response headers (the seed's 3 s latency threshold). */
  budgetMs: 3_000,
  /** The largest `Prefer: wait=N` honoured; larger values are clamped. Capped at attemptTimeoutMs − 1 s. */
  maxWaitMs: 20_000,
  /** Time limit of an adopted or replayed attempt, from its start. */
  attemptTimeoutMs: 30_000,
  /** Upstream statuses meaning "not processed, come back later". */
  failoverStatuses: [429, 502, 503, 504],
  /** Set when the upstream deduplicates by Idempotency-Key: then any request may be resent. */
  honoursIdempotencyKey: false,
  /**
   * Idempotency-Key from clients: "optional" replays the first answer to a retry carrying the same
   * key, "required" also answers 400 to unsafe requests without one, "off" just forwards the header.
   */
  idempotencyKeys: 'optional' as 'optional' | 'required' | 'off',
  /** Check that a body sent as JSON parses, and answer 400 invalid-json before capture if it does not. */
  rejectInvalidJson: false,
  /** Attempts (sync attempt included) before an operation is dead-lettered. */
  maxAttempts: 10,
  /** Operations of this route waiting at most (not terminal); past it a capture answers 503 backlog-full. Unbounded by default. */
  maxBacklog: undefined as number | undefined,
  /** Age after which an operation is dead-lettered instead of replayed. */
  maxAgeMs: 24 * 60 * 60_000,
  /** Replay backoff: full jitter over initialMs · multiplier^(n-1), capped at maxMs. */
  backoff: { initialMs: 1_000, maxMs: 5 * 60_000, multiplier: 2 },
  /** Replay order: higher first, then oldest first. */
  priority: 0,
  /**
   * FIFO per key: a request header name or a path template with one `{key}` segment. Operations
   * with the same key replay one at a time in capture order, and a live request whose key still
   * has operations waiting is captured behind them. None by default (docs/policy.md).
   */
  orderingKey: undefined as string | undefined,
  /** The health policy: when to divert to capture, probe and come back (docs/policy.md). */
  health: {
    /** The sliding window the signals are computed over, and its bucket size. */
    windowMs: 10_000,
    bucketMs: 1_000,
    /** No rate or percentile rule fires on fewer finished calls in the window. */
    minCalls: 10,
    /** A call this long is slow; an in-flight call this old is hung (the seed's 3 s latency threshold). */
    slowCallMs: 3_000,
    /** The latency percentile the latency rule reads. */
    latencyPercentile: 99,
    /** Trip thresholds: the seed's error rate > 10%, half the calls slow, p99 over 3 s. */
    trip: { errorRate: 0.1, slowRate: 0.5, latencyMs: 3_000 },
    /** Revert thresholds the probes must meet: stricter than the trip thresholds. */
    revert: { errorRate: 0.05, slowRate: 0.2, latencyMs: 1_500 },
    /** This many calls in flight past slowCallMs or their own budget trip before they finish (hang detection). */
    hungCalls: 3,
    /** Sync calls in flight at once; more are captured (load shedding). */
    maxConcurrency: 256,
    /** An AIMD limit under maxConcurrency, from latency and errors; off by default. */
    adaptiveConcurrency: { enabled: false, min: 4, initial: 32 },
    /** Open period: 5 s, doubling per failed recovery up to 2 min, ±20% jitter. */
    openMs: 5_000,
    maxOpenMs: 120_000,
    openMultiplier: 2,
    openJitter: 0.2,
    /** Each minute in sync without a trip steps the open period back down once. */
    decayAfterMs: 60_000,
    /** While probing, a fifth of live requests try sync; 5 results are judged together, after at least 1 s. */
    probeShare: 0.2,
    probeCalls: 5,
    minProbingMs: 1_000,
    /** While a route diverts or probes, one replay of its backlog probes the upstream this often. */
    probeIntervalMs: 500,
    /** After a revert, the sync share ramps from probeShare to 100% over 10 s. */
    rampMs: 10_000,
    /** Share of healthy traffic sent async on purpose to keep that path exercised. */
    drillShare: 0,
  },
  /**
   * Stale-if-error for GET and HEAD: keep the last 2xx answer, and answer with one younger than this
   * (with Age and Cache-Status) instead of a 202 or a problem, capturing a refresh. Off by default.
   */
  staleIfErrorMs: undefined as number | undefined,
  /** Keep answers marked Cache-Control no-store or private as stale copies too (copies are per tenant). */
  staleKeepsPrivate: false,
  /**
   * What a GET or HEAD gets at once when no stale copy is young enough: {path?, timeoutMs?, status?,
   * headers?, body?}. `path` (on the upstream, asked first, 1 s by default) or the configured answer. None by default.
   */
  fallback: undefined as Record<string, unknown> | undefined,
  /** Request headers stored with a capture and sent on replay (names, case-insensitive). */
  captureHeaders: [
    'accept',
    'accept-language',
    'authorization',
    'content-encoding',
    'content-language',
    'content-type',
    'idempotency-key',
    'traceparent',
    'tracestate',
    'user-agent',
    'x-correlation-id',
    'x-request-id',
  ],
};

export const defaults = {
  /** Public port: proxied routes and `/_spillway/`. */
  host: '0.0.0.0',
  port: 8080,
  /** Admin port (`/healthz`, `/readyz`, the admin API, the dashboard), bound to loopback. */
  adminHost: '127.0.0.1',
  adminPort: 8081,
  /** Bearer token of the admin port (SPILLWAY_ADMIN_TOKEN); required to bind it off loopback. */
  adminToken: undefined as string | undefined,
  /** A second token accepted on /metrics only, for scrapers (SPILLWAY_METRICS_TOKEN). */
  metricsToken: undefined as string | undefined,
  /** Operations waiting at most, all routes together (not terminal); past it a capture answers 503 backlog-full. Unbounded by default. */
  maxBacklog: undefined as number | undefined,
  /** SQLite file in the working directory. */
  store: 'spillway.db',
  /** Base of the absolute URLs in 202 answers; default http://<host>:<port>. Never taken from `Host`. */
  publicUrl: undefined as string | undefined,
  /** Largest request body accepted; larger answers 413. */
  maxBodyBytes: MiB,
  /** Requests handled at once on the public port, counted once their body is read; past it, 503 overloaded. */
  maxInFlight: 4_096,
  /** Time for a request's header section to arrive, on both ports; past it, 408 request-timeout. */
  headersTimeoutMs: 30_000,
  /** A request body with no byte arriving for this long is answered 408 request-timeout (slow uploads). */
  bodyTimeoutMs: 10_000,
  /** Peers (addresses or CIDRs) whose X-Forwarded-* and Forwarded fields are believed and extended; none by default. */
  trustedProxies: [] as string[],
  /** The forwarding fields sent upstream: "x-forwarded" (X-Forwarded-For/-Proto/-Host), "forwarded" (RFC 7239) or "both". */
  forwardedHeaders: 'x-forwarded' as ForwardedHeaders,
  /** Largest upstream response body stored as an operation's result. */
  maxResultBytes: 10 * MiB,
  /** Largest size of the store file; past it captures answer 503. Unbounded by default. */
  maxStoreBytes: undefined as number | undefined,
  /** Replay workers inside `serve`. */
  replay: {
    /** Attempts in flight at once; 0 runs no replay workers in this process (capture only). */
    concurrency: 8,
    /** How often idle workers look for due operations (they are also woken by captures). */
    pollIntervalMs: 1_000,
  },
  /** How long an Idempotency-Key is remembered (Stripe's 24 h); a reuse after that is a new request. */
  idempotencyTtlMs: 24 * 60 * 60_000,
  /** The request header whose value identifies a tenant: operations and Idempotency-Keys are scoped to it. */
  tenantHeader: 'authorization',
  /** How long a terminal operation (its monitor, result and events) is kept; then it is gone (404). */
  retentionMs: 7 * 24 * 60 * 60_000,
  /** Server-Sent Events on /_spillway/operations/{id}/events. */
  sse: {
    /** Reconnection delay suggested to clients (`retry:`). */
    retryMs: 2_000,
    /** A comment line this often keeps idle proxies from closing the stream (≤ 15 s per WHATWG). */
    heartbeatMs: 15_000,
    /** The store is re-read this often even without a change notice (the backstop). */
    pollMs: 5_000,
    /** Open streams per gateway; past it a new one is answered 503 overloaded. They do not count against maxInFlight. */
    maxStreams: 10_000,
  },
  /** WebSocket delivery on /_spillway/ws: one connection follows many operations. */
  websocket: {
    /** Bytes buffered for one client past which sending pauses until it drains (events stay in the store). */
    maxBufferedBytes: MiB,
    /** A client over maxBufferedBytes this long is closed with 1013 (Try Again Later). */
    slowClientMs: 30_000,
    /** Operations one connection may follow at once; past it a subscribe gets an error message. */
    maxSubscriptions: 1_000,
    /** Open WebSocket connections per gateway; past it a handshake is answered 503 overloaded. */
    maxConnections: 10_000,
    /** A ping this often; a connection whose pong has not come back by the next one is dropped. */
    pingMs: 15_000,
    /** The store is re-read this often for each subscription even without a change notice (the backstop). */
    pollMs: 5_000,
  },
  /** Browser origins (exact, like "https://app.example") allowed to read /_spillway/ with credentials. */
  corsOrigins: [] as string[],
  /** Webhooks: a terminal event posted, signed per Standard Webhooks, to `Spillway-Callback` and subscriptions. */
  webhooks: {
    /**
     * Signing secrets, `whsec_` + base64 of 24–64 bytes (`spillway webhook-secret` makes one); every one
     * signs each attempt, so during a rotation list the new and the old. SPILLWAY_WEBHOOK_SECRET.
     */
    secrets: [] as string[],
    /** Origins a `Spillway-Callback` may name, exactly ("https://hooks.example"); none: callbacks refused. SPILLWAY_CALLBACK_ALLOW. */
    callbackAllow: [] as string[],
    /** Let webhooks reach loopback, private, link-local and CGNAT addresses (never metadata). SPILLWAY_CALLBACK_ALLOW_PRIVATE=1. */
    allowPrivateNetworks: false,
    /** One attempt's time limit (Standard Webhooks: 15–30 s). */
    timeoutMs: 15_000,
    /** Delays before the 2nd, 3rd… attempt: Standard Webhooks' 5 s … 24 h, about three days in all. */
    schedule: [...STANDARD_DELAYS_MS],
    /** Each delay is drawn from delay × [1 − jitter, 1 + jitter]. */
    jitter: 0.2,
    /** Attempts in all, the first included; then the delivery has failed. */
    maxAttempts: STANDARD_DELAYS_MS.length + 1,
    /** Attempts in flight at once, per process. */
    concurrency: 8,
    /** How often the dispatcher looks for due deliveries without a change notice (the backstop). */
    pollIntervalMs: 1_000,
    /** Configured receivers of every operation's terminal event: [{name, url, secrets?, routes?, events?}]. */
    subscriptions: [] as Array<Record<string, unknown>>,
  },
  /** Stale copies of the routes with staleIfErrorMs, kept in the store, least recently used evicted first. */
  staleCache: {
    /** Copies kept at most, all routes and tenants together. */
    maxEntries: 10_000,
    /** Bytes of copies (bodies and header sections) kept at most. */
    maxBytes: 64 * MiB,
    /** A larger answer is not kept (it is buffered on its way to the client). */
    maxCopyBytes: MiB,
  },
  /** On SIGTERM: how long /readyz answers 503 while the gateway still serves, so load balancers stop sending first. */
  shutdownDelayMs: 0,
  /** On SIGTERM: how long in-flight work may take to finish before leases are handed back. */
  shutdownGraceMs: 10_000,
};

export interface GatewayConfig {
  upstream: string;
  host: string;
  port: number;
  adminHost: string;
  adminPort: number;
  adminToken: string | undefined;
  metricsToken: string | undefined;
  maxBacklog: number | undefined;
  store: string;
  publicUrl: string | undefined;
  maxBodyBytes: number;
  maxInFlight: number;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  trustedProxies: BlockList;
  forwardedHeaders: ForwardedHeaders;
  maxResultBytes: number;
  maxStoreBytes: number | undefined;
  replay: { concurrency: number; pollIntervalMs: number };
  shutdownDelayMs: number;
  shutdownGraceMs: number;
  retentionMs: number;
  idempotencyTtlMs: number;
  tenantHeader: string;
  sse: { retryMs: number; heartbeatMs: number; pollMs: number; maxStreams: number };
  websocket: {
    maxBufferedBytes: number;
    slowClientMs: number;
    maxSubscriptions: number;
    maxConnections: number;
    pingMs: number;
    pollMs: number;
  };
  corsOrigins: ReadonlySet<string>;
  webhooks: WebhookConfig;
  staleCache: StaleCacheBounds;
  /** Matched in order; the last is the catch-all `default` route. */
  routes: RoutePolicy[];
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Reads a JSON config file; errors name the file. */
export function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`Cannot read config file ${path}: ${(error as Error).message}`);
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (!isObject(parsed)) throw new Error('the top level must be a JSON object');
    return parsed;
  } catch (error) {
    throw new ConfigError(`Config file ${path} is not valid: ${(error as Error).message}`);
  }
}

/** Validates a raw configuration (file, env and flags merged) into a GatewayConfig. */
export function buildConfig(raw: Record<string, unknown>): GatewayConfig {
  const known = new Set([...Object.keys(defaults), 'upstream', 'routes', 'routeDefaults']);
  for (const key of Object.keys(raw)) {
    if (!known.has(key))
      throw new ConfigError(`Unknown option "${key}". Known options: ${[...known].join(', ')}.`);
  }
  const upstream = raw.upstream;
  if (typeof upstream !== 'string' || !isHttpUrl(upstream)) {
    throw new ConfigError(
      `upstream must be an http(s) URL (--upstream or SPILLWAY_UPSTREAM), got ${show(upstream)}.`,
    );
  }
  const replay = objectAt(raw, 'replay');
  const sse = objectAt(raw, 'sse');
  const websocket = objectAt(raw, 'websocket');
  const websocketInt = (key: keyof typeof defaults.websocket, min: number, max: number) =>
    intAt(websocket, key, defaults.websocket[key], min, max, 'websocket.');
  const config: GatewayConfig = {
    upstream,
    host: stringAt(raw, 'host', defaults.host),
    port: intAt(raw, 'port', defaults.port, 0, 65535),
    adminHost: stringAt(raw, 'adminHost', defaults.adminHost),
    adminPort: intAt(raw, 'adminPort', defaults.adminPort, 0, 65535),
    adminToken: tokenAt(raw, 'adminToken', 'SPILLWAY_ADMIN_TOKEN'),
    metricsToken: tokenAt(raw, 'metricsToken', 'SPILLWAY_METRICS_TOKEN'),
    maxBacklog: raw.maxBacklog === undefined ? undefined : intAt(raw, 'maxBacklog', undefined, 1),
    store: stringAt(raw, 'store', defaults.store),
    publicUrl: raw.publicUrl === undefined ? undefined : urlAt(raw, 'publicUrl'),
    maxBodyBytes: intAt(raw, 'maxBodyBytes', defaults.maxBodyBytes, 0),
    maxInFlight: intAt(raw, 'maxInFlight', defaults.maxInFlight, 1),
    headersTimeoutMs: intAt(raw, 'headersTimeoutMs', defaults.headersTimeoutMs, 100, 3_600_000),
    bodyTimeoutMs: intAt(raw, 'bodyTimeoutMs', defaults.bodyTimeoutMs, 100, 3_600_000),
    trustedProxies: trustedProxiesAt(raw),
    forwardedHeaders: oneOfAt(
      { forwardedHeaders: raw.forwardedHeaders ?? defaults.forwardedHeaders },
      'forwardedHeaders',
      ['x-forwarded', 'forwarded', 'both'] as const,
      '',
    ),
    maxResultBytes: intAt(raw, 'maxResultBytes', defaults.maxResultBytes, 0),
    maxStoreBytes: raw.maxStoreBytes === undefined ? undefined : intAt(raw, 'maxStoreBytes', 0, 4096),
    replay: {
      concurrency: intAt(replay, 'concurrency', defaults.replay.concurrency, 0, 10_000, 'replay.'),
      pollIntervalMs: intAt(
        replay,
        'pollIntervalMs',
        defaults.replay.pollIntervalMs,
        10,
        3_600_000,
        'replay.',
      ),
    },
    shutdownDelayMs: intAt(raw, 'shutdownDelayMs', defaults.shutdownDelayMs, 0),
    retentionMs: intAt(raw, 'retentionMs', defaults.retentionMs, 60_000),
    idempotencyTtlMs: intAt(raw, 'idempotencyTtlMs', defaults.idempotencyTtlMs, 60_000),
    tenantHeader: headerNameAt(raw, 'tenantHeader', defaults.tenantHeader),
    sse: {
      retryMs: intAt(sse, 'retryMs', defaults.sse.retryMs, 0, 3_600_000, 'sse.'),
      heartbeatMs: intAt(sse, 'heartbeatMs', defaults.sse.heartbeatMs, 100, 3_600_000, 'sse.'),
      pollMs: intAt(sse, 'pollMs', defaults.sse.pollMs, 10, 3_600_000, 'sse.'),
      maxStreams: intAt(sse, 'maxStreams', defaults.sse.maxStreams, 1, 1_000_000, 'sse.'),
    },
    websocket: {
      maxBufferedBytes: websocketInt('maxBufferedBytes', 1024, 1024 * MiB),
      slowClientMs: websocketInt('slowClientMs', 10, 3_600_000),
      maxSubscriptions: websocketInt('maxSubscriptions', 1, 1_000_000),
      maxConnections: websocketInt('maxConnections', 1, 1_000_000),
      pingMs: websocketInt('pingMs', 100, 3_600_000),
      pollMs: websocketInt('pollMs', 10, 3_600_000),
    },
    corsOrigins: originsAt(raw),
    webhooks: buildWebhooks(objectAt(raw, 'webhooks')),
    staleCache: buildStaleCache(objectAt(raw, 'staleCache')),
    shutdownGraceMs: intAt(raw, 'shutdownGraceMs', defaults.shutdownGraceMs, 0),
    routes: [],
  };
  const shared = { ...routeDefaults, ...objectAt(raw, 'routeDefaults') };
  const routes = raw.routes ?? [];
  if (!Array.isArray(routes)) throw new ConfigError(`routes must be an array, got ${show(routes)}.`);
  config.routes = routes.map((route, i) => {
    if (!isObject(route)) throw new ConfigError(`routes[${i}] must be an object, got ${show(route)}.`);
    return routeOverDefaults(raw, route, `routes[${i}].`);
  });
  const names = new Set<string>(['default']);
  config.routes.forEach((route, i) => {
    if (names.has(route.name)) {
      throw new ConfigError(
        `routes[${i}].name "${route.name}" is taken: route names are unique, and "default" is the catch-all's.`,
      );
    }
    if (route.name.startsWith(FUNCTION_ROUTE_PREFIX)) {
      throw new ConfigError(
        `routes[${i}].name "${route.name}" starts with "${FUNCTION_ROUTE_PREFIX}", which names the routes of defined functions (spillway.define): choose another name.`,
      );
    }
    names.add(route.name);
  });
  config.routes.push(buildRoute({ ...shared, name: 'default', match: '* /*' }, 'routeDefaults.'));
  config.webhooks.subscriptions.forEach((subscription, i) => {
    for (const route of subscription.routes ?? []) {
      if (!names.has(route)) {
        throw new ConfigError(
          `webhooks.subscriptions[${i}].routes names "${route}", which is no route. Known: ${[...names].join(', ')}.`,
        );
      }
    }
  });
  return config;
}

const routeKeys = new Set([...Object.keys(routeDefaults), 'name', 'match']);

/** The route names of defined functions (spillway.define) start so; routes of the config may not. */
export const FUNCTION_ROUTE_PREFIX = 'fn:';

/**
 * One route from `route` over the config's routeDefaults, as a route of the
 * file is built (spillway.define builds its functions' routes so); errors name
 * options after `at`.
 */
export function routeOverDefaults(
  raw: Record<string, unknown>,
  route: Record<string, unknown>,
  at: string,
): RoutePolicy {
  const shared = { ...routeDefaults, ...objectAt(raw, 'routeDefaults') };
  const backoff = { ...objectAt(shared, 'backoff', 'routeDefaults.'), ...objectAt(route, 'backoff', at) };
  const health = { ...objectAt(shared, 'health', 'routeDefaults.'), ...objectAt(route, 'health', at) };
  return buildRoute({ ...shared, ...route, backoff, health }, at);
}

function buildRoute(raw: Record<string, unknown>, at: string): RoutePolicy {
  for (const key of Object.keys(raw)) {
    if (!routeKeys.has(key)) {
      throw new ConfigError(`Unknown route option "${at}${key}". Known: ${[...routeKeys].join(', ')}.`);
    }
  }
  const match = stringAt(raw, 'match', undefined, at);
  const [method, pattern, extra] = match.trim().split(/\s+/);
  if (!method || !pattern?.startsWith('/') || extra !== undefined || !/^(\*|[A-Za-z]+)$/.test(method)) {
    throw new ConfigError(
      `${at}match must look like "POST /payments/:id" or "* /orders/*", got ${show(match)}.`,
    );
  }
  const backoff = { ...routeDefaults.backoff, ...objectAt(raw, 'backoff', at) };
  const statuses = raw.failoverStatuses;
  if (!Array.isArray(statuses) || !statuses.every((s) => Number.isInteger(s) && s >= 400 && s <= 599)) {
    throw new ConfigError(
      `${at}failoverStatuses must be an array of 4xx/5xx status codes, got ${show(statuses)}.`,
    );
  }
  const headers = raw.captureHeaders;
  if (
    !Array.isArray(headers) ||
    !headers.every((h) => typeof h === 'string' && /^[!#-'*+.^`|~\w-]+$/.test(h))
  ) {
    throw new ConfigError(`${at}captureHeaders must be an array of header names, got ${show(headers)}.`);
  }
  const budgetMs = intAt(raw, 'budgetMs', undefined, 0, undefined, at);
  const attemptTimeoutMs = intAt(raw, 'attemptTimeoutMs', undefined, 1, undefined, at);
  if (attemptTimeoutMs <= budgetMs) {
    throw new ConfigError(
      `${at}attemptTimeoutMs (${attemptTimeoutMs}) must be longer than ${at}budgetMs (${budgetMs}): an adopted attempt continues past the budget.`,
    );
  }
  // A client's wait is a budget, and the adopted attempt must outlive it: keep it a second short of the attempt limit.
  const maxWaitMs = Math.min(
    intAt(raw, 'maxWaitMs', undefined, 0, undefined, at),
    Math.max(0, attemptTimeoutMs - 1_000),
  );
  return {
    name: stringAt(raw, 'name', undefined, at),
    match,
    matches: compileMatcher(method, pattern),
    failover: boolAt(raw, 'failover', at),
    budgetMs,
    maxWaitMs,
    attemptTimeoutMs,
    failoverStatuses: new Set(statuses as number[]),
    honoursIdempotencyKey: boolAt(raw, 'honoursIdempotencyKey', at),
    idempotencyKeys: oneOfAt(raw, 'idempotencyKeys', ['optional', 'required', 'off'] as const, at),
    rejectInvalidJson: boolAt(raw, 'rejectInvalidJson', at),
    maxAttempts: intAt(raw, 'maxAttempts', undefined, 1, undefined, at),
    maxBacklog:
      raw.maxBacklog === undefined ? undefined : intAt(raw, 'maxBacklog', undefined, 1, undefined, at),
    maxAgeMs: intAt(raw, 'maxAgeMs', undefined, 1, undefined, at),
    backoff: {
      initialMs: intAt(backoff, 'initialMs', undefined, 1, undefined, `${at}backoff.`),
      maxMs: intAt(backoff, 'maxMs', undefined, 1, undefined, `${at}backoff.`),
      multiplier: numberAt(backoff, 'multiplier', 1, `${at}backoff.`),
    },
    priority: intAt(raw, 'priority', undefined, -1_000_000, 1_000_000, at),
    captureHeaders: new Set((headers as string[]).map((h) => h.toLowerCase())),
    orderingKey: orderingKeyAt(raw, at),
    health: buildHealth(objectAt(raw, 'health', at), `${at}health.`),
    ...staleOptions(raw, at),
  };
}

// Stale-if-error and fallbacks (src/engine/stale-copies.ts): the route options and staleCache.

function staleOptions(
  raw: Record<string, unknown>,
  at: string,
): Pick<RoutePolicy, 'staleIfErrorMs' | 'staleKeepsPrivate' | 'fallback'> {
  return {
    staleIfErrorMs:
      raw.staleIfErrorMs === undefined || raw.staleIfErrorMs === null
        ? undefined
        : intAt(raw, 'staleIfErrorMs', undefined, 1, undefined, at),
    staleKeepsPrivate: boolAt(raw, 'staleKeepsPrivate', at),
    fallback: buildFallback(raw.fallback, `${at}fallback.`),
  };
}

const fallbackKeys = ['path', 'timeoutMs', 'status', 'headers', 'body'];

function buildFallback(value: unknown, at: string): Fallback | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isObject(value)) throw new ConfigError(`${at.slice(0, -1)} must be an object, got ${show(value)}.`);
  for (const key of Object.keys(value)) {
    if (!fallbackKeys.includes(key))
      throw new ConfigError(`Unknown option "${at}${key}". Known: ${fallbackKeys.join(', ')}.`);
  }
  const path = value.path === undefined ? undefined : stringAt(value, 'path', undefined, at);
  if (path !== undefined && !/^\/[^?#\s]*$/.test(path))
    throw new ConfigError(`${at}path must be a path like "/prices/cached" (no query), got ${show(path)}.`);
  const hasAnswer = value.status !== undefined || value.body !== undefined || value.headers !== undefined;
  if (path === undefined && !hasAnswer)
    throw new ConfigError(`${at.slice(0, -1)} needs a path, or a status and body, got ${show(value)}.`);
  let response: StoredResponse | undefined;
  if (hasAnswer) {
    const status = intAt(value, 'status', 200, 200, 299, at);
    const headers = value.headers ?? {};
    if (!isObject(headers) || !Object.values(headers).every((v) => typeof v === 'string'))
      throw new ConfigError(
        `${at}headers must be an object of header names to strings, got ${show(headers)}.`,
      );
    const fields: HeaderList = Object.entries(headers as Record<string, string>).map(([n, v]) => [
      n.toLowerCase(),
      v,
    ]);
    for (const [name] of fields) {
      if (!/^[!#-'*+.^`|~\w-]+$/.test(name))
        throw new ConfigError(`${at}headers has a name that is no header name: ${show(name)}.`);
    }
    // A JSON value that is not a string is sent as JSON.
    const text = typeof value.body === 'string' ? value.body : JSON.stringify(value.body ?? null);
    if (typeof value.body !== 'string' && !fields.some(([n]) => n === 'content-type'))
      fields.push(['content-type', 'application/json']);
    response = { status, headers: fields, body: new Uint8Array(Buffer.from(text)) };
  }
  return { path, timeoutMs: intAt(value, 'timeoutMs', 1_000, 1, 60_000, at), response };
}

function buildStaleCache(raw: Record<string, unknown>): StaleCacheBounds {
  const d = defaults.staleCache;
  for (const key of Object.keys(raw)) {
    if (!(key in d))
      throw new ConfigError(`Unknown option "staleCache.${key}". Known: ${Object.keys(d).join(', ')}.`);
  }
  const int = (key: keyof typeof d, min: number) => intAt(raw, key, d[key], min, undefined, 'staleCache.');
  return {
    maxEntries: int('maxEntries', 1),
    maxBytes: int('maxBytes', 1),
    maxCopyBytes: int('maxCopyBytes', 0),
  };
}

/** The route's `orderingKey`: where its requests' ordering key is read, if anywhere. */
function orderingKeyAt(raw: Record<string, unknown>, at: string): OrderingKeySource | undefined {
  if (raw.orderingKey === undefined) return undefined;
  const value = stringAt(raw, 'orderingKey', undefined, at);
  try {
    return parseOrderingKey(value);
  } catch (error) {
    throw new ConfigError(`${at}orderingKey: ${(error as Error).message}, got ${show(value)}.`);
  }
}

type Health = typeof routeDefaults.health;

function buildHealth(raw: Record<string, unknown>, at: string): Health {
  const d = routeDefaults.health;
  const merged = {
    ...d,
    ...raw,
    trip: { ...d.trip, ...objectAt(raw, 'trip', at) },
    revert: { ...d.revert, ...objectAt(raw, 'revert', at) },
    adaptiveConcurrency: { ...d.adaptiveConcurrency, ...objectAt(raw, 'adaptiveConcurrency', at) },
  };
  for (const key of Object.keys(raw)) {
    if (!(key in d))
      throw new ConfigError(`Unknown option "${at}${key}". Known: ${Object.keys(d).join(', ')}.`);
  }
  const int = (key: keyof Health, min: number, max?: number) => intAt(merged, key, undefined, min, max, at);
  const share = (obj: Record<string, unknown>, key: string, where: string) => {
    const v = obj[key];
    if (typeof v !== 'number' || !(v >= 0 && v <= 1))
      throw new ConfigError(`${where}${key} must be a number from 0 to 1, got ${show(v)}.`);
    return v;
  };
  const thresholds = (key: 'trip' | 'revert') => ({
    errorRate: share(merged[key], 'errorRate', `${at}${key}.`),
    slowRate: share(merged[key], 'slowRate', `${at}${key}.`),
    latencyMs: intAt(merged[key], 'latencyMs', undefined, 1, undefined, `${at}${key}.`),
  });
  const health: Health = {
    windowMs: int('windowMs', 1),
    bucketMs: int('bucketMs', 1),
    minCalls: int('minCalls', 1),
    slowCallMs: int('slowCallMs', 1),
    latencyPercentile: numberAt(merged, 'latencyPercentile', 1, at),
    trip: thresholds('trip'),
    revert: thresholds('revert'),
    hungCalls: int('hungCalls', 1),
    probeIntervalMs: int('probeIntervalMs', 1),
    maxConcurrency: int('maxConcurrency', 1),
    adaptiveConcurrency: {
      enabled: boolAt(merged.adaptiveConcurrency, 'enabled', `${at}adaptiveConcurrency.`),
      min: intAt(merged.adaptiveConcurrency, 'min', undefined, 1, undefined, `${at}adaptiveConcurrency.`),
      initial: intAt(
        merged.adaptiveConcurrency,
        'initial',
        undefined,
        1,
        undefined,
        `${at}adaptiveConcurrency.`,
      ),
    },
    openMs: int('openMs', 1),
    maxOpenMs: int('maxOpenMs', 1),
    openMultiplier: numberAt(merged, 'openMultiplier', 1, at),
    openJitter: share(merged, 'openJitter', at),
    decayAfterMs: int('decayAfterMs', 1),
    probeShare: share(merged, 'probeShare', at),
    probeCalls: int('probeCalls', 1),
    minProbingMs: int('minProbingMs', 0),
    rampMs: int('rampMs', 0),
    drillShare: share(merged, 'drillShare', at),
  };
  if (health.probeShare === 0) {
    throw new ConfigError(
      `${at}probeShare must be above 0, got 0: without probes a tripped route would never come back.`,
    );
  }
  if (health.latencyPercentile > 100)
    throw new ConfigError(`${at}latencyPercentile must be at most 100, got ${health.latencyPercentile}.`);
  if (health.bucketMs > health.windowMs)
    throw new ConfigError(
      `${at}bucketMs (${health.bucketMs}) must not exceed ${at}windowMs (${health.windowMs}).`,
    );
  if (health.maxOpenMs < health.openMs)
    throw new ConfigError(
      `${at}maxOpenMs (${health.maxOpenMs}) must be at least ${at}openMs (${health.openMs}).`,
    );
  const { trip, revert } = health;
  if (
    revert.errorRate > trip.errorRate ||
    revert.slowRate > trip.slowRate ||
    revert.latencyMs > trip.latencyMs
  ) {
    throw new ConfigError(
      `${at}revert thresholds must be at least as strict as ${at}trip (hysteresis): got revert ${JSON.stringify(revert)}, trip ${JSON.stringify(trip)}.`,
    );
  }
  return health;
}

function originsAt(raw: Record<string, unknown>): ReadonlySet<string> {
  const value = raw.corsOrigins ?? [];
  const origins =
    typeof value === 'string'
      ? value
          .split(',')
          .map((o) => o.trim())
          .filter(Boolean)
      : value;
  if (
    !Array.isArray(origins) ||
    !origins.every((o) => typeof o === 'string' && /^https?:\/\/[^/]+$/.test(o))
  ) {
    throw new ConfigError(
      `corsOrigins must list origins like "https://app.example" (no path), got ${show(value)}.`,
    );
  }
  return new Set(origins as string[]);
}

/**
 * `trustedProxies`: addresses ("10.0.0.7", "::1") and CIDR blocks ("10.0.0.0/8", "fd00::/8"), as an
 * array or a comma-separated string, compiled into one BlockList.
 */
function trustedProxiesAt(raw: Record<string, unknown>): BlockList {
  const value = raw.trustedProxies ?? defaults.trustedProxies;
  const entries =
    typeof value === 'string'
      ? value
          .split(',')
          .map((entry) => entry.trim())
          .filter(Boolean)
      : value;
  if (!Array.isArray(entries) || !entries.every((entry) => typeof entry === 'string')) {
    throw new ConfigError(
      `trustedProxies must list addresses or CIDR blocks like "10.0.0.0/8", got ${show(value)}.`,
    );
  }
  const list = new BlockList();
  for (const entry of entries as string[]) {
    const [address = '', prefix, ...rest] = entry.split('/');
    const family = isIPv4(address) ? 'ipv4' : isIPv6(address) ? 'ipv6' : undefined;
    const bits = family === 'ipv4' ? 32 : 128;
    const length = prefix === undefined ? bits : /^\d{1,3}$/.test(prefix) ? Number(prefix) : Number.NaN;
    if (family === undefined || rest.length > 0 || !(length >= 0 && length <= bits)) {
      throw new ConfigError(
        `trustedProxies entries must be addresses or CIDR blocks like "10.0.0.0/8" or "fd00::/8", got ${show(entry)}.`,
      );
    }
    list.addSubnet(address, length, family);
  }
  return list;
}

function oneOfAt<T extends string>(
  raw: Record<string, unknown>,
  key: string,
  values: readonly T[],
  at: string,
): T {
  const value = raw[key];
  if (!values.includes(value as T)) {
    throw new ConfigError(
      `${at}${key} must be one of ${values.map((v) => `"${v}"`).join(', ')}, got ${show(value)}.`,
    );
  }
  return value as T;
}

function headerNameAt(raw: Record<string, unknown>, key: string, fallback: string): string {
  const value = stringAt(raw, key, fallback);
  if (!/^[!#-'*+.^`|~\w-]+$/.test(value))
    throw new ConfigError(`${key} must be a header name like "authorization", got ${show(value)}.`);
  return value.toLowerCase();
}

const webhookEvents: readonly WebhookEventName[] = ['succeeded', 'failed', 'canceled'];

function buildWebhooks(raw: Record<string, unknown>): WebhookConfig {
  const d = defaults.webhooks;
  const at = 'webhooks.';
  for (const key of Object.keys(raw)) {
    if (!(key in d))
      throw new ConfigError(`Unknown option "${at}${key}". Known: ${Object.keys(d).join(', ')}.`);
  }
  const secretsAt = (value: unknown, where: string) => {
    // A string (SPILLWAY_WEBHOOK_SECRET) holds one secret, or several separated by spaces or commas.
    if (typeof value !== 'string' && !(Array.isArray(value) && value.every((v) => typeof v === 'string'))) {
      throw new ConfigError(`${where} must be an array of "whsec_…" secrets, got a ${typeof value}.`);
    }
    try {
      return parseWebhookSecrets(value as string | string[]);
    } catch (error) {
      // The message never repeats the secret.
      throw new ConfigError(`${where}: ${(error as Error).message}`);
    }
  };
  const secrets = secretsAt(raw.secrets ?? d.secrets, `${at}secrets (or SPILLWAY_WEBHOOK_SECRET)`);
  const allowValue = raw.callbackAllow ?? d.callbackAllow;
  const allowList =
    typeof allowValue === 'string'
      ? allowValue
          .split(',')
          .map((o) => o.trim())
          .filter(Boolean)
      : allowValue;
  if (!Array.isArray(allowList) || !allowList.every((o) => typeof o === 'string')) {
    throw new ConfigError(
      `${at}callbackAllow must list origins like "https://hooks.example", got ${show(allowValue)}.`,
    );
  }
  const callbackAllow = new Set(
    allowList.map((origin: string) => {
      try {
        return normalizeOrigin(origin);
      } catch (error) {
        throw new ConfigError(
          `${at}callbackAllow (or SPILLWAY_CALLBACK_ALLOW): ${(error as Error).message}.`,
        );
      }
    }),
  );
  if (callbackAllow.size > 0 && secrets.length === 0) {
    throw new ConfigError(
      `${at}callbackAllow allows callbacks, but there is no secret to sign them: set ${at}secrets or SPILLWAY_WEBHOOK_SECRET (\`spillway webhook-secret\` makes one).`,
    );
  }
  const privateValue = raw.allowPrivateNetworks ?? d.allowPrivateNetworks;
  const allowPrivateNetworks =
    privateValue === '1' || privateValue === 'true'
      ? true
      : privateValue === '0' || privateValue === 'false'
        ? false
        : privateValue;
  if (typeof allowPrivateNetworks !== 'boolean') {
    throw new ConfigError(`${at}allowPrivateNetworks must be true or false, got ${show(privateValue)}.`);
  }
  const merged = { ...d, ...raw };
  const delays = merged.schedule;
  if (
    !Array.isArray(delays) ||
    delays.length === 0 ||
    !delays.every((ms) => Number.isInteger(ms) && ms >= 0)
  ) {
    throw new ConfigError(`${at}schedule must be a non-empty array of delays in ms, got ${show(delays)}.`);
  }
  const jitter = merged.jitter;
  if (typeof jitter !== 'number' || !(jitter >= 0 && jitter < 1)) {
    throw new ConfigError(`${at}jitter must be a number from 0 to below 1, got ${show(jitter)}.`);
  }
  const names = new Set<string>();
  const subscriptionsValue = merged.subscriptions;
  if (!Array.isArray(subscriptionsValue)) {
    throw new ConfigError(`${at}subscriptions must be an array, got ${show(subscriptionsValue)}.`);
  }
  const subscriptions = subscriptionsValue.map((entry: unknown, i): WebhookSubscription => {
    const where = `${at}subscriptions[${i}].`;
    if (!isObject(entry))
      throw new ConfigError(`${at}subscriptions[${i}] must be an object, got ${show(entry)}.`);
    for (const key of Object.keys(entry)) {
      if (!['name', 'url', 'secrets', 'routes', 'events'].includes(key)) {
        throw new ConfigError(`Unknown option "${where}${key}". Known: name, url, secrets, routes, events.`);
      }
    }
    const name = stringAt(entry, 'name', undefined, where);
    if (!ENDPOINT_NAME.test(name) || name === CALLBACK_ENDPOINT || names.has(name)) {
      throw new ConfigError(
        `${where}name must be 1–64 of A-Z a-z 0-9 _ -, unique and not "${CALLBACK_ENDPOINT}" (it is part of each webhook-id), got ${show(name)}.`,
      );
    }
    names.add(name);
    const url = stringAt(entry, 'url', undefined, where);
    if (!isHttpUrl(url) || new URL(url).username || new URL(url).password) {
      throw new ConfigError(`${where}url must be an http(s) URL without credentials, got ${show(url)}.`);
    }
    const own = entry.secrets === undefined ? [] : secretsAt(entry.secrets, `${where}secrets`);
    if (own.length === 0 && secrets.length === 0) {
      throw new ConfigError(
        `${where}secrets is missing and there is no global secret: set one of them (\`spillway webhook-secret\` makes one).`,
      );
    }
    const listAt = (key: 'routes' | 'events') => {
      const value = entry[key];
      if (value === undefined || value === null) return null;
      if (!Array.isArray(value) || value.length === 0 || !value.every((v) => typeof v === 'string')) {
        throw new ConfigError(`${where}${key} must be a non-empty array of names, got ${show(value)}.`);
      }
      return value as string[];
    };
    const events = listAt('events');
    const unknown = events?.find((e) => !webhookEvents.includes(e as WebhookEventName));
    if (unknown !== undefined) {
      throw new ConfigError(
        `${where}events lists "${unknown}"; terminal events are ${webhookEvents.join(', ')}.`,
      );
    }
    const routes = listAt('routes');
    return {
      name,
      url,
      secrets: own.length > 0 ? own : secrets,
      routes: routes ? new Set(routes) : null,
      events: events as WebhookEventName[] | null,
    };
  });
  return {
    secrets,
    callbackAllow,
    allowPrivateNetworks,
    // 100 ms at least, so tests can be quick; 30 s at most (Standard Webhooks).
    timeoutMs: intAt(merged, 'timeoutMs', undefined, 100, 30_000, at),
    schedule: {
      delaysMs: delays as number[],
      jitter,
      maxAttempts: intAt(merged, 'maxAttempts', undefined, 1, 1_000, at),
    },
    concurrency: intAt(merged, 'concurrency', undefined, 1, 10_000, at),
    pollIntervalMs: intAt(merged, 'pollIntervalMs', undefined, 10, 3_600_000, at),
    subscriptions,
  };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}

const show = (value: unknown) => (value === undefined ? 'nothing' : JSON.stringify(value));

function objectAt(raw: Record<string, unknown>, key: string, at = ''): Record<string, unknown> {
  const value = raw[key] ?? {};
  if (!isObject(value)) throw new ConfigError(`${at}${key} must be an object, got ${show(value)}.`);
  return value;
}

function stringAt(raw: Record<string, unknown>, key: string, fallback?: string, at = ''): string {
  const value = raw[key] ?? fallback;
  if (typeof value !== 'string' || value === '') {
    throw new ConfigError(`${at}${key} must be a non-empty string, got ${show(value)}.`);
  }
  return value;
}

function urlAt(raw: Record<string, unknown>, key: string): string {
  const value = stringAt(raw, key);
  if (!isHttpUrl(value)) throw new ConfigError(`${key} must be an http(s) URL, got ${show(value)}.`);
  return value.replace(/\/+$/, '');
}

function boolAt(raw: Record<string, unknown>, key: string, at: string): boolean {
  const value = raw[key];
  if (typeof value !== 'boolean')
    throw new ConfigError(`${at}${key} must be true or false, got ${show(value)}.`);
  return value;
}

function numberAt(raw: Record<string, unknown>, key: string, min: number, at: string): number {
  const value = raw[key];
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min) {
    throw new ConfigError(`${at}${key} must be a number ≥ ${min}, got ${show(value)}.`);
  }
  return value;
}

/** A bearer token: printable, no spaces, long enough not to be guessed. */
function tokenAt(raw: Record<string, unknown>, key: string, variable: string): string | undefined {
  const value = raw[key];
  if (value === undefined || value === '') return undefined;
  if (typeof value !== 'string' || !/^[\x21-\x7e]{16,}$/.test(value)) {
    throw new ConfigError(
      `${key} (${variable}) must be at least 16 printable characters without spaces (e.g. openssl rand -hex 32); got ${typeof value === 'string' ? `${value.length} characters` : show(value)}.`,
    );
  }
  return value;
}

function intAt(
  raw: Record<string, unknown>,
  key: string,
  fallback: number | undefined,
  min = 0,
  max = Number.MAX_SAFE_INTEGER,
  at = '',
): number {
  const given = raw[key];
  // Environment variables and flags arrive as strings.
  const value = typeof given === 'string' && /^-?\d+$/.test(given) ? Number(given) : (given ?? fallback);
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${at}${key} must be an integer from ${min} to ${max}, got ${show(given)}.`);
  }
  return value;
}
