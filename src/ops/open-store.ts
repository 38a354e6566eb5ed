/** Picks the store adapter from `--store`: a file path (SQLite) or a postgres:// URL. */
import type { Clock } from '../clock.ts';
import { ConfigError } from '../config/config.ts';
import type { OperationStore } from '../store/port.ts';
import { SqliteStore } from '../store/sqlite/sqlite-store.ts';

export function openStore(location: string, clock: Clock, maxSizeBytes?: number): OperationStore {
  if (/^postgres(ql)?:\/\//.test(location)) {
    throw new ConfigError(
      'store: the PostgreSQL adapter is not part of this release yet; use an SQLite file path (the default, spillway.db).',
    );
  }
  return new SqliteStore({ path: location, clock, ...(maxSizeBytes === undefined ? {} : { maxSizeBytes }) });
}
