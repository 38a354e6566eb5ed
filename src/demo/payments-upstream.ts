/**
 * The demo upstream: a small "payments" service whose behaviour is switched at
 * run time on its control port, so the demo can show every path of Spillway.
 *
 *   healthy  answers at once
 *   down     refuses connections (its listener is closed)
 *   slow     answers after `delayMs`
 *   flaky    answers 503 + Retry-After at `errorRate`, otherwise healthy
 *
 * It honours Idempotency-Key: a repeated key returns the first payment, never a second one.
 * `GET /prices` is a read whose answer changes (a new price list every few seconds), for the
 * demo's stale-if-error step: the stale list at once while it is down, then the fresh one.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type UpstreamMode =
  | { mode: 'healthy' }
  | { mode: 'down' }
  | { mode: 'slow'; delayMs: number }
  | { mode: 'flaky'; errorRate: number };

interface Payment {
  id: string;
  amount: number;
  currency: string;
  status: 'captured';
  createdAt: string;
}

export interface PaymentsUpstream {
  url: string;
  controlUrl: string;
  mode(): UpstreamMode;
  setMode(mode: UpstreamMode): Promise<void>;
  stop(): Promise<void>;
}

export async function startPaymentsUpstream(port: number, controlPort: number): Promise<PaymentsUpstream> {
  let mode: UpstreamMode = { mode: 'healthy' };
  const payments = new Map<string, Payment>();
  const byKey = new Map<string, Payment>();

  const service = createServer((req, res) => {
    void handle(req, res);
  });
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const body = await readText(req);
    if (mode.mode === 'slow') await new Promise((r) => setTimeout(r, (mode as { delayMs: number }).delayMs));
    if (mode.mode === 'flaky' && Math.random() < mode.errorRate) {
      return json(res, 503, { error: 'temporarily overloaded' }, { 'retry-after': '2' });
    }
    const url = new URL(req.url ?? '/', 'http://upstream');
    if (req.method === 'POST' && url.pathname === '/payments') {
      const key = req.headers['idempotency-key'];
      const seen = typeof key === 'string' ? byKey.get(key) : undefined;
      if (seen)
        return json(res, 201, seen, { location: `/payments/${seen.id}`, 'idempotent-replayed': 'true' });
      let input: { amount?: unknown; currency?: unknown };
      try {
        input = JSON.parse(body || '{}');
      } catch {
        return json(res, 400, { error: 'body must be JSON like {"amount": 42, "currency": "EUR"}' });
      }
      if (typeof input.amount !== 'number' || input.amount <= 0) {
        return json(res, 422, { error: 'amount must be a positive number' });
      }
      const payment: Payment = {
        id: `pay_${randomUUID().slice(0, 8)}`,
        amount: input.amount,
        currency: typeof input.currency === 'string' ? input.currency : 'EUR',
        status: 'captured',
        createdAt: new Date().toISOString(),
      };
      payments.set(payment.id, payment);
      if (typeof key === 'string') byKey.set(key, payment);
      return json(res, 201, payment, { location: `/payments/${payment.id}` });
    }
    if (req.method === 'GET' && url.pathname === '/payments') return json(res, 200, [...payments.values()]);
    if (req.method === 'GET' && url.pathname === '/prices') return json(res, 200, priceList(Date.now()));
    const one = /^\/payments\/([\w-]+)$/.exec(url.pathname);
    if (req.method === 'GET' && one) {
      const payment = payments.get(one[1]!);
      return payment ? json(res, 200, payment) : json(res, 404, { error: 'no such payment' });
    }
    return json(res, 404, { error: 'not found' });
  };

  const control = createServer(async (req, res) => {
    if (req.method === 'GET') return json(res, 200, mode);
    try {
      const next = JSON.parse(await readText(req)) as UpstreamMode;
      await setMode(next);
      json(res, 200, mode);
    } catch (error) {
      json(res, 400, { error: (error as Error).message });
    }
  });

  let servicePort = port;
  const listening = () => service.listening;
  async function setMode(next: UpstreamMode): Promise<void> {
    if (!['healthy', 'down', 'slow', 'flaky'].includes(next.mode)) {
      throw new Error('mode must be healthy, down, slow (with delayMs) or flaky (with errorRate)');
    }
    if (next.mode === 'slow' && !(next.delayMs >= 0)) throw new Error('slow needs delayMs ≥ 0');
    if (next.mode === 'flaky' && !(next.errorRate >= 0 && next.errorRate <= 1)) {
      throw new Error('flaky needs errorRate between 0 and 1');
    }
    mode = next;
    if (next.mode === 'down' && listening()) {
      await new Promise<void>((resolve) => {
        service.close(() => resolve());
        service.closeAllConnections();
      });
    } else if (next.mode !== 'down' && !listening()) {
      await listen(service, servicePort); // the same port again, even when the first was picked by the OS
    }
  }

  servicePort = await listen(service, port);
  const actualControl = await listen(control, controlPort);
  return {
    url: `http://127.0.0.1:${servicePort}`,
    controlUrl: `http://127.0.0.1:${actualControl}`,
    mode: () => mode,
    setMode,
    stop: async () => {
      for (const server of [service, control]) {
        server.closeAllConnections();
        if (server.listening) await new Promise((r) => server.close(r));
      }
    },
  };
}

/** The price list as of `now`: it changes every 10 s, so a stale copy and a fresh answer differ. */
export function priceList(now: number): { asOf: string; currency: string; prices: Record<string, number> } {
  const tick = Math.floor(now / 10_000);
  const cents = (base: number, i: number) => base + ((tick * 7 + i * 13) % 20);
  return {
    asOf: new Date(tick * 10_000).toISOString(),
    currency: 'EUR',
    prices: { coffee: cents(240, 1) / 100, tea: cents(190, 2) / 100, croissant: cents(150, 3) / 100 },
  };
}

function listen(server: Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

async function readText(req: IncomingMessage): Promise<string> {
  let text = '';
  for await (const chunk of req) text += chunk;
  return text;
}

function json(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}
