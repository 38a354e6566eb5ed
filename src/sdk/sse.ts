/**
 * A Server-Sent Events parser that follows the WHATWG HTML "event stream
 * interpretation" (§9.2.6) to the letter: lines end in CRLF, LF or CR (a CR at
 * the end of one chunk and an LF at the start of the next are one line end),
 * a leading BOM is dropped, `:` lines are comments, one space after the colon
 * is removed, `data` lines are joined with LF, an `id` holding NUL is ignored,
 * `retry` is taken only when all ASCII digits, and an event still being built
 * when the stream ends is discarded.
 *
 * No dependencies: it runs wherever TextDecoder and ReadableStream do.
 */

export interface SseEvent {
  /** The `event:` field, `message` when the event had none. */
  type: string;
  /** The `data:` lines joined with LF. */
  data: string;
  /** The last event id buffer when the event was dispatched (it carries over). */
  lastEventId: string;
}

export interface SseHandlers {
  onEvent?: (event: SseEvent) => void;
  onComment?: (comment: string) => void;
  onRetry?: (ms: number) => void;
}

export interface SseParser {
  /** Feeds decoded text, in any chunking. */
  feed(text: string): void;
  /** The last event id buffer (what a reconnection sends as Last-Event-ID). */
  readonly lastEventId: string;
}

export function createSseParser(handlers: SseHandlers): SseParser {
  let pending = ''; // text after the last line end
  let skipLf = false; // the previous chunk ended in CR: an LF now is part of that line end
  let first = true;
  let data = '';
  let hasData = false;
  let eventType = '';
  let lastEventId = '';

  const dispatch = () => {
    if (!hasData) {
      eventType = '';
      return;
    }
    const event: SseEvent = { type: eventType || 'message', data, lastEventId };
    data = '';
    hasData = false;
    eventType = '';
    handlers.onEvent?.(event);
  };

  const line = (text: string) => {
    if (text === '') return dispatch();
    if (text.startsWith(':')) return handlers.onComment?.(text.slice(1).replace(/^ /, ''));
    const colon = text.indexOf(':');
    const field = colon === -1 ? text : text.slice(0, colon);
    let value = colon === -1 ? '' : text.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'event':
        eventType = value;
        return;
      case 'data':
        data = hasData ? `${data}\n${value}` : value;
        hasData = true;
        return;
      case 'id':
        if (!value.includes('\0')) lastEventId = value;
        return;
      case 'retry':
        if (/^[0-9]+$/.test(value)) handlers.onRetry?.(Number(value));
        return;
      default:
        return; // unknown fields are ignored
    }
  };

  return {
    get lastEventId() {
      return lastEventId;
    },
    feed(text: string) {
      if (text === '') return;
      if (first) {
        first = false;
        if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      }
      if (skipLf && text.startsWith('\n')) text = text.slice(1);
      skipLf = false;
      let buffer = pending + text;
      for (;;) {
        const end = buffer.search(/[\r\n]/);
        if (end === -1) break;
        line(buffer.slice(0, end));
        if (buffer[end] === '\r') {
          if (end + 1 === buffer.length) {
            skipLf = true; // the LF of a CRLF may come in the next chunk
            buffer = '';
            break;
          }
          buffer = buffer.slice(buffer[end + 1] === '\n' ? end + 2 : end + 1);
        } else {
          buffer = buffer.slice(end + 1);
        }
      }
      pending = buffer;
    },
  };
}

/**
 * Reads an event stream body to its end, UTF-8 decoded, calling the handlers
 * as events complete. Resolves when the stream ends, or as soon as `done()`
 * says so (the rest is cancelled); rejects if reading fails (an abort included).
 */
export async function readSse(
  body: ReadableStream<Uint8Array>,
  handlers: SseHandlers & { onBytes?: () => void; done?: () => boolean },
): Promise<SseParser> {
  const parser = createSseParser(handlers);
  const decoder = new TextDecoder('utf-8');
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      handlers.onBytes?.();
      parser.feed(decoder.decode(value, { stream: true }));
      if (handlers.done?.()) {
        await reader.cancel();
        return parser;
      }
    }
    parser.feed(decoder.decode());
  } finally {
    reader.releaseLock();
  }
  return parser;
}
