/**
 * The SSRF guard for webhook URLs (http-standards.md §4.1 "Limits and
 * security"). A client names where its webhook goes (`Spillway-Callback`), so
 * without a guard anyone could make the gateway POST into the network it runs
 * in: the cloud metadata service, an admin port on loopback, a database.
 *
 * Two gates, both always applied:
 * 1. The URL's origin (scheme, host, port) must be on the allow-list
 *    (`webhooks.callbackAllow`, `SPILLWAY_CALLBACK_ALLOW`), exactly.
 * 2. Every address its host resolves to must be public: loopback, private,
 *    link-local, shared (CGNAT), unspecified, multicast, reserved and
 *    documentation ranges are refused, IPv4 and IPv6, including IPv4 written
 *    inside IPv6 (`::ffff:10.0.0.1`, NAT64, 6to4). `allowPrivateNetworks`
 *    lets loopback, private, link-local, shared and unique-local addresses
 *    through (a receiver on the same private network, tests); the metadata
 *    addresses, unspecified, multicast and reserved ranges stay refused
 *    whatever the setting.
 *
 * The check runs when a callback is registered (the gateway answers 400) and
 * again for every connection a delivery opens: the undici dispatcher's
 * `connect.lookup` resolves the name itself and hands the socket only the
 * addresses it has just checked, so a name that resolved to a public address
 * at registration and to 127.0.0.1 at delivery (DNS rebinding) is refused at
 * connect time. IP literals never reach `lookup`, so `check` is called before
 * each attempt too.
 */

import type { LookupAddress } from 'node:dns';
import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP, isIPv4 } from 'node:net';
import { Agent } from 'undici';

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** Resolves a host name to every address it has (injected in tests). */
export type Resolver = (hostname: string) => Promise<ResolvedAddress[]>;

export interface CallbackPolicy {
  /** Allowed origins, exactly as `URL.origin` writes them (`https://hooks.example`, `http://127.0.0.1:9000`). */
  allowOrigins: ReadonlySet<string>;
  /** Let loopback, private, link-local, shared and unique-local addresses through. */
  allowPrivateNetworks: boolean;
  /** Default: the system resolver (getaddrinfo, as connecting would use), every address. */
  resolve?: Resolver;
  /** A name that takes longer than this to resolve is refused. Default 5 s. */
  resolveTimeoutMs?: number;
}

export type CallbackCheck =
  | { ok: true; url: URL; addresses: ResolvedAddress[] }
  | { ok: false; reason: string };

/** What kind of address it is, when it is not an ordinary public one. */
export type AddressClass =
  | 'loopback'
  | 'private'
  | 'link-local'
  | 'shared'
  | 'unique-local'
  | 'metadata'
  | 'unspecified'
  | 'multicast'
  | 'reserved'
  | 'documentation';

/** Classes `allowPrivateNetworks` lets through; the rest are never a webhook receiver. */
const PRIVATE_CLASSES: ReadonlySet<AddressClass> = new Set([
  'loopback',
  'private',
  'link-local',
  'shared',
  'unique-local',
]);

/** Raised on a connection the guard refused; its code marks the failure as "not sent". */
export class CallbackRefusedError extends Error {
  override name = 'CallbackRefusedError';
  readonly code = 'SPILLWAY_CALLBACK_REFUSED';
}

const MAX_URL_LENGTH = 2_048;

