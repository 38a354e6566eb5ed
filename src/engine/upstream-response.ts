/**
 * The upstream's answer, apart from the upstream port (upstream.ts) so that
 * the answers it makes (streamed-answer.ts) can name the shape they keep
 * without importing the port that creates them.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable, Writable } from 'node:stream';

/** The upstream's answer at its headers; the body streams. */
export interface UpstreamResponse {
  statusCode: number;
  headers: IncomingHttpHeaders;
  body: Readable;
  /**
   * Optional, cheaper than `body.pipe(out)` where offered: writes the body into
   * `out` and ends it, destroys `out` if the upstream fails mid-body, abandons
   * the call if `out` closes first. Either this or `body`, not both.
   */
  sendTo?(out: Writable): void;
  /** Optional: calls `fn` once the body has ended, failed or been abandoned, whichever way it is read. */
  onClose?(fn: () => void): void;
}

/** Calls `fn` once the answer's body is over (ended, failed or abandoned). */
export function whenBodyCloses(response: UpstreamResponse, fn: () => void): void {
  if (response.onClose) response.onClose(fn);
  else response.body.once('close', fn);
}
