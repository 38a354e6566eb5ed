/**
 * A sync answer whose body streams (a large download, a slow export, an
 * upstream's Server-Sent Events) goes on for as long as the upstream keeps
 * sending: once its head has arrived, `attemptTimeoutMs` bounds the upstream's
 * silence, not the attempt's total time. It used to bound the total, and cut
 * every such body 30 s after the request started. A client that reads slowly
 * holds the upstream back itself: that time is not the upstream's silence.
 * Adopted attempts and replays store the whole body and keep the total limit.
 *
 * Time is a ManualClock: the limit's timer fires only when the test moves it.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, get, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { buildConfig } from '../../src/config/config.ts';
import { attemptDeadline } from '../../src/engine/attempt.ts';
import { FailoverEngine } from '../../src/engine/failover-engine.ts';
import { FetchUpstream } from '../../src/engine/fetch-upstream.ts';
import { HttpUpstream } from '../../src/engine/upstream.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { embedded } from '../support/embedded.ts';
import { eventOf, recordEvents } from '../support/events.ts';
import { operationIdOf, startGateway } from '../support/harness.ts';
import { ManualClock } from '../support/manual-clock.ts';

const LIMIT_MS = 300;

/** Waits for `condition` (checked every few ms) up to `ms`; throws naming `what` past that. */
async function until(condition: () => boolean, what: string, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** An upstream that answers each request with a head and `first`, then leaves the body to the test. */
class StreamingUpstream {
  readonly server: Server;
  readonly open: ServerResponse[] = [];

  constructor() {
    this.server = createServer((req, res) => {
      req.resume();
      req.once('end', () => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('first;');
        this.open.push(res);
      });
    });
  }

  async start(): Promise<string> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** The response of the `n`th request (from 1), once its head and first bytes are out. */
  async response(n: number): Promise<ServerResponse> {
    await until(() => this.open.length >= n, `request ${n} reached the upstream`);
    return this.open[n - 1]!;
  }

  stop(): void {
    this.server.closeAllConnections();
    this.server.close();
  }
}

/** A client's download through the gateway: what it received so far, and how the body ended. */
interface Download {
  res: IncomingMessage;
  text: string;
  /** 'whole': the body ended normally; 'cut': it broke off. */
  end: 'whole' | 'cut' | undefined;
}

async function download(url: string): Promise<Download> {
  const request = get(url, { agent: false });
  const [res] = (await once(request, 'response')) as [IncomingMessage];
  const d: Download = { res, text: '', end: undefined };
  res.setEncoding('utf8');
  res.on('data', (chunk: string) => {
    d.text += chunk;
  });
  res.once('end', () => {
    d.end ??= 'whole';
  });
  res.once('aborted', () => {
    d.end ??= 'cut';
  });
  res.once('error', () => {
    d.end ??= 'cut';
  });
  res.once('close', () => {
    if (!res.complete) d.end ??= 'cut';
  });
  return d;
}

/** Waits until the client has received `text` in all, failing at once if its body ended first. */
async function received(d: Download, text: string): Promise<void> {
  await until(() => d.text === text || d.end !== undefined, `the client received ${JSON.stringify(text)}`);
  assert.equal(d.text, text);
  assert.equal(d.end, undefined, 'the body is still open');
}

