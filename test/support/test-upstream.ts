/**
 * A real upstream for tests, on loopback, whose behaviour each test sets:
 * answer, delay, refuse with a status, reset the connection after reading the
 * request, or hold it forever (black hole). It records every request it read,
 * and which are in flight (read, not yet answered or dropped), so tests can
 * measure the load the gateway puts on it.
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

export interface Received {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

export type Behaviour =
  | { kind: 'echo' } // 200 with a JSON echo of the request
  | { kind: 'respond'; status: number; headers?: Record<string, string | string[]>; body?: string | Buffer }
  | { kind: 'delay'; ms: number; and: Behaviour }
  | { kind: 'after'; until: Promise<unknown>; and: Behaviour } // answers once the test says so
  | { kind: 'reset' } // read the whole request, then destroy the socket: the upstream saw it
  | { kind: 'black-hole' }; // read the request and never answer

export class TestUpstream {
  readonly received: Received[] = [];
  /** Requests read and not yet answered (or dropped). */
  readonly inFlight = new Set<Received>();
  /** Called each time a request arrives, with the requests in flight then (it included): peaks are seen here. */
  onArrival: (inFlight: ReadonlySet<Received>) => void = () => {};
  behaviour: (req: Received) => Behaviour = () => ({ kind: 'echo' });
  #server: Server;
  #port = 0;

  constructor() {
    this.#server = createServer((req, res) => void this.#handle(req, res));
    this.#server.keepAliveTimeout = 60_000;
  }

  get url(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  /**
   * Listens (again) on the same port; the first call picks a free one below
   * the OS's ephemeral range (see closedPort): while this upstream is stopped,
   * no server started on port 0 elsewhere can be given its port and receive
   * what a gateway sends here, and a restart finds it free.
   */
  async start(): Promise<this> {
    if (this.#port !== 0) {
      await new Promise<void>((resolve, reject) => {
        this.#server.once('error', reject);
        this.#server.listen(this.#port, '127.0.0.1', () => resolve());
      });
      return this;
    }
    for (;;) {
      const port = portBelowEphemeral();
      if (await listened(this.#server, port)) {
        this.#port = port;
        return this;
      }
    }
  }

  /** Stops listening and drops every connection: the upstream is down (connection refused). */
  async stop(): Promise<void> {
    if (!this.#server.listening) return;
    const closed = new Promise((resolve) => this.#server.close(resolve));
    this.#server.closeAllConnections();
    await closed;
  }

  /** `await using`: the upstream stops even when the test fails, so its file can exit. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  /** Requests received carrying this body marker (tests put a unique id in each body). */
  count(marker: string): number {
    return this.received.filter((r) => r.body.includes(marker)).length;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const received: Received = {
      method: req.method!,
      url: req.url!,
      headers: req.headers,
      body: Buffer.concat(chunks),
    };
    this.received.push(received);
    this.inFlight.add(received);
    res.once('close', () => this.inFlight.delete(received));
    this.onArrival(this.inFlight);
    await this.#act(this.behaviour(received), received, res);
  }

  async #act(behaviour: Behaviour, received: Received, res: ServerResponse): Promise<void> {
    switch (behaviour.kind) {
      case 'echo': {
        const text = JSON.stringify({
          method: received.method,
          url: received.url,
          headers: received.headers,
          body: received.body.toString('utf8'),
        });
        res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': 'test' });
        res.end(text);
        return;
      }
      case 'respond':
        res.writeHead(behaviour.status, behaviour.headers ?? {});
        res.end(behaviour.body ?? '');
        return;
      case 'delay':
        await new Promise((r) => setTimeout(r, behaviour.ms));
        if (!res.destroyed) await this.#act(behaviour.and, received, res);
        return;
      case 'after':
        await behaviour.until;
        if (!res.destroyed) await this.#act(behaviour.and, received, res);
        return;
      case 'reset':
        res.socket?.destroy();
        return;
      case 'black-hole':
        return;
    }
  }
}

/**
 * A loopback port nothing listens on: connecting to it is refused at once.
 * It is below the OS's ephemeral range, so no server started on port 0 (in
 * this test file or in one running beside it) can be given it while a
 * gateway still replays there: a port freed by `listen(0)` went to another
 * file's upstream, which then received that gateway's replays. A test may
 * still start its own server on it later.
 */
export async function closedPort(): Promise<number> {
  for (;;) {
    const port = portBelowEphemeral();
    const server = createServer();
    if (!(await listened(server, port))) continue;
    await new Promise((resolve) => server.close(resolve));
    return port;
  }
}

/** A random port from 10000 up to the OS's ephemeral range, which nothing started on port 0 is given. */
function portBelowEphemeral(): number {
  const below = ephemeralLow();
  return 10_000 + Math.floor(Math.random() * (below - 10_000));
}

/** Listens on `port`, or says it is taken (then the caller tries another). */
function listened(server: Server, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const taken = () => resolve(false);
    server.once('error', taken);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', taken);
      resolve(true);
    });
  });
}

/** The lowest port the OS hands out for port 0 (Linux: ip_local_port_range; elsewhere, IANA's 49152). */
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 11_000 ? low : 49_152;
  } catch {
    return 49_152; // not Linux: IANA's dynamic range starts here
  }
}
