/**
 * HTTP/1.1 over a raw socket, for inputs no HTTP client will send: malformed
 * requests, conflicting framing, slow or abandoned uploads. `exchange` writes
 * what the script says and reads the first final answer (interim 1xx answers
 * are kept apart), and tells how the connection ended, so a test can tell a
 * problem answer from a reset.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { errorTable, PROBLEM_BASE } from '../../src/errors.ts';

export interface RawAnswer {
  /** 0 when no complete status line came back. */
  status: number;
  /** Lower-case names; a repeated field keeps its last value. */
  headers: Record<string, string>;
  body: string;
  /** Interim (1xx) status codes received before the final answer. */
  interim: number[];
  /** Everything the server sent. */
  raw: string;
  /** How the connection ended: the server closed it, reset it, or is keeping it open. */
  ending: 'closed' | 'reset' | 'open';
  /** When the final answer was complete, in ms after the script started. */
  answeredAfterMs: number;
}

export type Script = string | Buffer | ((socket: Socket) => Promise<void> | void);

export interface ExchangeOptions {
  /** Give up after this long: the answer so far is returned with `ending: 'open'`. */
  timeoutMs?: number;
  /** Wait for the server to close the connection after its answer (up to timeoutMs), so `ending` says whether it did. */
  waitForClose?: boolean;
}

/** Runs `script` on a fresh connection to 127.0.0.1:`port` and returns the first final answer. */
export function exchange(port: number, script: Script, options: ExchangeOptions = {}): Promise<RawAnswer> {
  const { timeoutMs = 5_000, waitForClose = false } = options;
  return new Promise((resolve) => {
    const started = performance.now();
    const socket = connect(port, '127.0.0.1');
    let raw = Buffer.alloc(0);
    let parsed: Omit<RawAnswer, 'ending' | 'raw'> | undefined;
    let settled = false;
    const finish = (ending: RawAnswer['ending']) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const text = raw.toString('latin1');
      resolve({
        ...(parsed ??
          parse(text, true) ?? {
            status: 0,
            headers: {},
            body: '',
            interim: [],
            answeredAfterMs: performance.now() - started,
          }),
        raw: text,
        ending,
      });
    };
    const timer = setTimeout(() => finish('open'), timeoutMs);
    socket.on('data', (chunk: Buffer) => {
      raw = Buffer.concat([raw, chunk]);
      if (parsed) return;
      const answer = parse(raw.toString('latin1'), false);
      if (answer) {
        parsed = { ...answer, answeredAfterMs: performance.now() - started };
        if (!waitForClose) finish('open');
      }
    });
    socket.on('end', () => finish('closed'));
    socket.on('close', () => finish('closed'));
    socket.on('error', (error: NodeJS.ErrnoException) =>
      finish(error.code === 'ECONNRESET' ? 'reset' : 'closed'),
    );
    socket.once('connect', async () => {
      try {
        if (typeof script === 'function') await script(socket);
        else socket.write(script);
      } catch {
        // The server closed or reset the connection under the script: the answer tells what it sent.
      }
    });
  });
}

/**
 * Parses the first final answer in `text`: undefined while it is incomplete, unless the
 * connection has `ended` (then a body without framing is whatever came).
 */
function parse(text: string, ended: boolean): Omit<RawAnswer, 'ending' | 'raw'> | undefined {
  const interim: number[] = [];
  let rest = text;
  for (;;) {
    const end = rest.indexOf('\r\n\r\n');
    if (end === -1) return undefined;
    const [statusLine = '', ...lines] = rest.slice(0, end).split('\r\n');
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0);
    rest = rest.slice(end + 4);
    if (status >= 100 && status < 200) {
      interim.push(status);
      continue;
    }
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const colon = line.indexOf(':');
      if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    let body: string | undefined;
    if (headers['content-length'] !== undefined) {
      const length = Number(headers['content-length']);
      if (rest.length >= length || ended) body = rest.slice(0, length);
    } else if (headers['transfer-encoding']?.toLowerCase() === 'chunked') {
      body = dechunk(rest) ?? (ended ? rest : undefined);
    } else {
      body = ended ? rest : undefined;
    }
    if (body === undefined) return undefined;
    return {
      status,
      headers,
      body: Buffer.from(body, 'latin1').toString('utf8'),
      interim,
      answeredAfterMs: 0,
    };
  }
}

function dechunk(text: string): string | undefined {
  let body = '';
  let rest = text;
  for (;;) {
    const line = rest.indexOf('\r\n');
    if (line === -1) return undefined;
    const size = Number.parseInt(rest.slice(0, line), 16);
    if (Number.isNaN(size)) return undefined;
    if (size === 0) return body;
    if (rest.length < line + 2 + size + 2) return undefined;
    body += rest.slice(line + 2, line + 2 + size);
    rest = rest.slice(line + 2 + size + 2);
  }
}

/** Asserts the answer is the problem+json document of `code`, with its documented status. */
export function assertProblem(answer: RawAnswer, code: keyof typeof errorTable, context = ''): void {
  const doc = problemOf(answer, context);
  assert.equal(doc.code, code, `${context}\n--- answer:\n${answer.raw.slice(0, 600)}`);
}

/** Asserts the answer is a problem+json document whose code is in src/errors.ts (so in docs/errors.md), and not a 500. */
export function assertDocumentedProblem(answer: RawAnswer, context = ''): void {
  const doc = problemOf(answer, context);
  assert.notEqual(doc.code, 'internal-error', `a 500 ${context}\n--- answer:\n${answer.raw.slice(0, 600)}`);
}

/** The answer's problem document, checked against the error table: type, code, status and title agree. */
export function problemOf(answer: RawAnswer, context = ''): { code: string; detail: string } {
  const where = `${context}\n--- answer:\n${answer.raw.slice(0, 600)}`;
  assert.equal(answer.headers['content-type'], 'application/problem+json', `content type ${where}`);
  let doc: { type?: unknown; code?: unknown; status?: unknown; title?: unknown; detail?: unknown };
  try {
    doc = JSON.parse(answer.body);
  } catch {
    assert.fail(`the body is not JSON ${where}`);
  }
  assert.ok(typeof doc.code === 'string' && doc.code in errorTable, `an undocumented code ${where}`);
  const entry = errorTable[doc.code as keyof typeof errorTable];
  assert.equal(doc.type, PROBLEM_BASE + doc.code, where);
  assert.equal(doc.status, answer.status, where);
  assert.equal(entry.status, answer.status, where);
  assert.equal(doc.title, entry.title, where);
  assert.ok(typeof doc.detail === 'string' && doc.detail.length > 0, where);
  return { code: doc.code, detail: doc.detail };
}

/** Writes `text` one byte every `everyMs`, until it is written or the socket closes. */
export async function drip(socket: Socket, text: string, everyMs: number): Promise<void> {
  for (const byte of text) {
    if (socket.destroyed || !socket.writable) return;
    socket.write(byte);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}
