/**
 * The stale-copy row as both adapters read it, and the eviction both run:
 * each dialect passes only how it reads JSON.
 */
import { StoredValueUnreadableError } from '../errors.ts';
import type { StaleCopy } from './port.ts';
import { type MessageSealer, messageRow } from './sealed-values.ts';

type Row = Record<string, unknown>;

/**
 * Least recently used copies past the bounds, in one statement both dialects
 * run: walk the copies newest use first (the LRU index), counting entries and
 * bytes, and delete every one past either bound. $1 entries, $2 bytes.
 */
export const EVICT_STALE_COPIES = `DELETE FROM stale_copies WHERE (resource, variant) IN (
    SELECT resource, variant FROM (
      SELECT resource, variant,
        row_number() OVER (ORDER BY last_used_at DESC, resource DESC, variant DESC) AS entries,
        sum(size) OVER (ORDER BY last_used_at DESC, resource DESC, variant DESC) AS bytes
      FROM stale_copies) AS ranked
    WHERE entries > $1 OR bytes > $2)`;

/** What a copy counts against `staleCache.maxBytes`: its body and its header section. */
export function staleCopySize(copy: StaleCopy): number {
  return copy.response.body.byteLength + JSON.stringify(copy.response.headers).length;
}

/** The headers and body columns of a copy, sealed when the store encrypts at rest. */
export function staleCopyColumns(copy: StaleCopy, sealer: MessageSealer) {
  return sealer.seal(
    copy.response.headers,
    copy.response.body,
    messageRow.staleCopy(copy.resource, copy.variant),
  );
}

/**
 * The copies of `rows` that open. One the store's keys cannot decrypt is no
 * copy (a cache may lose an entry): it is left out and told to `onError`.
 */
export function readableStaleCopies(
  rows: Row[],
  json: (value: unknown) => unknown,
  sealer: MessageSealer,
  onError: (error: unknown) => void,
): StaleCopy[] {
  return rows.flatMap((row) => {
    try {
      return [staleCopyOf(row, json, sealer)];
    } catch (error) {
      if (!(error instanceof StoredValueUnreadableError)) throw error;
      onError(error);
      return [];
    }
  });
}

function staleCopyOf(row: Row, json: (value: unknown) => unknown, sealer: MessageSealer): StaleCopy {
  const resource = String(row.resource);
  const variant = String(row.variant);
  const { headers, body } = sealer.open(
    json(row.headers),
    row.body as Uint8Array,
    messageRow.staleCopy(resource, variant),
  );
  return {
    resource,
    variant,
    route: String(row.route),
    vary: json(row.vary) as string[],
    response: {
      status: Number(row.status),
      headers,
      body: new Uint8Array(body.buffer, body.byteOffset, body.byteLength),
    },
    storedAt: Number(row.stored_at),
    initialAge: Number(row.initial_age),
    expiresAt: Number(row.expires_at),
    lastUsedAt: Number(row.last_used_at),
  };
}
