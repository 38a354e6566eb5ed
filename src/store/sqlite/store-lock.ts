/**
 * One writer per SQLite store: an exclusive lock on `<store>.lock`, beside it.
 *
 * The lock is SQLite's own write lock on that small file (a POSIX advisory
 * lock), held by a transaction left open for as long as the store is: the OS
 * drops it when its process dies, kill -9 included, so a stale lock file never
 * keeps a gateway from starting and no pid needs checking for liveness. The
 * holder writes who it is (pid, host, start time) into the file before taking
 * the lock for good, so the process refused can name it. SQLite also keeps
 * two connections of one process apart, so it holds within a process too.
 *
 * The file stays after its holder closes: deleting a lock file is what makes
 * lock files racy (another process may just have opened it).
 */
import { closeSync, openSync } from 'node:fs';
import { hostname } from 'node:os';
import { DatabaseSync } from 'node:sqlite';

export class StoreLockedError extends Error {
  override name = 'StoreLockedError';
}

/** SQLITE_BUSY: another connection holds the write lock. */
const BUSY = 5;

export class StoreLock {
  readonly #db: DatabaseSync;

  private constructor(db: DatabaseSync) {
    this.#db = db;
  }

  /** Takes the lock on `<storePath>.lock`, or throws StoreLockedError naming its holder. */
  static acquire(storePath: string): StoreLock {
    const path = `${storePath}.lock`;
    closeSync(openSync(path, 'a', 0o600)); // created private, like the store
    const db = new DatabaseSync(path);
    try {
      // Long enough to wait out a holder between its two steps below, short enough to refuse at once.
      db.exec('PRAGMA busy_timeout = 200');
      db.exec('BEGIN IMMEDIATE');
      db.exec('CREATE TABLE IF NOT EXISTS holder (pid INTEGER, host TEXT, since TEXT)');
      db.exec('DELETE FROM holder');
      db.prepare('INSERT INTO holder VALUES (?, ?, ?)').run(
        process.pid,
        hostname(),
        new Date().toISOString(),
      );
      db.exec('COMMIT');
      // Held from here on: a transaction that writes nothing keeps its lock and leaves no journal behind.
      db.exec('BEGIN IMMEDIATE');
      return new StoreLock(db);
    } catch (error) {
      if ((error as { errcode?: number }).errcode !== BUSY) {
        db.close();
        throw error;
      }
      const holder = describeHolder(db);
      db.close();
      throw new StoreLockedError(
        `the store ${storePath} is in use by another Spillway (${holder}); stop that process first, or give this one its own --store (SPILLWAY_STORE). Several gateways share a store only on PostgreSQL (docs/scaling.md).`,
      );
    }
  }

  /** Lets the next process in. Safe to call twice. */
  release(): void {
    if (this.#db.isOpen) this.#db.close(); // closing ends the open transaction and its lock
  }
}

function describeHolder(db: DatabaseSync): string {
  if (db.isTransaction) db.exec('ROLLBACK');
  // The very first holder may not have committed its name yet.
  const named = db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'holder'").get() !== undefined;
  const row = (named ? db.prepare('SELECT pid, host, since FROM holder').get() : undefined) as
    | { pid: number; host: string; since: string }
    | undefined;
  return row ? `pid ${row.pid} on ${row.host}, since ${row.since}` : 'a process that is starting';
}
