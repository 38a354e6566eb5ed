/**
 * Server-Sent Events conformance, the table of
 * ../shared/research/http-standards.md §5.4, each test named by its row id,
 * with the `eventsource` npm client and `eventsource-parser` as the judges.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EventSource } from 'eventsource';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { newOperationId } from '../../src/engine/operation-id.ts';
import { operationIdOf, startGateway, type TestGateway } from '../support/harness.ts';
import { closedPort, TestUpstream } from '../support/test-upstream.ts';

/** Reads an SSE response to its end (or `limit` events) with the spec-faithful parser. */
async function readEvents(res: Response, limit = Number.POSITIVE_INFINITY) {
  const events: EventSourceMessage[] = [];
  const comments: string[] = [];
  const retries: number[] = [];
  const parser = createParser({
    onEvent: (e) => events.push(e),
    onComment: (c) => comments.push(c),
    onRetry: (r) => retries.push(r),
  });
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  while (events.length < limit) {
    const { done, value } = await reader.read();
    if (done) break;
    parser.feed(value);
  }
  await reader.cancel();
  return { events, comments, retries };
}

/** A gateway whose upstream is down: operations wait, NotStarted, until told otherwise. */
async function waitingGateway(extra: Record<string, unknown> = {}) {
  const upstream = await new TestUpstream().start();
  upstream.behaviour = () => ({
    kind: 'respond',
    status: 201,
    headers: { 'content-type': 'application/json' },
    body: '{"ok":true}',
  });
  await upstream.stop();
  const gw = await startGateway({ upstream: upstream.url, ...extra });
  const capture = async () =>
    operationIdOf(await fetch(`${gw.publicUrl}/payments`, { method: 'POST', body: '{}' }));
  return { upstream, gw, capture };
}

const eventsUrl = (gw: TestGateway, id: string) => `${gw.publicUrl}/_spillway/operations/${id}/events`;

