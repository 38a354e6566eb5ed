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
  /**
   * Optional: from now on the attempt's limit bounds the body by how long
   * nothing moves (no chunk from the upstream, nothing taken by the reader),
   * not by its total time (a sync answer passed on to its client); `watch`
   * is told of each chunk, and of each time Spillway
   * holds the upstream back for a reader that is behind, and lets it go
   * again. Nothing is done when the body is already over. Without this
   * method, the limit stays on the attempt's total time.
   */
  limitBySilence?(watch: SilenceWatch): void;
}

/** An attempt's limit as a body that streams tells it what happens (attempt.ts `attemptDeadline`). */
export interface SilenceWatch {
  /** The upstream sent something, or Spillway reads it again after holding it back: the silence counts from now. */
  heard(): void;
  /**
   * Spillway stopped reading the upstream for a reader that is behind: until `heard()`, a silence is
   * the reader's, not the upstream's. A reader that takes nothing for the whole limit is cut all the
   * same: a client that stops reading must not hold its place and an upstream connection for ever.
   */
  held(): void;
}

/** Calls `fn` once the answer's body is over (ended, failed or abandoned). */
export function whenBodyCloses(response: UpstreamResponse, fn: () => void): void {
  if (response.onClose) response.onClose(fn);
  else response.body.once('close', fn);
}
