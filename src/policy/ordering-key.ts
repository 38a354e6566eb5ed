/**
 * FIFO per key (docs/policy.md, "Replay order"): where a route reads a
 * request's ordering key, its `orderingKey` option. Operations of a route with
 * the same key replay one at a time in capture order, and a live request whose
 * key still has operations waiting is captured behind them.
 *
 * The option is a request header name (`x-account-id`), or a path template
 * that names one segment `{key}` (`/accounts/{key}/*`): the segments before it
 * must match the request's (literally, or `*` / `:name` for any one), those
 * after it are not read. A request without the header or whose path does not
 * match has no key, and no ordering.
 *
 * Deciding only: this module reads requests and never touches the store.
 */
import { createHash } from 'node:crypto';
import type { HeaderList } from '../store/port.ts';

export type OrderingKeySource =
  | { kind: 'header'; name: string }
  | { kind: 'path'; template: string; before: readonly string[] };

/** Keys longer than this are kept as a digest, so that index entries stay small. */
const MAX_KEY_LENGTH = 200;

/** The source an `orderingKey` option names; throws with what is wrong. */
export function parseOrderingKey(value: string): OrderingKeySource {
  if (value.startsWith('/')) {
    const segments = value.split('/').slice(1);
    const at = segments.indexOf('{key}');
    if (at < 0 || segments.lastIndexOf('{key}') !== at) {
      throw new Error(`a path template must name exactly one segment {key}, as in "/accounts/{key}/*"`);
    }
    return { kind: 'path', template: value, before: segments.slice(0, at) };
  }
  if (!/^[!#-'*+.^`|~\w-]+$/.test(value)) {
    throw new Error('it must be a request header name, or a path template starting with /');
  }
  return { kind: 'header', name: value.toLowerCase() };
}

/**
 * The request's ordering key, scoped to its tenant (two tenants' keys never
 * meet): `<tenant digest or ->/<key>`. Undefined when the request has none.
 */
export function orderingKeyOf(
  source: OrderingKeySource,
  request: { path: string; headers: HeaderList },
  tenant: string | null,
): string | undefined {
  const key =
    source.kind === 'header' ? headerKey(request.headers, source.name) : pathKey(request.path, source);
  if (key === undefined || key === '') return undefined;
  const kept =
    key.length > MAX_KEY_LENGTH ? `sha256:${createHash('sha256').update(key).digest('base64url')}` : key;
  return `${tenant ?? '-'}/${kept}`;
}

function headerKey(headers: HeaderList, name: string): string | undefined {
  // Several fields of the name are one list, as HTTP joins them.
  const values = headers.filter(([field]) => field === name).map(([, value]) => value.trim());
  return values.length === 0 ? undefined : values.join(', ');
}

function pathKey(path: string, source: Extract<OrderingKeySource, { kind: 'path' }>): string | undefined {
  const parts = path.split('/').slice(1);
  const matches = source.before.every(
    (segment, i) => segment === '*' || segment.startsWith(':') || segment === parts[i],
  );
  return matches ? parts[source.before.length] : undefined;
}
