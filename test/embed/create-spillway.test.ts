/**
 * createSpillway with an in-process upstream (a plain fetch function): the
 * gateway's guarantees through `fetch` and through `handle` on a real
 * loopback server, replays that call the function again, adoption of a call
 * that outlives the budget, retry safety, Idempotency-Key, SSE, close().
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { ConfigError } from '../../src/config/config.ts';
import { createSpillway } from '../../src/embed/create-spillway.ts';
import { fromNodeHandler } from '../../src/embed/in-memory-http.ts';
import { embedded } from '../support/embedded.ts';
import { jsonOf, operationIdOf, tempDir } from '../support/harness.ts';
import { TestUpstream } from '../support/test-upstream.ts';

const post = (path: string, body: string, headers: Record<string, string> = {}) =>
  new Request(`http://app.test${path}`, { method: 'POST', body, headers });

/** A handler whose behaviour the test sets, counting its calls by body. */
function handler() {
  const calls: string[] = [];
  let behave: (body: string) => Promise<Response> = async (body) =>
    Response.json({ paid: body }, { status: 201 });
  const fn = async (request: Request) => {
    const body = await request.text();
    calls.push(body);
    return behave(body);
  };
  return {
    fn,
    calls,
    count: (body: string) => calls.filter((b) => b === body).length,
    set: (b: typeof behave) => {
      behave = b;
    },
  };
}

