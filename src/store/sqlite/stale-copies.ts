/**
 * The SQLite adapter's stale-copy verbs (migration 022), kept apart from the
 * operation verbs. Writes run inside the adapter's group-commit transaction
 * (its `#write`); reads go straight to the file.
 */
import type { DatabaseSync, SQLInputValue } from 'node:sqlite';
import type { StaleCopy, StaleCopyBounds } from '../port.ts';
import type { MessageSealer } from '../sealed-values.ts';
import {
  EVICT_STALE_COPIES,
  readableStaleCopies,
  staleCopyColumns,
  staleCopySize,
} from '../stale-copy-row.ts';

type Row = Record<string, SQLInputValue>;

export function prepareStaleCopies(
  db: DatabaseSync,
  sealer: MessageSealer,
  onError: (error: unknown) => void,
) {
  const sql = {
    // An older answer never replaces a newer one (answers can arrive out of order: a replay, a sync attempt).
    keep: db.prepare(`INSERT INTO stale_copies (resource, variant, route, vary, status, headers, body, size,
        stored_at, initial_age, expires_at, last_used_at)
      VALUES (:resource, :variant, :route, :vary, :status, :headers, :body, :size,
        :stored_at, :initial_age, :expires_at, :last_used_at)
      ON CONFLICT (resource, variant) DO UPDATE SET route = excluded.route, vary = excluded.vary,
        status = excluded.status, headers = excluded.headers, body = excluded.body, size = excluded.size,
        stored_at = excluded.stored_at, initial_age = excluded.initial_age, expires_at = excluded.expires_at,
        last_used_at = excluded.last_used_at
      WHERE excluded.stored_at >= stale_copies.stored_at`),
    evict: db.prepare(EVICT_STALE_COPIES.replace('$1', ':max_entries').replace('$2', ':max_bytes')),
    ofResource: db.prepare(`SELECT resource, variant, route, vary, status, headers, body, stored_at,
        initial_age, expires_at, last_used_at FROM stale_copies WHERE resource = :resource ORDER BY variant`),
    use: db.prepare(`UPDATE stale_copies SET last_used_at = max(last_used_at, :now)
      WHERE resource = :resource AND variant = :variant`),
    drop: db.prepare('DELETE FROM stale_copies WHERE resource = :resource'),
    purge: db.prepare(`DELETE FROM stale_copies WHERE rowid IN (SELECT rowid FROM stale_copies
      WHERE expires_at <= :now ORDER BY expires_at LIMIT :limit)`),
  };
  return {
    keep(copy: StaleCopy, bounds: StaleCopyBounds): { kept: boolean; evicted: number } {
      const stored = staleCopyColumns(copy, sealer);
      const kept =
        Number(
          sql.keep.run({
            resource: copy.resource,
            variant: copy.variant,
            route: copy.route,
            vary: JSON.stringify(copy.vary),
            status: copy.response.status,
            headers: stored.headers,
            body: stored.body,
            size: staleCopySize(copy),
            stored_at: copy.storedAt,
            initial_age: copy.initialAge,
            expires_at: copy.expiresAt,
            last_used_at: copy.lastUsedAt,
          }).changes,
        ) === 1;
      const evicted = Number(
        sql.evict.run({ max_entries: bounds.maxEntries, max_bytes: bounds.maxBytes }).changes,
      );
      return { kept, evicted };
    },
    copies(resource: string): StaleCopy[] {
      return readableStaleCopies(
        sql.ofResource.all({ resource }) as Row[],
        (value) => JSON.parse(String(value)),
        sealer,
        onError,
      );
    },
    use(resource: string, variant: string, now: number): void {
      sql.use.run({ resource, variant, now });
    },
    drop(resource: string): number {
      return Number(sql.drop.run({ resource }).changes);
    },
    purge(now: number, limit: number): number {
      return Number(sql.purge.run({ now, limit }).changes);
    },
  };
}
