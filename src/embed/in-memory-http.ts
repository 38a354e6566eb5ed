/**
 * HTTP/1.1 to a node:http request listener over in-memory connections: a
 * `fetch(Request) → Response` in front of a listener that never binds a port.
 *
 * The listener gets a real IncomingMessage and ServerResponse (Node's own
 * parser and writer, so every framework built on them works unchanged), and
 * the Response streams (Server-Sent Events arrive as they are written). Each
 * connection is a `duplexPair()`, which node:http accepts as a connection
 * (`server.emit('connection', …)`) and undici accepts as a socket.
 *
 * `fromNodeHandler` makes an in-process upstream out of a Node listener (an
 * Express app, `fastify.routing`): requests it carries are marked, so a
 * middleware that hands outside requests to Spillway can let Spillway's own
 * calls through to the app (`isSpillwayCall`).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { duplexPair, Readable } from 'node:stream';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import { Agent, type Dispatcher, request as undiciRequest } from 'undici';
import type { FetchHandler } from '../engine/fetch-upstream.ts';

/** Statuses whose Response has no body (Fetch §2.2.3 null body status). */
const NULL_BODY = new Set([101, 103, 204, 205, 304]);

export class InMemoryHttp {
  readonly #agent: Agent;

  constructor(server: Server) {
    this.#agent = new Agent({
      connect: (_options, callback) => {
        const [serverSide, clientSide] = duplexPair();
        server.emit('connection', serverSide);
        // Asynchronously, as a real connect: undici is not re-entrant here.
        queueMicrotask(() => callback(null, clientSide as never));
      },
      // Handlers may take as long as their own limits allow: the caller's signal bounds the wait.
      headersTimeout: 0,
      bodyTimeout: 0,
    });
  }

  /** Sends `request` to the listener; resolves at the response headers, the body streams. */
  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const headers: string[] = [];
    for (const [name, value] of request.headers) headers.push(name, value);
    if (!request.headers.has('host')) headers.push('host', url.host);
    const answer = await undiciRequest(`http://in-process${url.pathname}${url.search}`, {
      dispatcher: this.#agent,
      method: request.method as Dispatcher.HttpMethod,
      headers,
      body: request.body === null ? null : Readable.fromWeb(request.body as NodeReadableStream<Uint8Array>),
      signal: request.signal,
    });
    return toResponse(answer, request.method);
  }

  /** Waits for requests under way, then drops the connections. */
  close(): Promise<void> {
    return this.#agent.close();
  }

  /** Drops every connection now (the requests on them fail). */
  destroy(): Promise<void> {
    return this.#agent.destroy();
  }
}

function toResponse(answer: Dispatcher.ResponseData, method: string): Response {
  const headers = new Headers();
  for (const [name, value] of Object.entries(answer.headers)) {
    if (value === undefined) continue;
    for (const one of [value].flat()) headers.append(name, one);
  }
  if (NULL_BODY.has(answer.statusCode) || method === 'HEAD') {
    answer.body.resume();
    return new Response(null, { status: answer.statusCode, headers });
  }
  const body = Readable.toWeb(answer.body) as ReadableStream<Uint8Array>;
  return new Response(body, { status: answer.statusCode, headers });
}

/** Requests Spillway itself sends to an in-process Node listener. */
const ownCalls = new WeakSet<IncomingMessage>();

/**
 * True for a request Spillway sent to the app itself (a sync attempt or a
 * replay through `fromNodeHandler`): a middleware passes these on to the app's
 * routes instead of handing them to Spillway again.
 */
export function isSpillwayCall(req: IncomingMessage): boolean {
  return ownCalls.has(req);
}

/**
 * An in-process upstream made of a Node request listener (an Express app, a
 * Fastify instance's `routing`, a Koa `callback()`): each call is a real
 * HTTP/1.1 exchange in memory, no port and no socket. A listener that throws
 * or rejects breaks the exchange: the call's outcome is unknown.
 */
export function fromNodeHandler(
  listener: (req: IncomingMessage, res: ServerResponse) => unknown,
): FetchHandler {
  const server = createServer((req, res) => {
    ownCalls.add(req);
    // A listener that throws may have done something first: the connection breaks, as when a
    // process dies mid-request, so the outcome is unknown and retry safety decides what follows.
    const broken = (error: unknown) => res.destroy(error instanceof Error ? error : new Error(String(error)));
    try {
      const done = listener(req, res);
      if (done instanceof Promise) done.catch(broken);
    } catch (error) {
      broken(error);
    }
  });
  const connections = new InMemoryHttp(server);
  return (request) => connections.fetch(request);
}
