/**
 * Re-keying (`spillway store rekey`): every stored message (sealed-values.ts)
 * sealed under an older key, or written in plaintext before a key was set, is
 * sealed again under the newest key; then `store_keys` forgets the keys no
 * value is under any more, so they can leave the config.
 *
 * One walk for both adapters: each passes how it runs a transaction and reads
 * a JSON column. The walk goes through each table in primary-key order, a
 * bounded batch per transaction, so a PostgreSQL store stays in use meanwhile
 * (a batch's rows are locked only until its commit).
 */
import type { RekeyOptions, RekeySummary } from './port.ts';
import { type MessageSealer, messageRow, StoreKeyError } from './sealed-values.ts';

type Row = Record<string, unknown>;

/** One transaction of a batch. SQL uses `?` placeholders; the dialect numbers them if it must. */
export interface RekeyTransaction {
  all(sql: string, params: unknown[]): Promise<Row[]>;
  run(sql: string, params: unknown[]): Promise<void>;
}

export interface RekeyDialect {
  transaction<T>(work: (tx: RekeyTransaction) => Promise<T>): Promise<T>;
  /** A headers column as parsed JSON (SQLite keeps text, PostgreSQL jsonb). */
  json(value: unknown): unknown;
  /** Appended to a batch's SELECT: locks its rows until the commit where rows can be locked. */
  lockRows: string;
}

/** Where stored messages live: each a headers and a body column of one table. */
const SEALED_PARTS = [
  {
    part: 'operations.request',
    table: 'operations',
    key: ['id'],
    headers: 'request_headers',
    body: 'request_body',
    row: (key: string[]) => messageRow.request(key[0]!),
  },
  {
    part: 'operations.result',
    table: 'operations',
    key: ['id'],
    headers: 'result_headers',
    body: 'result_body',
    row: (key: string[]) => messageRow.result(key[0]!),
  },
  {
    part: 'idempotency_keys.answer',
    table: 'idempotency_keys',
    key: ['key'],
    headers: 'response_headers',
    body: 'response_body',
    row: (key: string[]) => messageRow.idempotentAnswer(key[0]!),
  },
  {
    part: 'stale_copies',
    table: 'stale_copies',
    key: ['resource', 'variant'],
    headers: 'headers',
    body: 'body',
    row: (key: string[]) => messageRow.staleCopy(key[0]!, key[1]!),
  },
] as const;

/**
 * Seals every stored message again under `sealer`'s newest key, then deletes
 * the other keys from store_keys. A value no listed key opens stops the walk
 * (StoredValueUnreadableError) with what was done so far committed.
 */
export async function rekeyStoredValues(
  dialect: RekeyDialect,
  sealer: MessageSealer,
  { batchSize = 500, onProgress }: RekeyOptions = {},
): Promise<RekeySummary> {
  const keyId = sealer.newestKeyId;
  if (!keyId) {
    throw new StoreKeyError(
      'rekey seals stored values under the newest store key, and no storeEncryptionKey is set: set SPILLWAY_STORE_ENCRYPTION_KEY (newest first).',
    );
  }
  const resealed: Record<string, number> = {};
  for (const part of SEALED_PARTS) {
    const keys = part.key.join(', ');
    const select = `SELECT ${keys}, ${part.headers} AS headers, ${part.body} AS body FROM ${part.table}
      WHERE ${part.headers} IS NOT NULL AND (${keys}) > (${part.key.map(() => '?').join(', ')})
      ORDER BY ${keys} LIMIT ?${dialect.lockRows}`;
    const update = `UPDATE ${part.table} SET ${part.headers} = ?, ${part.body} = ?
      WHERE ${part.key.map((column) => `${column} = ?`).join(' AND ')}`;
    // Keyset paging from before the first key: '' sorts first in both dialects.
    let after: string[] = part.key.map(() => '');
    let scanned = 0;
    resealed[part.part] = 0;
    for (;;) {
      const rows = await dialect.transaction(async (tx) => {
        const batch = await tx.all(select, [...after, batchSize]);
        for (const row of batch) {
          const key = part.key.map((column) => String(row[column]));
          const stored = sealer.reseal(dialect.json(row.headers), row.body as Uint8Array, part.row(key));
          if (!stored) continue;
          await tx.run(update, [stored.headers, stored.body, ...key]);
          resealed[part.part]! += 1;
        }
        return batch;
      });
      scanned += rows.length;
      onProgress?.({ part: part.part, scanned, resealed: resealed[part.part]! });
      if (rows.length < batchSize) break;
      const last = rows[rows.length - 1]!;
      after = part.key.map((column) => String(last[column]));
    }
  }
  const forgotten = await dialect.transaction(async (tx) => {
    const others = await tx.all('SELECT key_id FROM store_keys WHERE key_id <> ? ORDER BY key_id', [keyId]);
    await tx.run('DELETE FROM store_keys WHERE key_id <> ?', [keyId]);
    return others.map((row) => String(row.key_id));
  });
  return { keyId, resealed, forgotten };
}
