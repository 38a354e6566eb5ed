/**
 * The one LISTEN connection of a PostgreSQL store: hears the NOTIFY that the
 * schema's triggers send when a commit changed an operation's status (see
 * migration 004), whichever process made it.
 *
 * A dedicated client, not a pooled one: LISTEN belongs to a session, and a
 * pooled connection is handed to other verbs and closed when idle. It
 * reconnects by itself, with growing pauses, whenever the connection fails
 * (the server restarts, an operator terminates the backend, the network
 * drops), and a heartbeat query finds a connection that went silent without
 * failing. Notifications sent while it is reconnecting are lost: watchers are
 * told that hints may never come, and poll as a backstop.
 */
import type { Client, Notification } from 'pg';
import type { PostgresLocation } from './connection.ts';

type Pg = typeof import('pg');

export interface ListenerOptions {
  /** Connecting gives up after this; so does a heartbeat (or the LISTEN) left unanswered. */
  connectTimeoutMs: number;
  /** A query on the idle connection this often, to find one that died without a word. */
  heartbeatMs: number;
}

/** Pauses before reconnecting, after 1, 2, 3… failures in a row; each is jittered by ±25%. */
// Capped low: notifications are lost while it is away, and one connection attempt per process
// every 2 s costs the server nothing.
const RECONNECT_PAUSES_MS = [100, 250, 500, 1_000, 2_000];

/** The schema's channel: the same name as migration 004's triggers compute. */
export const channelOf = (schema: string): string => `spillway_${schema}`.slice(0, 63);

export class NotificationListener {
  readonly #pg: Pg;
  readonly #location: PostgresLocation;
  readonly #options: ListenerOptions;
  readonly #channel: string;
  readonly #onNotify: (payload: string, processId: number) => void;
  #client: Client | null = null;
  #failures = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  #heartbeatTimer: NodeJS.Timeout | undefined;
  #started = false;
  #stopped = false;

  constructor(
    pg: Pg,
    location: PostgresLocation,
    options: ListenerOptions,
    onNotify: (payload: string, processId: number) => void,
  ) {
    this.#pg = pg;
    this.#location = location;
    this.#options = options;
    this.#channel = channelOf(location.schema);
    this.#onNotify = onNotify;
  }

  /** Connects and listens, in the background; does nothing when already started. */
  start(): void {
    if (this.#started || this.#stopped) return;
    this.#started = true;
    void this.#connect();
  }

  /** Closes the connection for good; no reconnection after this. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#retryTimer);
    clearInterval(this.#heartbeatTimer);
    const client = this.#client;
    this.#client = null;
    if (client) await end(client, this.#options.connectTimeoutMs);
  }

  async #connect(): Promise<void> {
    if (this.#stopped) return;
    const client = new this.#pg.Client({
      connectionString: this.#location.connectionString,
      connectionTimeoutMillis: this.#options.connectTimeoutMs,
      query_timeout: this.#options.connectTimeoutMs,
      keepAlive: true,
      // Names the connection in pg_stat_activity, for operators (and the tests that kill it).
      application_name: `spillway-listen:${this.#location.schema}`.slice(0, 63),
    });
    this.#client = client;
    // A broken connection reports an error, then ends; either means "reconnect", once.
    client.on('error', () => this.#lost(client));
    client.on('end', () => this.#lost(client));
    client.on('notification', (message: Notification) => {
      if (message.channel === this.#channel && message.payload) {
        this.#onNotify(message.payload, message.processId);
      }
    });
    try {
      await client.connect();
      await client.query(`LISTEN "${this.#channel}"`);
    } catch {
      // Not lost from sight: #lost reconnects with backoff, and watchers meanwhile rely on the poll
      // backstop (notifications are hints). A server that stays down shows in every verb's 503.
      this.#lost(client);
      return;
    }
    if (this.#client !== client) return; // lost, or stopped, while connecting
    this.#failures = 0;
    this.#heartbeatTimer = setInterval(() => {
      client.query('SELECT 1').catch(() => this.#lost(client));
    }, this.#options.heartbeatMs);
    this.#heartbeatTimer.unref();
  }

  #lost(client: Client): void {
    if (this.#client !== client) return;
    this.#client = null;
    clearInterval(this.#heartbeatTimer);
    void end(client, this.#options.connectTimeoutMs);
    if (this.#stopped) return;
    const pause = RECONNECT_PAUSES_MS[Math.min(this.#failures, RECONNECT_PAUSES_MS.length - 1)]!;
    this.#failures++;
    this.#retryTimer = setTimeout(() => void this.#connect(), pause * (0.75 + Math.random() / 2));
    this.#retryTimer.unref();
  }
}

/**
 * Ends a client politely, or, when the server does not answer within `ms`
 * (a hung connection), by destroying its socket: either way nothing is left
 * open.
 */
async function end(client: Client, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const ended = await Promise.race([
    client.end().then(
      () => true,
      () => true,
    ),
    new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
    }),
  ]);
  clearTimeout(timer);
  if (!ended)
    (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
}
