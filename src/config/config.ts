/**
 * Configuration: the schema (schema.ts) says every option's type, range and
 * default; this module reads the file, runs the schema pass, lays the result
 * over the defaults and checks what a schema cannot say: one option against
 * another, addresses and secrets that must parse, unique names. Errors name
 * the option and the bad value. Sources, later wins: defaults < config file
 * (JSON) < environment < flags.
 */
import { readFileSync } from 'node:fs';
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { normalizeOrigin } from '../delivery/webhooks/callback-guard.ts';
import { CALLBACK_ENDPOINT } from '../delivery/webhooks/message.ts';
import { parseWebhookSecrets } from '../delivery/webhooks/signing.ts';
import type { WebhookConfig, WebhookSubscription } from '../delivery/webhooks/webhooks.ts';
import { type OrderingKeySource, parseOrderingKey } from '../policy/ordering-key.ts';
import { compileMatcher } from '../policy/route-match.ts';
import type { Fallback, RoutePolicy } from '../policy/route-policy.ts';
import type { HeaderList } from '../store/port.ts';
import { StoreKeyring } from '../store/sealed-values.ts';
import {
  configSchema,
  defaults,
  HEADER_NAME,
  type RouteConfig,
  routeDefaults,
  routeSchema,
  type SpillwayConfig,
} from './schema.ts';
import { ConfigError, checked, isObject, shown } from './validate.ts';

export { defaults, MiB, type RouteConfig, routeDefaults, type SpillwayConfig } from './schema.ts';
export { ConfigError } from './validate.ts';

type Defaults = typeof defaults;
/** Options without a default: unset unless given. */
type Unset = {
  [K in Exclude<
    keyof SpillwayConfig,
    keyof Defaults | '$schema' | 'routes' | 'routeDefaults'
  >]-?: SpillwayConfig[K];
};

/** The configuration as the gateway runs with it: every default filled, lists compiled. */
export type GatewayConfig = Omit<Defaults, 'trustedProxies' | 'corsOrigins' | 'webhooks'> &
  Omit<Unset, 'upstream' | 'storeEncryptionKey'> & {
    upstream: string;
    /** The parsed storeEncryptionKey; undefined: no encryption at rest. */
    storeEncryptionKey: StoreKeyring | undefined;
    trustedProxies: BlockList;
    corsOrigins: ReadonlySet<string>;
    webhooks: WebhookConfig;
    /** Matched in order; the last is the catch-all `default` route. */
    routes: RoutePolicy[];
  };

/** Route options, as routeDefaults gives them. */
type RouteOptions = NonNullable<SpillwayConfig['routeDefaults']>;

/** The route names of defined functions (spillway.define) start so; routes of the config may not. */
export const FUNCTION_ROUTE_PREFIX = 'fn:';

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
  const file = checked(configSchema, raw) as SpillwayConfig;
  const { $schema, upstream, routes = [], routeDefaults: shared = {}, ...options } = file;
  if (upstream === undefined || !isHttpUrl(upstream)) {
    throw new ConfigError(
      `upstream must be an http(s) URL (--upstream or SPILLWAY_UPSTREAM), got ${shown({}, raw.upstream)}.`,
    );
  }
  if (options.publicUrl !== undefined && !isHttpUrl(options.publicUrl)) {
    throw new ConfigError(`publicUrl must be an http(s) URL, got ${shown({}, options.publicUrl)}.`);
  }
  const given = overDefaults(defaults, options);
  const config: GatewayConfig = {
    ...given,
    upstream,
    adminToken: options.adminToken || undefined,
    metricsToken: options.metricsToken || undefined,
    storeEncryptionKey: storeKeysOf(options.storeEncryptionKey),
    maxBacklog: options.maxBacklog,
    publicUrl: options.publicUrl?.replace(/\/+$/, ''),
    maxStoreBytes: options.maxStoreBytes,
    trustedProxies: blockListOf([given.trustedProxies].flat()),
    tenantHeader: given.tenantHeader.toLowerCase(),
    corsOrigins: new Set([given.corsOrigins].flat()),
    webhooks: webhooksOf(given.webhooks),
    routes: routes.map((route, i) => routeOver(shared, route, `routes[${i}].`)),
  };
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
  config.routes.push(routeOver(shared, { name: 'default', match: '* /*' }, 'routeDefaults.'));
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

