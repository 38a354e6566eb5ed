/**
 * WebSocket delivery on `GET /_spillway/ws`: one connection follows many
 * operations, each with the same CloudEvents as its SSE stream (structured
 * JSON, one event per text message, `cloudevents.json` subprotocol when the
 * client asks for it), resuming after a `lastEventId` so a reconnect loses
 * nothing.
 *
 * Backpressure: nothing is queued per connection. Events are re-readable from
 * the store, so a subscription keeps only the last seq it sent; events are
 * sent only while the socket's buffered bytes are under `maxBufferedBytes`,
 * and reading resumes once the buffer has drained. A slow client therefore
 * costs at most the cap plus one event, and one that stays over the cap for
 * `slowClientMs` is closed with 1013 (Try Again Later): it reconnects with
 * `lastEventId` when it can keep up. While over the cap the client's own
 * messages are not read either, so its acknowledgements cannot pile up.
 *
 * Messages, client → server (JSON text):
 *   {"type":"subscribe","operationId":"op_…","lastEventId":"op_…:2"}   lastEventId optional
 *   {"type":"unsubscribe","operationId":"op_…"}
 * Server → client (JSON text):
 *   a CloudEvent ({"specversion":"1.0","id":"op_…:3","type":"dev.spillway.operation.running",…})
 *   {"type":"subscribed","operationId":"op_…"}                        events follow
 *   {"type":"unsubscribed","operationId":"op_…","reason":"requested"|"terminal"}
 *   {"type":"error","code":"<code from src/errors.ts>","detail":"…","operationId":"op_…"?}
 * A subscription lives from `subscribed` to `unsubscribed`; after the terminal
 * event it ends by itself. Close codes: 1001 at shutdown, 1013 for a slow
 * client, 1009 for a message over 4 KiB; a missed pong drops the connection.
 */
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { type RawData, type ServerOptions, type WebSocket, WebSocketServer } from 'ws';
import type { Clock, Timer } from '../clock.ts';
import { isOperationId } from '../engine/operation-id.ts';
import { type ErrorCode, StoreUnavailableError } from '../errors.ts';
import { callerTenant, mayRead } from '../gateway/access.ts';
import { sendRawProblem as refuse } from '../gateway/problem-response.ts';
import { type EventLog, isTerminal, type OperationEvent, type OperationQueue } from '../store/port.ts';
import { type CloudEvent, toCloudEvent } from './cloud-event.ts';
import type { EventHub } from './event-hub.ts';
import { resumeAfter } from './sse.ts';

export const WEBSOCKET_PATH = '/_spillway/ws';
/** The CloudEvents WebSocket binding's subprotocol for structured JSON. */
export const SUBPROTOCOL = 'cloudevents.json';
/** Client messages are a few dozen bytes; anything larger is closed with 1009. */
const MAX_MESSAGE_BYTES = 4096;
/** Client messages read but not yet handled (each waits on the store); past it, reading pauses. */
const MAX_UNHANDLED = 16;

export interface WebSocketOptions {
  store: EventLog & Pick<OperationQueue, 'get'>;
  hub: EventHub;
  clock: Clock;
  /** Read when an event is sent: known only once the public port listens. */
  readonly publicUrl: string;
  /** Browser origins allowed to connect; a request without `Origin` (not a browser) is allowed too. */
  corsOrigins: ReadonlySet<string>;
  /** The header naming the caller's tenant (src/gateway/access.ts). */
  tenantHeader: string;
  /** Bytes buffered for one client past which sending pauses until its buffer drains. */
  maxBufferedBytes: number;
  /** A client over maxBufferedBytes this long is closed with 1013. */
  slowClientMs: number;
  /** Operations one connection may follow at once. */
  maxSubscriptions: number;
  /** Open connections at once (invariant 3: everything is bounded); past it, 503 overloaded. */
  maxConnections: number;
  /** A ping this often; no pong by the next one drops the connection. */
  pingMs: number;
  /** The store is re-read this often even without a change notice (the backstop). */
  pollMs: number;
  onError?: (error: unknown) => void;
}

export type ClientMessage =
  | { type: 'subscribe'; operationId: string; lastEventId?: string }
  | { type: 'unsubscribe'; operationId: string };

export type ServerMessage =
  | CloudEvent
  | { type: 'subscribed'; operationId: string }
  | { type: 'unsubscribed'; operationId: string; reason: 'requested' | 'terminal' }
  | { type: 'error'; code: ErrorCode; detail: string; operationId?: string };

