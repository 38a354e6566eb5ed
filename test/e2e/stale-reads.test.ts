/**
 * Reads that never wait (issue 13), over real loopback HTTP on both stores: a
 * GET's last 2xx answer is kept, and while the upstream cannot answer the same
 * GET gets it at once (Age, Cache-Status, and the Operation-Location of a
 * refresh whose result is the fresh answer and which refreshes the copy);
 * Vary, Cache-Control no-store, the bounds and tenants are respected; a
 * route's fallback answers when nothing is kept; Prefer: respond-async and
 * max-stale=0 keep the 202.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { systemClock } from '../../src/clock.ts';
import { LifecycleEvents } from '../../src/events/lifecycle.ts';
import { callerTenant } from '../../src/gateway/access.ts';
import { resourceKey } from '../../src/policy/stale-if-error.ts';
import { Retention } from '../../src/workers/retention.ts';
import { eventOf, recordEvents } from '../support/events.ts';
import { jsonOf, operationIdOf, startGateway, type TestGateway } from '../support/harness.ts';
import { freshSchema, skipWithoutPostgres, type TestSchema } from '../support/postgres.ts';
import { promtool, sample } from '../support/prometheus.ts';
import { type Behaviour, TestUpstream } from '../support/test-upstream.ts';

const STALE = 'Spillway; hit; detail=stale-if-error';
const FALLBACK = 'Spillway; fwd=miss; detail=fallback';
// One failed sync attempt or replay must not trip the route: these tests are about the answers.
const steady = { minCalls: 1_000, hungCalls: 1_000 };

const skipPostgres = await skipWithoutPostgres('the stale-read tests on PostgreSQL');
const schemas: TestSchema[] = [];
after(async () => {
  for (const db of schemas) await db.drop();
});

/** Waits, with a deadline, until the store keeps a copy of `path?query` whose body is `body`. */
async function copyKept(gw: TestGateway, path: string, body: string, tenant: string | null = null) {
  const [p, query = ''] = path.split('?');
  const resource = resourceKey({ tenant, method: 'GET', path: p!, query, headers: [] });
  const until = Date.now() + 10_000;
  for (;;) {
    const copies = await gw.store.staleCopies(resource);
    if (copies.some((c) => Buffer.from(c.response.body).toString() === body)) return;
    if (Date.now() > until) throw new Error(`no copy "${body}" of ${path} after 10 s`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function plain(body: string, headers: Record<string, string> = {}): Behaviour {
  return { kind: 'respond', status: 200, headers: { 'content-type': 'text/plain', ...headers }, body };
}

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`stale-if-error and fallbacks (${engine})`, {
    skip: engine === 'postgres' && skipPostgres,
  }, () => {
    async function gateway(upstream: TestUpstream, raw: Record<string, unknown>) {
      const store = engine === 'postgres' ? freshSchema('spillway_stale_test') : undefined;
      if (store) schemas.push(store);
      return startGateway({ upstream: upstream.url, ...(store ? { store: store.url } : {}), ...raw });
    }
    const pricesRoute = (extra: Record<string, unknown> = {}) => ({
      routes: [{ name: 'prices', match: 'GET /prices', staleIfErrorMs: 60_000, health: steady, ...extra }],
      routeDefaults: { health: steady },
    });

    it('answers A at once while the upstream is down, then the refresh brings B, and the next GET is B sync', async () => {
      await using upstream = await new TestUpstream().start();
      upstream.behaviour = () => plain('A', { age: '3' });
      await using gw = await gateway(upstream, pricesRoute());
      const first = await fetch(`${gw.publicUrl}/prices?sku=1`);
      assert.equal(first.status, 200);
      assert.equal(await first.text(), 'A');
      assert.equal(first.headers.get('cache-status'), null, 'a fresh answer is no cache hit');
      await copyKept(gw, '/prices?sku=1', 'A');

      await upstream.stop();
      const started = Date.now();
      const stale = await fetch(`${gw.publicUrl}/prices?sku=1`);
      assert.ok(Date.now() - started < 2_000, 'answered at once, not after a budget');
      assert.equal(stale.status, 200);
      assert.equal(await stale.text(), 'A');
      assert.equal(stale.headers.get('content-type'), 'text/plain');
      assert.equal(stale.headers.get('cache-status'), STALE);
      const age = Number(stale.headers.get('age'));
      assert.ok(Number.isInteger(age) && age >= 3, `Age counts the upstream's own (got ${age})`);
      assert.match(stale.headers.get('operation-location') ?? '', /\/_spillway\/operations\/op_/);
      assert.match(stale.headers.get('spillway-failover-reason') ?? '', /unreachable/);
      const id = operationIdOf(stale);

      upstream.behaviour = () => plain('B');
      await upstream.start();
      const op = await gw.settled(id);
      assert.equal(op.status, 'Succeeded');
      const result = await fetch(`${gw.publicUrl}/_spillway/operations/${id}/result`);
      assert.equal(result.status, 200);
      assert.equal(await result.text(), 'B');
      await copyKept(gw, '/prices?sku=1', 'B');

      const next = await fetch(`${gw.publicUrl}/prices?sku=1`);
      assert.equal(next.status, 200);
      assert.equal(await next.text(), 'B');
      assert.equal(next.headers.get('cache-status'), null, 'answered sync by the upstream');

      // The refresh refreshed the copy: down again, the stale answer is B.
      await upstream.stop();
      const again = await fetch(`${gw.publicUrl}/prices?sku=1`);
      assert.equal(await again.text(), 'B');
      assert.equal(again.headers.get('cache-status'), STALE);
    });

    it('answers a stale copy when the upstream refuses (503) and when the budget is spent', async () => {
      await using upstream = await new TestUpstream().start();
      upstream.behaviour = () => plain('A');
      await using gw = await gateway(upstream, pricesRoute({ budgetMs: 300 }));
      await (await fetch(`${gw.publicUrl}/prices`)).text();
      await copyKept(gw, '/prices', 'A');
      upstream.behaviour = () => ({ kind: 'respond', status: 503, body: 'busy' });
      const refused = await fetch(`${gw.publicUrl}/prices`);
      assert.equal(refused.status, 200);
      assert.equal(await refused.text(), 'A');
      assert.equal(refused.headers.get('cache-status'), STALE);
      upstream.behaviour = () => ({ kind: 'delay', ms: 1_500, and: plain('late') });
      const slow = await fetch(`${gw.publicUrl}/prices`);
      assert.equal(slow.status, 200);
      assert.equal(await slow.text(), 'A');
      // The adopted attempt carries on as the refresh: its result is the late answer.
      const op = await gw.settled(operationIdOf(slow));
      assert.equal(Buffer.from(op.result!.body).toString(), 'late');
    });

    it('retention deletes copies older than staleIfErrorMs', async () => {
      await using upstream = await new TestUpstream().start();
      upstream.behaviour = () => plain('A');
      await using gw = await gateway(upstream, pricesRoute({ staleIfErrorMs: 5_000 }));
      await (await fetch(`${gw.publicUrl}/prices`)).text();
      await copyKept(gw, '/prices', 'A');
      const resource = resourceKey({ tenant: null, method: 'GET', path: '/prices', query: '', headers: [] });
      const fail = (error: unknown) => assert.fail(String(error));
      await new Retention(gw.store, systemClock, 60_000, fail).runOnce();
      assert.equal((await gw.store.staleCopies(resource)).length, 1, 'still young enough');
      const later = { ...systemClock, now: () => Date.now() + 6_000 };
      await new Retention(gw.store, later, 60_000, fail).runOnce();
      assert.deepEqual(await gw.store.staleCopies(resource), []);
    });

    it('tells stale answers, fallbacks and evictions as lifecycle events and metrics (promtool check metrics)', async () => {
      await using upstream = await new TestUpstream().start();
      upstream.behaviour = (req) => plain(`price ${req.url}`);
      const events = new LifecycleEvents();
      const seen = recordEvents(events);
      const store = engine === 'postgres' ? freshSchema('spillway_stale_test') : undefined;
      if (store) schemas.push(store);
      await using gw = await startGateway(
        {
          upstream: upstream.url,
          ...(store ? { store: store.url } : {}),
          ...pricesRoute({ fallback: { body: 'later' } }),
          staleCache: { maxEntries: 1 },
        },
        undefined,
        { events },
      );
      for (const sku of [1, 2]) {
        await (await fetch(`${gw.publicUrl}/prices?sku=${sku}`)).text();
        await copyKept(gw, `/prices?sku=${sku}`, `price /prices?sku=${sku}`);
      }
      await eventOf(events, seen, 'stale-copy:evicted', (e) => e.route === 'prices' && e.evicted === 1);
      await upstream.stop();
      const stale = await fetch(`${gw.publicUrl}/prices?sku=2`);
      await stale.text();
      const fallback = await fetch(`${gw.publicUrl}/prices?sku=1`);
      assert.equal(await fallback.text(), 'later');
      const hit = await eventOf(events, seen, 'answer:stale', (e) => e.route === 'prices');
      assert.equal(hit.operationId, operationIdOf(stale));
      assert.equal(hit.why, 'upstream-unreachable');
      const miss = await eventOf(events, seen, 'answer:fallback', (e) => e.route === 'prices');
      assert.equal(miss.fallbackFrom, 'static');
      const text = await (await fetch(`http://127.0.0.1:${gw.adminPort}/metrics`)).text();
      assert.equal(sample(text, 'spillway_partial_answers_total{route="prices",source="stale"}'), 1);
      assert.equal(sample(text, 'spillway_partial_answers_total{route="prices",source="fallback"}'), 1);
      assert.equal(sample(text, 'spillway_stale_copies_evicted_total{route="prices"}'), 1);
      promtool(['check', 'metrics'], text);
    });

    it('keeps a copy per variant of the fields Vary names', async () => {
      await using upstream = await new TestUpstream().start();
      upstream.behaviour = (req) =>
        plain(`hello ${req.headers['accept-language']}`, { vary: 'Accept-Language' });
      await using gw = await gateway(upstream, pricesRoute());
      for (const lang of ['en', 'fr']) {
        await (await fetch(`${gw.publicUrl}/prices`, { headers: { 'accept-language': lang } })).text();
        await copyKept(gw, '/prices', `hello ${lang}`);
      }
      await upstream.stop();
      for (const lang of ['en', 'fr']) {
        const res = await fetch(`${gw.publicUrl}/prices`, { headers: { 'accept-language': lang } });
        assert.equal(res.status, 200);
        assert.equal(await res.text(), `hello ${lang}`);
        assert.equal(res.headers.get('vary'), 'Accept-Language, Prefer');
      }
      const other = await fetch(`${gw.publicUrl}/prices`, { headers: { 'accept-language': 'de' } });
      assert.equal(other.status, 202, 'no copy of this variant: the 202 as before');
      await other.text();
    });

    it('respects Cache-Control: no-store and private, unless the route keeps private answers', async () => {
      await using upstream = await new TestUpstream().start();
      upstream.behaviour = (req) =>
        plain(`secret ${req.url}`, {
          'cache-control': req.url.startsWith('/mine') ? 'private, max-age=60' : 'no-store',
        });
      await using gw = await gateway(upstream, {
        routes: [
          { name: 'prices', match: 'GET /prices', staleIfErrorMs: 60_000, health: steady },
          {
            name: 'mine',
            match: 'GET /mine',
            staleIfErrorMs: 60_000,
            staleKeepsPrivate: true,
            health: steady,
          },
        ],
        routeDefaults: { health: steady },
      });
      await (await fetch(`${gw.publicUrl}/prices`)).text();
      await (await fetch(`${gw.publicUrl}/mine`)).text();
      await copyKept(gw, '/mine', 'secret /mine');
      await upstream.stop();
      const refused = await fetch(`${gw.publicUrl}/prices`);
      assert.equal(refused.status, 202, 'a no-store answer was not kept');
      await refused.text();
      const kept = await fetch(`${gw.publicUrl}/mine`);
      assert.equal(kept.status, 200);
      assert.equal(await kept.text(), 'secret /mine');
    });

    it('never answers one tenant with another’s copy', async () => {
      await using upstream = await new TestUpstream().start();
      upstream.behaviour = (req) => plain(`for ${req.headers.authorization}`);
      await using gw = await gateway(upstream, pricesRoute());
      const alice = { authorization: 'Bearer alice' };
      await (await fetch(`${gw.publicUrl}/prices`, { headers: alice })).text();
      await copyKept(gw, '/prices', 'for Bearer alice', callerTenant(alice, 'authorization'));
      await upstream.stop();
      const stale = await fetch(`${gw.publicUrl}/prices`, { headers: alice });
      assert.equal(stale.status, 200);
      assert.equal(await stale.text(), 'for Bearer alice');
      const bob = await fetch(`${gw.publicUrl}/prices`, { headers: { authorization: 'Bearer bob' } });
      assert.equal(bob.status, 202, 'bob has no copy of his own');
      await bob.text();
      const anonymous = await fetch(`${gw.publicUrl}/prices`);
      assert.equal(anonymous.status, 202);
      await anonymous.text();
    });

    it('evicts the least recently used copy past staleCache.maxEntries', async () => {
      await using upstream = await new TestUpstream().start();
      upstream.behaviour = (req) => plain(`price ${req.url}`);
      await using gw = await gateway(upstream, { ...pricesRoute(), staleCache: { maxEntries: 2 } });
      for (const sku of [1, 2, 3]) {
        await (await fetch(`${gw.publicUrl}/prices?sku=${sku}`)).text();
        await copyKept(gw, `/prices?sku=${sku}`, `price /prices?sku=${sku}`);
      }
      await upstream.stop();
      const evicted = await fetch(`${gw.publicUrl}/prices?sku=1`);
      assert.equal(evicted.status, 202);
      await evicted.text();
      for (const sku of [2, 3]) {
        const res = await fetch(`${gw.publicUrl}/prices?sku=${sku}`);
        assert.equal(res.status, 200);
        assert.equal(await res.text(), `price /prices?sku=${sku}`);
      }
    });

    it('keeps the 202 for Prefer: respond-async and Cache-Control: max-stale=0; a copy older than max-stale is not used', async () => {
      await using upstream = await new TestUpstream().start();
      upstream.behaviour = () => plain('A', { age: '120' });
      await using gw = await gateway(upstream, pricesRoute({ staleIfErrorMs: 600_000 }));
      await (await fetch(`${gw.publicUrl}/prices`)).text();
      await copyKept(gw, '/prices', 'A');
      await upstream.stop();
      for (const headers of [
        { prefer: 'respond-async' },
        { 'cache-control': 'max-stale=0' },
        { 'cache-control': 'max-stale=60' },
      ]) {
        const res = await fetch(`${gw.publicUrl}/prices`, { headers });
        assert.equal(res.status, 202, JSON.stringify(headers));
        await res.text();
      }
      const accepted = await fetch(`${gw.publicUrl}/prices`, {
        headers: { 'cache-control': 'max-stale=600' },
      });
      assert.equal(accepted.status, 200);
      assert.equal(await accepted.text(), 'A');
    });

    it('keeps the 202 for a read held behind earlier requests of its ordering key', async () => {
      await using upstream = await new TestUpstream().start();
      upstream.behaviour = () => plain('A');
      await using gw = await gateway(upstream, {
        routes: [
          {
            name: 'account',
            match: '* /accounts/:id',
            orderingKey: 'x-account',
            staleIfErrorMs: 60_000,
            health: steady,
          },
        ],
        routeDefaults: { health: steady },
        replay: { concurrency: 0 },
      });
      const key = { 'x-account': 'acc-1' };
      await (await fetch(`${gw.publicUrl}/accounts/1`, { headers: key })).text();
      await copyKept(gw, '/accounts/1', 'A');
      await upstream.stop();
      // A write is captured for the key (no replay runs here), so the next read waits behind it.
      const write = await fetch(`${gw.publicUrl}/accounts/1`, { method: 'PUT', headers: key, body: 'x' });
      assert.equal(write.status, 202);
      await write.text();
      const read = await fetch(`${gw.publicUrl}/accounts/1`, { headers: key });
      assert.equal(read.status, 202, 'no stale copy from before the write');
      assert.match(read.headers.get('spillway-failover-reason') ?? '', /ordering key/);
      await read.text();
    });

    it('answers the fallback when nothing is kept: the upstream path first, else the configured answer', async () => {
      await using upstream = await new TestUpstream().start();
      upstream.behaviour = (req) =>
        req.url.startsWith('/stock/cached')
          ? plain(`cached ${req.url}`)
          : { kind: 'respond', status: 503, body: 'busy' };
      await using gw = await gateway(upstream, {
        routes: [
          {
            name: 'stock',
            match: 'GET /stock',
            staleIfErrorMs: 60_000,
            fallback: { path: '/stock/cached', body: { available: 'unknown' } },
            health: steady,
          },
          {
            name: 'search',
            match: 'GET /search',
            fallback: { status: 200, body: 'no results yet' },
            health: steady,
          },
        ],
        routeDefaults: { health: steady },
      });
      const fromPath = await fetch(`${gw.publicUrl}/stock?sku=9`);
      assert.equal(fromPath.status, 200);
      assert.equal(await fromPath.text(), 'cached /stock/cached?sku=9');
      assert.equal(fromPath.headers.get('cache-status'), FALLBACK);
      assert.match(fromPath.headers.get('operation-location') ?? '', /\/_spillway\/operations\/op_/);

      await upstream.stop();
      const configured = await fetch(`${gw.publicUrl}/stock?sku=9`);
      assert.equal(configured.status, 200);
      assert.deepEqual(await jsonOf(configured), { available: 'unknown' });
      assert.equal(configured.headers.get('content-type'), 'application/json');
      assert.equal(configured.headers.get('cache-status'), FALLBACK);
      assert.equal(configured.headers.get('cache-control'), 'no-store');
      const id = operationIdOf(configured);

      const search = await fetch(`${gw.publicUrl}/search?q=x`);
      assert.equal(search.status, 200);
      assert.equal(await search.text(), 'no results yet');

      upstream.behaviour = (req) => plain(`fresh ${req.url}`);
      await upstream.start();
      const op = await gw.settled(id);
      assert.equal(Buffer.from(op.result!.body).toString(), 'fresh /stock?sku=9');
    });
  });
}
