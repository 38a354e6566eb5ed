/**
 * Hostile input on both ports, over raw sockets: what an attacker or a
 * careless client sends. Whatever comes in, the gateway answers a documented
 * problem+json (or, on a proxied path, lets the upstream answer), never a 500,
 * never a crash, and serves the next client: after each case /healthz answers
 * on the admin port and a proxied request on the public one. Short time limits
 * (headersTimeoutMs, bodyTimeoutMs) keep the slow cases quick.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { operationIdOf, startGateway, type TestGateway } from '../support/harness.ts';
import { capturedLogger, type LogLine } from '../support/log-lines.ts';
import {
  assertDocumentedProblem,
  assertProblem,
  drip,
  exchange,
  problemOf,
  type RawAnswer,
} from '../support/raw-http.ts';
import { TestUpstream } from '../support/test-upstream.ts';

const HEADERS_TIMEOUT_MS = 400;
const BODY_TIMEOUT_MS = 400;
const MAX_BODY_BYTES = 1024;
/** Percent-escapes that do not decode: bad hex, truncated, invalid UTF-8; and one that decodes to NUL. */
const BAD_ESCAPES = ['%ZZ', '%', '%E0%A4%A', '%C0%AF', 'op_%ZZ', '%00'];

let upstream: TestUpstream;
let gw: TestGateway;
let log: LogLine[];
let operationId: string;
type Port = 'public' | 'admin';
const portOf = (which: Port) => (which === 'public' ? gw.port : gw.adminPort);
/** Log levels as the gateway's logger writes them (labels). */
const LEVEL = { debug: 'debug', error: 'error' } as const;

before(async () => {
  upstream = await new TestUpstream().start();
  const captured = capturedLogger('debug');
  log = captured.lines;
  gw = await startGateway(
    {
      upstream: upstream.url,
      maxBodyBytes: MAX_BODY_BYTES,
      headersTimeoutMs: HEADERS_TIMEOUT_MS,
      bodyTimeoutMs: BODY_TIMEOUT_MS,
      replay: { concurrency: 0 }, // the operation below stays NotStarted
    },
    undefined,
    { logger: captured.logger },
  );
  const accepted = await fetch(`${gw.publicUrl}/payments`, {
    method: 'POST',
    headers: { prefer: 'respond-async, wait=0' },
    body: '{}',
  });
  assert.equal(accepted.status, 202);
  operationId = operationIdOf(accepted);
});

after(async () => {
  await gw.stop();
  await upstream.stop();
});

/** The gateway is alive and serves both ports. */
async function assertAlive(): Promise<void> {
  const health = await fetch(`http://127.0.0.1:${gw.adminPort}/healthz`);
  assert.equal(health.status, 200);
  assert.deepEqual(await health.json(), { status: 'ok' });
  const proxied = await fetch(`${gw.publicUrl}/alive`);
  assert.equal(proxied.status, 200);
  await proxied.arrayBuffer();
}

/** Log lines at error level written since `mark` (an index into the log). */
const errorsSince = (mark: number) =>
  log.slice(mark).filter((line) => line.level === LEVEL.error || line.level === 'fatal');

