/**
 * The client SDK in a real browser (issue 10, item 3): `spillway/client`
 * bundled by esbuild for the browser platform, loaded by a page served from
 * one loopback port, calling a real gateway on another (cross-origin, the
 * page's origin in `corsOrigins`), in headless Chromium (Debian's
 * /usr/bin/chromium driven by playwright-core; nothing is downloaded). One
 * call is answered sync; one gets a 202 and is followed over SSE to its result;
 * one is preflighted while the upstream is down, Spillway answers the preflight,
 * and the call gets its 202 all the same.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { type Browser, chromium, type Page } from 'playwright-core';
import { resourceKey } from '../../src/policy/stale-if-error.ts';
import { eventOf, recordEvents } from '../support/events.ts';
import { startGateway, type TestGateway } from '../support/harness.ts';
import { type Received, TestUpstream } from '../support/test-upstream.ts';

const CHROMIUM = '/usr/bin/chromium';
const SDK_ENTRY = fileURLToPath(new URL('../../src/sdk/index.ts', import.meta.url));
const missing = existsSync(CHROMIUM)
  ? false
  : `${CHROMIUM} is not installed (apt-get install -y chromium; .ci/run installs it)`;

interface PageResult {
  status: number;
  body: string;
  accepted: { id: string; monitorUrl: string; resultUrl: string } | undefined;
  /** What onPartial saw (a stale copy or a fallback), read in the page. */
  partial: { status: number; body: string; cacheStatus: string | null; id: string } | undefined;
  requests: string[];
}

