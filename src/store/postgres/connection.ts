/**
 * The PostgreSQL adapter's connections: where to connect (a postgres:// URL
 * and a schema), loading the optional `pg` driver, the pool, and which driver
 * errors mean "the store cannot take this write now" (StoreUnavailableError,
 * answered 503 by the gateway) rather than a bug.
 *
 * Nothing here may outlive a failure: every connection, query and wait for a
 * pooled connection has a time limit, so a verb rejects instead of hanging
 * while the server is down, and the pool opens fresh connections by itself
 * once it is back.
 */
import type { Pool, PoolConfig } from 'pg';
import { StoredValueUnreadableError, StoreUnavailableError } from '../../errors.ts';
import { StoreKeyError } from '../sealed-values.ts';

type Pg = typeof import('pg');

/** A problem with the store's setup that retrying will not fix: missing driver, bad URL, old server. */
export class PostgresSetupError extends Error {
  override name = 'PostgresSetupError';
}

export interface PostgresLocation {
  /** The URL handed to the driver (without Spillway's own `schema` parameter). */
  connectionString: string;
  schema: string;
  /** The URL without its password, for messages and logs. */
  display: string;
}

export const DEFAULT_SCHEMA = 'spillway';
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * Reads a postgres:// or postgresql:// URL. `?schema=name` (or the `schema`
 * option, which wins) selects the schema holding Spillway's tables; it is
 * created if missing. Lower-case letters, digits and `_` only, so the name
 * needs no quoting anywhere.
 */
export function parseLocation(url: string, schemaOption?: string): PostgresLocation {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new PostgresSetupError(
      `The store URL must look like postgres://user@host:port/database, got ${JSON.stringify(url)}.`,
    );
  }
  const schema = schemaOption ?? parsed.searchParams.get('schema') ?? DEFAULT_SCHEMA;
  if (!SCHEMA_NAME.test(schema)) {
    throw new PostgresSetupError(
      `The store's schema (?schema= or the schema option) must be lower-case letters, digits and _ (at most 63, not starting with a digit), got ${JSON.stringify(schema)}.`,
    );
  }
  parsed.searchParams.delete('schema');
  const connectionString = parsed.toString();
  if (parsed.password) parsed.password = '***';
  parsed.searchParams.set('schema', schema);
  return { connectionString, schema, display: parsed.toString() };
}

/** Loads `pg` only when a PostgreSQL store is chosen: it is an optional peer dependency. */
export async function loadDriver(): Promise<Pg> {
  try {
    return await import('pg');
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      throw new PostgresSetupError(
        'The PostgreSQL store needs the "pg" driver, an optional peer dependency of spillway: run `npm install pg`.',
        { cause: error },
      );
    }
    throw error;
  }
}

export interface PoolLimits {
  /** Connections at most. */
  size: number;
  /** Connecting, or waiting for a free pooled connection, gives up after this. */
  connectTimeoutMs: number;
  /** A statement gives up after this, on the server and in the client. */
  statementTimeoutMs: number;
}

const INT8 = 20;

export function createPool(pg: Pg, location: PostgresLocation, limits: PoolLimits): Pool {
  const config: PoolConfig = {
    connectionString: location.connectionString,
    max: limits.size,
    connectionTimeoutMillis: limits.connectTimeoutMs,
    idleTimeoutMillis: 30_000,
    // The server cancels a statement past its limit; the client gives up a little later if the
    // server itself has gone silent (a half-open connection), and the pool drops that connection.
    statement_timeout: limits.statementTimeoutMs,
    query_timeout: limits.statementTimeoutMs + 2_000,
    keepAlive: true,
    application_name: 'spillway',
    // Every statement sees Spillway's schema, and a commit returns only once its WAL is flushed,
    // whatever the server's default: a capture is acknowledged only after that.
    options: `-c search_path=${location.schema} -c synchronous_commit=on`,
    // bigint columns hold epoch milliseconds and counts: well inside a double's exact range.
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === INT8 ? Number : pg.types.getTypeParser(oid, format)) as Pg['types']['getTypeParser'],
    },
  };
  const pool = new pg.Pool(config);
  // An idle connection broken by a server restart is dropped by the pool, which reports it here; the
  // next verb opens a new one. Without a listener the report would crash the process.
  pool.on('error', () => {});
  return pool;
}

// SQLSTATEs meaning "not now", by class or by code: the server or the link is failing, not the statement.
const UNAVAILABLE_CLASSES = new Set([
  '08', // connection exception
  '53', // insufficient resources: disk full, out of memory, too many connections
  '57', // operator intervention: shutdown, restart, statement timeout (57014)
  '58', // system error: I/O
]);
const UNAVAILABLE_CODES = new Set([
  '25006', // read-only transaction: connected to a standby after a failover
  '40001', // serialization failure
  '40P01', // deadlock detected
  '55P03', // lock not available
]);

/**
 * True when `error` means the store cannot serve now: any error of the server
 * with one of the SQLSTATEs above, and every error that is not the server's
 * (refused or reset connections, timeouts, a pool that cannot connect). The
 * server's other errors (a duplicate key, say) and programming errors are not.
 */
export function isUnavailable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  // Spillway's own refusals: a setup problem, or a sealed value the configured keys cannot open.
  if (error instanceof PostgresSetupError || error instanceof StoredValueUnreadableError) return false;
  if (error instanceof StoreKeyError) return false;
  if (error instanceof TypeError || error instanceof RangeError || error instanceof SyntaxError) return false;
  const { code, severity } = error as { code?: unknown; severity?: unknown };
  if (typeof severity === 'string' && typeof code === 'string') {
    return UNAVAILABLE_CLASSES.has(code.slice(0, 2)) || UNAVAILABLE_CODES.has(code);
  }
  return true;
}

/** Wraps an unavailability in StoreUnavailableError; leaves other errors as they are. */
export function asStoreError(error: unknown, location: PostgresLocation): unknown {
  if (error instanceof StoreUnavailableError || !isUnavailable(error)) return error;
  return new StoreUnavailableError(
    `The PostgreSQL store at ${location.display} cannot be reached or cannot take writes: ${(error as Error).message.replace(/\.$/, '')}.`,
    { cause: error },
  );
}
