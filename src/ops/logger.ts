import { type DestinationStream, pino } from 'pino';

export type Logger = pino.Logger;

/**
 * JSON lines (stdout unless `destination` is given), each with an ISO-8601
 * `time` and the level's name (`"level":"info"`), so any log shipper reads
 * them without pino's numeric levels. Level from SPILLWAY_LOG_LEVEL (default
 * info). The lines come from the lifecycle events (src/ops/log-subscriber.ts),
 * which carry no bodies and no header values; the redact list is a second
 * guard for anything that ever logs a request or its headers.
 */
export function createLogger(
  level = process.env.SPILLWAY_LOG_LEVEL ?? 'info',
  destination?: DestinationStream,
): Logger {
  const options: pino.LoggerOptions = {
    level,
    base: { service: 'spillway' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    redact: {
      paths: [
        'headers.authorization',
        'headers.cookie',
        'headers["proxy-authorization"]',
        '*.headers.authorization',
        '*.headers.cookie',
        '*.headers["proxy-authorization"]',
        'body',
        '*.body',
      ],
      censor: '[redacted]',
    },
  };
  return destination ? pino(options, destination) : pino(options);
}
