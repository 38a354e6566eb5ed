/**
 * The configuration, defined once: each option's type, range, default and
 * description. From this schema come the TypeScript types (`SpillwayConfig`),
 * the defaults (`defaults`, `routeDefaults`), the validation and its messages
 * (validate.ts), the published JSON Schema (config.schema.json, for editors)
 * and the check of docs/configuration.md. A new option is added here and
 * nowhere else (then `npm run config-schema` rewrites config.schema.json, and a
 * row in docs/configuration.md documents it: tests check both); only what a
 * schema cannot say (one option against another, an address that must parse)
 * is code, in config.ts.
 *
 * Non-standard keyword: `errorMessage` (as VS Code and ajv-errors read it)
 * replaces the requirement validate.ts would spell from the type and range.
 * `writeOnly` marks a secret, never repeated in a message.
 */
import Type, { type Static, type TProperties, type TSchema } from 'typebox';
import { CALLBACK_ENDPOINT, ENDPOINT_NAME } from '../delivery/webhooks/message.ts';
import { STANDARD_DELAYS_MS } from '../delivery/webhooks/schedule.ts';

export const MiB = 1024 * 1024;
const HOUR = 3_600_000;

/** An option the file may leave out, and the value it then takes. */
function option<S extends TSchema>(schema: S, value: Static<S>, description: string) {
  return Type.Optional(Object.assign(schema, { default: value, description }) as S & { default: Static<S> });
}

/** An option without a default: unset unless given. */
function optional<S extends TSchema>(schema: S, description: string) {
  return Type.Optional(Object.assign(schema, { description }));
}

/** A group of options; every key outside `properties` is an error. */
function group<P extends TProperties>(properties: P, description: string) {
  return Type.Optional(Type.Object(properties, { additionalProperties: false, description }));
}

const int = (minimum: number, maximum?: number) =>
  Type.Integer(maximum === undefined ? { minimum } : { minimum, maximum });
const share = () => Type.Number({ minimum: 0, maximum: 1 });

/**
 * A list that environment variables and flags give as one string, its entries
 * separated by commas or spaces (validate.ts splits it).
 */
function list<S extends TSchema>(item: S, errorMessage: string, options: { writeOnly?: true } = {}) {
  return Type.Union([Type.String(options), Type.Array(item, { errorMessage, ...options })], {
    errorMessage,
    ...options,
  });
}

export const HEADER_NAME = "^[!#-'*+.^`|~\\w-]+$";
const HTTP_URL = '^https?://[^\\s/]';

const thresholds = (errorRate: number, slowRate: number, latencyMs: number, description: string) =>
  group(
    {
      errorRate: option(share(), errorRate, 'Failed share of calls (0 to 1) above which the rule fires.'),
      slowRate: option(
        share(),
        slowRate,
        'Share of calls (0 to 1) at or over slowCallMs above which the rule fires.',
      ),
      latencyMs: option(int(1), latencyMs, 'Latency percentile (ms) above which the rule fires.'),
    },
    description,
  );

