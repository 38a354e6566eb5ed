/**
 * WebSocket delivery on /_spillway/ws (http-standards.md §9 and row C5 of
 * §8.3): a real gateway, Node's global `WebSocket` as the browser-like client,
 * and the `ws` client where a test needs what browsers cannot do (set
 * `Origin` or `Authorization`, stop reading, never answer pings).
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { describe, it } from 'node:test';
import { WebSocket as WsClient } from 'ws';
import { newOperationId } from '../../src/engine/operation-id.ts';
import { ThreadedSqliteStore } from '../../src/store/sqlite/threaded-store.ts';
import { operationIdOf, startGateway, type TestGateway } from '../support/harness.ts';
import { TestUpstream } from '../support/test-upstream.ts';

// biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON messages
type Json = Record<string, any>;

const wsUrl = (gw: TestGateway, path = '/_spillway/ws') => `ws://127.0.0.1:${gw.port}${path}`;

/** Collects a socket's JSON messages; `until` waits for a condition on all received so far. */
class Inbox {
  readonly messages: Json[] = [];
  #waiters = new Set<() => void>();

  push(text: string): void {
    this.messages.push(JSON.parse(text) as Json);
    for (const check of this.#waiters) check();
  }

  until(done: (messages: Json[]) => boolean, ms = 15_000): Promise<Json[]> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(new Error(`not met after ${ms} ms; received ${JSON.stringify(this.messages).slice(0, 2000)}`));
      }, ms);
      const check = () => {
        if (!done(this.messages)) return;
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve(this.messages);
      };
      this.#waiters.add(check);
      check();
    });
  }

  /** The CloudEvents about one operation, in arrival order. */
  eventsOf(id: string): Json[] {
    return this.messages.filter((m) => m.specversion === '1.0' && m.subject === id);
  }

  has(type: string, id: string, extra: Json = {}): boolean {
    return this.messages.some(
      (m) => m.type === type && m.operationId === id && Object.entries(extra).every(([k, v]) => m[k] === v),
    );
  }
}

/** `promise`, or a failure naming `what` after `ms`: a missing close must fail the test, not hang it. */
function within<T>(promise: Promise<T>, what: string, ms = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** The cap of the slow-client tests: 64 KiB of unread events. */
const SLOW_CLIENT_CAP = 64 * 1024;

/** An upstream slow enough that operations still run when a client has subscribed and stopped reading. */
async function slowUpstream(): Promise<TestUpstream> {
  const upstream = await new TestUpstream().start();
  upstream.behaviour = () => ({ kind: 'delay', ms: 300, and: { kind: 'echo' } });
  return upstream;
}

/**
 * A gateway whose events are big: long URLs make events of ~16 to 32 KB, so the kernel's socket buffers
 * (~4 MB on loopback) fill quickly and the cap is reached.
 */
const slowClientConfig = (upstream: TestUpstream) => ({
  upstream: upstream.url,
  publicUrl: `http://127.0.0.1:9/${'p'.repeat(16_000)}`,
  replay: { concurrency: 64 },
  websocket: {
    maxBufferedBytes: SLOW_CLIENT_CAP,
    slowClientMs: 300,
    pingMs: 60_000,
    maxSubscriptions: 10_000,
  },
});

/** Opens a global (browser-compatible) WebSocket. */
async function connect(gw: TestGateway, protocols?: string | string[]) {
  const ws = new WebSocket(wsUrl(gw), protocols);
  const inbox = new Inbox();
  ws.addEventListener('message', (e) => inbox.push(String(e.data)));
  const closed = new Promise<CloseEvent>((resolve) => ws.addEventListener('close', resolve));
  await new Promise<void>((resolve, reject) => {
    ws.addEventListener('open', () => resolve());
    ws.addEventListener('error', () => reject(new Error('the WebSocket did not open')));
  });
  const send = (message: unknown) => ws.send(typeof message === 'string' ? message : JSON.stringify(message));
  return { ws, inbox, closed, send };
}

/** Opens a `ws` client with options browsers do not have. */
async function connectRaw(gw: TestGateway, options: ConstructorParameters<typeof WsClient>[2] = {}) {
  const ws = new WsClient(wsUrl(gw), options);
  const inbox = new Inbox();
  ws.on('message', (data) => inbox.push(String(data)));
  const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const send = (message: unknown) => ws.send(JSON.stringify(message));
  return { ws, inbox, closed, send };
}

/** A handshake the gateway refuses: its status, headers and body. */
function refusedHandshake(url: string, options: ConstructorParameters<typeof WsClient>[2] = {}) {
  return new Promise<{ status: number; contentType: string | undefined; body: Json }>((resolve, reject) => {
    const ws = new WsClient(url, options);
    ws.once('open', () => reject(new Error('the handshake was accepted')));
    ws.once('error', () => {}); // follows the unexpected response
    ws.once('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          contentType: res.headers['content-type'],
          body: JSON.parse(Buffer.concat(chunks).toString()) as Json,
        }),
      );
    });
  });
}