/**
 * `options` over `defaults`, a group of options (`sse`, `replay`, …) key by
 * key; an option set to undefined (as the CLI passes what no source gave) is unset.
 */
function overDefaults<D extends object>(defaults: D, options: object): D {
  const out = { ...defaults } as Record<string, unknown>;
  for (const [key, value] of Object.entries(options)) {
    if (value === undefined) continue;
    const base = out[key];
    out[key] = isObject(base) && isObject(value) ? { ...base, ...value } : value;
  }
  return out as D;
}

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
  const shared = checked(configSchema.properties.routeDefaults, raw.routeDefaults ?? {}, 'routeDefaults.');
  return routeOver(shared as RouteOptions, checked(routeSchema, route, at) as RouteConfig, at);
}

/**
 * A route's options over routeDefaults over the built-in defaults. `backoff`
 * and `health` merge key by key; `trip`, `revert` and `adaptiveConcurrency`
 * one level down take a route's object whole, over the built-in defaults.
 */
function routeOver(shared: RouteOptions, route: RouteConfig, at: string): RoutePolicy {
  const d = routeDefaults;
  const options = { ...d, ...shared, ...route };
  const own = { ...shared.health, ...route.health };
  const health = {
    ...d.health,
    ...own,
    trip: { ...d.health.trip, ...own.trip },
    revert: { ...d.health.revert, ...own.revert },
    adaptiveConcurrency: { ...d.health.adaptiveConcurrency, ...own.adaptiveConcurrency },
  };
  const { budgetMs, attemptTimeoutMs } = options;
  if (attemptTimeoutMs <= budgetMs) {
    throw new ConfigError(
      `${at}attemptTimeoutMs (${attemptTimeoutMs}) must be longer than ${at}budgetMs (${budgetMs}): an adopted attempt continues past the budget.`,
    );
  }
  checkHealth(health, `${at}health.`);
  const [method = '*', pattern = '/*'] = options.match.trim().split(/\s+/);
  return {
    ...options,
    matches: compileMatcher(method, pattern),
    maxBacklog: options.maxBacklog,
    // A client's wait is a budget, and the adopted attempt must outlive it: keep it a second short of the attempt limit.
    maxWaitMs: Math.min(options.maxWaitMs, Math.max(0, attemptTimeoutMs - 1_000)),
    failoverStatuses: new Set(options.failoverStatuses),
    captureHeaders: new Set(options.captureHeaders.map((h) => h.toLowerCase())),
    backoff: { ...d.backoff, ...shared.backoff, ...route.backoff },
    health,
    orderingKey: orderingKeyOf(options.orderingKey, at),
    staleIfErrorMs: options.staleIfErrorMs ?? undefined,
    fallback: fallbackOf(options.fallback ?? undefined, `${at}fallback`),
  };
}

/** The route's `orderingKey`: where its requests' ordering key is read, if anywhere. */
function orderingKeyOf(value: string | undefined, at: string): OrderingKeySource | undefined {
  if (value === undefined) return undefined;
  try {
    return parseOrderingKey(value);
  } catch (error) {
    throw new ConfigError(`${at}orderingKey: ${(error as Error).message}, got ${JSON.stringify(value)}.`);
  }
}

/** A route's `fallback` (src/engine/stale-copies.ts): its path, or its answer as it is sent. */
function fallbackOf(
  value: NonNullable<RouteConfig['fallback']> | undefined,
  at: string,
): Fallback | undefined {
  if (value === undefined) return undefined;
  const { path, timeoutMs = 1_000, status = 200, headers = {}, body } = value;
  const hasAnswer = value.status !== undefined || body !== undefined || value.headers !== undefined;
  if (path === undefined && !hasAnswer)
    throw new ConfigError(`${at} needs a path, or a status and body, got ${JSON.stringify(value)}.`);
  if (!hasAnswer) return { path, timeoutMs, response: undefined };
  const fields: HeaderList = Object.entries(headers).map(([n, v]) => [n.toLowerCase(), v]);
  const bad = fields.find(([name]) => !new RegExp(HEADER_NAME).test(name));
  if (bad)
    throw new ConfigError(`${at}.headers has a name that is no header name: ${JSON.stringify(bad[0])}.`);
  // A JSON value that is not a string is sent as JSON.
  const text = typeof body === 'string' ? body : JSON.stringify(body ?? null);
  if (typeof body !== 'string' && !fields.some(([n]) => n === 'content-type'))
    fields.push(['content-type', 'application/json']);
  return { path, timeoutMs, response: { status, headers: fields, body: new Uint8Array(Buffer.from(text)) } };
}