/** Waits until a log line after `mark` satisfies `test`, or fails after `ms`. */
async function logLine(mark: number, test: (line: LogLine) => boolean, ms = 5_000): Promise<LogLine> {
  const until = Date.now() + ms;
  for (;;) {
    const found = log.slice(mark).find(test);
    if (found) return found;
    if (Date.now() > until)
      assert.fail(`no such log line within ${ms} ms; got ${JSON.stringify(log.slice(mark))}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function request(method: string, path: string, body = '', headers: Record<string, string> = {}): string {
  const fields = {
    host: 'gateway.test',
    connection: 'close',
    'content-length': String(body.length),
    ...headers,
  };
  return `${method} ${path} HTTP/1.1\r\n${Object.entries(fields)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('')}\r\n${body}`;
}

/** Every way to put one bad escape into one segment of `path`. */
function withBadSegments(path: string): string[] {
  const segments = path.split('/').slice(1);
  return segments.flatMap((_, i) =>
    BAD_ESCAPES.map((bad) => `/${segments.map((segment, j) => (j === i ? bad : segment)).join('/')}`),
  );
}

const OPERATION_PATH = /^\/_spillway\/operations\/[^/]+(?:\/(result|events|cancel|deliveries))?$/;

describe('malformed percent-escapes', () => {
  it('public port: in every path segment of every endpoint, a documented problem (404 operation-not-found for an operation id), never a 500', async () => {
    const mark = log.length;
    const endpoints: Array<[string, string]> = [
      ['GET', `/_spillway/operations/${operationId}`],
      ['OPTIONS', `/_spillway/operations/${operationId}`],
      ['GET', `/_spillway/operations/${operationId}/result`],
      ['GET', `/_spillway/operations/${operationId}/events`],
      ['GET', `/_spillway/operations/${operationId}/deliveries`],
      ['POST', `/_spillway/operations/${operationId}/cancel`],
      ['GET', '/_spillway/ws'],
      ['GET', '/_spillway/openapi.json'],
      ['POST', '/payments/charge'],
    ];
    let checked = 0;
    for (const [method, template] of endpoints) {
      for (const path of withBadSegments(template)) {
        const answer = await exchange(gw.port, request(method, path, method === 'POST' ? '{}' : ''));
        const context = `${method} ${path}`;
        if (!path.startsWith('/_spillway/')) {
          // Not Spillway's own path: forwarded as it came, and the upstream answers.
          assert.equal(answer.status, 200, context);
        } else if (method === 'OPTIONS' && OPERATION_PATH.test(path)) {
          assert.equal(answer.status, 204, context); // a CORS preflight says nothing about the id
        } else {
          const match = OPERATION_PATH.exec(path);
          const methodAllowed = match && (match[1] === 'cancel' ? method === 'POST' : method === 'GET');
          if (methodAllowed && !path.includes(`/${operationId}`)) {
            assertProblem(answer, 'operation-not-found', context);
          } else {
            assertDocumentedProblem(answer, context);
          }
        }
        checked++;
      }
      // The WebSocket handshake to the same paths.
      if (template === '/_spillway/ws') {
        for (const path of withBadSegments(template)) {
          const answer = await exchange(
            gw.port,
            request('GET', path, '', {
              connection: 'Upgrade',
              upgrade: 'websocket',
              'sec-websocket-version': '13',
              'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
            }),
          );
          assertDocumentedProblem(answer, `WebSocket handshake to ${path}`);
          checked++;
        }
      }
    }
    assert.ok(checked > 150, `${checked} requests`);
    assert.deepEqual(errorsSince(mark), [], 'a malformed id is an unknown id, not an error to log');
    await assertAlive();
  });

  it('public port: the query string too (lastEventId=%ZZ) is no error', async () => {
    const answer = await exchange(
      gw.port,
      request('GET', `/_spillway/operations/op_%ZZ/events?lastEventId=%ZZ`),
    );
    assertProblem(answer, 'operation-not-found');
    await assertAlive();
  });

  it('WebSocket: a subscribe to a malformed operation id is answered operation-not-found', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${gw.port}/_spillway/ws`);
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    const reply = new Promise<Record<string, unknown>>((resolve) =>
      ws.once('message', (data) => resolve(JSON.parse(String(data)))),
    );
    ws.send(JSON.stringify({ type: 'subscribe', operationId: 'op_%ZZ' }));
    assert.deepEqual(
      { type: (await reply).type, code: (await reply).code },
      { type: 'error', code: 'operation-not-found' },
    );
    ws.close();
    await assertAlive();
  });

  it('admin port: in every path segment of every endpoint, a documented problem, never a 500 or a crash', async () => {
    const mark = log.length;
    const endpoints: Array<[string, string, string]> = [
      ['GET', '/healthz', ''],
      ['GET', '/readyz', ''],
      ['GET', '/api/health', ''],
      ['PUT', '/api/routes/default/override', 'none'],
      ['GET', '/api/webhooks/endpoints/disabled', ''],
      ['POST', '/api/webhooks/endpoints/hooks/enable', ''],
      ['POST', `/api/operations/${operationId}/deliveries/callback/1/resend`, ''],
    ];
    let checked = 0;
    for (const [method, template, body] of endpoints) {
      for (const path of withBadSegments(template)) {
        const answer = await exchange(gw.adminPort, request(method, path, body));
        const context = `${method} ${path}`;
        if (/^\/api\/routes\/[^/]+\/override$/.test(path) && !/\/(default|%00)\//.test(path)) {
          assertProblem(answer, 'bad-request', context); // not percent-encoded correctly
        } else {
          assertDocumentedProblem(answer, context);
        }
        checked++;
      }
    }
    assert.ok(checked > 100, `${checked} requests`);
    assert.deepEqual(errorsSince(mark), []);
    await assertAlive();
  });
});