const respondAsync = { method: 'POST', headers: { prefer: 'respond-async, wait=0' }, body: '{}' };

/** A gateway whose upstream is down: operations wait, NotStarted, until `upstream.start()`. */
async function waitingGateway(extra: Record<string, unknown> = {}) {
  const upstream = await new TestUpstream().start();
  await upstream.stop();
  const gw = await startGateway({ upstream: upstream.url, ...extra });
  const capture = async (headers: Record<string, string> = {}) =>
    operationIdOf(
      await fetch(`http://127.0.0.1:${gw.port}/payments`, { method: 'POST', body: '{}', headers }),
    );
  return { upstream, gw, capture };
}

/** Captures an operation whose 202 headers are too long for fetch (the slow-client test's long publicUrl). */
function captureWithLongUrls(gw: TestGateway): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(
      `http://127.0.0.1:${gw.port}/payments`,
      { method: 'POST', headers: { prefer: 'respond-async, wait=0' }, maxHeaderSize: 256 * 1024 },
      (res) => {
        res.resume();
        const location = String(res.headers['operation-location'] ?? '');
        if (res.statusCode !== 202 || !location) reject(new Error(`not captured: ${res.statusCode}`));
        else resolve(location.split('/').at(-1)!);
      },
    );
    req.on('error', reject);
    req.end('{}');
  });
}

/** Asserts the events of one operation are 1, 2, 3… in order, ending with the terminal one. */
function assertInOrderToTerminal(events: Json[], id: string, from = 1): void {
  assert.ok(events.length > 0, `no events for ${id}`);
  assert.deepEqual(
    events.map((e) => e.id),
    events.map((_, i) => `${id}:${from + i}`),
  );
  assert.equal(events.at(-1)!.type, 'dev.spillway.operation.succeeded');
  for (const e of events.slice(0, -1)) assert.notEqual(e.type, 'dev.spillway.operation.succeeded');
}