/** What the health options must be one against another. */
function checkHealth(health: typeof routeDefaults.health, at: string): void {
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
}

/**
 * `trustedProxies`: addresses ("10.0.0.7", "::1") and CIDR blocks
 * ("10.0.0.0/8", "fd00::/8"), compiled into one BlockList.
 */
function blockListOf(entries: string[]): BlockList {
  const list = new BlockList();
  for (const entry of entries) {
    const [address = '', prefix, ...rest] = entry.split('/');
    const family = isIPv4(address) ? 'ipv4' : isIPv6(address) ? 'ipv6' : undefined;
    const bits = family === 'ipv4' ? 32 : 128;
    const length = prefix === undefined ? bits : /^\d{1,3}$/.test(prefix) ? Number(prefix) : Number.NaN;
    if (family === undefined || rest.length > 0 || !(length >= 0 && length <= bits)) {
      throw new ConfigError(
        `trustedProxies entries must be addresses or CIDR blocks like "10.0.0.0/8" or "fd00::/8", got ${JSON.stringify(entry)}.`,
      );
    }
    list.addSubnet(address, length, family);
  }
  return list;
}

type WebhookOptions = Defaults['webhooks'];

function webhooksOf(options: WebhookOptions): WebhookConfig {
  const at = 'webhooks.';
  const secrets = secretsOf(options.secrets, `${at}secrets (or SPILLWAY_WEBHOOK_SECRET)`);
  const callbackAllow = new Set(
    [options.callbackAllow].flat().map((origin) => {
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
  const names = new Set<string>();
  const subscriptions = options.subscriptions.map((entry, i): WebhookSubscription => {
    const where = `${at}subscriptions[${i}].`;
    if (entry.name === CALLBACK_ENDPOINT || names.has(entry.name)) {
      throw new ConfigError(
        `${where}name must be 1–64 of A-Z a-z 0-9 _ -, unique and not "${CALLBACK_ENDPOINT}" (it is part of each webhook-id), got ${JSON.stringify(entry.name)}.`,
      );
    }
    names.add(entry.name);
    if (!isHttpUrl(entry.url) || new URL(entry.url).username || new URL(entry.url).password) {
      throw new ConfigError(
        `${where}url must be an http(s) URL without credentials, got ${JSON.stringify(entry.url)}.`,
      );
    }
    const own = entry.secrets === undefined ? [] : secretsOf(entry.secrets, `${where}secrets`);
    if (own.length === 0 && secrets.length === 0) {
      throw new ConfigError(
        `${where}secrets is missing and there is no global secret: set one of them (\`spillway webhook-secret\` makes one).`,
      );
    }
    return {
      name: entry.name,
      url: entry.url,
      secrets: own.length > 0 ? own : secrets,
      routes: entry.routes ? new Set(entry.routes) : null,
      events: entry.events ?? null,
    };
  });
  const { allowPrivateNetworks, timeoutMs, concurrency, pollIntervalMs } = options;
  const schedule = { delaysMs: options.schedule, jitter: options.jitter, maxAttempts: options.maxAttempts };
  return {
    secrets,
    callbackAllow,
    allowPrivateNetworks,
    timeoutMs,
    schedule,
    concurrency,
    pollIntervalMs,
    subscriptions,
  };
}

/** storeEncryptionKey: a list of keys, or one string of them separated by commas (the environment's form). */
function storeKeysOf(value: string | string[] | undefined): StoreKeyring | undefined {
  // An empty variable counts as unset (the schema pass turns it into an empty list).
  if (value === undefined || value.length === 0) return undefined;
  try {
    return StoreKeyring.parse(value);
  } catch (error) {
    // The message never repeats the key.
    throw new ConfigError(`storeEncryptionKey (SPILLWAY_STORE_ENCRYPTION_KEY): ${(error as Error).message}`);
  }
}

function secretsOf(value: string | string[], where: string) {
  try {
    return parseWebhookSecrets(value);
  } catch (error) {
    // The message never repeats the secret.
    throw new ConfigError(`${where}: ${(error as Error).message}`);
  }
}

function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}
