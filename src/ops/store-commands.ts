/**
 * `spillway store rekey`: opens the configured store with the configured keys
 * (--store / SPILLWAY_STORE, SPILLWAY_STORE_ENCRYPTION_KEY, or the config
 * file's store and storeEncryptionKey) and seals every stored value under the
 * newest key (src/store/rekey.ts). Unlike the admin commands it opens the
 * store itself: on SQLite the gateway must be stopped (the store lock refuses
 * otherwise); on PostgreSQL gateways keep running.
 */
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { systemClock } from '../clock.ts';
import { ConfigError, defaults, readConfigFile } from '../config/config.ts';
import { storeEngineOf } from '../store/capabilities.ts';
import type { RekeySummary } from '../store/port.ts';
import { StoreKeyring } from '../store/sealed-values.ts';
import { type CommandResult, usage } from './admin-commands.ts';
import { describeStore, openStore } from './open-store.ts';
import { startupFailure } from './startup-failure.ts';

export async function storeCommand(
  args: string[],
  env: NodeJS.ProcessEnv,
  progress: (line: string) => void = (line) => console.error(line),
): Promise<CommandResult> {
  const [sub, ...rest] = args;
  if (sub !== 'rekey')
    return usage(
      `Unknown store command "${sub ?? ''}": spillway store rekey [--store PATH|URL] [--config FILE] [--batch-size N].`,
    );
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: rest,
      options: { store: { type: 'string' }, config: { type: 'string' }, 'batch-size': { type: 'string' } },
    }));
  } catch (error) {
    return usage((error as Error).message);
  }
  const batchSize = Number(values['batch-size'] ?? 500);
  if (!Number.isInteger(batchSize) || batchSize < 1)
    return usage('--batch-size must be a whole number above 0.');
  try {
    const configFile = (values.config as string | undefined) ?? env.SPILLWAY_CONFIG;
    const file: Record<string, unknown> = configFile ? readConfigFile(configFile) : {};
    const location = String(values.store || env.SPILLWAY_STORE || file.store || defaults.store);
    const keys =
      env.SPILLWAY_STORE_ENCRYPTION_KEY || (file.storeEncryptionKey as string | string[] | undefined);
    const encryptionKeys = keys && keys.length > 0 ? parseKeys(keys) : undefined;
    if (storeEngineOf(location) === 'sqlite' && !existsSync(location)) {
      // Opening would create an empty store there: a mistyped path must not look like success.
      throw new ConfigError(`there is no SQLite store at ${location}: check --store (SPILLWAY_STORE).`);
    }
    const store = await openStore(location, systemClock, { ...(encryptionKeys ? { encryptionKeys } : {}) });
    let summary: RekeySummary;
    try {
      summary = await store.rekey({
        batchSize,
        onProgress: ({ part, scanned, resealed }) =>
          progress(`${part}: ${scanned} scanned, ${resealed} re-sealed`),
      });
    } finally {
      await store.close();
    }
    return { code: 0, out: summaryText(describeStore(location), summary) };
  } catch (error) {
    // The same one line as a refused start: the store lock's message, a missing key, a bad option.
    return { code: 1, err: `spillway: ${startupFailure(error, undefined)}` };
  }
}

function parseKeys(keys: string | string[]): StoreKeyring {
  try {
    return StoreKeyring.parse(keys);
  } catch (error) {
    throw new ConfigError(`storeEncryptionKey (SPILLWAY_STORE_ENCRYPTION_KEY): ${(error as Error).message}`);
  }
}

function summaryText(store: string, { keyId, resealed, forgotten }: RekeySummary): string {
  const width = Math.max(...Object.keys(resealed).map((part) => part.length));
  return [
    `${store}: every stored value is sealed under the newest key ${keyId}.`,
    'Rows re-sealed:',
    ...Object.entries(resealed).map(([part, rows]) => `  ${part.padEnd(width)}  ${rows}`),
    forgotten.length > 0
      ? `Keys forgotten: ${forgotten.join(', ')} (they can leave storeEncryptionKey now).`
      : 'Keys forgotten: none.',
  ].join('\n');
}