/** The health policy: when to divert to capture, probe and come back (docs/policy.md). */
const healthOptions = {
  windowMs: option(int(1), 10_000, 'The sliding window the signals are computed over, ms.'),
  bucketMs: option(int(1), 1_000, 'The bucket size of the window, ms (at most windowMs).'),
  minCalls: option(int(1), 10, 'No rate or percentile rule fires on fewer finished calls in the window.'),
  slowCallMs: option(
    int(1),
    3_000,
    'A call this long is slow; an in-flight call this old is hung (the seed’s 3 s latency threshold).',
  ),
  latencyPercentile: option(
    Type.Number({ minimum: 1, maximum: 100 }),
    99,
    'The latency percentile the latency rule reads.',
  ),
  trip: thresholds(
    0.1,
    0.5,
    3_000,
    'Trip thresholds (sync → diverting): error rate over 10%, half the calls slow, p99 over 3 s.',
  ),
  revert: thresholds(
    0.05,
    0.2,
    1_500,
    'Thresholds the probes must meet (probing → sync), each at least as strict as its trip threshold.',
  ),
  hungCalls: option(
    int(1),
    3,
    'This many calls in flight past slowCallMs or their own budget trip before they finish (hang detection).',
  ),
  maxConcurrency: option(int(1), 256, 'Sync calls in flight at once; more are captured (load shedding).'),
  adaptiveConcurrency: group(
    {
      enabled: option(Type.Boolean(), false, 'Turn the adaptive limit on.'),
      min: option(int(1), 4, 'The least the adaptive limit falls to.'),
      initial: option(int(1), 32, 'The adaptive limit at start.'),
    },
    'An AIMD limit under maxConcurrency, from latency and errors; off by default.',
  ),
  openMs: option(int(1), 5_000, 'The first open period, ms; it grows by openMultiplier per failed recovery.'),
  maxOpenMs: option(int(1), 120_000, 'The longest open period, ms (at least openMs).'),
  openMultiplier: option(Type.Number({ minimum: 1 }), 2, 'Growth of the open period per failed recovery.'),
  openJitter: option(share(), 0.2, 'The open period is drawn within ± this share.'),
  decayAfterMs: option(
    int(1),
    60_000,
    'Each period this long in sync without a trip steps the open period back down once.',
  ),
  probeShare: option(
    Type.Number({ exclusiveMinimum: 0, maximum: 1 }),
    0.2,
    'While probing, the share of live requests that try sync (above 0: without probes a tripped route would never come back).',
  ),
  probeCalls: option(int(1), 5, 'Probe results judged together.'),
  minProbingMs: option(int(0), 1_000, 'Least time in probing before a revert, ms.'),
  probeIntervalMs: option(
    int(1),
    500,
    'While a route diverts or probes, one replay of its backlog probes the upstream this often, ms.',
  ),
  rampMs: option(
    int(0),
    10_000,
    'After a revert, the sync share ramps from probeShare to 100% over this long, ms.',
  ),
  drillShare: option(
    share(),
    0,
    'Share of healthy traffic sent async on purpose to keep that path exercised.',
  ),
};

