/**
 * Reading a request body at the edge, bounded in size and in time: at most
 * `maxBytes`, and never `idleMs` without a byte arriving, so a client that
 * drips its upload (slow loris) is answered 408 instead of being waited on for
 * minutes. A body over the limit is answered 413 and one that stalls 408, each
 * written before the connection closes. A client that leaves mid-body is no
 * error of Spillway's: ClientAbortError, which the shell logs at debug.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Clock } from '../clock.ts';
import { sendProblem } from './problem-response.ts';

export interface BodyLimits {
  maxBytes: number;
  /** The option `maxBytes` comes from, named in the 413. */
  maxBytesOption: string;
  /** No progress for this long ends the read: 408. */
  idleMs: number;
  clock: Clock;
}

export type BodyOutcome = { kind: 'read'; body: Uint8Array } | { kind: 'too-large' } | { kind: 'timeout' };

/** The client closed the connection before its body was complete. */
export class ClientAbortError extends Error {
  override name = 'ClientAbortError';
  readonly receivedBytes: number;
  constructor(receivedBytes: number) {
    super(`The client closed the connection after ${receivedBytes} bytes of the body.`);
    this.receivedBytes = receivedBytes;
  }
}

/**
 * After a 413 the client may still be sending, and bytes arriving at a closed
 * socket make the kernel reset the connection, which can wipe the answer out
 * of the client's buffers before it reads it (RFC 9112 §9.6). So the socket is
 * half-closed after the answer, and what still comes is read and dropped until
 * the client closes too, or this long has passed.
 */
const LINGER_MS = 2_000;

const NO_BODY = new Uint8Array(0);

/** Without either framing header a request has no body (RFC 9112 §6.3): nothing to wait for. */
export const hasBody = (req: IncomingMessage): boolean =>
  req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;

/**
 * Reads the whole body, or stops at the limit or a stall. Rejects with
 * ClientAbortError when the client goes away first. A declared
 * `Content-Length` over the limit is refused without reading anything, and
 * without `100 Continue`, which is sent (when asked for) only here.
 */
export function readRequestBody(
  req: IncomingMessage,
  res: ServerResponse,
  limits: BodyLimits,
): Promise<BodyOutcome> {
  const { maxBytes, idleMs, clock } = limits;
  const declared = req.headers['content-length'];
  if (!hasBody(req)) return Promise.resolve({ kind: 'read', body: NO_BODY });
  if (Number(declared ?? 0) > maxBytes) return Promise.resolve({ kind: 'too-large' });
  if (expectsContinue(req)) res.writeContinue();
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    let lastProgress = clock.now();
    let timer: ReturnType<Clock['setTimeout']> | undefined;
    const settle = (outcome: BodyOutcome | ClientAbortError) => {
      if (settled) return;
      settled = true;
      if (timer !== undefined) clock.clearTimeout(timer);
      req.off('end', onEnd);
      req.off('close', onClose);
      chunks.length = 0;
      if (outcome instanceof ClientAbortError) reject(outcome);
      else resolve(outcome);
    };
    // Stays on after the outcome: what still comes is read and dropped, so the answer can be read.
    req.on('data', (chunk: Buffer) => {
      lastProgress = clock.now();
      if (settled) return;
      size += chunk.byteLength;
      if (size > maxBytes) settle({ kind: 'too-large' });
      else chunks.push(chunk);
    });
    const onEnd = () => settle({ kind: 'read', body: Buffer.concat(chunks, size) });
    const onClose = () => settle(new ClientAbortError(size));
    req.once('end', onEnd);
    req.once('close', onClose);
    // One timer per idle period, not one per chunk: it looks at the last progress when it fires.
    const check = () => {
      const idle = clock.now() - lastProgress;
      if (idle >= idleMs) settle({ kind: 'timeout' });
      else timer = clock.setTimeout(check, idleMs - idle);
    };
    if (!req.complete) timer = clock.setTimeout(check, idleMs);
  });
}

/**
 * Reads the body, or answers 413 / 408 and throws BodyRefused: for handlers
 * that unwind on a refused body (the admin API's actions).
 */
export async function readRequestBodyOrRefuse(
  req: IncomingMessage,
  res: ServerResponse,
  limits: BodyLimits,
): Promise<Uint8Array> {
  const read = await readRequestBody(req, res, limits);
  if (read.kind === 'read') return read.body;
  refuseBody(req, res, read.kind, limits);
  throw new BodyRefused();
}

/** The body was refused and the refusal answered: nothing more to do for this request. */
export class BodyRefused extends Error {
  override name = 'BodyRefused';
}

/** Answers a body that was not read whole (413 or 408), then closes the connection. */
export function refuseBody(
  req: IncomingMessage,
  res: ServerResponse,
  outcome: 'too-large' | 'timeout',
  limits: BodyLimits,
  headers: Record<string, string> = {},
): void {
  res.setHeader('connection', 'close');
  if (outcome === 'timeout') {
    sendProblem(
      res,
      'request-timeout',
      `No part of the request body arrived for ${limits.idleMs} ms (bodyTimeoutMs). Send the body without pausing.`,
      headers,
    );
    return;
  }
  lingerAfterAnswer(req);
  sendProblem(
    res,
    'body-too-large',
    `The request body is over ${limits.maxBytes} bytes (${limits.maxBytesOption}). Send a smaller body.`,
    headers,
  );
}

function lingerAfterAnswer(req: IncomingMessage): void {
  const { socket } = req;
  // Node ends and destroys a `Connection: close` socket through destroySoon once the answer is written.
  socket.destroySoon = () => {
    socket.end();
    const timer = setTimeout(() => socket.destroy(), LINGER_MS);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
    socket.once('end', () => socket.destroy());
  };
  req.resume();
}

function expectsContinue(req: IncomingMessage): boolean {
  const expect = req.headers.expect;
  return expect !== undefined && req.httpVersion === '1.1' && /^100-continue$/i.test(expect.trim());
}