describe('a sync answer that streams through the gateway', () => {
  const upstream = new StreamingUpstream();
  let origin: string;
  before(async () => {
    origin = await upstream.start();
  });
  after(() => upstream.stop());
  // A gateway in front of the streaming upstream whose time the test drives.
  const gatewayOnClock = (clock: ManualClock) =>
    startGateway(
      { upstream: origin, routeDefaults: { budgetMs: 100, attemptTimeoutMs: LIMIT_MS } },
      undefined,
      { clock },
    );

  it('reaches the client whole when it streams for longer than attemptTimeoutMs, never silent that long', async () => {
    const clock = new ManualClock();
    await using gw = await gatewayOnClock(clock);
    const n = upstream.open.length + 1;
    const d = await download(`${gw.publicUrl}/export`);
    assert.equal(d.res.statusCode, 200);
    const res = await upstream.response(n);
    let expected = 'first;';
    await received(d, expected);
    // Four gaps of 2/3 the limit: 800 ms in all, well past the limit, each chunk on time.
    for (let i = 1; i <= 4; i++) {
      clock.advance((LIMIT_MS * 2) / 3);
      res.write(`chunk ${i};`);
      expected += `chunk ${i};`;
      await received(d, expected);
    }
    clock.advance((LIMIT_MS * 2) / 3);
    res.end('last');
    await until(() => d.end !== undefined, 'the body ended');
    assert.equal(d.end, 'whole');
    assert.equal(d.text, `${expected}last`);
  });

  it('is cut when the upstream sends nothing for attemptTimeoutMs, counted as today’s cut is', async () => {
    const clock = new ManualClock();
    await using gw = await gatewayOnClock(clock);
    const seen = recordEvents(gw.events);
    const n = upstream.open.length + 1;
    const d = await download(`${gw.publicUrl}/feed`);
    const res = await upstream.response(n);
    const upstreamClosed = once(res, 'close');
    await received(d, 'first;');
    clock.advance(LIMIT_MS - 1);
    res.write('more;');
    await received(d, 'first;more;');
    clock.advance(LIMIT_MS - 1); // just short of the limit since the last chunk
    res.write('again;');
    await received(d, 'first;more;again;');
    clock.advance(LIMIT_MS); // silent for the whole limit
    await until(() => d.end !== undefined, 'the body ended');
    assert.equal(d.end, 'cut', 'the client sees the body break off');
    await upstreamClosed; // the upstream call was abandoned
    assert.equal(res.writableFinished, false);

    // As for a cut before: the sync attempt counted answered when its head came, healthy, nothing captured.
    const finished = await eventOf(gw.events, seen, 'sync:finished');
    assert.equal(finished.outcome, 'answered');
    assert.equal(finished.upstreamStatus, 200);
    assert.equal(seen.filter((e) => e.type === 'sync:finished').length, 1);
    assert.deepEqual(
      seen.filter((e) => e.type === 'operation:captured'),
      [],
      'nothing captured',
    );
    const health = gw.health.route('default').snapshot(clock.now());
    assert.equal(health.state, 'sync');
    assert.equal(health.signals.errorRate, 0);
    assert.equal(health.signals.inFlight, 0);
  });
});

describe('a sync answer that streams from a function upstream (createSpillway)', () => {
  /** A function whose Response body the test writes, and the client's reader of that body through Spillway. */
  async function streamingFunction(clock: ManualClock) {
    let source: ReadableStreamDefaultController<Uint8Array> | undefined;
    const spillway = embedded({
      clock,
      upstream: () =>
        new Response(
          new ReadableStream<Uint8Array>({
            start(controller) {
              source = controller;
              controller.enqueue(Buffer.from('first;'));
            },
          }),
          { headers: { 'content-type': 'text/event-stream' } },
        ),
      config: { routeDefaults: { budgetMs: 100, attemptTimeoutMs: LIMIT_MS } },
    });
    const res = await spillway.fetch(new Request('http://app.test/events'));
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    const text = async () => Buffer.from((await reader.read()).value ?? []).toString();
    await until(() => source !== undefined, 'the function answered');
    return {
      spillway,
      reader,
      text,
      send: (t: string) => source!.enqueue(Buffer.from(t)),
      end: () => source!.close(),
    };
  }

  it('reaches the client whole when it streams for longer than attemptTimeoutMs, never silent that long', async () => {
    const clock = new ManualClock();
    const f = await streamingFunction(clock);
    await using _spillway = f.spillway;
    assert.equal(await f.text(), 'first;');
    for (let i = 1; i <= 4; i++) {
      clock.advance((LIMIT_MS * 2) / 3);
      f.send(`chunk ${i};`);
      assert.equal(await f.text(), `chunk ${i};`);
    }
    f.end();
    assert.equal((await f.reader.read()).done, true);
  });

  it('gives a reader that is behind the whole limit from the chunk it has not taken, whatever the function took', async () => {
    const clock = new ManualClock();
    let source: ReadableStreamDefaultController<Uint8Array> | undefined;
    const upstream = new FetchUpstream(
      () =>
        new Response(
          new ReadableStream<Uint8Array>({
            start(controller) {
              source = controller;
            },
          }),
        ),
    );
    const deadline = attemptDeadline(clock, LIMIT_MS);
    const request = { method: 'GET', path: '/feed', query: '', headers: [], body: new Uint8Array(0) };
    const answer = await upstream.send(request, deadline.signal);
    answer.limitBySilence!(deadline);
    answer.body.on('error', () => {}); // the cut destroys it with the reason
    answer.body.read(0); // Spillway asks the function for its first chunk
    clock.advance(LIMIT_MS - 1); // the function takes almost the whole limit
    source!.enqueue(new Uint8Array(64 * 1024)); // more than the reader's buffer: nobody asks for more
    await until(() => answer.body.readableLength > 0, 'the chunk reached the body');
    clock.advance(LIMIT_MS - 1);
    assert.equal(answer.body.destroyed, false, 'the reader has its whole limit from the chunk');
    clock.advance(1);
    await until(() => answer.body.destroyed, 'a reader that takes nothing for the whole limit is cut');
  });

  it('is cut when the function sends nothing for attemptTimeoutMs', async () => {
    const clock = new ManualClock();
    const f = await streamingFunction(clock);
    await using _spillway = f.spillway;
    assert.equal(await f.text(), 'first;');
    clock.advance(LIMIT_MS - 1);
    f.send('more;');
    assert.equal(await f.text(), 'more;');
    // Spillway asked the function for more as soon as 'more;' went on: it waits on the function from here.
    const next = f.reader.read();
    clock.advance(LIMIT_MS);
    await assert.rejects(next, 'the body breaks off');
  });
});