/** Route options: a route in the file, or routeDefaults, sets any of them. */
const routeOptions = {
  failover: option(
    Type.Boolean(),
    true,
    'Try sync first and fail over to 202; false answers 502/504 instead.',
  ),
  budgetMs: option(
    int(0),
    3_000,
    'The client’s wait for the sync attempt’s response headers, ms; 0 captures at once.',
  ),
  maxWaitMs: option(
    int(0),
    20_000,
    'The largest `Prefer: wait=N` honoured, ms; larger values are clamped. Capped at attemptTimeoutMs − 1 s.',
  ),
  attemptTimeoutMs: option(
    int(1),
    30_000,
    'Time limit of an adopted or replayed attempt, from its start, ms (longer than budgetMs).',
  ),
  failoverStatuses: option(
    Type.Array(int(400, 599), { errorMessage: 'must be an array of 4xx/5xx status codes' }),
    [429, 502, 503, 504],
    'Upstream statuses meaning "not processed, come back later".',
  ),
  honoursIdempotencyKey: option(
    Type.Boolean(),
    false,
    'Set when the upstream deduplicates by Idempotency-Key: then any request may be resent.',
  ),
  idempotencyKeys: option(
    Type.Enum(['optional', 'required', 'off']),
    'optional',
    'Idempotency-Key from clients: "optional" replays the first answer to a retry carrying the same key, "required" also answers 400 to unsafe requests without one, "off" just forwards the header.',
  ),
  rejectInvalidJson: option(
    Type.Boolean(),
    false,
    'Check that a body sent as JSON parses, and answer 400 invalid-json before capture if it does not.',
  ),
  maxAttempts: option(int(1), 10, 'Attempts (sync attempt included) before an operation is dead-lettered.'),
  maxBacklog: optional(
    int(1),
    'Operations of this route waiting at most (not terminal); past it a capture answers 503 backlog-full. Unbounded by default.',
  ),
  maxAgeMs: option(
    int(1),
    24 * HOUR,
    'Age after which an operation is dead-lettered instead of replayed, ms.',
  ),
  backoff: group(
    {
      initialMs: option(int(1), 1_000, 'The first replay delay’s ceiling, ms.'),
      maxMs: option(int(1), 5 * 60_000, 'The backoff cap, ms.'),
      multiplier: option(Type.Number({ minimum: 1 }), 2, 'The backoff growth factor.'),
    },
    'Replay backoff: full jitter over initialMs · multiplier^(n-1), capped at maxMs. Merged key by key over routeDefaults.backoff.',
  ),
  priority: option(int(-1_000_000, 1_000_000), 0, 'Replay order: higher first, then oldest first.'),
  orderingKey: optional(
    Type.String({ minLength: 1 }),
    'FIFO per key: a request header name ("x-account-id") or a path template with one {key} segment ("/accounts/{key}/*"). Operations with the same key replay one at a time in capture order, and a live request whose key still has operations waiting is captured behind them. None by default (docs/policy.md).',
  ),
  health: group(
    healthOptions,
    'The health policy: when to divert to capture, probe and come back (docs/policy.md).',
  ),
  staleIfErrorMs: optional(
    Type.Union([int(1), Type.Null()], { errorMessage: 'must be an integer ≥ 1 (ms), or null for off' }),
    'Stale-if-error for GET and HEAD: keep the last 2xx answer, and answer with one younger than this (with Age and Cache-Status) instead of a 202 or a problem, capturing a refresh. Off by default; null turns off what routeDefaults set.',
  ),
  staleKeepsPrivate: option(
    Type.Boolean(),
    false,
    'Keep answers marked Cache-Control no-store or private as stale copies too (copies are per tenant).',
  ),
  fallback: optional(
    Type.Union(
      [
        Type.Object(
          {
            path: optional(
              Type.String({
                pattern: '^/[^?#\\s]*$',
                errorMessage: 'must be a path like "/prices/cached" (no query)',
              }),
              'A cheaper path on the upstream, asked first with the request’s query; its 2xx answer is the fallback.',
            ),
            timeoutMs: option(int(1, 60_000), 1_000, 'How long the fallback path may take.'),
            status: option(int(200, 299), 200, 'The configured answer’s status.'),
            headers: optional(
              Type.Record(Type.String(), Type.String()),
              'The configured answer’s header fields: names to values.',
            ),
            body: optional(
              Type.Unknown(),
              'The configured answer’s body: a string as is, any other JSON value as JSON.',
            ),
          },
          { additionalProperties: false },
        ),
        Type.Null(),
      ],
      { errorMessage: 'must be an object {path?, timeoutMs?, status?, headers?, body?}, or null for none' },
    ),
    'What a GET or HEAD gets at once when no stale copy is young enough: the upstream’s `path` (asked first), else the configured answer. None by default; null turns off what routeDefaults set.',
  ),
  captureHeaders: option(
    Type.Array(Type.String({ pattern: HEADER_NAME }), { errorMessage: 'must be an array of header names' }),
    [
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
    'Request headers stored with a capture and sent on replay (names, case-insensitive); a route’s list replaces the default.',
  ),
};

export const routeSchema = Type.Object(
  {
    name: Type.String({
      minLength: 1,
      description:
        'The route’s name, stored with every operation: keep it stable. Not "default", not starting with "fn:".',
    }),
    match: Type.String({
      pattern: '^\\s*(\\*|[A-Za-z]+)\\s+/\\S*\\s*$',
      errorMessage: 'must look like "POST /payments/:id" or "* /orders/*"',
      description:
        '"METHOD /path/pattern": a method or *, then segments, :name for one segment, a final * for the rest.',
    }),
    ...routeOptions,
  },
  { additionalProperties: false },
);

const webhookSecrets = () =>
  list(Type.String(), 'must be an array of "whsec_…" secrets', { writeOnly: true });

const subscriptionSchema = Type.Object(
  {
    name: Type.String({
      pattern: ENDPOINT_NAME.source,
      errorMessage: `must be 1–64 of A-Z a-z 0-9 _ -, unique and not "${CALLBACK_ENDPOINT}" (it is part of each webhook-id)`,
      description: 'Part of each webhook-id: 1–64 of A-Z a-z 0-9 _ -, unique, not "callback".',
    }),
    url: Type.String({
      pattern: HTTP_URL,
      errorMessage: 'must be an http(s) URL without credentials',
      description:
        'The receiver, trusted (not held to callbackAllow); its addresses are checked like any webhook’s.',
    }),
    secrets: optional(webhookSecrets(), 'Its own signing secrets; default: webhooks.secrets.'),
    routes: optional(
      Type.Array(Type.String(), { minItems: 1, errorMessage: 'must be a non-empty array of names' }),
      'Route names whose operations it receives; default: all, `default` included.',
    ),
    events: optional(
      Type.Array(Type.Enum(['succeeded', 'failed', 'canceled']), {
        minItems: 1,
        errorMessage:
          'must be a non-empty array of terminal events (terminal events are succeeded, failed, canceled)',
      }),
      'Terminal events it receives; default: all three.',
    ),
  },
  { additionalProperties: false },
);

/** Gateway options: everything of the file but upstream, routes and routeDefaults. */
const gatewayOptions = {
  host: option(
    Type.String({ minLength: 1 }),
    '0.0.0.0',
    'Interface of the public port: proxied routes and /_spillway/.',
  ),
  port: option(int(0, 65535), 8080, 'Public port; 0 picks a free port.'),
  adminHost: option(
    Type.String({ minLength: 1 }),
    '127.0.0.1',
    'Interface of the admin port, loopback by default.',
  ),
  adminPort: option(int(0, 65535), 8081, 'Admin port: /healthz, /readyz, the admin API, the dashboard.'),
  adminToken: optional(
    Type.String({
      pattern: '^$|^[\\x21-\\x7e]{16,}$',
      writeOnly: true,
      errorMessage:
        '(SPILLWAY_ADMIN_TOKEN) must be at least 16 printable characters without spaces (e.g. openssl rand -hex 32)',
    }),
    'Bearer token of the admin port (SPILLWAY_ADMIN_TOKEN); required to bind it off loopback.',
  ),
  metricsToken: optional(
    Type.String({
      pattern: '^$|^[\\x21-\\x7e]{16,}$',
      writeOnly: true,
      errorMessage:
        '(SPILLWAY_METRICS_TOKEN) must be at least 16 printable characters without spaces (e.g. openssl rand -hex 32)',
    }),
    'A second token accepted on /metrics only, for scrapers (SPILLWAY_METRICS_TOKEN).',
  ),
  storeEncryptionKey: optional(
    list(Type.String(), 'must be a key or a list of keys (strings), newest first', { writeOnly: true }),
    'Keys that encrypt stored request and response content at rest (AES-256-GCM), newest first: base64 of 32 bytes each (`spillway store-key` makes one). SPILLWAY_STORE_ENCRYPTION_KEY, comma-separated. Unset: stored in plaintext.',
  ),
  maxBacklog: optional(
    int(1),
    'Operations waiting at most, all routes together (not terminal); past it a capture answers 503 backlog-full. Unbounded by default.',
  ),
  store: option(
    Type.String({ minLength: 1 }),
    'spillway.db',
    'An SQLite file (relative to the working directory) or a postgres:// URL.',
  ),
  publicUrl: optional(
    Type.String({ pattern: HTTP_URL, errorMessage: 'must be an http(s) URL' }),
    'Base of the absolute URLs in 202 answers; default http://<host>:<port>. Never taken from Host.',
  ),
  maxBodyBytes: option(int(0), MiB, 'Largest request body accepted; larger answers 413.'),
  maxInFlight: option(
    int(1),
    4_096,
    'Requests handled at once on the public port, counted once their body is read; past it, 503 overloaded.',
  ),
  headersTimeoutMs: option(
    int(100, HOUR),
    30_000,
    'Time for a request’s header section to arrive, on both ports; past it, 408 request-timeout.',
  ),
  bodyTimeoutMs: option(
    int(100, HOUR),
    10_000,
    'A request body with no byte arriving for this long is answered 408 request-timeout (slow uploads).',
  ),
  trustedProxies: option(
    list(Type.String(), 'must list addresses or CIDR blocks like "10.0.0.0/8"'),
    [],
    'Peers (addresses or CIDR blocks, like "10.0.0.0/8") whose X-Forwarded-* and Forwarded fields are believed and extended; none by default.',
  ),
  forwardedHeaders: option(
    Type.Enum(['x-forwarded', 'forwarded', 'both']),
    'x-forwarded',
    'The forwarding fields sent upstream: "x-forwarded" (X-Forwarded-For/-Proto/-Host), "forwarded" (RFC 7239) or "both".',
  ),
  maxResultBytes: option(int(0), 10 * MiB, 'Largest upstream response body stored as an operation’s result.'),
  maxStoreBytes: optional(
    int(4096),
    'Largest size of the store file (SQLite); past it captures answer 503. Unbounded by default.',
  ),
  replay: group(
    {
      concurrency: option(
        int(0, 10_000),
        8,
        'Attempts in flight at once; 0 runs no replay workers in this process (capture only).',
      ),
      pollIntervalMs: option(
        int(10, HOUR),
        1_000,
        'How often idle workers look for due operations (they are also woken by captures).',
      ),
    },
    'Replay workers inside `serve` and `worker`.',
  ),
  idempotencyTtlMs: option(
    int(60_000),
    24 * HOUR,
    'How long an Idempotency-Key is remembered (Stripe’s 24 h); a reuse after that is a new request.',
  ),
  tenantHeader: option(
    Type.String({ pattern: HEADER_NAME, errorMessage: 'must be a header name like "authorization"' }),
    'authorization',
    'The request header whose value identifies a tenant: operations and Idempotency-Keys are scoped to it.',
  ),
  retentionMs: option(
    int(60_000),
    7 * 24 * HOUR,
    'How long a terminal operation (its monitor, result and events) is kept; then it is gone (404).',
  ),
  sse: group(
    {
      retryMs: option(int(0, HOUR), 2_000, 'Reconnection delay suggested to clients (`retry:`).'),
      heartbeatMs: option(
        int(100, HOUR),
        15_000,
        'A comment line this often keeps idle proxies from closing the stream (≤ 15 s per WHATWG).',
      ),
      pollMs: option(
        int(10, HOUR),
        5_000,
        'The store is re-read this often even without a change notice (the backstop).',
      ),
      maxStreams: option(
        int(1, 1_000_000),
        10_000,
        'Open streams per gateway; past it a new one is answered 503 overloaded. They do not count against maxInFlight.',
      ),
    },
    'Server-Sent Events on /_spillway/operations/{id}/events.',
  ),
  websocket: group(
    {
      maxBufferedBytes: option(
        int(1024, 1024 * MiB),
        MiB,
        'Bytes buffered for one client past which sending pauses until it drains (events stay in the store).',
      ),
      slowClientMs: option(
        int(10, HOUR),
        30_000,
        'A client over maxBufferedBytes this long is closed with 1013 (Try Again Later).',
      ),
      maxSubscriptions: option(
        int(1, 1_000_000),
        1_000,
        'Operations one connection may follow at once; past it a subscribe gets an error message.',
      ),
      maxConnections: option(
        int(1, 1_000_000),
        10_000,
        'Open WebSocket connections per gateway; past it a handshake is answered 503 overloaded.',
      ),
      pingMs: option(
        int(100, HOUR),
        15_000,
        'A ping this often; a connection whose pong has not come back by the next one is dropped.',
      ),
      pollMs: option(
        int(10, HOUR),
        5_000,
        'The store is re-read this often for each subscription even without a change notice (the backstop).',
      ),
    },
    'WebSocket delivery on /_spillway/ws: one connection follows many operations.',
  ),
  corsOrigins: option(
    list(
      Type.String({ pattern: '^https?://[^/]+$' }),
      'must list origins like "https://app.example" (no path)',
    ),
    [],
    'Browser origins (exact, like "https://app.example") allowed to read /_spillway/ with credentials.',
  ),
  webhooks: group(
    {
      secrets: option(
        webhookSecrets(),
        [],
        'Signing secrets, whsec_ + base64 of 24–64 bytes (`spillway webhook-secret` makes one); every one signs each attempt, so during a rotation list the new and the old. SPILLWAY_WEBHOOK_SECRET.',
      ),
      callbackAllow: option(
        list(Type.String(), 'must list origins like "https://hooks.example"'),
        [],
        'Origins a Spillway-Callback may name, exactly ("https://hooks.example"); none: callbacks refused. SPILLWAY_CALLBACK_ALLOW.',
      ),
      allowPrivateNetworks: option(
        Type.Boolean(),
        false,
        'Let webhooks reach loopback, private, link-local and CGNAT addresses (never metadata). SPILLWAY_CALLBACK_ALLOW_PRIVATE=1.',
      ),
      // 100 ms at least, so tests can be quick; 30 s at most (Standard Webhooks).
      timeoutMs: option(int(100, 30_000), 15_000, 'One attempt’s time limit (Standard Webhooks: 15–30 s).'),
      schedule: option(
        Type.Array(int(0), { minItems: 1, errorMessage: 'must be a non-empty array of delays in ms' }),
        [...STANDARD_DELAYS_MS],
        'Delays before the 2nd, 3rd… attempt: Standard Webhooks’ 5 s … 24 h, about three days in all.',
      ),
      jitter: option(
        Type.Number({ minimum: 0, exclusiveMaximum: 1 }),
        0.2,
        'Each delay is drawn from delay × [1 − jitter, 1 + jitter].',
      ),
      maxAttempts: option(
        int(1, 1_000),
        STANDARD_DELAYS_MS.length + 1,
        'Attempts in all, the first included; then the delivery has failed.',
      ),
      concurrency: option(int(1, 10_000), 8, 'Attempts in flight at once, per process.'),
      pollIntervalMs: option(
        int(10, HOUR),
        1_000,
        'How often the dispatcher looks for due deliveries without a change notice (the backstop).',
      ),
      subscriptions: option(
        Type.Array(subscriptionSchema),
        [],
        'Configured receivers of every operation’s terminal event: [{name, url, secrets?, routes?, events?}].',
      ),
    },
    'Webhooks: a terminal event posted, signed per Standard Webhooks, to Spillway-Callback and subscriptions.',
  ),
  staleCache: group(
    {
      maxEntries: option(int(1), 10_000, 'Copies kept at most, all routes and tenants together.'),
      maxBytes: option(int(1), 64 * MiB, 'Bytes of copies (bodies and header sections) kept at most.'),
      maxCopyBytes: option(
        int(0),
        MiB,
        'A larger answer is not kept (it is buffered on its way to the client).',
      ),
    },
    'Stale copies of the routes with staleIfErrorMs, kept in the store, least recently used evicted first.',
  ),
  shutdownDelayMs: option(
    int(0),
    0,
    'On SIGTERM: how long /readyz answers 503 while the gateway still serves, so load balancers stop sending first.',
  ),
  shutdownGraceMs: option(
    int(0),
    10_000,
    'On SIGTERM: how long in-flight work may take to finish before leases are handed back.',
  ),
};

/** The config file (and `createSpillway({ config })`): every key optional, `upstream` may come from a flag. */
export const configSchema = Type.Object(
  {
    $schema: optional(
      Type.String(),
      'This file’s JSON Schema, for editors: "./node_modules/spillway/config.schema.json".',
    ),
    upstream: optional(
      Type.String({
        pattern: HTTP_URL,
        errorMessage: 'must be an http(s) URL (--upstream or SPILLWAY_UPSTREAM)',
      }),
      'The service Spillway protects, http:// or https://; required, from here, --upstream or SPILLWAY_UPSTREAM.',
    ),
    ...gatewayOptions,
    routeDefaults: group(
      routeOptions,
      'Route options shared by every route, the catch-all `default` route included.',
    ),
    routes: optional(Type.Array(routeSchema), 'The routes, matched in order; the first match wins.'),
  },
  { additionalProperties: false },
);

/** The shape of the config file, as `createSpillway({ config })` takes it too. */
export type SpillwayConfig = Static<typeof configSchema>;
/** One route of `routes`. */
export type RouteConfig = Static<typeof routeSchema>;

/** A group of options, as its schema says it. */
type Group<Q extends TProperties = TProperties> = { type: 'object'; properties: Q };

/** The defaults a schema's properties give: options with one, groups whose options have them. */
export type DefaultsOf<P extends TProperties> = {
  -readonly [K in keyof P as P[K] extends { default: unknown } | Group ? K : never]: P[K] extends {
    default: infer D;
  }
    ? D
    : P[K] extends Group<infer Q>
      ? DefaultsOf<Q>
      : never;
};

/** The values of `properties`' defaults, groups as nested objects. */
export function defaultsOf<P extends TProperties>(properties: P): DefaultsOf<P> {
  const out: Record<string, unknown> = {};
  for (const [key, schema] of Object.entries(properties) as Array<
    [string, Partial<Group> & { default?: unknown }]
  >) {
    if ('default' in schema) out[key] = structuredClone(schema.default);
    else if (schema.type === 'object' && schema.properties) out[key] = defaultsOf(schema.properties);
  }
  return out as DefaultsOf<P>;
}

/** Gateway defaults; a config file, the environment and flags override them. */
export const defaults = defaultsOf(gatewayOptions);
/** Route policy defaults; routeDefaults in the file and a route's own options override them. */
export const routeDefaults = defaultsOf(routeOptions);
