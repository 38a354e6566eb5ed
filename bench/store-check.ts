/**
 * Counts the operations in a stopped gateway's SQLite file, opened read-only:
 * what is on disk, not what a process still holds in memory.
 */
import { DatabaseSync } from 'node:sqlite';

export function countStoredOperations(path: string): number {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    const row = db.prepare('SELECT count(*) AS n FROM operations').get() as { n: number | bigint };
    return Number(row.n);
  } finally {
    db.close();
  }
}
