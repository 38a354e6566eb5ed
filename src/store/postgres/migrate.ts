/**
 * Brings a schema up to date with the numbered files in ./migrations, in one
 * transaction under a transaction-scoped advisory lock: processes starting
 * together (two gateways and a worker, say) migrate one after the other, and
 * a migration that fails leaves nothing behind.
 *
 * Refuses servers older than the capability table's minimum, and schemas
 * migrated by a newer Spillway than this one.
 */
import type { PoolClient } from 'pg';
import { storeCapabilities } from '../capabilities.ts';
import { readMigrations } from '../migrations.ts';
import { PostgresSetupError } from './connection.ts';

// First key of the advisory lock: "Spillway migrations"; the second is the schema's hash.
const LOCK_NAMESPACE = 0x53504c57; // 'SPLW'

export async function checkServerVersion(client: PoolClient, where: string): Promise<void> {
  const { rows } = await client.query<{ num: string; version: string }>(
    `SELECT current_setting('server_version_num') AS num, current_setting('server_version') AS version`,
  );
  const min = storeCapabilities.postgres.minServerVersion!;
  const num = Number(rows[0]!.num);
  if (num < min) {
    throw new PostgresSetupError(
      `PostgreSQL ${rows[0]!.version} at ${where} is too old: Spillway needs PostgreSQL ${Math.floor(min / 10_000)} or later.`,
    );
  }
}

export async function migrate(client: PoolClient, schema: string): Promise<void> {
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [LOCK_NAMESPACE, schema]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    await client.query(`SET LOCAL search_path TO ${schema}`);
    await client.query(`CREATE TABLE IF NOT EXISTS spillway_migrations (
      version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    const { rows } = await client.query<{ version: number }>('SELECT version FROM spillway_migrations');
    const applied = new Set(rows.map((row) => Number(row.version)));
    const migrations = readMigrations(new URL('./migrations', import.meta.url));
    const newest = Math.max(0, ...migrations.map((m) => m.version));
    const unknown = [...applied].filter((version) => version > newest);
    if (unknown.length > 0) {
      throw new PostgresSetupError(
        `Schema ${schema} has migration ${Math.max(...unknown)}, newer than this Spillway knows (${newest}): upgrade this process, or use another schema.`,
      );
    }
    for (const migration of migrations) {
      if (applied.has(migration.version)) continue;
      await client.query(migration.sql);
      await client.query('INSERT INTO spillway_migrations (version, name) VALUES ($1, $2)', [
        migration.version,
        migration.name,
      ]);
    }
    await client.query('COMMIT');
  } catch (error) {
    // Deliberately ignored: a ROLLBACK that fails too means the connection broke, and then the server
    // rolls the transaction back itself. The migration's own error, thrown next, is what to report.
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  }
}
