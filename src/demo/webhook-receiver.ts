/**
 * The demo's webhook receiver, on loopback: it checks each delivery's
 * Standard Webhooks signature the way a real receiver should (the exact bytes,
 * constant-time comparison, a 5-minute timestamp tolerance, duplicates
 * dropped by webhook-id), prints one line per event, and keeps what it got.
 */
import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { signatureV1, type WebhookSecret } from '../delivery/webhooks/signing.ts';

const TOLERANCE_SECONDS = 300;

export interface ReceivedEvent {
  webhookId: string;
  verified: boolean;
  /** The CloudEvent, when the body parsed. */
  event: { type?: string; subject?: string; data?: { status?: string; resultLocation?: string } } | undefined;
}

export interface DemoWebhookReceiver {
  /** Where to point `Spillway-Callback`. */
  url: string;
  origin: string;
  received: ReceivedEvent[];
  stop(): Promise<void>;
}

export async function startWebhookReceiver(
  port: number,
  secret: WebhookSecret,
  print: (line: string) => void,
): Promise<DemoWebhookReceiver> {
  const received: ReceivedEvent[] = [];
  const seen = new Set<string>();
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const webhookId = header(req.headers, 'webhook-id');
    const verified = verify(secret, req.headers, body);
    res.writeHead(verified ? 204 : 401).end();
    if (!verified || seen.has(webhookId)) return; // a retry of one already handled: acknowledged, not acted on twice
    seen.add(webhookId);
    let event: ReceivedEvent['event'];
    try {
      event = JSON.parse(body.toString('utf8')) as ReceivedEvent['event'];
    } catch {
      event = undefined;
    }
    received.push({ webhookId, verified, event });
    print(
      `webhook ← ${event?.subject ?? '?'} ${event?.data?.status ?? '?'} (signature verified, webhook-id ${webhookId})`,
    );
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: `${origin}/hooks`,
    origin,
    received,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function header(headers: IncomingHttpHeaders, name: string): string {
  const value = headers[name];
  return Array.isArray(value) ? (value[0] ?? '') : (value ?? '');
}

function verify(secret: WebhookSecret, headers: IncomingHttpHeaders, body: Buffer): boolean {
  const id = header(headers, 'webhook-id');
  const timestamp = Number(header(headers, 'webhook-timestamp'));
  if (!id || !Number.isInteger(timestamp)) return false;
  if (Math.abs(Date.now() / 1000 - timestamp) > TOLERANCE_SECONDS) return false;
  const expected = Buffer.from(signatureV1(secret, id, timestamp, body));
  return header(headers, 'webhook-signature')
    .split(' ')
    .some((candidate) => {
      const given = Buffer.from(candidate);
      return given.length === expected.length && timingSafeEqual(given, expected);
    });
}
