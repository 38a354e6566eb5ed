/**
 * The client SDK against a real gateway and upstream over loopback: the sync
 * answer untouched, a 202 followed by SSE, by polling when SSE is unavailable,
 * abort and the overall timeout (issue 4, item 7).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { resourceKey } from '../../src/policy/stale-if-error.ts';
import {
  type AcceptedOperation,
  createClient,
  type FetchLike,
  type PartialOperation,
} from '../../src/sdk/index.ts';
import { startGateway } from '../support/harness.ts';
import { type Behaviour, TestUpstream } from '../support/test-upstream.ts';

interface Sent {
  url: string;
  method: string;
  headers: Headers;
  signal: AbortSignal | undefined;
}

/** A fetch that records what the SDK sends, and can replace the answer to some URLs. */
function recordingFetch(
  replace?: (url: string, sent: Sent, init: RequestInit | undefined) => Promise<Response> | undefined,
) {
  const sent: Sent[] = [];
  const wrapped: FetchLike = (input, init) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    const record: Sent = {
      url,
      method: init?.method ?? 'GET',
      headers: new Headers(init?.headers),
      signal: init?.signal ?? undefined,
    };
    sent.push(record);
    return replace?.(url, record, init) ?? fetch(input, init);
  };
  return { fetch: wrapped, sent, urls: () => sent.map((s) => s.url) };
}

// Bytes that are not valid UTF-8, so a decode/re-encode anywhere would show.
const BINARY = Buffer.from([0x00, 0xff, 0xfe, 0x80, 0x0a, 0x0d, 0x41, 0xc3, 0x28]);
const created: Behaviour = {
  kind: 'respond',
  status: 201,
  headers: { 'content-type': 'application/octet-stream', 'x-payment': 'pay_1', location: '/payments/pay_1' },
  body: BINARY,
};

/**
 * A gateway whose upstream is down, so every request is answered 202; the
 * upstream comes back when the test says so (`upstream.start()`).
 */
async function downUpstream(behaviour: Behaviour = created) {
  const upstream = await new TestUpstream().start();
  upstream.behaviour = () => behaviour;
  await upstream.stop();
  const gw = await startGateway({ upstream: upstream.url });
  return {
    upstream,
    gw,
    async [Symbol.asyncDispose]() {
      await gw.stop();
      await upstream.stop();
    },
  };
}

/** A gateway whose upstream answers 503 with Retry-After: 30: every operation waits, parked, for the whole test. */
async function parkedUpstream() {
  const upstream = await new TestUpstream().start();
  upstream.behaviour = () => ({ kind: 'respond', status: 503, headers: { 'retry-after': '30' } });
  const gw = await startGateway({ upstream: upstream.url });
  return {
    upstream,
    gw,
    async [Symbol.asyncDispose]() {
      await gw.stop();
      await upstream.stop();
    },
  };
}

const post = { method: 'POST', body: '{"amount":42}', headers: { 'content-type': 'application/json' } };

