/**
 * What differs between the two store engines, in one table (pg-boss's
 * BACKEND_PROFILES), so the rest of the code asks "may several processes
 * share this store?" instead of testing for an engine by name.
 *
 * This module knows no driver and no SQL: it is read by the composition code
 * (which commands may run on which store) and by the adapters themselves.
 */

export type StoreEngine = 'sqlite' | 'postgres';

export interface StoreCapabilities {
  /** Several processes (gateways, `spillway worker`) may share one store. */
  sharedByProcesses: boolean;
  /** How concurrent lease queries are kept from claiming one operation twice. */
  leaseLocking: 'single-writer' | 'skip-locked';
  /** How captures that arrive together share a commit. */
  groupCommit: 'one-transaction-per-tick' | 'one-insert-per-batch';
  /**
   * Whose clock writes `next_attempt_at` and lease times. Node's (the injected
   * Clock) on both: the times are computed where the decisions are made, and
   * tests drive them with a manual clock. Several processes on one database
   * must therefore keep their clocks in step (NTP); leases outlive attempts by
   * LEASE_MARGIN_MS, far more than NTP's skew.
   */
  clock: 'node';
  /** Oldest server version the adapter accepts (`server_version_num`), or null when embedded. */
  minServerVersion: number | null;
  /**
   * `watch` also hears of other processes' commits (PostgreSQL: LISTEN/NOTIFY).
   * SQLite has one process per file: its watchers hear of that process's writes.
   */
  crossProcessEvents: boolean;
}

export const storeCapabilities: Record<StoreEngine, StoreCapabilities> = {
  sqlite: {
    sharedByProcesses: false,
    leaseLocking: 'single-writer',
    groupCommit: 'one-transaction-per-tick',
    clock: 'node',
    minServerVersion: null,
    crossProcessEvents: false,
  },
  postgres: {
    sharedByProcesses: true,
    leaseLocking: 'skip-locked',
    groupCommit: 'one-insert-per-batch',
    clock: 'node',
    // 13: the oldest release still supported upstream when this adapter was written.
    minServerVersion: 130000,
    crossProcessEvents: true,
  },
};

/** The engine a `--store` value selects: a postgres:// or postgresql:// URL, else an SQLite file path. */
export function storeEngineOf(location: string): StoreEngine {
  return /^postgres(ql)?:\/\//i.test(location) ? 'postgres' : 'sqlite';
}