/** A sync answer from the streaming upstream through an engine on a manual clock, its limit LIMIT_MS. */
async function streamingSyncAnswer() {
  const upstream = new StreamingUpstream();
  const origin = await upstream.start();
  const clock = new ManualClock();
  const store = new SqliteStore({ path: ':memory:', clock });
  const client = new HttpUpstream(origin);
  const engine = new FailoverEngine({
    store,
    upstream: client,
    clock,
    instanceId: 'test',
    maxResultBytes: 1e6,
  });
  const route = buildConfig({
    upstream: origin,
    routeDefaults: { budgetMs: 100, attemptTimeoutMs: LIMIT_MS },
  }).routes.at(-1)!;
  const answer = await engine.submit({
    route,
    request: { method: 'GET', path: '/feed', query: '', headers: [], body: new Uint8Array(0) },
    receivedAt: clock.now(),
    budgetMs: 100,
    mayFailover: true,
    tenant: null,
  });
  assert.equal(answer.kind, 'sync');
  return {
    upstream,
    clock,
    response: answer.kind === 'sync' ? answer.response : undefined,
    [Symbol.asyncDispose]: async () => {
      await client.close();
      await store.close();
      upstream.stop();
    },
  };
}

describe('a sync answer sent to a reader that holds it back', () => {
  it('is not cut while the reader is behind but reading, however long in all; it counts afresh from each read', async () => {
    await using sync = await streamingSyncAnswer();
    const { upstream, clock, response } = sync;
    // A reader that takes each chunk and acknowledges none until told: the first write fills it.
    const got: string[] = [];
    let held: Array<() => void> | undefined = [];
    const reader = new Writable({
      highWaterMark: 1,
      write(chunk: Buffer, _encoding, callback) {
        got.push(chunk.toString());
        if (held) held.push(callback);
        else callback();
      },
    });
    response!.sendTo!(reader);
    const res = await upstream.response(1);
    await until(() => got.join('') === 'first;', 'the reader got the first chunk');
    // The reader is full, so Spillway stopped reading the upstream: that wait is not the upstream's silence.
    clock.advance(LIMIT_MS - 1);
    assert.equal(reader.destroyed, false, 'not cut while the reader is behind');
    const release = held;
    held = undefined;
    for (const callback of release) callback();
    // Reading again: the count starts afresh, so twice the limit in all is not a cut.
    clock.advance(LIMIT_MS - 1);
    res.end('last');
    await once(reader, 'finish');
    assert.equal(got.join(''), 'first;last');
  });

  it('is cut when the reader takes nothing for attemptTimeoutMs: a client that stops reading frees its upstream call', async () => {
    await using sync = await streamingSyncAnswer();
    const { upstream, clock, response } = sync;
    // A reader that takes the first chunk and never acknowledges it: it has stopped reading.
    const got: string[] = [];
    const reader = new Writable({
      highWaterMark: 1,
      write(chunk: Buffer) {
        got.push(chunk.toString());
      },
    });
    reader.on('error', () => {}); // the cut destroys it with the reason
    response!.sendTo!(reader);
    const res = await upstream.response(1);
    await until(() => got.join('') === 'first;', 'the reader got the first chunk');
    clock.advance(LIMIT_MS - 1);
    assert.equal(reader.destroyed, false, 'not yet: the limit is not spent');
    clock.advance(1);
    await until(() => reader.destroyed, 'the reader was cut');
    await until(() => res.destroyed || res.writableEnded || res.closed, 'the upstream call was let go');
  });
});

describe('an adopted attempt whose body streams', () => {
  it('keeps the total limit: the whole body is stored, so an attempt that never ends must end', async () => {
    // Real time: the head comes after the budget, then a chunk every 50 ms, never a silence as long as the limit.
    const server = createServer((req, res) => {
      req.resume();
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        const tick = setInterval(() => res.write('.'), 50);
        res.once('close', () => clearInterval(tick));
      }, 150);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      await using gw = await startGateway({
        upstream: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        routeDefaults: { budgetMs: 100, attemptTimeoutMs: 600 },
      });
      const res = await fetch(`${gw.publicUrl}/report`, { method: 'POST', body: 'x' });
      assert.equal(res.status, 202);
      const op = await gw.settled(operationIdOf(res));
      assert.equal(op.status, 'Failed');
      assert.equal(op.error?.code, 'outcome-unknown');
      assert.match(op.error?.message ?? '', /broke off.*attemptTimeoutMs/);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});