describe('WebSocket delivery, /_spillway/ws', () => {
  it('one connection follows several operations, each in order through its terminal event, with the SSE events', async () => {
    const upstream = await new TestUpstream().start();
    upstream.behaviour = () => ({ kind: 'delay', ms: 300, and: { kind: 'echo' } });
    await using gw = await startGateway({ upstream: upstream.url });
    try {
      const ids = await Promise.all(
        [1, 2, 3].map(async () => operationIdOf(await fetch(`${gw.publicUrl}/payments`, respondAsync))),
      );
      const { ws, inbox, send } = await connect(gw);
      for (const id of ids) send({ type: 'subscribe', operationId: id });
      await inbox.until(() => ids.every((id) => inbox.has('unsubscribed', id, { reason: 'terminal' })));
      for (const id of ids) {
        const mine = inbox.messages.filter((m) => m.operationId === id || m.subject === id);
        assert.deepEqual(mine[0], { type: 'subscribed', operationId: id });
        assert.deepEqual(mine.at(-1), { type: 'unsubscribed', operationId: id, reason: 'terminal' });
        const events = inbox.eventsOf(id);
        assertInOrderToTerminal(events, id);
        assert.deepEqual(mine.slice(1, -1), events, 'nothing else between the acknowledgements');
        // The same CloudEvents, byte for byte, as the operation's SSE stream.
        const sse = await (await fetch(`${gw.publicUrl}/_spillway/operations/${id}/events`)).text();
        const fromSse = sse
          .split('\n')
          .filter((line) => line.startsWith('data: '))
          .map((line) => JSON.parse(line.slice(6)) as Json);
        assert.deepEqual(events, fromSse);
      }
      assert.equal(gw.websocket.stats().subscriptions, 0, 'subscriptions end by themselves');
      ws.close();
    } finally {
      await upstream.stop();
    }
  });

  it('resumes after lastEventId with only the later events; at the terminal event, it ends at once', async () => {
    const upstream = await new TestUpstream().start();
    await using gw = await startGateway({ upstream: upstream.url });
    try {
      const id = operationIdOf(await fetch(`${gw.publicUrl}/payments`, respondAsync));
      await gw.settled(id);
      const all = (await gw.store.events(id, 0)).length;
      assert.ok(all >= 2);
      const { ws, inbox, send } = await connect(gw);
      send({ type: 'subscribe', operationId: id, lastEventId: `${id}:1` });
      await inbox.until(() => inbox.has('unsubscribed', id));
      assertInOrderToTerminal(inbox.eventsOf(id), id, 2);
      assert.equal(inbox.eventsOf(id).length, all - 1);

      inbox.messages.length = 0;
      send({ type: 'subscribe', operationId: id, lastEventId: `${id}:${all}` });
      await inbox.until(() => inbox.has('unsubscribed', id));
      assert.deepEqual(inbox.messages, [
        { type: 'subscribed', operationId: id },
        { type: 'unsubscribed', operationId: id, reason: 'terminal' },
      ]);
      ws.close();
    } finally {
      await upstream.stop();
    }
  });

  it("an unknown id and another tenant's operation get the same operation-not-found error", async () => {
    const { gw, capture } = await waitingGateway();
    await using _ = gw;
    const alices = await capture({ authorization: 'Bearer alice' });
    const unknown = newOperationId();
    const asBob = await connectRaw(gw, { headers: { authorization: 'Bearer bob' } });
    const anonymous = await connectRaw(gw);
    const asAlice = await connectRaw(gw, { headers: { authorization: 'Bearer alice' } });
    for (const client of [asBob, anonymous]) {
      client.send({ type: 'subscribe', operationId: alices });
      client.send({ type: 'subscribe', operationId: unknown });
      await client.inbox.until((m) => m.length === 2);
      const [forAlices, forUnknown] = client.inbox.messages as [Json, Json];
      assert.equal(forAlices.code, 'operation-not-found');
      const anonymised = (m: Json, id: string) => ({
        ...m,
        operationId: 'ID',
        detail: m.detail.replaceAll(id, 'ID'),
      });
      assert.deepEqual(anonymised(forAlices, alices), anonymised(forUnknown, unknown));
      assert.equal(forAlices.type, 'error');
      assert.equal(forAlices.operationId, alices);
    }
    asAlice.send({ type: 'subscribe', operationId: alices });
    await asAlice.inbox.until(() => asAlice.inbox.eventsOf(alices).length > 0);
    assert.deepEqual(asAlice.inbox.messages[0], { type: 'subscribed', operationId: alices });
    for (const client of [asBob, anonymous, asAlice]) client.ws.close();
  });

  it('a malformed message gets a bad-request error and the connection stays usable', async () => {
    const { gw, capture } = await waitingGateway();
    await using _ = gw;
    const id = await capture();
    const { ws, inbox, send } = await connect(gw);
    send('not json');
    send({ type: 'listen', operationId: id });
    send({ type: 'subscribe' });
    send({ type: 'subscribe', operationId: id, lastEventId: 7 });
    send([1, 2]);
    ws.send(new Uint8Array([1, 2, 3]));
    await inbox.until((m) => m.length === 6);
    for (const m of inbox.messages) {
      assert.equal(m.type, 'error');
      assert.equal(m.code, 'bad-request');
      assert.match(m.detail, /\S/);
    }
    send({ type: 'subscribe', operationId: id });
    await inbox.until(() => inbox.eventsOf(id).length === 1);
    assert.deepEqual(inbox.messages[6], { type: 'subscribed', operationId: id });
    assert.equal(inbox.eventsOf(id)[0]!.id, `${id}:1`);
    ws.close();
  });

  it('a message over 4 KiB closes the connection with 1009', async () => {
    const { gw } = await waitingGateway();
    await using _ = gw;
    const { ws, closed } = await connect(gw);
    ws.send(JSON.stringify({ type: 'subscribe', operationId: 'x'.repeat(5_000) }));
    assert.equal((await within(closed, 'closed')).code, 1009);
  });

  it('unsubscribe stops the events; subscriptions past websocket.maxSubscriptions are refused', async () => {
    const { gw, capture, upstream } = await waitingGateway({ websocket: { maxSubscriptions: 2 } });
    await using _ = gw;
    try {
      const [a, b, c] = [await capture(), await capture(), await capture()];
      const { ws, inbox, send } = await connect(gw);
      send({ type: 'subscribe', operationId: a });
      send({ type: 'subscribe', operationId: b });
      send({ type: 'subscribe', operationId: c });
      await inbox.until(() => inbox.has('error', c));
      assert.equal(inbox.messages.find((m) => m.type === 'error')?.code, 'too-many-subscriptions');
      send({ type: 'unsubscribe', operationId: a });
      send({ type: 'subscribe', operationId: c });
      await inbox.until(() => inbox.has('subscribed', c));
      assert.ok(inbox.has('unsubscribed', a, { reason: 'requested' }));
      await upstream.start();
      await inbox.until(() => inbox.has('unsubscribed', b) && inbox.has('unsubscribed', c));
      await gw.settled(a);
      const acknowledged = inbox.messages.findIndex((m) => m.type === 'unsubscribed' && m.operationId === a);
      const delivered = inbox.eventsOf(a);
      assert.ok(
        delivered.every((e) => inbox.messages.indexOf(e) < acknowledged),
        'nothing after the unsubscribe',
      );
      assert.ok((await gw.store.events(a, 0)).length > delivered.length, 'a changed after it');
      ws.close();
    } finally {
      await upstream.stop();
    }
  });

  it('connections past websocket.maxConnections are refused 503 overloaded; a closed one frees its place', async () => {
    const { gw } = await waitingGateway({ websocket: { maxConnections: 2 } });
    await using _ = gw;
    const first = await connect(gw);
    const second = await connect(gw);
    const refused = await refusedHandshake(wsUrl(gw));
    assert.equal(refused.status, 503);
    assert.equal(refused.contentType, 'application/problem+json');
    assert.equal(refused.body.code, 'overloaded');
    assert.match(refused.body.detail, /websocket\.maxConnections/);
    assert.equal(gw.websocket.stats().connections, 2);
    first.ws.close();
    await within(first.closed, 'the first connection closing');
    while (gw.websocket.stats().connections > 1) await new Promise((r) => setTimeout(r, 10));
    const third = await connect(gw);
    third.ws.close();
    second.ws.close();
    await within(Promise.all([second.closed, third.closed]), 'closing');
  });

  it('Origin: refused with 403 problem+json unless listed in corsOrigins; none (not a browser) is allowed', async () => {
    const { gw } = await waitingGateway({ corsOrigins: ['https://app.example'] });
    await using _ = gw;
    const refused = await refusedHandshake(wsUrl(gw), { origin: 'https://evil.example' });
    assert.equal(refused.status, 403);
    assert.equal(refused.contentType, 'application/problem+json');
    assert.equal(refused.body.code, 'origin-not-allowed');
    assert.equal(refused.body.type, 'https://spillway.dev/problems/origin-not-allowed');
    const allowed = await connectRaw(gw, { origin: 'https://app.example' });
    const nonBrowser = await connectRaw(gw);
    allowed.ws.close();
    nonBrowser.ws.close();
  });

  it('other upgrade paths get a 404 problem; a non-WebSocket Upgrade offer on a proxied route is ignored', async () => {
    const upstream = await new TestUpstream().start();
    await using gw = await startGateway({ upstream: upstream.url });
    try {
      const refused = await refusedHandshake(wsUrl(gw, '/_spillway/operations/x/ws'));
      assert.equal(refused.status, 404);
      assert.equal(refused.body.code, 'not-found');
      const proxied = await new Promise<number>((resolve, reject) => {
        const req = request(
          `http://127.0.0.1:${gw.port}/payments`,
          { method: 'POST', headers: { connection: 'upgrade', upgrade: 'h2c' } },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.on('upgrade', () => reject(new Error('upgraded')));
        req.on('error', reject);
        req.end('{}');
      });
      assert.equal(proxied, 200);
    } finally {
      await upstream.stop();
    }
  });

  it('C5: the cloudevents.json subprotocol is accepted when offered; a client offering none is accepted too', async () => {
    const { gw, capture } = await waitingGateway();
    await using _ = gw;
    const id = await capture();
    const offered = await connect(gw, ['other.v1', 'cloudevents.json']);
    assert.equal(offered.ws.protocol, 'cloudevents.json');
    offered.send({ type: 'subscribe', operationId: id });
    await offered.inbox.until(() => offered.inbox.eventsOf(id).length === 1);
    const none = await connect(gw);
    assert.equal(none.ws.protocol, '');
    const unknownOnly = new WsClient(wsUrl(gw), ['other.v1']);
    const failure = await new Promise<Error>((resolve) => unknownOnly.once('error', resolve));
    assert.match(failure.message, /no subprotocol/i, 'no Sec-WebSocket-Protocol chosen for an unknown one');
    offered.ws.close();
    none.ws.close();
  });

  it('a client that stops reading costs at most the cap plus one event, and is closed with 1013', async () => {
    const cap = SLOW_CLIENT_CAP;
    const upstream = await slowUpstream();
    await using gw = await startGateway(slowClientConfig(upstream));
    try {
      const ids = await Promise.all(Array.from({ length: 125 }, () => captureWithLongUrls(gw)));
      const client = await connectRaw(gw);
      client.ws.pause(); // stops reading: what the server sends piles up
      for (const id of ids) client.send({ type: 'subscribe', operationId: id });
      // The operations now finish: ~8 MB of events, more than the kernel's buffers hold.
      const until = Date.now() + 60_000;
      while (gw.websocket.stats().slowClientsClosed === 0) {
        assert.ok(Date.now() < until, `never closed as slow: ${JSON.stringify(gw.websocket.stats())}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      const { peakBufferedBytes } = gw.websocket.stats();
      client.ws.resume();
      assert.equal(await within(client.closed, 'closed after resuming'), 1013);
      const largest = Math.max(
        ...client.inbox.messages.map((m) => Buffer.byteLength(JSON.stringify(m)) + 14 /* frame header */),
      );
      assert.ok(peakBufferedBytes >= cap, `the cap was reached (${peakBufferedBytes} bytes)`);
      // One event over the cap, plus the few-byte acknowledgement that follows a terminal event.
      assert.ok(
        peakBufferedBytes <= cap + largest + 128,
        `${peakBufferedBytes} bytes buffered > cap ${cap} + one event ${largest}`,
      );
      for (const id of ids) {
        const events = client.inbox.eventsOf(id);
        assert.deepEqual(
          events.map((e) => e.id),
          events.map((_, i) => `${id}:${i + 1}`),
          'what arrived is in order, without gaps',
        );
      }
    } finally {
      await upstream.stop();
    }
  });

  it('answers no client message while over the cap, even one it read before: the bound holds for answers too', async () => {
    const cap = SLOW_CLIENT_CAP;
    const upstream = await slowUpstream();
    await using gw = await startGateway(slowClientConfig(upstream));
    // The last operation's subscription waits on its store read until the client is over the cap, so
    // the messages behind it were read before the cap was reached and are handled after it.
    let release = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const get = ThreadedSqliteStore.prototype.get;
    // What the gateway sends to whom, and how much it had buffered for that client at the time.
    const send = WsClient.prototype.send;
    const overCap: string[] = [];
    try {
      const ids = await Promise.all(Array.from({ length: 125 }, () => captureWithLongUrls(gw)));
      const held = ids.at(-1)!;
      const unknown = Array.from({ length: 10 }, () => newOperationId());
      ThreadedSqliteStore.prototype.get = async function (this: ThreadedSqliteStore, id: string) {
        if (id === held) await gate;
        return get.call(this, id);
      };
      WsClient.prototype.send = function (this: WsClient, data: unknown, ...rest: unknown[]) {
        const text = String(data);
        if (this.bufferedAmount >= cap && unknown.some((id) => text.includes(id))) overCap.push(text);
        return (send as (...args: unknown[]) => void).call(this, data, ...rest);
      };
      const client = await connectRaw(gw);
      client.ws.pause();
      for (const id of [...ids, ...unknown]) client.send({ type: 'subscribe', operationId: id });
      const until = Date.now() + 60_000;
      while (gw.websocket.stats().peakBufferedBytes < cap) {
        assert.ok(Date.now() < until, `never over the cap: ${JSON.stringify(gw.websocket.stats())}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      release();
      while (gw.websocket.stats().slowClientsClosed === 0) {
        assert.ok(Date.now() < until, `never closed as slow: ${JSON.stringify(gw.websocket.stats())}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      client.ws.resume();
      assert.equal(await within(client.closed, 'closed after resuming'), 1013);
      // A message whose handling was under way when the cap was reached may finish: one answer over the cap
      // (the held subscription's, or one handled in a moment under the cap that ended during its store read).
      assert.ok(
        overCap.length <= 1,
        `${overCap.length} answers went out over the cap, the messages read before it: ${overCap.join(' ')}`,
      );
    } finally {
      WsClient.prototype.send = send;
      ThreadedSqliteStore.prototype.get = get;
      release();
      await upstream.stop();
    }
  });

  it('a client that does not answer pings is dropped; one that does stays', async () => {
    const { gw } = await waitingGateway({ websocket: { pingMs: 100 } });
    await using _ = gw;
    const silent = await connectRaw(gw, { autoPong: false });
    const answering = await connectRaw(gw);
    const code = await within(silent.closed, 'dropped');
    assert.equal(code, 1006, 'dropped without a close handshake');
    await new Promise((r) => setTimeout(r, 250));
    assert.equal(answering.ws.readyState, WsClient.OPEN);
    answering.ws.close();
  });

  it('shutdown closes every connection with 1001, and the gateway stops', async () => {
    const { gw, capture } = await waitingGateway();
    const id = await capture();
    const subscribed = await connect(gw);
    subscribed.send({ type: 'subscribe', operationId: id });
    await subscribed.inbox.until(() => subscribed.inbox.eventsOf(id).length === 1);
    const idle = await connect(gw);
    await within(gw.stop(), 'stopped', 30_000);
    // 1001, not 1006: closed with a close handshake, not dropped when the shutdown grace ran out.
    assert.equal((await within(subscribed.closed, 'closed')).code, 1001);
    assert.equal((await within(idle.closed, 'closed')).code, 1001);
    const refused = await new Promise<boolean>((resolve) => {
      const late = new WsClient(wsUrl(gw));
      late.once('open', () => resolve(false));
      late.once('error', () => resolve(true));
    });
    assert.ok(refused, 'no new connections after stop');
  });
});
