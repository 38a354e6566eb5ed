/**
 * Writing problem+json answers (RFC 9457). Every error Spillway produces goes
 * out through here, so none escapes as plain text.
 */
import { type ServerResponse, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { type ErrorCode, problem } from '../errors.ts';

export function sendProblem(
  res: ServerResponse,
  code: ErrorCode,
  detail: string,
  headers: Record<string, string | number> = {},
  extensions: Record<string, unknown> = {},
): void {
  const doc = problem(code, detail, extensions);
  const body = JSON.stringify(doc);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(doc.status, {
    ...headers,
    'content-type': 'application/problem+json',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(body);
}

/**
 * Answers on a bare socket, where there is no ServerResponse (Node's parser
 * refused the request, or an upgrade is refused), then closes it.
 */
export function sendRawProblem(
  socket: Duplex,
  code: ErrorCode,
  detail: string,
  headers: Record<string, string> = {},
): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const doc = problem(code, detail);
  const body = JSON.stringify(doc);
  socket.once('finish', () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${doc.status} ${STATUS_CODES[doc.status]}\r\n` +
      'Content-Type: application/problem+json\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      Object.entries(headers)
        .map(([name, value]) => `${name}: ${value}\r\n`)
        .join('') +
      'Cache-Control: no-store\r\nConnection: close\r\n\r\n' +
      body,
  );
}
