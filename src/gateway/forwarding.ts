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

/** The forwarding fields to send upstream for this request (the client's own are dropped by the caller). */
export function forwardingFields(req: IncomingMessage, options: ForwardingOptions): HeaderList {
  const peer = peerAddress(req);
  const trusted = peer !== undefined && options.trustedProxies.check(peer, isIPv6(peer) ? 'ipv6' : 'ipv4');
  const received = (name: string) => (trusted ? req.headersDistinct[name]?.join(', ') : undefined);
  const host = req.headers.host;
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
