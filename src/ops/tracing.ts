/**
 * The OpenTelemetry SDK for `spillway serve` and `spillway worker`, started
 * only when the standard OTEL_* variables ask for traces: an OTLP endpoint
 * (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) or a
 * traces exporter (`OTEL_TRACES_EXPORTER`, not `none`), and not
 * `OTEL_SDK_DISABLED=true`. The SDK (`@opentelemetry/sdk-node`, an optional
 * peer dependency) is imported only then, so a Spillway without tracing
 * neither needs it installed nor loads it; the core uses only
 * `@opentelemetry/api`, a no-op without it (src/engine/spans.ts).
 *
 * Everything else is the SDK's own reading of the OTEL_* variables (protocol,
 * headers, sampler, resource). Spillway exports traces only: its metrics are
 * Prometheus (`/metrics`) and its logs pino lines, so OTEL_METRICS_EXPORTER
 * and OTEL_LOGS_EXPORTER default to `none` here.
 */
import { ConfigError } from '../config/config.ts';

export interface Tracing {
  /** Flushes the spans not yet exported and stops the SDK. */
  shutdown(): Promise<void>;
}

/** True when the variables ask for traces to be exported. */
export function tracingRequested(env: NodeJS.ProcessEnv): boolean {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return false;
  const exporters = env.OTEL_TRACES_EXPORTER?.trim();
  if (exporters) return exporters.split(',').some((name) => name.trim() !== 'none');
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim() || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim());
}

/** Starts the SDK when the variables ask for traces; undefined when they do not. */
export async function startTracing(env: NodeJS.ProcessEnv = process.env): Promise<Tracing | undefined> {
  if (!tracingRequested(env)) return undefined;
  let sdk: typeof import('@opentelemetry/sdk-node');
  try {
    sdk = await import('@opentelemetry/sdk-node');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ERR_MODULE_NOT_FOUND') throw error;
    throw new ConfigError(
      'OTEL_* variables ask for traces (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_TRACES_EXPORTER), but @opentelemetry/sdk-node is not installed: npm install @opentelemetry/sdk-node, or unset them (OTEL_SDK_DISABLED=true).',
    );
  }
  env.OTEL_SERVICE_NAME ??= 'spillway';
  env.OTEL_METRICS_EXPORTER ??= 'none';
  env.OTEL_LOGS_EXPORTER ??= 'none';
  const node = new sdk.NodeSDK({ instrumentations: [] });
  node.start();
  return { shutdown: () => node.shutdown() };
}
