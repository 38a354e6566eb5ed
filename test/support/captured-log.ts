/**
 * A logger whose lines a test can read: the real pino logger (so levels and
 * serializers are the gateway's own), writing JSON lines into an array.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { Logger } from '../../src/ops/logger.ts';

export interface LogLine {
  level: number;
  msg?: string;
  [field: string]: unknown;
}

/** pino's numeric levels, by name. */
export const LEVEL = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 } as const;

export function capturedLog(level = 'debug'): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n')) if (line) lines.push(JSON.parse(line) as LogLine);
      done();
    },
  });
  return { logger: pino({ level }, sink), lines };
}
