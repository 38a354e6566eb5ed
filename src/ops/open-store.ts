/**
 * Picks the store adapter from `--store`: a postgres:// or postgresql:// URL
 * (the PostgreSQL adapter, which loads the optional `pg` driver only then), or
 * a file path (SQLite). Setup problems become ConfigErrors naming the option.
 */
import type { Clock } from '../clock.ts';
import { ConfigError } from '../config/config.ts';
import { storeEngineOf } from '../store/capabilities.ts';
import type { OperationStore } from '../store/port.ts';
import { PostgresStore } from '../store/postgres/postgres-store.ts';
import type { StoreKeyring } from '../store/sealed-values.ts';
import { ThreadedSqliteStore } from '../store/sqlite/threaded-store.ts';

export interface OpenStoreOptions {
  /** Bounds an SQLite file (maxStoreBytes). */
  maxSizeBytes?: number | undefined;
  /** storeEncryptionKey: encrypt request and response content at rest. */
  encryptionKeys?: StoreKeyring | undefined;
  /** Where the store tells what fails outside a verb's answer (an undecryptable row it skipped, a close that failed). */
  onError?: (error: unknown) => void;
}

export async function openStore(
  location: string,
  clock: Clock,
  { maxSizeBytes, encryptionKeys, onError }: OpenStoreOptions = {},
): Promise<OperationStore> {
  const common = {
    clock,
    ...(encryptionKeys ? { encryptionKeys } : {}),
    ...(onError ? { onError } : {}),
  };
  if (storeEngineOf(location) === 'sqlite') {
    try {
      // On its own thread: its commits and reads never stall the event loop (threaded-store.ts).
      return await ThreadedSqliteStore.open({
        path: location,
        ...common,
        exclusive: true, // one gateway per file
        ...(maxSizeBytes === undefined ? {} : { maxSizeBytes }),
      });
    } catch (error) {
      const { code, message } = error as { code?: string; message: string };
      if (code === 'ENOENT' || code === 'EACCES' || code === 'EPERM' || code === 'ERR_SQLITE_ERROR') {
        throw new ConfigError(
          `cannot open the SQLite store ${location} (--store, SPILLWAY_STORE): ${message}. Check that its directory exists and that this user may write there.`,
        );
      }
      throw error;
    }
  }
  if (maxSizeBytes !== undefined) {
    throw new ConfigError(
      'maxStoreBytes bounds an SQLite file and cannot bound a PostgreSQL database: remove it, and bound the database on the server instead.',
    );
  }
  try {
    return await PostgresStore.open({ url: location, ...common });
  } catch (error) {
    if ((error as Error).name === 'PostgresSetupError') throw new ConfigError((error as Error).message);
    throw error;
  }
}

/** The store's location for logs and messages: a URL's password is masked. */
export function describeStore(location: string): string {
  if (storeEngineOf(location) === 'sqlite') return location;
  try {
    const url = new URL(location);
    if (url.password) url.password = '***';
    return url.toString();
  } catch {
    return 'postgres://(unparsable URL)';
  }
}
