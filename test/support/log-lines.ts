/** A pino logger whose JSON lines a test can read back. */
import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../../src/ops/logger.ts';

// biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON log lines
export type LogLine = Record<string, any>;

export function capturedLogger(level = 'debug'): { logger: Logger; lines: LogLine[]; raw: string[] } {
  const lines: LogLine[] = [];
  const raw: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      for (const text of String(chunk).split('\n').filter(Boolean)) {
        raw.push(text);
        lines.push(JSON.parse(text) as LogLine);
      }
      done();
    },
  });
  return { logger: createLogger(level, stream), lines, raw };
}
