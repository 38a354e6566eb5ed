/**
 * A loopback TCP proxy whose behaviour a test switches at run time, to put
 * faults between a store and its real PostgreSQL server without touching the
 * server (other test files share it):
 *
 * - `forward`: pass bytes both ways;
 * - `refuse`: drop every open connection and reset new ones at once (the server is down);
 * - `black-hole`: accept and pass nothing either way (a hung server or a partition);
 * - `drop-answers`: pass the client's bytes to the server, never the server's back
 *   (a statement runs and commits, and its answer is lost).
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

export type ProxyMode = 'forward' | 'refuse' | 'black-hole' | 'drop-answers';

export class TcpProxy {
  #mode: ProxyMode = 'forward';
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  readonly #target: { host: string; port: number };
  #port = 0;

  constructor(targetHost: string, targetPort: number) {
    this.#target = { host: targetHost, port: targetPort };
    this.#server = createServer((client) => this.#accept(client));
  }

  get port(): number {
    return this.#port;
  }

  get mode(): ProxyMode {
    return this.#mode;
  }

  set mode(mode: ProxyMode) {
    this.#mode = mode;
    if (mode === 'refuse') for (const socket of this.#sockets) socket.destroy();
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(0, '127.0.0.1', () => resolve());
    });
    this.#port = (this.#server.address() as { port: number }).port;
    return this;
  }

  async stop(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise((resolve) => this.#server.close(resolve));
  }

  #accept(client: Socket): void {
    if (this.#mode === 'refuse') {
      client.resetAndDestroy();
      return;
    }
    const server = connect(this.#target.port, this.#target.host);
    for (const socket of [client, server]) {
      this.#sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => {
        this.#sockets.delete(socket);
        client.destroy();
        server.destroy();
      });
    }
    client.on('data', (chunk) => {
      if (this.#mode === 'forward' || this.#mode === 'drop-answers') server.write(chunk);
    });
    server.on('data', (chunk) => {
      if (this.#mode === 'forward') client.write(chunk);
    });
  }
}
