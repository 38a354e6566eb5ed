/**
 * Forwarding fields: the upstream sees only Spillway's address, so Spillway
 * tells it who the client is, in `X-Forwarded-For`, `-Proto` and `-Host`
 * and/or RFC 7239 `Forwarded` (`forwardedHeaders`). Fields a client sends
 * itself are believed only from a trusted proxy (`trustedProxies`), whose
 * chain is then extended; from anyone else they are dropped, since a client
 * can write any address in them.
 *
 * The values are worked out once, when the request arrives, and travel with
 * it: a capture stores them (src/engine/http-fields.ts FORWARDING_FIELDS), so
 * a replay tells the upstream the same client as the sync attempt did.
 */
import type { IncomingMessage } from 'node:http';
import { type BlockList, isIPv6 } from 'node:net';
import type { HeaderList } from '../store/port.ts';

export type ForwardedHeaders = 'x-forwarded' | 'forwarded' | 'both';

export interface ForwardingOptions {
  /** Peers whose own forwarding fields are believed and extended. */
  trustedProxies: BlockList;
  /** Which fields Spillway writes. */
  forwardedHeaders: ForwardedHeaders;
}

/**
 * What a connection's requests share: its peer, whether that peer is trusted,
 * and, for an untrusted peer, the fields last worked out and the Host they
 * were for (from an untrusted peer nothing else in the request changes them).
 * Looking the peer up (an IPv6 test, a BlockList check) once per connection
 * instead of once per request is a measurable part of the sync path's cost.
 */
interface ConnectionFacts {
  options: ForwardingOptions;
  peer: string | undefined;
  trusted: boolean;
  host?: string | undefined;
  fields?: HeaderList;
}
const connections = new WeakMap<object, ConnectionFacts>();

/**
 * The forwarding fields to send upstream for this request (the client's own are dropped by the caller).
 * The list may be shared by the connection's requests: the caller copies it, never changes it.
 */
export function forwardingFields(req: IncomingMessage, options: ForwardingOptions): HeaderList {
  let facts = connections.get(req.socket);
  if (facts === undefined || facts.options !== options || facts.peer === undefined) {
    const peer = peerAddress(req);
    const trusted = peer !== undefined && options.trustedProxies.check(peer, isIPv6(peer) ? 'ipv6' : 'ipv4');
    facts = { options, peer, trusted };
    if (peer !== undefined) connections.set(req.socket, facts);
  }
  const host = req.headers.host;
  if (facts.fields !== undefined && facts.host === host) return facts.fields;
  const fields = workedOut(req, options, facts.peer, facts.trusted, host);
  if (!facts.trusted) {
    facts.host = host;
    facts.fields = fields;
  }
  return fields;
}

function workedOut(
  req: IncomingMessage,
  options: ForwardingOptions,
  peer: string | undefined,
  trusted: boolean,
  host: string | undefined,
): HeaderList {
  const received = (name: string) => (trusted ? req.headersDistinct[name]?.join(', ') : undefined);
  // The public port speaks plain HTTP; a TLS-terminating proxy in front says so in its own fields.
  const proto = 'http';
  const mode = options.forwardedHeaders;
  const fields: HeaderList = [];

  const forwardedFor = received('x-forwarded-for');
  const xForwarded: HeaderList = [
    ['x-forwarded-for', [forwardedFor, peer ?? 'unknown'].filter(Boolean).join(', ')],
    ['x-forwarded-proto', received('x-forwarded-proto') ?? proto],
  ];
  const forwardedHost = received('x-forwarded-host') ?? host;
  if (forwardedHost) xForwarded.push(['x-forwarded-host', forwardedHost]);
  if (mode !== 'forwarded') fields.push(...xForwarded);
  else if (trusted)
    fields.push(...passedOn(req, ['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host']));

  const element = [`for=${node(peer)}`, host ? `host=${value(host)}` : '', `proto=${proto}`]
    .filter(Boolean)
    .join(';');
  const forwarded = received('forwarded');
  if (mode !== 'x-forwarded') fields.push(['forwarded', forwarded ? `${forwarded}, ${element}` : element]);
  else if (forwarded !== undefined) fields.push(['forwarded', forwarded]);
  return fields;
}

/** A trusted proxy's fields of a family Spillway does not write: passed on unchanged. */
function passedOn(req: IncomingMessage, names: string[]): HeaderList {
  return names.flatMap((name): HeaderList => {
    const values = req.headersDistinct[name];
    return values ? [[name, values.join(', ')]] : [];
  });
}

/** The peer's address, an IPv4-mapped IPv6 address as plain IPv4; undefined once the socket is gone. */
function peerAddress(req: IncomingMessage): string | undefined {
  const address = req.socket.remoteAddress;
  if (address === undefined) return undefined;
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

/** An RFC 7239 node: IPv6 in brackets and quotes, "unknown" when the address is not known. */
function node(address: string | undefined): string {
  if (address === undefined) return 'unknown';
  return isIPv6(address) ? `"[${address}]"` : address;
}

/** An RFC 7239 value: a token as it is, anything else (a host with a port) quoted. */
function value(text: string): string {
  return /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(text) ? text : `"${text.replace(/["\\]/g, '\\$&')}"`;
}