describe('client SDK', () => {
  it('a synchronous answer passes through untouched, with one request and nothing added to it', async () => {
    const upstream = await new TestUpstream().start();
    upstream.behaviour = () => created;
    await using gw = await startGateway({ upstream: upstream.url });
    try {
      const rec = recordingFetch();
      let accepted = 0;
      const client = createClient({ fetch: rec.fetch, onAccepted: () => accepted++ });
      const res = await client.fetch(`${gw.publicUrl}/payments`, post);
      assert.equal(res.status, 201);
      assert.equal(res.headers.get('x-payment'), 'pay_1');
      assert.equal(res.headers.get('location'), '/payments/pay_1');
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), BINARY);
      assert.deepEqual(rec.urls(), [`${gw.publicUrl}/payments`]);
      assert.equal(accepted, 0);
      assert.equal(upstream.received.length, 1);
      assert.equal(upstream.received[0]!.headers.prefer, undefined, 'no Prefer added');
      assert.equal(upstream.received[0]!.body.toString(), '{"amount":42}');
    } finally {
      await upstream.stop();
    }
  });

  it("an upstream's own 202 without a Spillway Operation-Location is the answer", async () => {
    const upstream = await new TestUpstream().start();
    upstream.behaviour = () => ({
      kind: 'respond',
      status: 202,
      headers: { 'operation-location': '/jobs/17', 'content-type': 'application/json' },
      body: '{"job":17}',
    });
    await using gw = await startGateway({ upstream: upstream.url });
    try {
      const rec = recordingFetch();
      const res = await createClient({ fetch: rec.fetch }).fetch(`${gw.publicUrl}/jobs`, post);
      assert.equal(res.status, 202);
      assert.equal(await res.text(), '{"job":17}');
      assert.equal(rec.sent.length, 1);
    } finally {
      await upstream.stop();
    }
  });

  it('202, then the result by SSE: the upstream response byte for byte, onAccepted once, no polling', async () => {
    await using env = await downUpstream();
    const rec = recordingFetch();
    const accepted: AcceptedOperation[] = [];
    const client = createClient({
      fetch: rec.fetch,
      onAccepted: (op) => {
        accepted.push(op);
        void env.upstream.start(); // the upstream comes back: the replay succeeds
      },
    });
    const started = performance.now();
    const res = await client.fetch(`${env.gw.publicUrl}/payments`, post);
    assert.equal(res.status, 201);
    assert.equal(res.headers.get('x-payment'), 'pay_1');
    assert.equal(res.headers.get('content-type'), 'application/octet-stream');
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), BINARY);

    assert.equal(accepted.length, 1);
    const op = accepted[0]!;
    assert.match(op.id, /^op_/);
    assert.equal(op.monitorUrl, `${env.gw.publicUrl}/_spillway/operations/${op.id}`);
    assert.equal(op.resultUrl, `${op.monitorUrl}/result`);
    assert.equal(op.status, 'NotStarted');
    assert.deepEqual(rec.urls(), [`${env.gw.publicUrl}/payments`, `${op.monitorUrl}/events`, op.resultUrl]);
    assert.equal(rec.sent[1]!.headers.get('accept'), 'text/event-stream');
    for (const s of rec.sent.slice(1)) assert.equal(s.headers.get('prefer'), null, `no Prefer on ${s.url}`);
    // Polling would have waited for the 202's Retry-After (1 s).
    assert.ok(performance.now() - started < 900, `took ${performance.now() - started} ms`);
    assert.equal((await env.gw.store.get(op.id))?.status, 'Succeeded');
  });

  it("Prefer: respond-async from the caller is sent as given; a Failed operation answers the upstream's final answer", async () => {
    const upstream = await new TestUpstream().start();
    upstream.behaviour = () => ({
      kind: 'respond',
      status: 422,
      headers: { 'content-type': 'application/json' },
      body: '{"error":"amount must be positive"}',
    });
    await using gw = await startGateway({ upstream: upstream.url });
    try {
      const rec = recordingFetch();
      const accepted: AcceptedOperation[] = [];
      const res = await createClient({ fetch: rec.fetch, onAccepted: (op) => accepted.push(op) }).fetch(
        `${gw.publicUrl}/payments`,
        { ...post, headers: { ...post.headers, prefer: 'respond-async, wait=0' } },
      );
      assert.equal(accepted.length, 1, 'the gateway answered 202');
      assert.equal(res.status, 422);
      assert.equal(await res.text(), '{"error":"amount must be positive"}');
      assert.equal(rec.sent[0]!.headers.get('prefer'), 'respond-async, wait=0');
      assert.ok(rec.urls().some((u) => u.endsWith('/events')));
      assert.equal((await gw.store.get(accepted[0]!.id))?.status, 'Failed');
    } finally {
      await upstream.stop();
    }
  });

  const unavailable: Array<[string, (url: string) => Promise<Response> | undefined]> = [
    [
      'a network error',
      (url) => (url.endsWith('/events') ? Promise.reject(new TypeError('fetch failed')) : undefined),
    ],
    [
      'a 404',
      (url) => (url.endsWith('/events') ? Promise.resolve(new Response('no', { status: 404 })) : undefined),
    ],
    [
      'a 200 that is not text/event-stream',
      (url) =>
        url.endsWith('/events')
          ? Promise.resolve(new Response('<html>', { status: 200, headers: { 'content-type': 'text/html' } }))
          : undefined,
    ],
    [
      'a stream that ends without the terminal event',
      (url) =>
        url.endsWith('/events')
          ? Promise.resolve(
              new Response('retry: 10\n\nid: x:1\nevent: dev.spillway.operation.notstarted\ndata: {}\n\n', {
                status: 200,
                headers: { 'content-type': 'text/event-stream' },
              }),
            )
          : undefined,
    ],
  ];
  for (const [name, replace] of unavailable) {
    it(`202 with SSE unavailable (${name}): the result by polling at the server's Retry-After`, async () => {
      await using env = await downUpstream();
      const rec = recordingFetch(replace);
      let acceptedAt = 0;
      const client = createClient({
        fetch: rec.fetch,
        onAccepted: () => {
          acceptedAt = performance.now();
          setTimeout(() => void env.upstream.start(), 50);
        },
      });
      const res = await client.fetch(`${env.gw.publicUrl}/payments`, post);
      assert.equal(res.status, 201);
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), BINARY);
      const urls = rec.urls();
      const monitor = urls[1]!.replace(/\/events$/, '');
      assert.ok(urls[1]!.endsWith('/events'), 'SSE tried first');
      const polls = rec.sent.filter((s) => s.url === monitor);
      assert.ok(polls.length >= 1, `polled the monitor: ${urls.join(' ')}`);
      assert.equal(urls.at(-1), `${monitor}/result`);
      // The 202 said Retry-After: 1, so the first poll waited for it.
      const elapsed = performance.now() - acceptedAt;
      assert.ok(elapsed >= 950, `the first poll honoured Retry-After (${elapsed} ms)`);
      assert.ok(elapsed < 5_000, `took ${elapsed} ms`);
    });
  }

  for (const sse of [true, false]) {
    it(`a request with Authorization: the credential is carried to the monitor, events and result, which are the caller's only (${sse ? 'SSE' : 'polling'})`, async () => {
      await using env = await downUpstream();
      const rec = recordingFetch();
      const client = createClient({
        fetch: rec.fetch,
        sse,
        pollIntervalMs: 100,
        onAccepted: () => void env.upstream.start(),
      });
      const res = await client.fetch(`${env.gw.publicUrl}/payments`, {
        ...post,
        headers: { ...post.headers, authorization: 'Bearer alice', 'x-other': 'not carried' },
      });
      assert.equal(res.status, 201, 'without the credential the gateway would answer 404');
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), BINARY);
      for (const s of rec.sent.slice(1)) {
        assert.equal(s.headers.get('authorization'), 'Bearer alice', s.url);
        assert.equal(s.headers.get('x-other'), null, s.url);
      }
      const monitor = rec.sent[1]!.url.replace(/\/events$/, '');
      assert.equal((await fetch(monitor)).status, 404, 'another caller does not see it');
    });
  }

  it('polling only (sse: false) follows Retry-After until the operation is finished', async () => {
    // A slow upstream: the request is adopted at the budget (500 ms), Running, and answers only once the
    // client's first poll has seen it Running (a fixed delay raced the 202 and the poll on a busy machine).
    let firstPollAnswered = () => {};
    const answer = new Promise<void>((resolve) => {
      firstPollAnswered = resolve;
    });
    const upstream = await new TestUpstream().start();
    upstream.behaviour = () => ({ kind: 'after', until: answer, and: created });
    await using gw = await startGateway({ upstream: upstream.url });
    try {
      const rec = recordingFetch((url, _sent, init) => {
        if (!/\/_spillway\/operations\/[^/]+$/.test(url)) return undefined;
        const polled = fetch(url, init);
        void polled.then(firstPollAnswered, firstPollAnswered);
        return polled;
      });
      const accepted: AcceptedOperation[] = [];
      const res = await createClient({
        fetch: rec.fetch,
        sse: false,
        onAccepted: (op) => accepted.push(op),
      }).fetch(`${gw.publicUrl}/payments`, post);
      assert.equal(res.status, 201);
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), BINARY);
      assert.equal(accepted[0]?.status, 'Running');
      assert.ok(!rec.urls().some((u) => u.endsWith('/events')));
      const polls = rec.urls().filter((u) => u === accepted[0]!.monitorUrl);
      assert.equal(polls.length, 2, 'after Retry-After: Running at the first poll, Succeeded at the second');
      assert.equal(upstream.received.length, 1, 'one upstream call');
    } finally {
      await upstream.stop();
    }
  });

  it("aborting mid-wait rejects with the signal's reason and closes the event stream", async () => {
    await using env = await parkedUpstream();
    const rec = recordingFetch();
    const controller = new AbortController();
    const reason = new Error('user left the page');
    const client = createClient({
      fetch: rec.fetch,
      onAccepted: () => setTimeout(() => controller.abort(reason), 100),
    });
    const started = performance.now();
    await assert.rejects(
      client.fetch(`${env.gw.publicUrl}/payments`, { ...post, signal: controller.signal }),
      (e) => {
        assert.equal(e, reason);
        return true;
      },
    );
    assert.ok(performance.now() - started < 1_000);
    const events = rec.sent.find((s) => s.url.endsWith('/events'));
    assert.ok(events?.signal?.aborted, 'the SSE request was aborted');
    assert.equal(env.upstream.received.length, 1, 'the sync attempt only');
  });

  it('aborting while polling rejects at once, and an already-aborted signal sends nothing', async () => {
    await using env = await parkedUpstream();
    const controller = new AbortController();
    const client = createClient({ sse: false, onAccepted: () => setTimeout(() => controller.abort(), 50) });
    const started = performance.now();
    await assert.rejects(
      client.fetch(`${env.gw.publicUrl}/payments`, { ...post, signal: controller.signal }),
      (e: Error) => e.name === 'AbortError',
    );
    assert.ok(performance.now() - started < 900, 'did not wait for the poll');

    const rec = recordingFetch();
    await assert.rejects(
      createClient({ fetch: rec.fetch }).fetch(`${env.gw.publicUrl}/payments`, {
        signal: AbortSignal.abort(),
      }),
      (e: Error) => e.name === 'AbortError',
    );
    assert.equal(rec.sent.length, 0);
  });

  it('the overall timeout rejects with a TimeoutError DOMException, waiting included', async () => {
    await using env = await parkedUpstream();
    const rec = recordingFetch();
    let accepted = 0;
    const started = performance.now();
    await assert.rejects(
      createClient({ fetch: rec.fetch, timeoutMs: 300, onAccepted: () => accepted++ }).fetch(
        `${env.gw.publicUrl}/payments`,
        post,
      ),
      (e) => e instanceof DOMException && e.name === 'TimeoutError',
    );
    const elapsed = performance.now() - started;
    assert.ok(elapsed >= 290 && elapsed < 1_000, `rejected after ${elapsed} ms`);
    assert.equal(accepted, 1);
    assert.ok(
      rec.sent.every((s) => s.signal?.aborted),
      'every request was aborted',
    );
  });

  it('the overall timeout also covers the first request', async () => {
    const upstream = await new TestUpstream().start();
    upstream.behaviour = () => ({ kind: 'delay', ms: 2_000, and: { kind: 'respond', status: 200 } });
    await using gw = await startGateway({ upstream: upstream.url, routeDefaults: { budgetMs: 1_500 } });
    try {
      await assert.rejects(
        createClient({ timeoutMs: 200 }).fetch(`${gw.publicUrl}/slow`),
        (e) => e instanceof DOMException && e.name === 'TimeoutError',
      );
    } finally {
      await upstream.stop();
    }
  });

  for (const sse of [true, false]) {
    it(`an operation canceled while the client waits answers the 409 operation-canceled problem (${sse ? 'SSE' : 'polling'})`, async () => {
      await using env = await parkedUpstream();
      // The gateway says Retry-After: 30 (the upstream's); for the polling case, make it 0 (polls every 100 ms).
      const rec = recordingFetch((url, _sent, init) =>
        sse
          ? undefined
          : fetch(url, init).then((res) => {
              if (!res.headers.has('retry-after')) return res;
              const headers = new Headers(res.headers);
              headers.set('retry-after', '0');
              return new Response(res.body, { status: res.status, headers });
            }),
      );
      const client = createClient({
        fetch: rec.fetch,
        sse,
        onAccepted: (op) =>
          setTimeout(
            () => void fetch(`${op.monitorUrl}/cancel`, { method: 'POST' }).then((r) => r.text()),
            50,
          ),
      });
      const started = performance.now();
      const res = await client.fetch(`${env.gw.publicUrl}/payments`, post);
      assert.equal(res.status, 409);
      assert.match(res.headers.get('content-type') ?? '', /^application\/problem\+json/);
      assert.equal(((await res.json()) as { code: string }).code, 'operation-canceled');
      assert.ok(performance.now() - started < 2_000);
      if (!sse)
        assert.ok(rec.urls().filter((u) => /\/op_[^/]+$/.test(u)).length >= 2, 'polled until Canceled');
    });
  }

  it("an operation the gateway does not know: the monitor's 404 problem is the answer; relative URLs resolve", async () => {
    const upstream = await new TestUpstream().start();
    await using gw = await startGateway({ upstream: upstream.url });
    try {
      // A 202 as a gateway would send it, but for an id this one never issued, with relative URLs.
      const rec = recordingFetch((url) =>
        url.endsWith('/orders')
          ? Promise.resolve(
              new Response(null, {
                status: 202,
                headers: {
                  'operation-location': '/_spillway/operations/op_AAAAAAAAAAAAAAAAAAAAAAAA',
                  location: '/_spillway/operations/op_AAAAAAAAAAAAAAAAAAAAAAAA/result',
                  'retry-after': '0',
                },
              }),
            )
          : undefined,
      );
      const accepted: AcceptedOperation[] = [];
      const res = await createClient({ fetch: rec.fetch, onAccepted: (op) => accepted.push(op) }).fetch(
        `${gw.publicUrl}/orders`,
        { method: 'POST' },
      );
      assert.deepEqual(accepted, [
        {
          id: 'op_AAAAAAAAAAAAAAAAAAAAAAAA',
          monitorUrl: `${gw.publicUrl}/_spillway/operations/op_AAAAAAAAAAAAAAAAAAAAAAAA`,
          resultUrl: `${gw.publicUrl}/_spillway/operations/op_AAAAAAAAAAAAAAAAAAAAAAAA/result`,
          status: undefined,
        },
      ]);
      assert.equal(res.status, 404);
      assert.equal(((await res.json()) as { code: string }).code, 'operation-not-found');
      assert.deepEqual(
        rec.urls().map((u) => u.replace(gw.publicUrl, '')),
        [
          '/orders',
          '/_spillway/operations/op_AAAAAAAAAAAAAAAAAAAAAAAA/events',
          '/_spillway/operations/op_AAAAAAAAAAAAAAAAAAAAAAAA',
        ],
      );
    } finally {
      await upstream.stop();
    }
  });

  it('a throwing onAccepted rejects the call with its error', async () => {
    await using env = await parkedUpstream();
    const oops = new Error('UI bug');
    await assert.rejects(
      createClient({
        onAccepted: () => {
          throw oops;
        },
      }).fetch(`${env.gw.publicUrl}/payments`, post),
      (e) => e === oops,
    );
  });
});

