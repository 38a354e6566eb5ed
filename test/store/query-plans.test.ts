/**
 * The per-route reads behind /metrics are index range reads, never a walk of
 * the operations table: checked with each database's own query planner on a
 * migrated schema.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, describe, it } from 'node:test';
import pg from 'pg';
import {
  OLDEST_DUE_BY_ROUTE as PG_OLDEST_DUE,
  PostgresStore,
} from '../../src/store/postgres/postgres-store.ts';
import { BACKLOG_SQL, SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { tempDir } from '../support/harness.ts';
import { ManualClock } from '../support/manual-clock.ts';
import { freshSchema, skipWithoutPostgres, TEST_POSTGRES_URL } from '../support/postgres.ts';

const skip = await skipWithoutPostgres('the PostgreSQL query plan');

describe('query plans: oldestDueByRoute', () => {
  it('SQLite reads it through indexes only', async () => {
    const dir = tempDir();
    after(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, 'plans.db');
    await new SqliteStore({ path, clock: new ManualClock() }).close(); // migrated
    const db = new DatabaseSync(path);
    try {
      // Each (priority, route) group's first due time, and the expired leases by route (migration 025).
      const plan = [BACKLOG_SQL.firstDueInGroup, BACKLOG_SQL.expiredLeasesByRoute]
        .flatMap((sql) => db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all() as Array<{ detail: string }>)
        .map((row) => row.detail)
        .join('\n');
      assert.match(plan, /operations_due \(priority=\? AND route=\?\)/);
      assert.match(plan, /operations_lease_expiry/);
      assert.doesNotMatch(plan, /SCAN operations(?! USING)/, plan);
    } finally {
      db.close();
    }
  });

  it('PostgreSQL can read it through indexes only', { skip }, async () => {
    const schema = freshSchema('spillway_plans');
    after(() => schema.drop());
    await (await PostgresStore.open({ url: schema.url, clock: new ManualClock() })).close(); // migrated
    const client = new pg.Client({ connectionString: TEST_POSTGRES_URL });
    await client.connect();
    try {
      await client.query(`SET search_path TO ${schema.schema}`);
      // An empty table is cheapest to walk: forbid the walk, and see the plan find indexes to use.
      await client.query('SET enable_seqscan = off');
      const rows = (await client.query(`EXPLAIN ${PG_OLDEST_DUE}`, [0])).rows as Array<
        Record<string, string>
      >;
      const plan = rows.map((row) => row['QUERY PLAN']).join('\n');
      assert.match(plan, /operations_due\b/, plan);
      assert.doesNotMatch(plan, /Seq Scan/, plan);
    } finally {
      await client.end();
    }
  });
});
