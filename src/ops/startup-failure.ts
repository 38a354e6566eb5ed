/**
 * What an operator reads when `serve` or `worker` cannot start: one line that
 * says what failed and what to do, never a stack trace. Errors Spillway
 * raises on purpose (ConfigError, StoreUnavailableError, StoreLockedError,
 * StoreKeyError, AdminExposedError) already say both; system errors from listening are put
 * in those words here.
 */
import { ConfigError, type GatewayConfig } from '../config/config.ts';
import { StoreUnavailableError } from '../errors.ts';
import { StoreKeyError } from '../store/sealed-values.ts';
import { StoreLockedError } from '../store/sqlite/store-lock.ts';
import { AdminExposedError } from './admin/admin-token.ts';

/** The one line (without the `spillway: ` prefix) for a start-up failure. */
export function startupFailure(error: unknown, config: GatewayConfig | undefined): string {
  if (
    error instanceof ConfigError ||
    error instanceof StoreLockedError ||
    error instanceof StoreKeyError ||
    error instanceof AdminExposedError
  ) {
    return error.message;
  }
  if (error instanceof StoreUnavailableError) {
    return `cannot start: ${error.message.replace(/\.?$/, '')}; check that the store is reachable and writable and that --store (SPILLWAY_STORE) is right, then start again.`;
  }
  const { code, port, address } = error as { code?: string; port?: number; address?: string };
  const where = `${address ?? ''}:${port ?? ''}`;
  const flag =
    config && port === config.adminPort && address === config.adminHost
      ? '--admin-port (SPILLWAY_ADMIN_PORT)'
      : config && port === config.port
        ? '--port (SPILLWAY_PORT)'
        : '--port or --admin-port';
  switch (code) {
    case 'EADDRINUSE':
      return `cannot start: port ${port} on ${address} is already in use by another program (another Spillway?); stop it, or choose another port with ${flag}.`;
    case 'EACCES':
      return `cannot start: not allowed to listen on ${where}; choose a port above 1023 with ${flag}, or grant the process CAP_NET_BIND_SERVICE.`;
    case 'EADDRNOTAVAIL':
      return `cannot start: ${address} is not an address of this machine; set --host (SPILLWAY_HOST) or adminHost in the config file to one of its interfaces, or 0.0.0.0.`;
  }
  const message = error instanceof Error ? error.message : String(error);
  return `cannot start: ${message}. Set SPILLWAY_LOG_LEVEL=debug to see where it failed, and report it if the message does not say what to fix.`;
}