describe('oversized and malformed headers', () => {
  for (const port of ['public', 'admin'] as const) {
    it(`${port} port: a header section over the limit is 431 header-too-large, then closed`, async () => {
      for (const bytes of [
        `GET /x HTTP/1.1\r\nHost: a\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
        `GET /${'a'.repeat(20_000)} HTTP/1.1\r\nHost: a\r\n\r\n`,
        `GET /x HTTP/1.1\r\nHost: a\r\n${'X-Many: b\r\n'.repeat(2_000)}\r\n`,
      ]) {
        const answer = await exchange(portOf(port), bytes, { waitForClose: true });
        assertProblem(answer, 'header-too-large', bytes.slice(0, 40));
        assert.equal(answer.ending, 'closed');
      }
      await assertAlive();
    });

    it(`${port} port: malformed request lines and header fields are 400 bad-request`, async () => {
      for (const bytes of [
        'THIS IS NOT HTTP\r\n\r\n',
        'GET /x HTTP/9.9\r\nHost: a\r\n\r\n',
        'GET /x\r\nHost: a\r\n\r\n',
        'GET /x HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n',
        'GET /x HTTP/1.1\r\nHost: a\r\nNo-Colon\r\n\r\n',
        'GET /x HTTP/1.1\r\nHost: a\r\nX-Nul: a\x00b\r\n\r\n',
        'GET /x HTTP/1.1\r\nHost: a\r\n Folded: x\r\n\r\n',
        'GET /x HTTP/1.1\nHost: a\n\n\n',
        '\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03', // a TLS ClientHello on the plain port
      ]) {
        const answer = await exchange(portOf(port), bytes, { waitForClose: true });
        assertProblem(answer, 'bad-request', JSON.stringify(bytes));
      }
      await assertAlive();
    });

    it(`${port} port: HTTP/1.1 without Host, or with two, is 400 bad-request; HTTP/1.0 without Host is served`, async () => {
      const path = port === 'public' ? '/x' : '/healthz';
      for (const bytes of [
        `GET ${path} HTTP/1.1\r\n\r\n`,
        `GET ${path} HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n`,
      ]) {
        const answer = await exchange(portOf(port), bytes, { waitForClose: true });
        assertProblem(answer, 'bad-request', JSON.stringify(bytes));
        assert.match(problemOf(answer).detail, /Host/);
        assert.equal(answer.ending, 'closed');
      }
      const old = await exchange(portOf(port), `GET ${path} HTTP/1.0\r\n\r\n`);
      assert.equal(old.status, 200);
      await assertAlive();
    });

    it(`${port} port: an unknown Expect is 417 expectation-failed`, async () => {
      const path = port === 'public' ? '/x' : '/healthz';
      const answer = await exchange(
        portOf(port),
        `GET ${path} HTTP/1.1\r\nHost: a\r\nExpect: teapot\r\n\r\n`,
        { waitForClose: true },
      );
      assertProblem(answer, 'expectation-failed');
      assert.match(problemOf(answer).detail, /100-continue/);
      await assertAlive();
    });
  }

  it('public port: Expect: 100-continue gets 100 Continue within limits, and 413 without it over maxBodyBytes', async () => {
    const body = '{"a":1}';
    const fine = await exchange(gw.port, async (socket) => {
      socket.write(
        `POST /payments HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: ${body.length}\r\n\r\n`,
      );
      await new Promise((resolve) => socket.once('data', resolve)); // the 100 Continue
      socket.write(body);
    });
    assert.deepEqual(fine.interim, [100]);
    assert.equal(fine.status, 200);
    assert.equal(JSON.parse(fine.body).body, body);
    const refused = await exchange(
      gw.port,
      `POST /payments HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: ${MAX_BODY_BYTES + 1}\r\n\r\n`,
      { waitForClose: true },
    );
    assert.deepEqual(refused.interim, [], 'no 100 Continue for a body that will be refused');
    assertProblem(refused, 'body-too-large');
    assert.equal(refused.ending, 'closed');
    await assertAlive();
  });
});

describe('bad and conflicting framing', () => {
  for (const port of ['public', 'admin'] as const) {
    it(`${port} port: bad or conflicting Content-Length and Transfer-Encoding are 400 bad-request`, async () => {
      const path = port === 'public' ? '/payments' : '/api/routes/default/override';
      const method = port === 'public' ? 'POST' : 'PUT';
      for (const framing of [
        'Content-Length: abc\r\n\r\nnone',
        'Content-Length: -4\r\n\r\nnone',
        'Content-Length: 4\r\nContent-Length: 5\r\n\r\nnone',
        'Content-Length: 4, 5\r\n\r\nnone',
        'Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nnone\r\n0\r\n\r\n',
        'Transfer-Encoding: chunked, identity\r\n\r\n4\r\nnone\r\n0\r\n\r\n',
        'Transfer-Encoding: gzip\r\n\r\nnone',
        'Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nnone\r\n0\r\n\r\n',
        'Transfer-Encoding: chunked\r\n\r\nzz\r\nnone\r\n0\r\n\r\n',
        'Transfer-Encoding: chunked\r\n\r\n4\r\nnonenone\r\n0\r\n\r\n',
        'Transfer-Encoding: chunked\r\n\r\n4;a=\x01\r\nnone\r\n0\r\n\r\n',
      ]) {
        const bytes = `${method} ${path} HTTP/1.1\r\nHost: a\r\n${framing}`;
        const answer = await exchange(portOf(port), bytes, { waitForClose: true });
        if (answer.status === 200) {
          // Tolerated by the parser (and so by every hop after it): then it must have been read as one body.
          assert.fail(`accepted ${JSON.stringify(framing)}: ${answer.raw}`);
        }
        assertProblem(answer, 'bad-request', JSON.stringify(framing));
      }
      await assertAlive();
    });

    it(`${port} port: a chunked body over the limit is answered 413 body-too-large before the connection closes`, async () => {
      const path = port === 'public' ? '/payments' : '/api/routes/default/override';
      const method = port === 'public' ? 'POST' : 'PUT';
      const chunk = `100\r\n${'a'.repeat(256)}\r\n`;
      const head = `${method} ${path} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n`;
      // All at once, then the client's end: the answer, then a clean close.
      const whole = await exchange(
        portOf(port),
        (socket) => {
          socket.end(`${head}${chunk.repeat(80)}0\r\n\r\n`); // 20 KiB: over both limits
        },
        { waitForClose: true },
      );
      assertProblem(whole, 'body-too-large');
      assert.equal(whole.ending, 'closed');
      // A client that keeps sending after the limit still reads its answer, and the server closes.
      const endless = await exchange(
        portOf(port),
        async (socket) => {
          socket.write(head + chunk.repeat(70));
          for (let i = 0; i < 100 && !socket.destroyed; i++) {
            socket.write(chunk);
            await new Promise((resolve) => setTimeout(resolve, 20));
          }
        },
        { waitForClose: true, timeoutMs: 10_000 },
      );
      assertProblem(endless, 'body-too-large');
      assert.notEqual(endless.ending, 'open', 'the server closes the connection');
      await assertAlive();
    });
  }
});

describe('slow clients', () => {
  for (const port of ['public', 'admin'] as const) {
    it(`${port} port: headers not finished within headersTimeoutMs are 408 request-timeout, then closed`, async () => {
      const answer = await exchange(portOf(port), 'GET /healthz HTTP/1.1\r\nHost: a\r\n', {
        waitForClose: true,
        timeoutMs: 10_000,
      });
      assertProblem(answer, 'request-timeout');
      assert.equal(answer.ending, 'closed');
      assert.ok(answer.answeredAfterMs >= HEADERS_TIMEOUT_MS, `${answer.answeredAfterMs} ms`);
      await assertAlive();
    });

    it(`${port} port: a body with no progress for bodyTimeoutMs is 408 request-timeout, then closed`, async () => {
      const head =
        port === 'public'
          ? 'POST /payments HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n'
          : 'PUT /api/routes/default/override HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n';
      const answer = await exchange(portOf(port), `${head}no`, { waitForClose: true, timeoutMs: 10_000 });
      assertProblem(answer, 'request-timeout');
      assert.equal(answer.ending, 'closed');
      assert.ok(answer.answeredAfterMs >= BODY_TIMEOUT_MS, `${answer.answeredAfterMs} ms`);
      await assertAlive();
    });
  }

  it('public port: a slow body that keeps making progress is read whole (the deadline is per gap, not per body)', async () => {
    const body = '{"slow":1}';
    const answer = await exchange(
      gw.port,
      async (socket) => {
        socket.write(`POST /payments HTTP/1.1\r\nHost: a\r\nContent-Length: ${body.length}\r\n\r\n`);
        await drip(socket, body, BODY_TIMEOUT_MS / 4); // takes 2.5 × bodyTimeoutMs in all
      },
      { timeoutMs: 10_000 },
    );
    assert.equal(answer.status, 200);
    assert.equal(JSON.parse(answer.body).body, body);
  });

  for (const port of ['public', 'admin'] as const) {
    it(`${port} port: a client that aborts mid-body is logged at debug as a client abort, not as an error`, async () => {
      const mark = log.length;
      const head =
        port === 'public'
          ? 'POST /payments HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n'
          : 'PUT /api/routes/default/override HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n';
      const answer = await exchange(portOf(port), async (socket) => {
        socket.write(`${head}for`);
        await new Promise((resolve) => setTimeout(resolve, 50));
        socket.destroy();
      });
      assert.equal(answer.status, 0, 'nothing to answer');
      const line = await logLine(mark, (l) => l.msg === 'request:aborted');
      assert.equal(line.level, LEVEL.debug);
      assert.equal(line.port, port);
      assert.equal(line.receivedBytes, 3);
      await assertAlive();
      assert.deepEqual(errorsSince(mark), []);
    });
  }
});

describe('unexpected errors', () => {
  it('public port: a handler that throws answers that request 500 internal-error, logs it, and serves the next', async () => {
    const mark = log.length;
    const get = gw.store.get.bind(gw.store);
    gw.store.get = () => {
      gw.store.get = get;
      throw new TypeError('a bug in a store adapter');
    };
    const answer: RawAnswer = await exchange(gw.port, request('GET', `/_spillway/operations/${operationId}`));
    assertProblem(answer, 'internal-error');
    const line = await logLine(mark, (l) => l.level === LEVEL.error);
    assert.equal(line.msg, 'request:error');
    assert.equal(line.source, 'request');
    assert.equal(line.path, `/_spillway/operations/${operationId}`);
    assert.equal((line.err as { message: string }).message, 'a bug in a store adapter');
    await assertAlive();
  });

  it('admin port: a handler that throws answers that request 500 internal-error, logs it, and serves the next', async () => {
    const mark = log.length;
    const snapshot = gw.health.snapshot.bind(gw.health);
    gw.health.snapshot = () => {
      gw.health.snapshot = snapshot;
      throw new TypeError('a bug in the health snapshot');
    };
    const answer = await exchange(gw.adminPort, request('GET', '/api/health'));
    assertProblem(answer, 'internal-error');
    const line = await logLine(mark, (l) => l.level === LEVEL.error);
    assert.equal(line.msg, 'request:error');
    assert.equal(line.source, 'admin');
    assert.equal(line.method, 'GET');
    assert.equal((line.err as { message: string }).message, 'a bug in the health snapshot');
    await assertAlive();
  });
});
