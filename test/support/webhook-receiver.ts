/**
 * A webhook receiver for tests, on loopback: it keeps every request's exact
 * bytes and headers (what a Standard Webhooks verifier needs) and answers as
 * the test says: a status with headers and body, or never (a hung receiver).
 * `await using` closes it.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedWebhook {
  headers: IncomingHttpHeaders;
  /** The body exactly as it arrived. */
  raw: Buffer;
  path: string;
  /** Wall-clock ms of arrival (for ordering only; tests never assert on it). */
  arrivedAt: number;
}

export type Answer = { status: number; headers?: Record<string, string>; body?: string } | 'hang';

export class WebhookReceiver {
  readonly received: ReceivedWebhook[] = [];
  answer: (request: ReceivedWebhook, n: number) => Answer = () => ({ status: 204 });
  readonly #server: Server;
  #origin = '';
  #waiters: Array<{ count: number; resolve: () => void }> = [];

  constructor() {
    this.#server = createServer(async (req, res) => {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      const request: ReceivedWebhook = {
        headers: req.headers,
        raw: Buffer.concat(chunks),
        path: req.url ?? '',
        arrivedAt: Date.now(),
      };
      this.received.push(request);
      const answer = this.answer(request, this.received.length);
      this.#waiters = this.#waiters.filter((w) => {
        if (this.received.length < w.count) return true;
        w.resolve();
        return false;
      });
      if (answer === 'hang') return;
      res.writeHead(answer.status, answer.headers ?? {});
      res.end(answer.body ?? '');
    });
  }

  /** `http://127.0.0.1:<port>`, for the allow-list. */
  get origin(): string {
    return this.#origin;
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.#origin = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
    return this;
  }

  /** Resolves once `count` requests have arrived; rejects after `ms`. */
  async waitFor(count: number, ms = 10_000): Promise<void> {
    if (this.received.length >= count) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      new Promise<void>((resolve) => this.#waiters.push({ count, resolve })),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(new Error(`the receiver got ${this.received.length} of ${count} webhooks in ${ms} ms`)),
          ms,
        );
      }),
    ]).finally(() => clearTimeout(timer));
  }

  /** The headers as a verifier takes them. */
  static headersOf(webhook: ReceivedWebhook): Record<string, string> {
    return Object.fromEntries(
      Object.entries(webhook.headers).map(([name, value]) => [
        name,
        Array.isArray(value) ? value.join(', ') : (value ?? ''),
      ]),
    );
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise((resolve) => this.#server.close(resolve));
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
