/**
 * What the two SQL dialects read back differently from the same columns, in
 * one table (like src/store/capabilities.ts for what they can do): the shared
 * row mapping (operation-row.ts, webhook-rows.ts, operator-rows.ts) asks it,
 * instead of an `if (sqlite)` in each mapper.
 */
export interface DialectValues {
  /** A boolean column: PostgreSQL's `true`, SQLite's `1`. */
  flag(value: unknown): boolean;
  /** A JSON column: PostgreSQL's parsed value, SQLite's text. */
  json<T>(value: unknown): T;
}

export const sqliteValues: DialectValues = {
  flag: (value) => Number(value) === 1,
  json: <T>(value: unknown) => JSON.parse(String(value)) as T,
};

export const postgresValues: DialectValues = {
  flag: (value) => value === true,
  json: <T>(value: unknown) => value as T,
};
