/**
 * RFC 7240 conformance, the table of ../shared/research/http-standards.md §1.4,
 * each test named by its row id. The upstream answers after D (3 s when the
 * row needs a slow upstream, 0.2 s otherwise).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { jsonOf, startGateway, type TestGateway } from '../support/harness.ts';
import { TestUpstream } from '../support/test-upstream.ts';

describe('Prefer (RFC 7240) conformance, http-standards.md §1.4', { concurrency: true }, () => {
  let upstream: TestUpstream;
  let gw: TestGateway;
  before(async () => {
    upstream = await new TestUpstream().start();
    upstream.behaviour = (req) => ({
      kind: 'delay',
      ms: req.url.startsWith('/slow') ? 3_000 : 200,
      and: { kind: 'respond', status: 201, headers: { 'content-type': 'application/json' }, body: '{"x":1}' },
    });
    gw = await startGateway({
      upstream: upstream.url,
      routeDefaults: { budgetMs: 2_000, attemptTimeoutMs: 5_000 },
      routes: [
        { name: 'sync-only', match: '* /fixed/*', failover: false, budgetMs: 2_000, attemptTimeoutMs: 5_000 },
      ],
    });
  });
  after(async () => {
    await gw.stop();
    await upstream.stop();
  });

  const post = (path: string, prefer?: string | string[]) => {
    const headers = new Headers();
    for (const line of [prefer ?? []].flat()) headers.append('prefer', line);
    return fetch(`${gw.publicUrl}${path}`, { method: 'POST', headers, body: '{}' });
  };
  const timed = async (path: string, prefer?: string | string[]) => {
    const started = performance.now();
    const res = await post(path, prefer);
    return { res, ms: performance.now() - started };
  };
  const assertAsyncAtOneSecond = ({ res, ms }: { res: Response; ms: number }) => {
    assert.equal(res.status, 202);
    assert.ok(ms >= 950 && ms < 1_700, `202 after ${Math.round(ms)} ms, expected about 1 s`);
    assert.ok(res.headers.get('location'));
    assert.ok(res.headers.get('operation-location'));
    assert.match(res.headers.get('retry-after') ?? '', /^\d+$/);
    assert.match(res.headers.get('preference-applied') ?? '', /respond-async/);
    assert.match(res.headers.get('vary') ?? '', /Prefer/);
  };

  it('P1: respond-async, wait=1 with a slow upstream → 202 after about 1 s with the monitor headers', async () => {
    assertAsyncAtOneSecond(await timed('/slow/p1', 'respond-async, wait=1'));
  });

  it('P2: respond-async, wait=5 with a fast upstream → its answer, no Preference-Applied', async () => {
    const res = await post('/fast/p2', 'respond-async, wait=5');
    assert.equal(res.status, 201);
    assert.equal(await res.text(), '{"x":1}');
    assert.equal(res.headers.get('preference-applied'), null);
    assert.match(res.headers.get('vary') ?? '', /Prefer/);
  });

  it('P3: no Prefer → Vary: Prefer all the same', async () => {
    const res = await post('/fast/p3');
    assert.equal(res.status, 201);
    assert.match(res.headers.get('vary') ?? '', /Prefer/);
  });

  it('P4: names are case-insensitive', async () => {
    assertAsyncAtOneSecond(await timed('/slow/p4', 'RESPOND-ASYNC, WAIT=1'));
  });

  it('P5: preferences spread over two field lines', async () => {
    assertAsyncAtOneSecond(await timed('/slow/p5', ['respond-async', 'wait=1']));
  });

  it('P6: the first wait wins', async () => {
    assertAsyncAtOneSecond(await timed('/slow/p6', 'wait=1, wait=10, respond-async'));
  });

  for (const [n, bad] of [
    ['a', 'abc'],
    ['b', '-1'],
    ['c', '1.5'],
  ] as const) {
    it(`P7${n}: wait=${bad} is ignored, never an error: the route budget (2 s) applies`, async () => {
      const { res, ms } = await timed('/slow/p7', `wait=${bad}, respond-async`);
      assert.equal(res.status, 202);
      assert.ok(ms >= 1_900, `202 after ${Math.round(ms)} ms, expected the 2 s route budget`);
    });
  }

  it('P8: unknown preferences and parameters are ignored; Preference-Applied names only respond-async', async () => {
    const { res } = await timed('/slow/p8', 'foo=bar; baz, respond-async; x="a,b;c", wait=1');
    assert.equal(res.status, 202);
    assert.equal(res.headers.get('preference-applied'), 'respond-async');
  });

  it('P9: respond-async="" counts as respond-async', async () => {
    assertAsyncAtOneSecond(await timed('/slow/p9', 'respond-async="", wait=1'));
  });

  it('P10: a quoted wait value is accepted', async () => {
    assertAsyncAtOneSecond(await timed('/slow/p10', 'wait="1", respond-async'));
  });

  it('P11: respond-async, wait=0 → 202 at once, no sync attempt', async () => {
    const before = upstream.received.filter((r) => r.url === '/fast/p11').length;
    const { res, ms } = await timed('/fast/p11', 'respond-async, wait=0');
    assert.equal(res.status, 202);
    assert.ok(ms < 500, `202 after ${Math.round(ms)} ms`);
    assert.equal(upstream.received.filter((r) => r.url === '/fast/p11').length, before, 'no sync hit');
  });

  it('P12: wait=1 alone is a timeout hint → 504 problem at about 1 s, never 202', async () => {
    const { res, ms } = await timed('/slow/p12', 'wait=1');
    assert.equal(res.status, 504);
    assert.equal(res.headers.get('content-type'), 'application/problem+json');
    assert.ok(ms >= 950 && ms < 1_700, `504 after ${Math.round(ms)} ms`);
    assert.equal((await jsonOf(res)).type, 'https://spillway.dev/problems/upstream-timeout');
  });

  it('P13: return=minimal → 202 with an empty body; both preferences applied', async () => {
    const res = await post('/slow/p13', 'respond-async, return=minimal, wait=1');
    assert.equal(res.status, 202);
    assert.equal(res.headers.get('content-length'), '0');
    assert.equal(await res.text(), '');
    assert.equal(res.headers.get('preference-applied'), 'respond-async, return=minimal');
  });

  it('P14: return=minimal, return=representation → minimal (first wins)', async () => {
    const res = await post('/slow/p14', 'return=minimal, return=representation, respond-async, wait=1');
    assert.equal(res.status, 202);
    assert.equal(await res.text(), '');
  });

  it('P15: return and handling reach the upstream; respond-async and wait do not', async () => {
    await post('/fast/p15', 'respond-async, return=representation, handling=strict, wait=5');
    const seen = upstream.received.find((r) => r.url === '/fast/p15');
    assert.equal(seen?.headers.prefer, 'return=representation, handling=strict');
  });

  it('P16: respond-async on a route without failover → its sync answer or 504, no Preference-Applied', async () => {
    const res = await post('/fixed/p16', 'respond-async');
    assert.equal(res.status, 201);
    assert.equal(res.headers.get('preference-applied'), null);
    const slow = await fetch(`${gw.publicUrl}/fixed/slow`, {
      method: 'POST',
      headers: { prefer: 'respond-async' },
    });
    assert.ok([201, 504].includes(slow.status));
    assert.notEqual(slow.status, 202);
    assert.equal(slow.headers.get('preference-applied'), null);
  });
});
