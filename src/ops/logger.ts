import { pino } from 'pino';

export type Logger = pino.Logger;

/** JSON lines on stdout; level from SPILLWAY_LOG_LEVEL (default info). */
export function createLogger(level = process.env.SPILLWAY_LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, base: { service: 'spillway' } });
}