describe('partial then full (issue 13)', () => {
  /** A gateway whose GET /prices keeps stale copies; the upstream answers `A`, then goes down. */
  /** The upstream answers 200 text/plain `body` from now on. */
  const answerText = (upstream: TestUpstream, body: string) => {
    upstream.behaviour = () => ({
      kind: 'respond',
      status: 200,
      headers: { 'content-type': 'text/plain' },
      body,
    });
  };

  async function staleGateway() {
    const upstream = await new TestUpstream().start();
    answerText(upstream, 'A');
    const gw = await startGateway({
      upstream: upstream.url,
      routes: [
        {
          name: 'prices',
          match: 'GET /prices',
          staleIfErrorMs: 60_000,
          health: { minCalls: 1_000, hungCalls: 1_000 },
        },
      ],
    });
    assert.equal(await (await fetch(`${gw.publicUrl}/prices`)).text(), 'A');
    // Wait (with a deadline) until the copy is kept: a stale answer then comes back at once.
    const resource = resourceKey({ tenant: null, method: 'GET', path: '/prices', query: '', headers: [] });
    for (const until = Date.now() + 10_000; (await gw.store.staleCopies(resource)).length === 0; ) {
      assert.ok(Date.now() < until, 'the copy is kept within 10 s');
      await new Promise((r) => setTimeout(r, 20));
    }
    await upstream.stop();
    return {
      upstream,
      gw,
      async [Symbol.asyncDispose]() {
        await gw.stop();
        await upstream.stop();
      },
    };
  }

  it('onPartial sees A, and the call resolves with B once the refresh has the fresh answer', async () => {
    await using env = await staleGateway();
    const { gw, upstream } = env;
    const seen: Array<{ status: number; body: string; cacheStatus: string | null; id: string }> = [];
    const client = createClient({ pollIntervalMs: 50 });
    const call = client.fetch(`${gw.publicUrl}/prices`, undefined, {
      onPartial: (response, operation) => {
        // The body is the caller's to read; the call goes on meanwhile.
        void response.text().then((body) =>
          seen.push({
            status: response.status,
            body,
            cacheStatus: response.headers.get('cache-status'),
            id: operation.id,
          }),
        );
        answerText(upstream, 'B');
        void upstream.start();
      },
    });
    const final = await call;
    assert.equal(final.status, 200);
    assert.equal(await final.text(), 'B');
    assert.equal(final.headers.get('cache-status'), null, 'the final answer is the fresh one');
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.body, 'A');
    assert.equal(seen[0]!.cacheStatus, 'Spillway; hit; detail=stale-if-error');
    assert.match(seen[0]!.id, /^op_/);
  });

  it("partial: 'resolve' resolves with A at once; the operation's final() gives B", async () => {
    await using env = await staleGateway();
    const { gw, upstream } = env;
    let handed: PartialOperation | undefined;
    const client = createClient({ pollIntervalMs: 50, partial: 'resolve' });
    const first = await client.fetch(`${gw.publicUrl}/prices`, undefined, {
      onPartial: (_response, operation) => {
        handed = operation;
      },
    });
    assert.equal(first.status, 200);
    assert.equal(await first.text(), 'A');
    assert.ok(handed, 'onPartial was called');
    answerText(upstream, 'B');
    await upstream.start();
    const fresh = await handed.final();
    assert.equal(await fresh.text(), 'B');
  });
});
