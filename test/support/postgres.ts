/**
 * PostgreSQL for tests: the real server at 127.0.0.1:5432 (or
 * SPILLWAY_TEST_POSTGRES_URL), a fresh schema per test file, dropped after.
 *
 * When the server cannot be reached, suites skip with a message saying so,
 * unless SPILLWAY_REQUIRE_POSTGRES=1 (CI sets it): then they fail, so a CI
 * run can never pass without having run them.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export const TEST_POSTGRES_URL =
  process.env.SPILLWAY_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const where = (() => {
  const url = new URL(TEST_POSTGRES_URL);
  return `${url.hostname}:${url.port || 5432}`;
})();

/**
 * Resolves with a skip message when PostgreSQL is unreachable, or false when
 * it answers. Throws instead of skipping when SPILLWAY_REQUIRE_POSTGRES=1.
 */
export async function skipWithoutPostgres(what: string): Promise<string | false> {
  const client = new pg.Client({ connectionString: TEST_POSTGRES_URL, connectionTimeoutMillis: 3_000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return false;
  } catch (error) {
    const reason = `PostgreSQL not reachable at ${where}: skipping ${what} (${(error as Error).message}). Set SPILLWAY_TEST_POSTGRES_URL to point elsewhere.`;
    if (process.env.SPILLWAY_REQUIRE_POSTGRES === '1') {
      throw new Error(`${reason} SPILLWAY_REQUIRE_POSTGRES=1, so this is a failure, not a skip.`);
    }
    return reason;
  } finally {
    await client.end().catch(() => {});
  }
}

export interface TestSchema {
  schema: string;
  /** The test database's URL with `?schema=` set. */
  url: string;
  /** Runs one statement on the test database, outside any store (for checks and fault injection). */
  query<R extends pg.QueryResultRow = Record<string, unknown>>(
    text: string,
    values?: unknown[],
  ): Promise<R[]>;
  /** Drops the schema and everything in it. */
  drop(): Promise<void>;
}

/** A new, empty, uniquely named schema; the store creates its tables in it. */
export function freshSchema(prefix: string): TestSchema {
  const schema = `${prefix}_${randomBytes(5).toString('hex')}`;
  const url = new URL(TEST_POSTGRES_URL);
  url.searchParams.set('schema', schema);
  const query = async <R extends pg.QueryResultRow>(text: string, values?: unknown[]) => {
    const client = new pg.Client({ connectionString: TEST_POSTGRES_URL, connectionTimeoutMillis: 5_000 });
    await client.connect();
    try {
      return (await client.query<R>(text, values)).rows;
    } finally {
      await client.end();
    }
  };
  return {
    schema,
    url: url.toString(),
    query,
    drop: async () => {
      await query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    },
  };
}