describe('createSpillway with a function upstream', () => {
  it('answers sync when the function is fast, through fetch and through handle on a real server', async () => {
    const h = handler();
    await using spillway = embedded({ upstream: h.fn });
    const res = await spillway.fetch(post('/payments?x=1', 'a'));
    assert.equal(res.status, 201);
    assert.deepEqual(await res.json(), { paid: 'a' });
    assert.equal(res.headers.get('vary'), 'Prefer');

    const server = createServer(spillway.handle);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const viaServer = await fetch(`${url}/payments`, { method: 'POST', body: 'b' });
      assert.equal(viaServer.status, 201);
      assert.deepEqual(await viaServer.json(), { paid: 'b' });
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
    assert.deepEqual(h.calls, ['a', 'b']);
  });

  it('the function sees the method, path, query and headers, and Via', async () => {
    let seen: Request | undefined;
    await using spillway = embedded({
      upstream: async (request) => {
        seen = request;
        return new Response('ok');
      },
    });
    await spillway.fetch(
      new Request('http://app.test/orders/7?expand=items', {
        method: 'PUT',
        headers: { 'x-a': '1' },
        body: 'x',
      }),
    );
    assert.ok(seen);
    assert.equal(seen.method, 'PUT');
    assert.equal(new URL(seen.url).pathname, '/orders/7');
    assert.equal(new URL(seen.url).search, '?expand=items');
    assert.equal(seen.headers.get('x-a'), '1');
    assert.equal(seen.headers.get('via'), '1.1 spillway');
  });

  it('a refusal (503) is captured with a 202, and the replay calls the function again to completion', async () => {
    const h = handler();
    h.set(async () => new Response('busy', { status: 503 }));
    await using spillway = embedded({ upstream: h.fn });
    const res = await spillway.fetch(post('/payments', 'p1'));
    assert.equal(res.status, 202);
    const id = operationIdOf(res);
    assert.equal(res.headers.get('operation-location'), `/_spillway/operations/${id}`);
    while (h.count('p1') < 2) await new Promise((r) => setTimeout(r, 10));
    h.set(async (body) => Response.json({ paid: body }, { status: 201 }));
    const monitor = await spillway.settled(id);
    assert.equal(monitor.status, 'Succeeded');
    const result = await spillway.fetch(new Request(`http://app.test/_spillway/operations/${id}/result`));
    assert.equal(result.status, 201);
    assert.deepEqual(await result.json(), { paid: 'p1' });
  });

  it('a call that outlives the budget is adopted: 202 at once, and its own answer completes the operation', async () => {
    const h = handler();
    let finish: () => void = () => {};
    h.set(async (body) => {
      await new Promise<void>((resolve) => {
        finish = resolve;
      });
      return Response.json({ paid: body }, { status: 201 });
    });
    await using spillway = embedded({ upstream: h.fn, config: { routeDefaults: { budgetMs: 100 } } });
    const res = await spillway.fetch(post('/payments', 'slow'));
    assert.equal(res.status, 202);
    assert.match(res.headers.get('spillway-failover-reason') ?? '', /adopted/);
    const id = operationIdOf(res);
    assert.equal((await spillway.json(`/_spillway/operations/${id}`)).status, 'Running');
    finish();
    const monitor = await spillway.settled(id);
    assert.equal(monitor.status, 'Succeeded');
    assert.equal(h.count('slow'), 1, 'the adopted call is not sent again');
    const result = await spillway.fetch(new Request(`http://app.test/_spillway/operations/${id}/result`));
    assert.deepEqual(await result.json(), { paid: 'slow' });
  });

  it('a function that throws on a POST may have had effects: captured, never called again, dead-lettered', async () => {
    const h = handler();
    h.set(async () => {
      throw new Error('secret database password in this message');
    });
    await using spillway = embedded({ upstream: h.fn });
    const res = await spillway.fetch(post('/payments', 'boom'));
    assert.equal(res.status, 202);
    const monitor = await spillway.settled(operationIdOf(res));
    assert.equal(monitor.status, 'Failed');
    assert.equal(monitor.error.code, 'outcome-unknown');
    assert.equal(monitor.error.deadLettered, true);
    assert.equal(h.count('boom'), 1);
    assert.doesNotMatch(
      JSON.stringify(monitor),
      /password/,
      "the function's own message stays out of the operation",
    );
  });

  it('a route that honours Idempotency-Key replays a thrown call with the same key', async () => {
    const keys: string[] = [];
    let fail = true;
    await using spillway = embedded({
      upstream: async (request) => {
        keys.push(request.headers.get('idempotency-key') ?? '');
        if (fail) {
          fail = false;
          throw new Error('lost');
        }
        return new Response('done', { status: 201 });
      },
      config: { routes: [{ name: 'keyed', match: 'POST /keyed', honoursIdempotencyKey: true }] },
    });
    const res = await spillway.fetch(post('/keyed', 'k'));
    assert.equal(res.status, 202);
    const monitor = await spillway.settled(operationIdOf(res));
    assert.equal(monitor.status, 'Succeeded');
    assert.equal(monitor.attempts, 2);
    assert.equal(keys.length, 2);
    assert.ok(keys[0]);
    assert.equal(keys[0], keys[1]);
  });

  it("a client's Idempotency-Key gets the first answer again, without calling the function twice", async () => {
    const h = handler();
    await using spillway = embedded({ upstream: h.fn });
    const first = await spillway.fetch(post('/payments', 'once', { 'idempotency-key': 'abc' }));
    const again = await spillway.fetch(post('/payments', 'once', { 'idempotency-key': 'abc' }));
    assert.equal(first.status, 201);
    assert.equal(again.status, 201);
    assert.deepEqual(await again.json(), await first.json());
    assert.equal(h.count('once'), 1);
  });

  it('streams the events of an operation over SSE through fetch, as they happen', async () => {
    const h = handler();
    let finish: () => void = () => {};
    h.set(async () => {
      await new Promise<void>((resolve) => {
        finish = resolve;
      });
      return new Response('late', { status: 200 });
    });
    await using spillway = embedded({ upstream: h.fn, config: { routeDefaults: { budgetMs: 50 } } });
    const id = operationIdOf(await spillway.fetch(post('/payments', 'sse')));
    const stream = await spillway.fetch(new Request(`http://app.test/_spillway/operations/${id}/events`));
    assert.equal(stream.status, 200);
    assert.match(stream.headers.get('content-type') ?? '', /^text\/event-stream/);
    const reader = stream.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = '';
    while (!text.includes('Running')) text += (await reader.read()).value ?? '';
    assert.doesNotMatch(text, /Succeeded/, 'the stream is live: the operation has not finished yet');
    finish();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
    assert.match(text, /event: operation\.succeeded|"status":"Succeeded"/);
  });

  it('fromNodeHandler: a listener that throws breaks the exchange (outcome unknown) instead of crashing', async () => {
    let calls = 0;
    await using spillway = embedded({
      upstream: fromNodeHandler((req, res) => {
        calls++;
        if (req.url === '/sync-throw') throw new Error('handler bug');
        if (req.url === '/async-throw') return Promise.reject(new Error('async handler bug'));
        res.writeHead(200).end('fine');
        return undefined;
      }),
    });
    assert.equal(await (await spillway.fetch(new Request('http://app.test/ok'))).text(), 'fine');
    for (const path of ['/sync-throw', '/async-throw']) {
      const res = await spillway.fetch(post(path, 'x'));
      assert.equal(res.status, 202, path);
      const monitor = await spillway.settled(operationIdOf(res));
      assert.equal(monitor.error.code, 'outcome-unknown', path);
    }
    assert.equal(calls, 3, 'a POST that may have had effects is not sent again');
  });

  it('a URL upstream works the same way', async () => {
    const upstream = await new TestUpstream().start();
    try {
      upstream.behaviour = () => ({ kind: 'respond', status: 200, body: 'from afar' });
      await using spillway = embedded({ upstream: upstream.url });
      const res = await spillway.fetch(new Request('http://app.test/x'));
      assert.equal(await res.text(), 'from afar');
    } finally {
      await upstream.stop();
    }
  });

  it('close() lets an adopted call finish, is idempotent, and then answers 503 problem+json', async (t) => {
    const h = handler();
    let finish: () => void = () => {};
    h.set(async () => {
      await new Promise<void>((resolve) => {
        finish = resolve;
      });
      return new Response('finished', { status: 201 });
    });
    const dir = tempDir();
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const spillway = embedded({ upstream: h.fn, config: { routeDefaults: { budgetMs: 50 } } }, dir);
    const id = operationIdOf(await spillway.fetch(post('/payments', 'adopted')));
    const closed = spillway.close();
    setTimeout(() => finish(), 50);
    await Promise.all([closed, spillway.close()]);
    const refused = await spillway.fetch(new Request(`http://app.test/_spillway/operations/${id}`));
    assert.equal(refused.status, 503);
    assert.equal(refused.headers.get('content-type'), 'application/problem+json');
    assert.equal((await jsonOf(refused)).code, 'store-unavailable');

    // The operation finished before the store closed.
    await using reopened = embedded({ upstream: h.fn }, dir);
    assert.equal((await reopened.json(`/_spillway/operations/${id}`)).status, 'Succeeded');
  });

  it('refuses an upstream that is neither a URL nor a function, naming the option', () => {
    assert.throws(() => createSpillway({ upstream: 42 as never }), ConfigError);
    assert.throws(() => createSpillway({ upstream: 'ftp://x' }), /upstream must be an http\(s\) URL/);
  });
});