describe('spillway/client in headless Chromium, cross-origin', { skip: missing }, () => {
  let pageServer: Server;
  let pageOrigin: string;
  let upstream: TestUpstream;
  let gateway: TestGateway;
  let browser: Browser;
  let page: Page;
  let onEventStreamOpen: () => void = () => {};
  /** What the upstream answers to GET /prices (the partial-then-full case). */
  let prices = 'A';

  before(async () => {
    // platform 'browser': a node: import anywhere in the SDK fails the bundle.
    const bundle = await build({
      entryPoints: [SDK_ENTRY],
      bundle: true,
      format: 'esm',
      platform: 'browser',
      target: 'es2022',
      write: false,
      logLevel: 'silent',
    });
    const sdk = bundle.outputFiles[0]!.text;

    pageServer = createServer((req, res) => {
      if (req.url === '/sdk.js') {
        res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' });
        res.end(sdk);
        return;
      }
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end('<!doctype html><title>spillway/client</title><script type="module" src="/sdk.js"></script>');
    });
    await new Promise<void>((resolve) => pageServer.listen(0, '127.0.0.1', () => resolve()));
    pageOrigin = `http://127.0.0.1:${(pageServer.address() as AddressInfo).port}`;

    // The upstream speaks CORS for its own answers and preflights, as http-api.md asks of it.
    upstream = await new TestUpstream().start();
    const cors = { 'access-control-allow-origin': pageOrigin, vary: 'Origin' };
    upstream.behaviour = (req: Received) =>
      req.url === '/prices'
        ? { kind: 'respond', status: 200, headers: { ...cors, 'content-type': 'text/plain' }, body: prices }
        : req.method === 'OPTIONS'
          ? {
              kind: 'respond',
              status: 204,
              headers: {
                ...cors,
                'access-control-allow-methods': 'POST',
                'access-control-allow-headers': 'content-type, prefer, idempotency-key',
              },
            }
          : {
              kind: 'respond',
              status: 201,
              headers: { ...cors, 'content-type': 'application/json' },
              body: JSON.stringify({ paid: req.body.toString('utf8') }),
            };
    gateway = await startGateway({
      upstream: upstream.url,
      corsOrigins: [pageOrigin],
      // The upstream stays down for as long as the browser takes to open its event stream.
      // The sync case is about CORS and the SDK, not the budget: the harness's 500 ms ran out
      // on a loaded CI run, and the call was adopted (a 202 where the test expects the upstream's 201).
      routeDefaults: { maxAttempts: 1_000, budgetMs: 5_000, attemptTimeoutMs: 10_000 },
      routes: [{ name: 'prices', match: 'GET /prices', staleIfErrorMs: 60_000, health: { minCalls: 1_000 } }],
    });
    assert.notEqual(new URL(gateway.publicUrl).origin, pageOrigin, 'the page is on another origin');

    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
    page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    // The page tells the test when the SDK's event stream is open (see the failover test).
    await page.exposeFunction('eventStreamOpen', () => onEventStreamOpen());
    await page.goto(`${pageOrigin}/`);
    assert.deepEqual(errors, []);
  });

  after(async () => {
    await browser?.close();
    await gateway?.stop();
    await upstream?.stop();
    await new Promise((resolve) => pageServer?.close(resolve));
  });

  /** Runs the SDK in the page: one `client.fetch`, recording every request it sends. */
  function callFromPage(args: {
    url: string;
    init: { method: string; headers?: Record<string, string>; body?: string };
  }): Promise<PageResult> {
    return page.evaluate(
      async ({ sdk, url, init }) => {
        const { createClient } = (await import(sdk)) as typeof import('../../src/sdk/index.ts');
        const page = globalThis as unknown as { eventStreamOpen(): Promise<void> };
        const requests: string[] = [];
        let accepted: PageResult['accepted'];
        let partial: Promise<PageResult['partial']> | undefined;
        const client = createClient({
          // Polling this slow would outlast the call's timeout: the 202 must be followed over SSE.
          pollIntervalMs: 600_000,
          timeoutMs: 30_000,
          fetch: async (input, options) => {
            const href = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
            requests.push(`${options?.method ?? 'GET'} ${new URL(href).pathname}`);
            const res = await fetch(input, options);
            if (href.endsWith('/events') && res.status === 200) await page.eventStreamOpen();
            return res;
          },
          onAccepted: (op) => {
            accepted = { id: op.id, monitorUrl: op.monitorUrl, resultUrl: op.resultUrl };
          },
          onPartial: (res, op) => {
            const cacheStatus = res.headers.get('cache-status');
            partial = res.text().then((body) => ({ status: res.status, body, cacheStatus, id: op.id }));
          },
        });
        const res = await client.fetch(url, init);
        return { status: res.status, body: await res.text(), accepted, partial: await partial, requests };
      },
      { sdk: '/sdk.js', ...args },
    );
  }

  it('a call the upstream answers at once: its answer, sync (the upstream answers the preflight)', async () => {
    const result = await callFromPage({
      url: `${gateway.publicUrl}/payments`,
      init: {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ amount: 42 }),
      },
    });
    assert.equal(result.status, 201, result.body);
    assert.deepEqual(JSON.parse(result.body), { paid: '{"amount":42}' });
    assert.equal(result.accepted, undefined);
    assert.deepEqual(result.requests, ['POST /payments']);
    assert.ok(
      upstream.received.some((r) => r.method === 'OPTIONS'),
      'the browser sent its preflight (to the upstream, through Spillway)',
    );
  });

  it('a call that fails over: 202, followed over SSE to the upstream answer once replayed', async () => {
    // Down: the call fails over. A plain-text POST is a "simple" request, so no preflight is sent
    // (the next test sends one).
    await upstream.stop();
    const upstreamBack = new Promise<void>((resolve) => {
      onEventStreamOpen = resolve;
    }).then(() => upstream.start());
    const result = await callFromPage({
      url: `${gateway.publicUrl}/payments`,
      init: { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'amount=7' },
    });
    await upstreamBack;
    assert.equal(result.status, 201, result.body);
    assert.deepEqual(JSON.parse(result.body), { paid: 'amount=7' });
    assert.ok(result.accepted, 'onAccepted was called');
    assert.equal(new URL(result.accepted.monitorUrl).origin, new URL(gateway.publicUrl).origin);
    const { id } = result.accepted;
    assert.deepEqual(result.requests, [
      'POST /payments',
      `GET /_spillway/operations/${id}/events`,
      `GET /_spillway/operations/${id}/result`,
    ]);
    assert.equal((await gateway.store.get(id))?.status, 'Succeeded');
  });

  it('a preflighted call (JSON body, Prefer, Idempotency-Key) while the upstream is down: Spillway answers the preflight, the call gets its 202', async () => {
    // /orders, not /payments: Chromium may still hold the upstream's preflight answer for /payments.
    await upstream.stop();
    const seen = recordEvents(gateway.events);
    let restarting = false;
    const upstreamBack = new Promise<void>((resolve) => {
      onEventStreamOpen = resolve;
    }).then(() => {
      restarting = true;
      return upstream.start();
    });
    // The upstream comes back even when the call fails, for the tests after this one.
    const result = await callFromPage({
      url: `${gateway.publicUrl}/orders`,
      init: {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          prefer: 'respond-async',
          'idempotency-key': `"${randomUUID()}"`,
        },
        body: JSON.stringify({ amount: 9 }),
      },
    }).finally(() => (restarting ? upstreamBack : upstream.start()));
    assert.equal(result.status, 201, result.body);
    assert.deepEqual(JSON.parse(result.body), { paid: '{"amount":9}' });
    assert.ok(result.accepted, 'onAccepted was called: the preflight passed and the POST got its 202');
    const preflight = await eventOf(gateway.events, seen, 'answer:not-captured');
    assert.equal(preflight.route, 'default');
    const { id } = result.accepted;
    assert.equal((await gateway.store.get(id))?.request.method, 'POST');
    const { deadLettered: _, ...counts } = await gateway.store.counts();
    const operations = Object.values(counts).reduce((a, b) => a + b, 0);
    assert.equal(operations, 2, 'the two calls that failed over, and no preflight');
  });

  it('a read the upstream cannot answer: onPartial sees the stale copy A, the call resolves with B', async () => {
    const first = await callFromPage({ url: `${gateway.publicUrl}/prices`, init: { method: 'GET' } });
    assert.equal(first.body, 'A');
    assert.equal(first.partial, undefined);
    const kept = resourceKey({ tenant: null, method: 'GET', path: '/prices', query: '', headers: [] });
    for (const until = Date.now() + 10_000; (await gateway.store.staleCopies(kept)).length === 0; ) {
      assert.ok(Date.now() < until, 'the copy is kept within 10 s');
      await new Promise((r) => setTimeout(r, 20));
    }
    await upstream.stop();
    prices = 'B';
    const upstreamBack = new Promise<void>((resolve) => {
      onEventStreamOpen = resolve;
    }).then(() => upstream.start());
    const result = await callFromPage({ url: `${gateway.publicUrl}/prices`, init: { method: 'GET' } });
    await upstreamBack;
    assert.equal(result.status, 200);
    assert.equal(result.body, 'B');
    assert.deepEqual(result.partial, {
      status: 200,
      body: 'A',
      cacheStatus: 'Spillway; hit; detail=stale-if-error',
      id: result.partial?.id,
    });
    assert.match(result.partial?.id ?? '', /^op_/);
    assert.equal(result.accepted, undefined, 'no 202: the stale copy came instead');
  });
});
