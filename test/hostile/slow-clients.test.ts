/**
 * Slow clients do not starve the gateway: a request still uploading its body
 * holds no place among the `maxInFlight` (nor in its route's concurrency),
 * so a few cheap sockets dripping bytes cannot turn every other client away.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { startGateway } from '../support/harness.ts';
import { TestUpstream } from '../support/test-upstream.ts';

const UPSTREAM_MS = 300;

/** A client that sends its headers, then its body at one byte a second. */
class Dripper {
  readonly socket: Socket;
  /** Resolves once the gateway has asked for the body (100 Continue): it is reading it. */
  readonly reading: Promise<void>;
  /** Resolves once the first byte of the body has been sent. */
  readonly dripping: Promise<void>;
  #timer: NodeJS.Timeout | undefined;
  #answer = '';

  constructor(port: number, expectContinue: boolean) {
    this.socket = connect(port, '127.0.0.1');
    this.socket.on('error', () => {}); // closed at the end of the test
    this.socket.on('data', (chunk) => {
      this.#answer += chunk;
    });
    this.socket.write(
      'POST /payments HTTP/1.1\r\nHost: gateway.test\r\nContent-Type: application/json\r\n' +
        `Content-Length: 100\r\n${expectContinue ? 'Expect: 100-continue\r\n' : ''}\r\n`,
    );
    this.reading = expectContinue
      ? new Promise((resolve) => {
          const look = () => {
            if (this.#answer.startsWith('HTTP/1.1 100 Continue\r\n\r\n')) resolve();
            else this.socket.once('data', look);
          };
          this.socket.once('data', look);
        })
      : Promise.resolve();
    this.dripping = this.reading.then(
      () =>
        new Promise<void>((resolve) => {
          const tick = () => {
            this.socket.write('x');
            resolve();
            this.#timer = setTimeout(tick, 1_000);
          };
          tick();
        }),
    );
  }

  /** Everything the gateway has answered so far, past any 100 Continue. */
  get answer(): string {
    return this.#answer.replace('HTTP/1.1 100 Continue\r\n\r\n', '');
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.socket.destroy();
  }
}

describe('slow uploads', () => {
  it('with maxInFlight 8, eight connections dripping a body at 1 byte/s do not delay normal requests beyond their own upstream time', async () => {
    const upstream = await new TestUpstream().start();
    upstream.behaviour = () => ({
      kind: 'delay',
      ms: UPSTREAM_MS,
      and: { kind: 'respond', status: 200, body: 'ok' },
    });
    await using gw = await startGateway({
      upstream: upstream.url,
      maxInFlight: 8,
      // The route's concurrency too: a request still uploading holds no place there either.
      routeDefaults: { budgetMs: 5_000, attemptTimeoutMs: 10_000, health: { maxConcurrency: 8 } },
    });
    // Half ask for 100 Continue, so the test knows the gateway is reading their bodies.
    const drippers = Array.from({ length: 8 }, (_, i) => new Dripper(gw.port, i % 2 === 0));
    try {
      await Promise.all(drippers.map((d) => d.dripping));
      // A second drip for all: by now every dripper's request is being read by the gateway.
      await new Promise((resolve) => setTimeout(resolve, 1_100));

      const started = performance.now();
      const answers = await Promise.all(
        Array.from({ length: 8 }, async () => {
          // The deadline: the upstream's own time, plus a margin for a loaded machine.
          const res = await fetch(`${gw.publicUrl}/payments`, {
            method: 'POST',
            body: '{"amount":1}',
            signal: AbortSignal.timeout(UPSTREAM_MS + 2_000),
          });
          return { status: res.status, body: await res.text() };
        }),
      );
      const elapsed = performance.now() - started;
      assert.deepEqual(
        answers,
        Array.from({ length: 8 }, () => ({ status: 200, body: 'ok' })),
        'every normal request went through, none was refused 503 overloaded or captured',
      );
      assert.ok(elapsed < UPSTREAM_MS + 2_000, `${Math.round(elapsed)} ms`);
      // The drippers were still being read all along: nothing answered them yet.
      for (const dripper of drippers) assert.equal(dripper.answer, '', 'a dripper got an answer');
      assert.equal(upstream.received.length, 8, 'only the normal requests reached the upstream');
    } finally {
      for (const dripper of drippers) dripper.stop();
      await upstream.stop();
    }
  });
});
