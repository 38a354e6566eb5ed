/**
 * Numbered SQL migration files (`NNN_name.sql`) are the source of truth for
 * each adapter's schema. This module only finds and orders them; each adapter
 * applies them under its own lock.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/**
 * `folder` is the adapter's `new URL('./migrations', import.meta.url)`, in the
 * sources or in the built package alike. A URL's `pathname` would keep a space
 * in the install path as `%20`; fileURLToPath decodes it.
 */
export function readMigrations(folder: URL): Migration[] {
  const dir = fileURLToPath(folder);
  return readdirSync(dir)
    .filter((file) => /^\d{3}_[\w-]+\.sql$/.test(file))
    .sort()
    .map((file) => ({
      version: Number(file.slice(0, 3)),
      name: file.slice(4, -4),
      sql: readFileSync(join(dir, file), 'utf8'),
    }));
}
