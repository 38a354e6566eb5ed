/**
 * Header handling shared by the forwarding and capture paths (RFC 9110 §7.6.1):
 * hop-by-hop fields never cross Spillway, in either direction.
 */
import type { HeaderList } from '../store/port.ts';

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

export type HeaderRecord = Record<string, string | string[] | undefined>;

/** Names this message's `Connection` field lists, plus the fixed hop-by-hop set. */
function hopByHop(connection: string | string[] | undefined): Set<string> {
  const named = [connection ?? []].flat().flatMap((v) => v.split(','));
  return new Set([...HOP_BY_HOP, ...named.map((n) => n.trim().toLowerCase()).filter(Boolean)]);
}

/** End-to-end fields of a header record, as a list (multi-valued fields become several pairs). */
export function endToEnd(headers: HeaderRecord, alsoDrop: readonly string[] = []): HeaderList {
  const drop = hopByHop(headers.connection);
  for (const name of alsoDrop) drop.add(name);
  const list: HeaderList = [];
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || drop.has(name)) continue;
    for (const v of [value].flat()) list.push([name, v]);
  }
  return list;
}

/** Flattens a header list into undici's / node:http's `[name, value, name, value…]` form. */
export const flatHeaders = (list: HeaderList): string[] => list.flat();

export function headerValue(list: HeaderList, name: string): string | undefined {
  return list.find(([n]) => n === name)?.[1];
}
