/**
 * The PostgreSQL adapter's stale-copy statements (migration 022). A copy is
 * written by one statement and the bounds kept by the next: each is safe
 * against concurrent gateways on its own (an eviction racing another deletes
 * no more than both would), so they need no transaction together.
 */

// An older answer never replaces a newer one (answers can arrive out of order: a replay, a sync attempt).
export const KEEP_STALE_COPY = `INSERT INTO stale_copies (resource, variant, route, vary, status, headers, body,
    size, stored_at, initial_age, expires_at, last_used_at)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
  ON CONFLICT (resource, variant) DO UPDATE SET route = excluded.route, vary = excluded.vary,
    status = excluded.status, headers = excluded.headers, body = excluded.body, size = excluded.size,
    stored_at = excluded.stored_at, initial_age = excluded.initial_age, expires_at = excluded.expires_at,
    last_used_at = excluded.last_used_at
  WHERE excluded.stored_at >= stale_copies.stored_at`;

export const STALE_COPIES = `SELECT resource, variant, route, vary, status, headers, body, stored_at, initial_age,
    expires_at, last_used_at FROM stale_copies WHERE resource = $1 ORDER BY variant`;

export const USE_STALE_COPY = `UPDATE stale_copies SET last_used_at = greatest(last_used_at, $3)
  WHERE resource = $1 AND variant = $2`;

export const DROP_STALE_COPIES = 'DELETE FROM stale_copies WHERE resource = $1';

// A range read of the expiry index, oldest first; rows another purge holds are left to it.
export const PURGE_STALE_COPIES = `DELETE FROM stale_copies WHERE (resource, variant) IN (
    SELECT resource, variant FROM stale_copies WHERE expires_at <= $1
    ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)`;
