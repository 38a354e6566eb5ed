import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { newStoreKey } from '../store/sealed-values.ts';
import { buildConfig, ConfigError, defaults, routeDefaults } from './config.ts';

const base = { upstream: 'http://127.0.0.1:9000' };

describe('buildConfig', () => {
  it('fills every default and ends with the catch-all default route', () => {
    const config = buildConfig(base);
    assert.equal(config.port, defaults.port);
    assert.equal(config.maxBodyBytes, 1024 * 1024);
    assert.equal(config.routes.length, 1);
    const route = config.routes[0]!;
    assert.equal(route.name, 'default');
    assert.equal(route.budgetMs, routeDefaults.budgetMs);
    assert.deepEqual([...route.failoverStatuses], [429, 502, 503, 504]);
    assert.equal(route.matches('PATCH', '/anything/at/all'), true);
  });

  it('applies routeDefaults to every route and route options over them, in order', () => {
    const config = buildConfig({
      ...base,
      routeDefaults: { budgetMs: 1_000, backoff: { multiplier: 3 } },
      routes: [
        { name: 'pay', match: 'POST /payments', honoursIdempotencyKey: true, backoff: { initialMs: 50 } },
      ],
    });
    const [pay, fallback] = config.routes;
    assert.equal(pay?.budgetMs, 1_000);
    assert.equal(pay?.honoursIdempotencyKey, true);
    assert.deepEqual(pay?.backoff, { initialMs: 50, maxMs: routeDefaults.backoff.maxMs, multiplier: 3 });
    assert.equal(fallback?.budgetMs, 1_000);
    assert.equal(fallback?.honoursIdempotencyKey, false);
  });

  it('keeps maxWaitMs a second short of attemptTimeoutMs, so an adopted attempt outlives any wait', () => {
    assert.equal(
      buildConfig({ ...base, routeDefaults: { attemptTimeoutMs: 5_000 } }).routes[0]?.maxWaitMs,
      4_000,
    );
    assert.equal(buildConfig(base).routes[0]?.maxWaitMs, 20_000);
  });

  it('merges health options over routeDefaults.health and the documented defaults', () => {
    const config = buildConfig({
      ...base,
      routeDefaults: { health: { minCalls: 20 } },
      routes: [{ name: 'pay', match: 'POST /pay', health: { trip: { errorRate: 0.2 } } }],
    });
    const [pay, fallback] = config.routes;
    assert.equal(pay?.health.minCalls, 20);
    assert.deepEqual(pay?.health.trip, { ...routeDefaults.health.trip, errorRate: 0.2 });
    assert.equal(fallback?.health.trip.errorRate, 0.1);
    assert.equal(fallback?.health.openMs, routeDefaults.health.openMs);
  });

  it('rejects an unknown key at every level, naming it', () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ sse: { retryMS: 1_000 } }, 'sse.retryMS'],
      [{ websocket: { pingMS: 1_000 } }, 'websocket.pingMS'],
      [{ replay: { concurency: 2 } }, 'replay.concurency'],
      [{ routeDefaults: { backoff: { initial: 5 } } }, 'routeDefaults.backoff.initial'],
      [
        { routes: [{ name: 'x', match: 'GET /x', health: { trip: { errors: 1 } } }] },
        'routes[0].health.trip.errors',
      ],
      [
        { webhooks: { subscriptions: [{ name: 'a', url: 'https://a.example', secret: 'x' }] } },
        'webhooks.subscriptions[0].secret',
      ],
    ];
    for (const [raw, key] of cases) {
      assert.throws(
        () => buildConfig({ ...base, ...raw }),
        (error: unknown) => error instanceof ConfigError && error.message.includes(`Unknown option "${key}"`),
        `${key} is not rejected`,
      );
    }
  });

  it('takes a group given in part (sse, websocket, replay, …) key by key over its defaults', () => {
    const config = buildConfig({
      ...base,
      sse: { retryMs: 5 },
      websocket: { pingMs: 500 },
      replay: { concurrency: 0 },
      staleCache: { maxEntries: 3 },
    });
    assert.deepEqual(config.sse, { ...defaults.sse, retryMs: 5 });
    assert.deepEqual(config.websocket, { ...defaults.websocket, pingMs: 500 });
    assert.deepEqual(config.replay, { ...defaults.replay, concurrency: 0 });
    assert.deepEqual(config.staleCache, { ...defaults.staleCache, maxEntries: 3 });
    // The CLI sets what no source gave to undefined.
    assert.deepEqual(buildConfig({ ...base, webhooks: undefined, sse: undefined }).sse, defaults.sse);
  });

  it('storeEncryptionKey: a list or a comma-separated string of keys, newest first; a bad one never echoed', () => {
    const [k1, k2] = [newStoreKey(), newStoreKey()];
    assert.equal(buildConfig(base).storeEncryptionKey, undefined);
    assert.equal(buildConfig({ ...base, storeEncryptionKey: '' }).storeEncryptionKey, undefined);
    const fromEnv = buildConfig({ ...base, storeEncryptionKey: `${k2},${k1}` }).storeEncryptionKey;
    const fromFile = buildConfig({ ...base, storeEncryptionKey: [k2, k1] }).storeEncryptionKey;
    assert.equal(fromEnv?.keys.length, 2);
    assert.deepEqual(fromEnv?.ids, fromFile?.ids);
    const short = k1.slice(0, 20);
    assert.throws(
      () => buildConfig({ ...base, storeEncryptionKey: [k1, short] }),
      (error: Error) =>
        error instanceof ConfigError &&
        /^storeEncryptionKey \(SPILLWAY_STORE_ENCRYPTION_KEY\): .*32 random bytes/.test(error.message) &&
        !error.message.includes(short),
    );
    assert.throws(
      () => buildConfig({ ...base, storeEncryptionKey: [k1, 7] }),
      /storeEncryptionKey .*must be a key or a list of keys/,
    );
  });

  it('accepts numbers given as strings (flags and environment)', () => {
    assert.equal(buildConfig({ ...base, port: '9999' }).port, 9999);
  });

  it('names the option and the bad value in every error', () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{}, /upstream must be an http\(s\) URL .* got nothing/],
      [{ upstream: 'ftp://x' }, /upstream .* got "ftp:\/\/x"/],
      [{ ...base, port: 70000 }, /port must be an integer from 0 to 65535, got 70000/],
      [{ ...base, bogus: 1 }, /Unknown option "bogus"/],
      [{ ...base, routes: [{ name: 'x', match: 'payments' }] }, /routes\[0\]\.match must look like/],
      [
        { ...base, routes: [{ name: 'x', match: 'GET /x', budgetMs: -1 }] },
        /^routes\[0\]\.budgetMs must be an integer ≥ 0, got -1\.$/,
      ],
      [
        { ...base, routes: [{ name: 'x', match: 'GET /x', failoverStatuses: [200] }] },
        /routes\[0\]\.failoverStatuses/,
      ],
      [
        { ...base, routeDefaults: { budgetMs: 5_000, attemptTimeoutMs: 4_000 } },
        /attemptTimeoutMs \(4000\) must be longer than .*budgetMs \(5000\)/,
      ],
      [
        { ...base, routes: [{ name: 'x', match: 'GET /x', retries: 3 }] },
        /Unknown option "routes\[0\]\.retries"\. Known: name, match, failover, /,
      ],
      [{ ...base, replay: { concurrency: 'lots' } }, /replay\.concurrency must be an integer .* got "lots"/],
      [{ ...base, routes: [{ name: 'default', match: 'GET /x' }] }, /routes\[0\]\.name "default" is taken/],
      [
        { ...base, routeDefaults: { health: { probeShare: 2 } } },
        /routeDefaults\.health\.probeShare must be a number > 0 and ≤ 1, got 2/,
      ],
      [
        { ...base, routeDefaults: { health: { tripp: {} } } },
        /Unknown option "routeDefaults\.health\.tripp"/,
      ],
      [
        { ...base, routes: [{ name: 'x', match: 'GET /x', staleIfErrorMs: 0 }] },
        /^routes\[0\]\.staleIfErrorMs must be an integer ≥ 1, got 0\.$/,
      ],
      [
        { ...base, routes: [{ name: 'x', match: 'GET /x', staleIfErrorMs: 'soon' }] },
        /^routes\[0\]\.staleIfErrorMs must be an integer ≥ 1 \(ms\), or null for off, got "soon"\.$/,
      ],
      [
        { ...base, routes: [{ name: 'x', match: 'GET /x', fallback: { timeoutMs: 5 } }] },
        /routes\[0\]\.fallback needs a path, or a status and body/,
      ],
      [
        { ...base, routes: [{ name: 'x', match: 'GET /x', fallback: { path: 'cached?x=1' } }] },
        /routes\[0\]\.fallback\.path must be a path like "\/prices\/cached" \(no query\), got "cached\?x=1"/,
      ],
      [
        { ...base, routes: [{ name: 'x', match: 'GET /x', fallback: { status: 503, body: '' } }] },
        /routes\[0\]\.fallback\.status must be an integer from 200 to 299, got 503/,
      ],
      [
        {
          ...base,
          routes: [{ name: 'x', match: 'GET /x', fallback: { body: 'x', headers: { 'a b': 'c' } } }],
        },
        /routes\[0\]\.fallback\.headers has a name that is no header name: "a b"/,
      ],
      [
        { ...base, routeDefaults: { fallback: { body: 'x', bogus: 1 } } },
        /Unknown option "routeDefaults\.fallback\.bogus"/,
      ],
      [
        { ...base, staleCache: { maxEntries: 0 } },
        /^staleCache\.maxEntries must be an integer ≥ 1, got 0\.$/,
      ],
      [
        { ...base, routes: [{ name: 'x', match: 'GET /x', orderingKey: '/accounts/*' }] },
        /routes\[0\]\.orderingKey: a path template must name exactly one segment \{key\}/,
      ],
      [
        { ...base, corsOrigins: ['https://app.example', 'https://app.example/path'] },
        /^corsOrigins must list origins like "https:\/\/app\.example" \(no path\), got \["https:\/\/app\.example","https:\/\/app\.example\/path"\]\.$/,
      ],
      [
        { ...base, webhooks: { secrets: ['whsec_ok', 5] } },
        /^webhooks\.secrets must be an array of "whsec_…" secrets, got an array\.$/,
      ],
      [
        { ...base, routeDefaults: { health: { probeShare: 0 } } },
        /probeShare must be a number > 0 and ≤ 1, got 0/,
      ],
      [
        { ...base, routes: [{ name: 'x', match: 'GET /x', health: { revert: { errorRate: 0.5 } } }] },
        /routes\[0\]\.health\.revert thresholds must be at least as strict as .*trip \(hysteresis\)/,
      ],
      [
        { ...base, routeDefaults: { health: { openMs: 10_000, maxOpenMs: 5_000 } } },
        /maxOpenMs \(5000\) must be at least .*openMs \(10000\)/,
      ],
      [
        {
          ...base,
          routes: [
            { name: 'a', match: 'GET /x' },
            { name: 'a', match: 'GET /y' },
          ],
        },
        /routes\[1\]\.name "a" is taken/,
      ],
    ];
    for (const [raw, message] of cases) {
      assert.throws(
        () => buildConfig(raw),
        (error: unknown) => {
          assert.ok(error instanceof ConfigError);
          assert.match(error.message, message);
          return true;
        },
      );
    }
  });
});
