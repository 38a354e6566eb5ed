/**
 * The upstream's answer as HttpUpstream receives it from undici's `dispatch`,
 * without `request()`'s Readable in between: the healthy pass-through writes
 * each chunk straight into the client's response (`sendTo`), which is what a
 * bare proxy on `Pool.stream` does, and is measurably cheaper per request.
 * Whoever needs a stream (adoption, Idempotency-Key replay, stale copies, a
 * refused answer to discard) reads `body`, made on first use from the chunks
 * held so far; the two ways are exclusive, and the first one taken wins.
 *
 * It must never lose a chunk, nor keep one unbounded: until a reader comes,
 * chunks are held, and the upstream paused past HOLD_BYTES.
 *
 * A sync answer's body is bounded by the upstream's silence (`limitBySilence`):
 * the watch hears of each chunk, and of each pause for a reader that is behind,
 * so a slow client never counts as a silent upstream. An answer whose body is
 * over before that (the usual small one, in one chunk) never involves it.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { Readable, type Writable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { SilenceWatch, UpstreamResponse } from './upstream-response.ts';

/** Held before a reader comes, past which the upstream connection is paused. */
const HOLD_BYTES = 64 * 1024;

type Controller = Dispatcher.DispatchController;

/** The body was abandoned by its reader before its end (the client left): undici's code for it. */
class BodyAbandonedError extends Error {
  override name = 'RequestAbortedError';
  readonly code = 'UND_ERR_ABORTED';
  constructor() {
    super('Request aborted');
  }
}

export class StreamedAnswer implements UpstreamResponse {
  readonly statusCode: number;
  readonly headers: IncomingHttpHeaders;
  readonly #controller: Controller;
  #held: Buffer[] = [];
  #heldBytes = 0;
  /** undefined: open; null: ended; an Error: failed. */
  #end: Error | null | undefined;
  #body: Readable | undefined;
  #sink: Writable | undefined;
  #closed = false;
  #onClose: Array<() => void> = [];
  /** Told of the body's progress once it is bounded by the upstream's silence. */
  #watch: SilenceWatch | undefined;
  /** The upstream is paused until `out` drains (sendTo). */
  #draining = false;

  constructor(controller: Controller, statusCode: number, headers: IncomingHttpHeaders) {
    this.#controller = controller;
    this.statusCode = statusCode;
    this.headers = headers;
  }

  get body(): Readable {
    if (this.#body) return this.#body;
    if (this.#sink)
      throw new Error('The answer is already being sent (sendTo); its body cannot be read too.');
    const controller = this.#controller;
    const body = new Readable({
      read: () => this.#resume(),
      destroy: (error, callback) => {
        if (this.#end === undefined) {
          this.#end = error ?? new BodyAbandonedError();
          controller.abort(this.#end);
        }
        this.#close();
        callback(error);
      },
    });
    this.#body = body;
    for (const chunk of this.#held) body.push(chunk);
    this.#held.length = 0;
    this.#heldBytes = 0;
    if (this.#end === null) body.push(null);
    else if (this.#end) body.destroy(this.#end);
    body.once('close', () => this.#close());
    return body;
  }

  /**
   * Writes the body into `out` and ends it; an upstream failure mid-body
   * destroys `out`, and `out` closing first (or having closed already)
   * abandons the upstream call.
   */
  sendTo(out: Writable): void {
    if (this.#body) throw new Error('The answer is already read as a stream; it cannot be sent too.');
    this.#sink = out;
    // The client left while the head was awaited: its 'close' has come and gone. Nothing else would
    // end a body that streams on (its limit counts silence, and a reader that is not there holds it).
    if (out.destroyed) {
      this.#abandon();
      return;
    }
    // `on`, not `once` (no wrapper per answer): what it does happens once whatever calls it again.
    out.on('close', () => this.#abandon());
    for (const chunk of this.#held) this.#write(chunk);
    this.#held.length = 0;
    this.#heldBytes = 0;
    if (this.#end === null) {
      out.end();
      this.#close();
    } else if (this.#end) out.destroy();
    // Let go of the upstream paused while held, unless `out` is already full: then its drain does.
    if (this.#end === undefined && !this.#draining) this.#resume();
  }

  /** See UpstreamResponse.limitBySilence. */
  limitBySilence(watch: SilenceWatch): void {
    if (this.#end !== undefined) return;
    this.#watch = watch;
    watch.heard();
    if (this.#controller.paused) watch.held();
  }

  /** Calls `fn` once, when the body has ended, failed or been abandoned (a Readable's 'close'). */
  onClose(fn: () => void): void {
    if (this.#closed) fn();
    else this.#onClose.push(fn);
  }

  /** From the dispatch handler: a chunk of the body. */
  data(chunk: Buffer): void {
    if (this.#end !== undefined) return;
    this.#watch?.heard();
    if (this.#body) {
      if (!this.#body.push(chunk)) this.#pause();
    } else if (this.#sink) {
      this.#write(chunk);
    } else {
      this.#held.push(chunk);
      this.#heldBytes += chunk.byteLength;
      if (this.#heldBytes > HOLD_BYTES) this.#pause();
    }
  }

  /** From the dispatch handler: the body is complete. */
  ended(): void {
    if (this.#end !== undefined) return;
    this.#end = null;
    if (this.#body) this.#body.push(null);
    else if (this.#sink) {
      this.#sink.end();
      this.#close();
    }
  }

  /** From the dispatch handler: the call failed after the headers (or was aborted). */
  failed(error: Error): void {
    if (this.#end !== undefined) return;
    this.#end = error;
    if (this.#body) this.#body.destroy(error);
    else if (this.#sink) this.#sink.destroy();
    else this.#close();
  }

  #write(chunk: Buffer): void {
    const sink = this.#sink!;
    if (!sink.write(chunk) && !this.#draining) {
      this.#draining = true;
      this.#pause();
      sink.once('drain', () => {
        this.#draining = false;
        this.#resume();
      });
    }
  }

  /** The reader left: the upstream call is abandoned, unless the body is already over. */
  #abandon(): void {
    if (this.#end === undefined) {
      this.#end = new BodyAbandonedError();
      this.#controller.abort(this.#end);
    }
    this.#close();
  }

  /** Stops reading the upstream for a reader that is behind (or not there yet). */
  #pause(): void {
    this.#controller.pause();
    this.#watch?.held();
  }

  /** Reads the upstream again. The watch first: resuming may hand over chunks (and pause) at once. */
  #resume(): void {
    if (!this.#controller.paused) return;
    this.#watch?.heard();
    this.#controller.resume();
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    // Once closed, onClose calls at once: nothing is added while these run.
    for (const fn of this.#onClose) fn();
    this.#onClose.length = 0;
  }
}