/** An origin for the allow-list, normalised as `URL.origin` writes it; throws when it is not just an origin. */
export function normalizeOrigin(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error(`${JSON.stringify(text)} is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new Error(`${JSON.stringify(text)} is not http or https`);
  }
  if (url.username || url.password || url.pathname !== '/' || url.search || url.hash) {
    throw new Error(
      `${JSON.stringify(text)} is not an origin: write only scheme, host and port, like "https://hooks.example"`,
    );
  }
  return url.origin;
}

export class CallbackGuard {
  readonly #policy: CallbackPolicy;
  readonly #resolve: Resolver;
  #agent: Agent | undefined;

  constructor(policy: CallbackPolicy) {
    this.#policy = policy;
    this.#resolve = policy.resolve ?? systemResolver;
  }

  /** True when a callback could be allowed at all (the allow-list is not empty). */
  get enabled(): boolean {
    return this.#policy.allowOrigins.size > 0;
  }

  /** The URL's form and its origin against the allow-list; no DNS. */
  checkUrl(text: string): { ok: true; url: URL } | { ok: false; reason: string } {
    if (text.length > MAX_URL_LENGTH)
      return { ok: false, reason: `it is longer than ${MAX_URL_LENGTH} characters` };
    if (/\s/.test(text)) return { ok: false, reason: 'it contains white space; percent-encode it' };
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      return { ok: false, reason: 'it is not an absolute URL' };
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      return { ok: false, reason: `its scheme ${url.protocol.slice(0, -1)} is not https or http` };
    }
    if (url.username || url.password) {
      return { ok: false, reason: 'it carries a user name or password; put credentials elsewhere' };
    }
    if (!this.#policy.allowOrigins.has(url.origin)) {
      return {
        ok: false,
        reason: this.enabled
          ? `its origin ${url.origin} is not on the allow-list (webhooks.callbackAllow, SPILLWAY_CALLBACK_ALLOW)`
          : 'callbacks are not enabled on this gateway: the allow-list (webhooks.callbackAllow, SPILLWAY_CALLBACK_ALLOW) is empty',
      };
    }
    url.hash = '';
    return { ok: true, url };
  }

  /** The allow-list, then every address the host resolves to. */
  async check(text: string): Promise<CallbackCheck> {
    const form = this.checkUrl(text);
    if (!form.ok) return form;
    const host = hostOf(form.url);
    try {
      const addresses = await this.#addressesOf(host);
      return { ok: true, url: form.url, addresses };
    } catch (error) {
      return { ok: false, reason: (error as Error).message };
    }
  }

  /**
   * The dispatcher deliveries go through: each new connection resolves its
   * host here and gets only addresses that passed the check. Redirects are
   * never followed (undici's `request` does not follow them without an
   * interceptor, and none is installed).
   */
  get dispatcher(): Agent {
    this.#agent ??= new Agent({
      connect: {
        lookup: (hostname, options, callback) => {
          this.#addressesOf(hostname).then(
            (found) => {
              const family = options.family === 4 || options.family === 6 ? options.family : undefined;
              const usable = family ? found.filter((a) => a.family === family) : found;
              if (usable.length === 0) {
                callback(new CallbackRefusedError(`${hostname} has no IPv${family} address`), '', 0);
              } else if (options.all) {
                (callback as unknown as (e: null, all: LookupAddress[]) => void)(null, usable);
              } else {
                callback(null, usable[0]!.address, usable[0]!.family);
              }
            },
            (error: Error) => callback(error, '', 0),
          );
        },
      },
      // Time limits are per attempt (sender.ts); keep-alive lets retries to one receiver share connections.
      headersTimeout: 0,
      bodyTimeout: 0,
      keepAliveTimeout: 4_000,
      connections: 64,
    });
    return this.#agent;
  }

  /** Closes the dispatcher's connections. Safe to call twice. */
  async close(): Promise<void> {
    const agent = this.#agent;
    this.#agent = undefined;
    await agent?.destroy();
  }

  /** Every address of `host` (a name or an IP literal), each checked; rejects with the reason when any is refused. */
  async #addressesOf(host: string): Promise<ResolvedAddress[]> {
    const literal = isIP(host);
    const addresses: ResolvedAddress[] = literal
      ? [{ address: host, family: literal as 4 | 6 }]
      : await withTimeout(this.#resolve(host), this.#policy.resolveTimeoutMs ?? 5_000, host);
    if (addresses.length === 0) throw new CallbackRefusedError(`its host ${host} has no address`);
    for (const { address } of addresses) {
      const kind = classifyAddress(address);
      if (kind === undefined) continue;
      if (this.#policy.allowPrivateNetworks && PRIVATE_CLASSES.has(kind)) continue;
      const where = literal ? `its host ${host} is` : `its host ${host} resolves to ${address},`;
      throw new CallbackRefusedError(
        `${where} a ${kind} address${PRIVATE_CLASSES.has(kind) ? ' (allowed only with webhooks.allowPrivateNetworks, SPILLWAY_CALLBACK_ALLOW_PRIVATE=1)' : ', never a webhook receiver'}`,
      );
    }
    return addresses;
  }
}

const systemResolver: Resolver = async (hostname) =>
  (await dnsLookup(hostname, { all: true, verbatim: true })).map((a) => ({
    address: a.address,
    family: a.family === 6 ? 6 : 4,
  }));

async function withTimeout<T>(work: Promise<T>, ms: number, host: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    // Node's own timer: this waits for the network, not for a due time.
    timer = setTimeout(
      () => reject(new CallbackRefusedError(`its host ${host} did not resolve within ${ms} ms`)),
      ms,
    );
    timer.unref();
  });
  try {
    return await Promise.race([work, timeout]);
  } catch (error) {
    if (error instanceof CallbackRefusedError) throw error;
    const code = (error as { code?: string }).code;
    throw new CallbackRefusedError(
      `its host ${host} cannot be resolved (${code ?? (error as Error).message})`,
    );
  } finally {
    clearTimeout(timer);
  }
}

/** The host as the resolver and the classifier want it: IPv6 literals without brackets. */
const hostOf = (url: URL): string => url.hostname.replace(/^\[(.*)\]$/, '$1');

type Range4 = [base: number, bits: number, kind: AddressClass];

const V4_RANGES: Range4[] = [
  [v4('0.0.0.0'), 8, 'unspecified'], // "this network"
  [v4('10.0.0.0'), 8, 'private'],
  [v4('100.64.0.0'), 10, 'shared'], // carrier-grade NAT
  [v4('127.0.0.0'), 8, 'loopback'],
  [v4('169.254.169.254'), 32, 'metadata'], // cloud instance metadata, before link-local
  [v4('169.254.0.0'), 16, 'link-local'],
  [v4('172.16.0.0'), 12, 'private'],
  [v4('192.0.0.0'), 24, 'reserved'], // IETF protocol assignments
  [v4('192.0.2.0'), 24, 'documentation'],
  [v4('192.88.99.0'), 24, 'reserved'], // 6to4 relay anycast
  [v4('192.168.0.0'), 16, 'private'],
  [v4('198.18.0.0'), 15, 'reserved'], // benchmarking
  [v4('198.51.100.0'), 24, 'documentation'],
  [v4('203.0.113.0'), 24, 'documentation'],
  [v4('224.0.0.0'), 4, 'multicast'],
  [v4('240.0.0.0'), 4, 'reserved'], // and 255.255.255.255, broadcast
];

function v4(text: string): number {
  return text.split('.').reduce((n, octet) => n * 256 + Number(octet), 0);
}

function classifyV4(address: number): AddressClass | undefined {
  for (const [base, bits, kind] of V4_RANGES) {
    const size = 2 ** (32 - bits);
    if (address >= base && address < base + size) return kind;
  }
  return undefined;
}

/** The eight 16-bit groups of an IPv6 address (zone id dropped), or undefined when it is not one. */
function groupsV6(text: string): number[] | undefined {
  let rest = text.replace(/%.*$/, '');
  // A dotted IPv4 tail (::ffff:10.0.0.1) becomes the two groups it stands for.
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(rest)?.[1];
  if (dotted) {
    if (!isIPv4(dotted)) return undefined;
    const n = v4(dotted);
    rest = `${rest.slice(0, -dotted.length)}${Math.floor(n / 65536).toString(16)}:${(n % 65536).toString(16)}`;
  }
  const halves = rest.split('::');
  if (halves.length > 2) return undefined;
  const parse = (part: string) => (part === '' ? [] : part.split(':').map((g) => Number.parseInt(g, 16)));
  const head = parse(halves[0]!);
  const back = halves.length === 2 ? parse(halves[1]!) : [];
  const missing = 8 - head.length - back.length;
  if (halves.length === 1 ? missing !== 0 : missing < 0) return undefined;
  const groups = [...head, ...Array<number>(missing).fill(0), ...back];
  return groups.every((g) => Number.isInteger(g) && g >= 0 && g <= 0xffff) ? groups : undefined;
}

function classifyV6(g: number[]): AddressClass | undefined {
  const [a, b, c, d, e, f, g6, h] = g as [number, number, number, number, number, number, number, number];
  const embedded = g6 * 65536 + h;
  if (a === 0 && b === 0 && c === 0 && d === 0 && e === 0) {
    if (f === 0xffff) return classifyV4(embedded); // IPv4-mapped, ::ffff:a.b.c.d
    if (f === 0 && g6 === 0 && h === 1) return 'loopback';
    if (f === 0 && g6 === 0 && h === 0) return 'unspecified';
    return 'reserved'; // IPv4-compatible (deprecated) and the rest of ::/80
  }
  if (a === 0x64 && b === 0xff9b && c === 0 && d === 0 && e === 0 && f === 0) return classifyV4(embedded); // NAT64
  if (a === 0x2002) return classifyV4(b * 65536 + c); // 6to4 carries its IPv4 in groups 2 and 3
  if (a === 0xfd00 && b === 0x0ec2 && c === 0 && d === 0 && e === 0 && f === 0 && g6 === 0 && h === 0x254) {
    return 'metadata'; // fd00:ec2::254, the cloud metadata service over IPv6
  }
  if ((a & 0xfe00) === 0xfc00) return 'unique-local'; // fc00::/7
  if ((a & 0xffc0) === 0xfe80) return 'link-local'; // fe80::/10
  if ((a & 0xffc0) === 0xfec0) return 'private'; // fec0::/10, site-local (deprecated)
  if ((a & 0xff00) === 0xff00) return 'multicast'; // ff00::/8
  if (a === 0x2001 && b === 0x0db8) return 'documentation'; // 2001:db8::/32
  if (a === 0x0100 && b === 0 && c === 0 && d === 0) return 'reserved'; // 100::/64, discard
  return undefined;
}

/** What kind of special address `address` is, or undefined for an ordinary public address. */
export function classifyAddress(address: string): AddressClass | undefined {
  const family = isIP(address.replace(/%.*$/, ''));
  if (family === 4) return classifyV4(v4(address));
  if (family === 6) {
    const groups = groupsV6(address);
    return groups ? classifyV6(groups) : 'reserved';
  }
  return 'reserved'; // not an address at all: never connect to it
}