describe('SSE conformance, http-standards.md §5.4', () => {
  it('S1: 200 text/event-stream, no Content-Length, the first event at once', async () => {
    const { gw, upstream, capture } = await waitingGateway();
    try {
      const id = await capture();
      const started = performance.now();
      const res = await fetch(eventsUrl(gw, id), { headers: { accept: 'text/event-stream' } });
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
      assert.equal(res.headers.get('content-length'), null);
      assert.equal(res.headers.get('cache-control'), 'no-store');
      const { events, retries } = await readEvents(res, 1);
      // Well under pollMs (5 s): an event that waited for the next poll would miss it, a loaded machine would not.
      assert.ok(performance.now() - started < 2_000, 'not buffered until the next poll');
      assert.equal(events[0]?.id, `${id}:1`);
      assert.deepEqual(retries, [2_000]);
    } finally {
      await gw.stop();
    }
    void upstream;
  });

  it('S2, S8: every event has id, event and CloudEvents JSON data; ids strictly increase and hold no NUL, CR or LF', async () => {
    const { gw, upstream, capture } = await waitingGateway();
    try {
      const id = await capture();
      const reading = fetch(eventsUrl(gw, id)).then((res) => readEvents(res));
      await new Promise((r) => setTimeout(r, 50));
      await upstream.start();
      const { events } = await reading; // ends by itself after the terminal event
      assert.deepEqual(
        events.map((e) => e.event),
        [
          'dev.spillway.operation.notstarted',
          'dev.spillway.operation.running',
          'dev.spillway.operation.succeeded',
        ],
      );
      const seqs = events.map((e) => Number(e.id!.split(':')[1]));
      assert.deepEqual(seqs, [1, 2, 3]);
      for (const e of events) {
        assert.doesNotMatch(e.id!, /[\0\r\n]/);
        const ce = JSON.parse(e.data);
        assert.equal(ce.specversion, '1.0');
        assert.equal(ce.id, e.id);
        assert.equal(ce.type, e.event);
        assert.equal(ce.subject, id);
        assert.equal(ce.datacontenttype, 'application/json');
        assert.ok(Date.parse(ce.time));
      }
      const last = JSON.parse(events.at(-1)!.data);
      assert.equal(last.data.status, 'Succeeded');
      assert.equal(last.data.resultLocation, `${gw.publicUrl}/_spillway/operations/${id}/result`);
    } finally {
      await gw.stop();
      await upstream.stop();
    }
  });

  it('S3: the eventsource client, cut off after event 2, reconnects with Last-Event-ID and gets event 3 once', async () => {
    const { gw, upstream, capture } = await waitingGateway({ sse: { retryMs: 50 } });
    upstream.behaviour = () => ({
      kind: 'delay',
      ms: 400,
      and: { kind: 'respond', status: 201, body: 'ok' },
    });
    try {
      const id = await capture();
      await upstream.start();
      while ((await gw.store.get(id))?.status !== 'Running') await new Promise((r) => setTimeout(r, 10));
      const requests: Array<string | null> = [];
      let cut = false;
      // A fetch that ends the first stream after two events, as a dropped connection would.
      const fetchCuttingFirstStream: typeof fetch = async (url, init) => {
        requests.push(new Headers(init?.headers).get('last-event-id'));
        const res = await fetch(url, init);
        if (cut || !res.body) return res;
        cut = true;
        let seen = 0;
        const body = res.body.pipeThrough(
          new TransformStream<Uint8Array, Uint8Array>({
            transform(chunk, controller) {
              if (seen >= 2) return;
              controller.enqueue(chunk);
              seen += new TextDecoder()
                .decode(chunk)
                .split('\n\n')
                .filter((b) => b.includes('id: ')).length;
              if (seen >= 2) controller.terminate();
            },
          }),
        );
        return new Response(body, { status: res.status, headers: res.headers });
      };
      const es = new EventSource(eventsUrl(gw, id), { fetch: fetchCuttingFirstStream });
      const ids: string[] = [];
      const done = new Promise<void>((resolve) => {
        for (const type of ['notstarted', 'running', 'succeeded']) {
          es.addEventListener(`dev.spillway.operation.${type}`, (e) => {
            ids.push(e.lastEventId);
            if (type === 'succeeded') resolve();
          });
        }
      });
      await done;
      es.close();
      assert.deepEqual(ids, [`${id}:1`, `${id}:2`, `${id}:3`], 'no gap, no duplicate');
      assert.deepEqual(requests.slice(0, 2), [null, `${id}:2`]);
    } finally {
      await gw.stop();
      await upstream.stop();
    }
  });

  it('S4: a reconnect at the terminal event gets 204, and the client stops (CLOSED)', async () => {
    const upstream = await new TestUpstream().start();
    await using gw = await startGateway({ upstream: upstream.url });
    const id = operationIdOf(
      await fetch(`${gw.publicUrl}/payments`, {
        method: 'POST',
        headers: { prefer: 'respond-async, wait=0' },
      }),
    );
    await gw.settled(id);
    const res = await fetch(eventsUrl(gw, id), { headers: { 'last-event-id': `${id}:3` } });
    assert.equal(res.status, 204);
    let connects = 0;
    const es = new EventSource(`${eventsUrl(gw, id)}?lastEventId=${id}:3`, {
      fetch: (url, init) => {
        connects++;
        return fetch(url, init);
      },
    });
    await new Promise<void>((resolve) => {
      es.onerror = () => resolve();
    });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(es.readyState, EventSource.CLOSED);
    assert.equal(connects, 1);
    await upstream.stop();
  });

  it('S5: an idle stream carries heartbeat comments', async () => {
    const { gw, capture } = await waitingGateway({
      sse: { heartbeatMs: 100 },
      routeDefaults: { backoff: { initialMs: 60_000 } },
    });
    try {
      const id = await capture();
      const controller = new AbortController();
      const res = await fetch(eventsUrl(gw, id), { signal: controller.signal });
      setTimeout(() => controller.abort(), 450);
      const comments: string[] = [];
      const parser = createParser({ onEvent: () => {}, onComment: (c) => comments.push(c) });
      try {
        for await (const chunk of res.body!.pipeThrough(new TextDecoderStream())) parser.feed(chunk);
      } catch {
        // aborted on purpose
      }
      assert.ok(comments.length >= 2, `heard ${comments.length} heartbeats`);
    } finally {
      await gw.stop();
    }
  });

  it('S6: an unknown operation is 404 and the client closes without retrying', async () => {
    await using gw = await startGateway({ upstream: `http://127.0.0.1:${await closedPort()}` });
    const res = await fetch(eventsUrl(gw, newOperationId()));
    assert.equal(res.status, 404);
    assert.equal(res.headers.get('content-type'), 'application/problem+json');
    let connects = 0;
    const es = new EventSource(eventsUrl(gw, newOperationId()), {
      fetch: (url, init) => {
        connects++;
        return fetch(url, init);
      },
    });
    await new Promise<void>((resolve) => {
      es.onerror = () => resolve();
    });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(es.readyState, EventSource.CLOSED);
    assert.equal(connects, 1);
  });

  it('S7: CORS for a listed origin with credentials, nothing for another', async () => {
    const { gw, capture } = await waitingGateway({ corsOrigins: ['https://app.example'] });
    try {
      const id = await capture();
      const allowed = await fetch(eventsUrl(gw, id), { headers: { origin: 'https://app.example' } });
      assert.equal(allowed.headers.get('access-control-allow-origin'), 'https://app.example');
      assert.equal(allowed.headers.get('access-control-allow-credentials'), 'true');
      await allowed.body?.cancel();
      const other = await fetch(eventsUrl(gw, id), { headers: { origin: 'https://evil.example' } });
      assert.equal(other.headers.get('access-control-allow-origin'), null);
      await other.body?.cancel();
      const preflight = await fetch(eventsUrl(gw, id), {
        method: 'OPTIONS',
        headers: { origin: 'https://app.example', 'access-control-request-headers': 'last-event-id' },
      });
      assert.equal(preflight.status, 204);
      assert.match(preflight.headers.get('access-control-allow-headers') ?? '', /Last-Event-ID/i);
    } finally {
      await gw.stop();
    }
  });

  it('shutdown ends open streams at once instead of waiting out the grace period', async () => {
    const { gw, capture } = await waitingGateway({
      shutdownGraceMs: 5_000,
      routeDefaults: { backoff: { initialMs: 60_000 } },
    });
    const id = await capture();
    const res = await fetch(eventsUrl(gw, id));
    const reading = readEvents(res);
    await new Promise((r) => setTimeout(r, 50));
    const started = performance.now();
    await gw.stop();
    assert.ok(performance.now() - started < 2_000, `stop took ${Math.round(performance.now() - started)} ms`);
    const { events } = await reading;
    assert.equal(events[0]?.id, `${id}:1`, 'the stream ended cleanly after what it had sent');
  });

  it('S9: CR and LF inside data strings arrive escaped in JSON and come out identical', async () => {
    const { gw, capture } = await waitingGateway({ replay: { concurrency: 0 } });
    try {
      const id = await capture();
      let leased: Array<{ id: string; leaseToken: string }> = [];
      while (leased.length === 0) {
        await new Promise((r) => setTimeout(r, 20)); // until its first replay falls due
        leased = await gw.store.lease({ owner: 'test', limit: 1, leaseMs: 10_000 });
      }
      assert.equal(leased[0]?.id, id);
      const message = 'line one\r\nline two\nline three\r';
      await gw.store.fail(id, leased[0]!.leaseToken, {
        error: { code: 'outcome-unknown', message },
        result: null,
        deadLetter: true,
        countsAsAttempt: false,
      });
      const { events } = await readEvents(await fetch(eventsUrl(gw, id)));
      const failed = JSON.parse(events.at(-1)!.data);
      assert.equal(failed.data.status, 'Failed');
      assert.equal(failed.data.error.message, message);
    } finally {
      await gw.stop();
    }
  });
});