/** What the channel has seen, for metrics and tests. */
export interface WebSocketStats {
  connections: number;
  subscriptions: number;
  /** The most bytes ever buffered for one client right after a send: the backpressure bound in practice. */
  peakBufferedBytes: number;
  /** Clients closed with 1013 for staying over maxBufferedBytes. */
  slowClientsClosed: number;
}

/** Parses a client message; a string is what is wrong with it, for a `bad-request` error. */
export function parseClientMessage(data: RawData, isBinary: boolean): ClientMessage | string {
  if (isBinary) return 'Messages must be JSON text frames, not binary.';
  let message: unknown;
  try {
    message = JSON.parse(String(data));
  } catch {
    return 'The message is not valid JSON.';
  }
  if (typeof message !== 'object' || message === null) return 'The message must be a JSON object.';
  const { type, operationId, lastEventId } = message as Record<string, unknown>;
  if (type !== 'subscribe' && type !== 'unsubscribe') {
    return `"type" must be "subscribe" or "unsubscribe", got ${JSON.stringify(type) ?? 'nothing'}.`;
  }
  if (typeof operationId !== 'string' || operationId === '') {
    return `"operationId" must be the id from the 202's Operation-Location, got ${JSON.stringify(operationId) ?? 'nothing'}.`;
  }
  if (type === 'unsubscribe') return { type, operationId };
  if (lastEventId !== undefined && typeof lastEventId !== 'string') {
    return `"lastEventId" must be the id of the last event received, like "${operationId}:2", got ${JSON.stringify(lastEventId)}.`;
  }
  return lastEventId === undefined ? { type, operationId } : { type, operationId, lastEventId };
}

export class WebSocketChannel {
  readonly #options: WebSocketOptions;
  readonly #wss: WebSocketServer;
  readonly #connections = new Set<Connection>();
  /** Handshakes under way: counted against maxConnections with the open connections. */
  #opening = 0;
  readonly #counters = { peakBufferedBytes: 0, slowClientsClosed: 0 };
  #closing = false;

