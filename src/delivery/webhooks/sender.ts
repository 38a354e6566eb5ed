/**
 * One webhook delivery attempt: POST the message's exact bytes, signed for
 * this attempt, to a URL the guard has just checked, through the guard's
 * dispatcher (connections only to checked addresses), and report what
 * happened. Deciding what that means is schedule.ts's job; recording it, the
 * dispatcher's.
 *
 * Wire format (http-standards.md §4.3, §8.2):
 * - `webhook-id`: stable across retries (the receiver's idempotency key);
 * - `webhook-timestamp`: this attempt's Unix seconds, so the signature is
 *   made again on every attempt;
 * - `webhook-signature`: one `v1,` entry per active secret;
 * - `content-type: application/cloudevents+json; charset=utf-8`: the body is
 *   a CloudEvent in structured mode, so its type, source and time are inside
 *   the signed bytes (binary mode would put them in unsigned `ce-*` headers);
 * - `user-agent: Spillway/<version>`, and the operation's `traceparent`.
 *
 * Redirects are never followed: undici's `request` follows none unless a
 * redirect interceptor is installed, and none is; a 3xx is just a status.
 * The time limit covers the whole exchange (connect, headers, the snippet of
 * the body that is kept) and runs on the injected clock.
 */
import { request } from 'undici';
import pkg from '../../../package.json' with { type: 'json' };
import type { Clock } from '../../clock.ts';
import { parseRetryAfter } from '../../policy/retry-after.ts';
import type { CallbackGuard } from './callback-guard.ts';
import type { DeliveryOutcome } from './schedule.ts';
import { signatureHeader, type WebhookSecret } from './signing.ts';

export const USER_AGENT = `Spillway/${pkg.version}`;
export const WEBHOOK_CONTENT_TYPE = 'application/cloudevents+json; charset=utf-8';
/** How much of the receiver's answer is kept with the attempt, for people to read. */
export const SNIPPET_BYTES = 1_024;
/** How much more of the answer is read (and dropped) so the connection can serve the next attempt. */
const DRAIN_BYTES = 64 * 1_024;

export interface WebhookMessage {
  /** Matches ^[A-Za-z0-9_-]+$; the same on every attempt. */
  webhookId: string;
  /** The exact bytes signed and sent. */
  body: Uint8Array;
  traceparent: string | null;
  tracestate: string | null;
}

export interface SendRequest {
  url: string;
  /** Checks the URL before the attempt, and is the dispatcher its connections go through. */
  guard: CallbackGuard;
  message: WebhookMessage;
  /** Every active secret signs (rotation); at least one. */
  secrets: readonly WebhookSecret[];
  /** The whole attempt is aborted after this (15–30 s in production). */
  timeoutMs: number;
  /** Shutdown: aborts the attempt at once. */
  signal?: AbortSignal;
}

/** One attempt as it is recorded and shown at `/deliveries`. */
export interface AttemptReport {
  /** Epoch ms the attempt started. */
  at: number;
  /** The receiver's status, when it answered. */
  status: number | null;
  /** What went wrong before an answer (refused, unreachable, timed out), else null. */
  error: string | null;
  latencyMs: number;
  /** The first ~1 KiB of the answer's body, as text; null without an answer. */
  responseSnippet: string | null;
}

export interface SendResult {
  outcome: DeliveryOutcome;
  report: AttemptReport;
}

class DeliveryTimeoutError extends Error {
  override name = 'DeliveryTimeoutError';
}

export class WebhookSender {
  readonly #clock: Clock;

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  async send({ url, guard, message, secrets, timeoutMs, signal }: SendRequest): Promise<SendResult> {
    const clock = this.#clock;
    const at = clock.now();
    const report = (
      outcome: DeliveryOutcome,
      status: number | null,
      error: string | null,
      snippet: string | null,
    ): SendResult => ({
      outcome,
      report: { at, status, error, latencyMs: clock.now() - at, responseSnippet: snippet },
    });

    // Checked before every attempt: the allow-list may have changed, and an IP literal never reaches `lookup`.
    const allowed = await guard.check(url);
    if (!allowed.ok) {
      const message = `Refused by the callback guard: ${allowed.reason}.`;
      const permanent = !guard.checkUrl(url).ok; // off the allow-list: no retry will change that
      return report({ kind: 'error', message, timedOut: false, permanent }, null, message, null);
    }

    const controller = new AbortController();
    const timer = clock.setTimeout(
      () => controller.abort(new DeliveryTimeoutError(`No answer within ${timeoutMs} ms.`)),
      timeoutMs,
    );
    timer.unref?.();
    const onShutdown = () => controller.abort(signal?.reason);
    if (signal?.aborted) onShutdown();
    else signal?.addEventListener('abort', onShutdown, { once: true });
    try {
      const timestamp = Math.floor(clock.now() / 1_000);
      const headers: Record<string, string> = {
        'content-type': WEBHOOK_CONTENT_TYPE,
        'user-agent': USER_AGENT,
        'webhook-id': message.webhookId,
        'webhook-timestamp': String(timestamp),
        'webhook-signature': signatureHeader(secrets, message.webhookId, timestamp, message.body),
      };
      if (message.traceparent) headers.traceparent = message.traceparent;
      if (message.tracestate) headers.tracestate = message.tracestate;
      const response = await request(allowed.url, {
        method: 'POST',
        headers,
        body: Buffer.from(message.body.buffer, message.body.byteOffset, message.body.byteLength),
        dispatcher: guard.dispatcher,
        signal: controller.signal,
      });
      const snippet = await readSnippet(response.body);
      const retryAfter = response.headers['retry-after'];
      const retryAfterMs = parseRetryAfter(
        Array.isArray(retryAfter) ? retryAfter[0] : retryAfter,
        clock.now(),
      );
      return report(
        {
          kind: 'response',
          status: response.statusCode,
          ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
        },
        response.statusCode,
        null,
        snippet,
      );
    } catch (error) {
      const reason = controller.signal.aborted ? controller.signal.reason : error;
      const timedOut = reason instanceof DeliveryTimeoutError;
      const message = describe(reason);
      return report({ kind: 'error', message, timedOut, permanent: false }, null, message, null);
    } finally {
      clock.clearTimeout(timer);
      signal?.removeEventListener('abort', onShutdown);
    }
  }
}

/** Keeps the first SNIPPET_BYTES as text, drops up to DRAIN_BYTES more, and stops there. */
async function readSnippet(body: AsyncIterable<Buffer> & { destroy(): unknown }): Promise<string> {
  const kept: Buffer[] = [];
  let keptBytes = 0;
  let seen = 0;
  try {
    for await (const chunk of body) {
      if (keptBytes < SNIPPET_BYTES) {
        const part = chunk.subarray(0, SNIPPET_BYTES - keptBytes);
        kept.push(part);
        keptBytes += part.byteLength;
      }
      seen += chunk.byteLength;
      if (seen > DRAIN_BYTES) {
        body.destroy(); // a huge answer is not read to its end: the connection is dropped instead
        break;
      }
    }
  } catch {
    // The answer broke off after its status: the status is what counts, keep what arrived.
  }
  return new TextDecoder().decode(Buffer.concat(kept));
}

function describe(error: unknown): string {
  if (error instanceof DeliveryTimeoutError) return error.message;
  const { code, message } = error as { code?: string; message?: string };
  return code ? `${code}: ${message}` : String(message ?? error);
}
