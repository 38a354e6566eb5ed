/**
 * What is on disk, read around the gateways rather than through them: the
 * bench counts the operations in the store (the SQLite file, opened read-only
 * beside or after the gateways, or the PostgreSQL schema), and before a replay
 * run makes a backlog of a chosen size due at once, so that the drain measures
 * replay throughput rather than the backoff schedule left by the capture run.
 *
 * On PostgreSQL it also reads what the server spent, for sizing: WAL written
 * (`pg_current_wal_lsn()`, cluster-wide) and, when the server runs on this
 * machine, the CPU time of its processes (from /proc). Both count whatever
 * else the server does meanwhile, so run the bench on a quiet server.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { DatabaseSync } from 'node:sqlite';
import pg from 'pg';

export interface BenchStore {
  /** What `--store` is given. */
  location: string;
  label: string;
  operations(): Promise<number>;
  succeeded(): Promise<number>;
  /**
   * Makes the `count` oldest waiting operations due now and parks the rest far
   * in the future, so a replay run drains exactly those. Only while no gateway
   * runs on the store.
   */
  makeBacklogDue(count: number): Promise<void>;
  /** Removes what the bench created (the schema). */
  drop(): Promise<void>;
  /** What the server has spent so far (PostgreSQL only); compare two readings. */
  usage(): Promise<ServerUsage>;
}

export interface ServerUsage {
  walBytes?: number;
  /** CPU seconds of the server's processes, when it runs on this machine. */
  cpuSeconds?: number;
}

export function sqliteBenchStore(path: string): BenchStore {
  const count = (where: string) => {
    const db = new DatabaseSync(path, { readOnly: true });
    try {
      const row = db.prepare(`SELECT count(*) AS n FROM operations ${where}`).get() as { n: number | bigint };
      return Number(row.n);
    } finally {
      db.close();
    }
  };
  return {
    location: path,
    label: 'SQLite',
    operations: async () => count(''),
    succeeded: async () => count(`WHERE status = 'Succeeded'`),
    makeBacklogDue: async (count) => {
      const db = new DatabaseSync(path);
      try {
        db.prepare(dueStatement('operations', '?')).run(count);
      } finally {
        db.close();
      }
    },
    drop: async () => {},
    usage: async () => ({}),
  };
}

export function postgresBenchStore(url: string, schema: string): BenchStore {
  const location = new URL(url);
  location.searchParams.set('schema', schema);
  const run = async (text: string) => {
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
    await client.connect();
    try {
      return (await client.query<{ n: string; local: boolean }>(text)).rows;
    } finally {
      await client.end();
    }
  };
  const count = async (where: string) =>
    Number((await run(`SELECT count(*) AS n FROM ${schema}.operations ${where}`))[0]!.n);
  return {
    location: location.toString(),
    label: 'PostgreSQL',
    operations: () => count(''),
    succeeded: () => count(`WHERE status = 'Succeeded'`),
    makeBacklogDue: async (count) => {
      await run(dueStatement(`${schema}.operations`, String(Math.floor(count))));
    },
    drop: async () => {
      await run(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    },
    usage: async () => {
      const [row] = await run(
        `SELECT pg_current_wal_lsn() - '0/0' AS n, inet_server_addr() IS NULL OR host(inet_server_addr()) IN ('127.0.0.1', '::1') AS local`,
      );
      const cpuSeconds = row!.local ? postgresCpuSeconds() : undefined;
      return { walBytes: Number(row!.n), ...(cpuSeconds === undefined ? {} : { cpuSeconds }) };
    },
  };
}

/** A reason PostgreSQL cannot be used for the bench, or false. */
export async function postgresUnreachable(url: string): Promise<string | false> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3_000 });
  try {
    await client.connect();
    return false;
  } catch (error) {
    return (error as Error).message;
  } finally {
    await client.end().catch(() => {});
  }
}

const PARKED = Date.UTC(3000, 0, 1);

/** The UPDATE behind makeBacklogDue, the same SQL on both engines. */
const dueStatement = (table: string, count: string) =>
  `UPDATE ${table} SET next_attempt_at = CASE WHEN id IN (
     SELECT id FROM ${table} WHERE status IN ('NotStarted', 'Running') ORDER BY created_at, id LIMIT ${count}
   ) THEN 0 ELSE ${PARKED} END
   WHERE status IN ('NotStarted', 'Running')`;

/**
 * CPU seconds (user + system) spent by `postgres` processes on this machine
 * since the bench first looked, or undefined off Linux. Backends come and go
 * (a client disconnects, its backend exits and its time leaves /proc), so the
 * total counts each process seen so far at its last reading: it only grows,
 * and the difference of two readings is what the server spent between them,
 * but for the last moments of a backend that exited in between.
 */
function postgresCpuSeconds(): number | undefined {
  let entries: string[];
  try {
    entries = readdirSync('/proc').filter((entry) => /^\d+$/.test(entry));
  } catch {
    return undefined;
  }
  for (const pid of entries) {
    const stat = processStat(pid);
    if (stat?.name === 'postgres') postgresSeen.set(`${pid}@${stat.startTicks}`, stat.cpuSeconds);
  }
  let seconds = 0;
  for (const spent of postgresSeen.values()) seconds += spent;
  return seconds;
}
/** Each postgres process seen (pid and start time: pids are reused), with its CPU seconds when last read. */
const postgresSeen = new Map<string, number>();

/**
 * CPU seconds (user + system, all threads) a process has spent so far, from
 * /proc; undefined off Linux or once it has ended. Read before and after a
 * run: the difference is what the server spent on it.
 */
export function processCpuSeconds(pid: number): number | undefined {
  return processStat(String(pid))?.cpuSeconds;
}

function processStat(pid: string): { name: string; cpuSeconds: number; startTicks: string } | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined; // not Linux, or the process ended meanwhile
  }
  const close = stat.lastIndexOf(')');
  const fields = stat.slice(close + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime: fields 14 and 15 of stat(5)
  return {
    name: stat.slice(stat.indexOf('(') + 1, close),
    cpuSeconds: ticks / 100, // USER_HZ, 100 on Linux
    startTicks: fields[19]!, // starttime: field 22 of stat(5)
  };
}