  constructor(options: WebSocketOptions) {
    this.#options = options;
    const serverOptions: ServerOptions & { closeTimeout: number } = {
      noServer: true,
      clientTracking: false,
      maxPayload: MAX_MESSAGE_BYTES,
      perMessageDeflate: false,
      // A client that does not answer a close within one ping interval is as gone as one that misses a pong.
      closeTimeout: options.pingMs,
      handleProtocols: (offered) => (offered.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
    };
    this.#wss = new WebSocketServer(serverOptions);
    // Handshakes ws refuses are answered problem+json like every other error.
    this.#wss.on('wsClientError', (error, socket, req) => {
      if (req.method !== 'GET') {
        refuse(socket, 'method-not-allowed', `${req.method} cannot open a WebSocket; use GET.`, {
          Allow: 'GET',
        });
      } else {
        refuse(socket, 'bad-request', `Not a valid WebSocket handshake: ${error.message}.`);
      }
    });
  }

  /** Takes the public server's WebSocket upgrades; other upgrade offers are served as plain requests. */
  attach(server: Server): void {
    // Node's default emits 'upgrade' for any Upgrade header once a listener exists, which would
    // turn e.g. curl's `Upgrade: h2c` on a proxied POST into a 404; a server may ignore the offer.
    (server as Server & { shouldUpgradeCallback: (req: IncomingMessage) => boolean }).shouldUpgradeCallback =
      (req) => req.headers.upgrade?.toLowerCase() === 'websocket' || pathOf(req) === WEBSOCKET_PATH;
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      try {
        this.#upgrade(req, socket, head);
      } catch (error) {
        // A bug must cost this handshake only, never the process.
        this.#options.onError?.(error);
        refuse(
          socket,
          'internal-error',
          'Spillway could not handle this handshake; the error is in its log.',
        );
      }
    });
  }

  stats(): WebSocketStats {
    let subscriptions = 0;
    for (const connection of this.#connections) subscriptions += connection.subscriptions;
    return { connections: this.#connections.size, subscriptions, ...this.#counters };
  }

  /**
   * Closes every connection with 1001 (Going Away) and refuses new ones, so
   * the public port can close; connections that have not finished the close
   * handshake after `graceMs` are dropped. Safe to call twice.
   */
  async close(graceMs: number): Promise<void> {
    this.#closing = true;
    for (const connection of this.#connections) connection.close(1001, 'Spillway is shutting down');
    const allClosed = () => Promise.all([...this.#connections].map((connection) => connection.closed));
    const { clock } = this.#options;
    let timer: Timer | undefined;
    const grace = new Promise<void>((resolve) => {
      timer = clock.setTimeout(resolve, graceMs);
    });
    await Promise.race([allClosed(), grace]);
    if (timer) clock.clearTimeout(timer);
    for (const connection of this.#connections) connection.terminate();
    await allClosed();
    this.#wss.close();
  }

  #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    const path = pathOf(req);
    if (path !== WEBSOCKET_PATH) {
      refuse(
        socket,
        'not-found',
        `Nothing is served at ${path} over WebSocket; connect to ${WEBSOCKET_PATH}.`,
      );
      return;
    }
    if (this.#closing) {
      socket.destroy(); // shutting down: the client reconnects to another gateway
      return;
    }
    // Browsers do not apply CORS to WebSockets: the server must check Origin itself (RFC 6455 §10.2).
    const origin = req.headers.origin;
    if (origin !== undefined && !this.#options.corsOrigins.has(origin)) {
      refuse(
        socket,
        'origin-not-allowed',
        `The origin ${JSON.stringify(origin)} may not connect; list it in corsOrigins to allow it.`,
      );
      return;
    }
    // Handshakes do not pass through maxInFlight, so the connections are bounded here.
    if (this.#connections.size + this.#opening >= this.#options.maxConnections) {
      refuse(
        socket,
        'overloaded',
        `Over ${this.#options.maxConnections} WebSocket connections are open (websocket.maxConnections). Retry after the Retry-After delay, or follow the operation by SSE or polling.`,
        { 'Retry-After': '5' },
      );
      return;
    }
    const tenant = callerTenant(req.headers, this.#options.tenantHeader);
    // A handshake in progress counts too, until it opens or its socket closes (a refused handshake).
    let opening = true;
    this.#opening++;
    const opened = () => {
      if (opening) this.#opening--;
      opening = false;
    };
    socket.once('close', opened);
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      opened();
      const connection = new Connection(ws, tenant, this.#options, this.#counters);
      this.#connections.add(connection);
      void connection.closed.then(() => this.#connections.delete(connection));
      if (this.#closing) connection.close(1001, 'Spillway is shutting down'); // shutdown began mid-handshake
    });
  }
}

interface Subscription {
  readonly id: string;
  /** The seq of the last event sent: all the state a subscription keeps. */
  last: number;
  /** The operation was already terminal when subscribed: no events left means it is over. */
  readonly wasTerminal: boolean;
  reading: boolean;
  again: boolean;
  ended: boolean;
  unfollow: () => void;
}

/** One client: its subscriptions, its send gate, its keepalive. */
class Connection {
  readonly closed: Promise<void>;
  readonly #ws: WebSocket;
  readonly #tenant: string | null;
  readonly #options: WebSocketOptions;
  readonly #counters: { peakBufferedBytes: number; slowClientsClosed: number };
  readonly #subscriptions = new Map<string, Subscription>();
  /** Subscriptions stopped by the cap, read again once the buffer drains. */
  readonly #waiting = new Set<Subscription>();
  /** Over the cap: nothing is sent or read until the buffer drains. */
  #blocked = false;
  #slowTimer: Timer | undefined;
  /** Sends so far; when the latest one's callback runs, everything before it has left the buffer. */
  #sends = 0;
  #inbox: Promise<void> = Promise.resolve();
  /**
   * Set while over the cap, resolved once the buffer drains or the connection ends: a client
   * message received before the cap was reached waits for it, since its answer would go over the cap.
   */
  #drained: { promise: Promise<void>; resolve: () => void } | undefined;
  #unhandled = 0;
  #ended = false;
  #pongDue = false;
  readonly #timers = new Set<Timer>();

  constructor(
    ws: WebSocket,
    tenant: string | null,
    options: WebSocketOptions,
    counters: { peakBufferedBytes: number; slowClientsClosed: number },
  ) {
    this.#ws = ws;
    this.#tenant = tenant;
    this.#options = options;
    this.#counters = counters;
    this.closed = new Promise((resolve) => ws.once('close', () => resolve()));
    ws.on('error', () => {}); // 'close' follows; nothing to add
    ws.on('close', () => this.#end());
    ws.on('message', (data, isBinary) => this.#receive(data, isBinary));
    ws.on('pong', () => {
      this.#pongDue = false;
    });
    this.#every(options.pingMs, () => this.#ping());
    this.#every(options.pollMs, () => this.#poll());
  }

  get subscriptions(): number {
    return this.#subscriptions.size;
  }

  close(code: number, reason: string): void {
    this.#end();
    // Read again, or the client's answering close frame would wait behind the pause until closeTimeout.
    if (this.#ws.isPaused) this.#ws.resume();
    if (this.#ws.readyState === this.#ws.OPEN || this.#ws.readyState === this.#ws.CONNECTING) {
      this.#ws.close(code, reason);
    }
  }

  terminate(): void {
    this.#end();
    this.#ws.terminate();
  }

  /** Stops everything this connection started; the socket itself is closed by the caller or is closing. */
  #end(): void {
    if (this.#ended) return;
    this.#ended = true;
    for (const subscription of this.#subscriptions.values()) {
      subscription.ended = true;
      subscription.unfollow();
    }
    this.#subscriptions.clear();
    this.#waiting.clear();
    for (const timer of this.#timers) this.#options.clock.clearTimeout(timer);
    this.#timers.clear();
    if (this.#slowTimer) this.#options.clock.clearTimeout(this.#slowTimer);
    this.#drained?.resolve(); // the messages still waiting see the end and do nothing
  }

  #every(ms: number, fn: () => void): void {
    const { clock } = this.#options;
    const schedule = () => {
      const timer = clock.setTimeout(() => {
        this.#timers.delete(timer);
        if (this.#ended) return;
        fn();
        if (!this.#ended) schedule();
      }, ms);
      this.#timers.add(timer);
    };
    schedule();
  }

  #ping(): void {
    // Over the cap the ping would wait behind the buffer; the slow-client rule judges that client instead.
    if (this.#blocked) return;
    if (this.#pongDue) {
      this.terminate();
      return;
    }
    this.#pongDue = true;
    this.#ws.ping();
  }

  #poll(): void {
    if (this.#blocked && this.#ws.bufferedAmount < this.#options.maxBufferedBytes) this.#unblock();
    for (const subscription of this.#subscriptions.values()) this.#pump(subscription);
  }

  // --- client messages, handled one at a time in arrival order ---

  #receive(data: RawData, isBinary: boolean): void {
    this.#unhandled++;
    this.#updateReading();
    this.#inbox = this.#inbox
      .then(() => this.#drained?.promise)
      .then(() => this.#handle(data, isBinary))
      .catch((error: unknown) => this.#options.onError?.(error))
      .finally(() => {
        this.#unhandled--;
        this.#updateReading();
      });
  }

  async #handle(data: RawData, isBinary: boolean): Promise<void> {
    if (this.#ended) return;
    const message = parseClientMessage(data, isBinary);
    if (typeof message === 'string') {
      this.#error('bad-request', `${message} See the message shapes in docs/http-api.md.`);
      return;
    }
    const id = message.operationId;
    if (message.type === 'unsubscribe') {
      const subscription = this.#subscriptions.get(id);
      if (subscription) this.#stop(subscription);
      this.#send({ type: 'unsubscribed', operationId: id, reason: 'requested' });
      return;
    }
    if (this.#subscriptions.has(id)) {
      // Already followed: it carries on from where it is (unsubscribe first to start elsewhere).
      this.#send({ type: 'subscribed', operationId: id });
      return;
    }
    if (this.#subscriptions.size >= this.#options.maxSubscriptions) {
      this.#error(
        'too-many-subscriptions',
        `This connection already follows ${this.#options.maxSubscriptions} operations (websocket.maxSubscriptions). Unsubscribe from finished ones or open another connection.`,
        id,
      );
      return;
    }
    let found: Awaited<ReturnType<OperationQueue['get']>>;
    try {
      found = isOperationId(id) ? await this.#options.store.get(id) : undefined;
    } catch (error) {
      this.#options.onError?.(error);
      this.#error(
        'store-unavailable',
        'The operation could not be read from the store. Subscribe again later.',
        id,
      );
      return;
    }
    if (this.#ended) return;
    // Another tenant's operation is answered exactly like an unknown one: nothing leaks.
    if (!found || !mayRead(found, this.#tenant)) {
      this.#error(
        'operation-not-found',
        `No operation has the id ${JSON.stringify(id)}. Check the id from the 202's Operation-Location.`,
        id,
      );
      return;
    }
    const subscription: Subscription = {
      id,
      last: resumeAfter(id, message.lastEventId),
      wasTerminal: isTerminal(found.status),
      reading: false,
      again: false,
      ended: false,
      unfollow: () => {},
    };
    this.#subscriptions.set(id, subscription);
    this.#send({ type: 'subscribed', operationId: id });
    subscription.unfollow = this.#options.hub.follow(
      id,
      () => this.#pump(subscription),
      () => this.close(1001, 'Spillway is shutting down'),
    );
    this.#pump(subscription);
  }

  #error(code: ErrorCode, detail: string, operationId?: string): void {
    this.#send({ type: 'error', code, detail, ...(operationId === undefined ? {} : { operationId }) });
  }

  // --- events, read from the store and sent under the cap ---

  /** One store read at a time per subscription; a notice during a read asks for one more. */
  #pump(subscription: Subscription): void {
    if (subscription.ended) return;
    if (this.#blocked) {
      this.#waiting.add(subscription);
      return;
    }
    if (subscription.reading) {
      subscription.again = true;
      return;
    }
    subscription.reading = true;
    this.#options.store
      .events(subscription.id, subscription.last)
      .then((events) => this.#deliver(subscription, events))
      .catch((error: unknown) => {
        // An unavailable store is tried again at the next poll; anything else is a failure to tell.
        if (!(error instanceof StoreUnavailableError)) this.#options.onError?.(error);
      })
      .finally(() => {
        subscription.reading = false;
        if (subscription.again) {
          subscription.again = false;
          this.#pump(subscription);
        }
      });
  }

  #deliver(subscription: Subscription, events: OperationEvent[]): void {
    for (const event of events) {
      if (subscription.ended) return;
      if (event.seq <= subscription.last) continue;
      if (this.#ws.bufferedAmount >= this.#options.maxBufferedBytes) {
        // The rest stays in the store; it is read again once the client has caught up.
        this.#block();
        this.#waiting.add(subscription);
        return;
      }
      this.#send(toCloudEvent(event, this.#options.publicUrl));
      subscription.last = event.seq;
      if (isTerminal(event.status)) {
        this.#stop(subscription);
        this.#send({ type: 'unsubscribed', operationId: subscription.id, reason: 'terminal' });
        return;
      }
    }
    if (events.length === 0 && subscription.wasTerminal) {
      // Resumed at or after the terminal event: nothing more will come (SSE answers 204 here).
      this.#stop(subscription);
      this.#send({ type: 'unsubscribed', operationId: subscription.id, reason: 'terminal' });
    }
  }

  #stop(subscription: Subscription): void {
    subscription.ended = true;
    subscription.unfollow();
    this.#subscriptions.delete(subscription.id);
    this.#waiting.delete(subscription);
  }

  #send(message: ServerMessage): void {
    if (this.#ended || this.#ws.readyState !== this.#ws.OPEN) return;
    const n = ++this.#sends;
    this.#ws.send(JSON.stringify(message), (error) => {
      if (!error && n === this.#sends && this.#blocked) this.#unblock();
    });
    const buffered = this.#ws.bufferedAmount;
    if (buffered > this.#counters.peakBufferedBytes) this.#counters.peakBufferedBytes = buffered;
  }

  #block(): void {
    if (this.#blocked) return;
    this.#blocked = true;
    let resolve = () => {};
    const promise = new Promise<void>((done) => {
      resolve = done;
    });
    this.#drained = { promise, resolve };
    this.#updateReading();
    this.#slowTimer = this.#options.clock.setTimeout(() => {
      this.#slowTimer = undefined;
      if (!this.#blocked || this.#ended) return;
      this.#counters.slowClientsClosed++;
      this.close(1013, 'Too slow: reconnect with lastEventId when you can keep up');
    }, this.#options.slowClientMs);
  }

  /** The buffer drained: read on for every subscription the cap stopped. */
  #unblock(): void {
    if (this.#ended) return;
    this.#blocked = false;
    if (this.#slowTimer) this.#options.clock.clearTimeout(this.#slowTimer);
    this.#slowTimer = undefined;
    this.#drained?.resolve();
    this.#drained = undefined;
    this.#updateReading();
    const waiting = [...this.#waiting];
    this.#waiting.clear();
    for (const subscription of waiting) this.#pump(subscription);
  }

  /** Reading the client pauses while over the cap or behind on its messages, so replies stay bounded too. */
  #updateReading(): void {
    // Once ended, read on: the client's answering close frame must get through.
    const pause = !this.#ended && (this.#blocked || this.#unhandled >= MAX_UNHANDLED);
    if (pause && !this.#ws.isPaused) this.#ws.pause();
    else if (!pause && this.#ws.isPaused) this.#ws.resume();
  }
}

function pathOf(req: IncomingMessage): string {
  const url = req.url ?? '';
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}
