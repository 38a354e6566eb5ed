/** An in-memory OpenTelemetry SDK for tests: every span Spillway ends, read back by name. */
import { trace } from '@opentelemetry/api';
import {
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
  TracerProvider,
} from '@opentelemetry/sdk-trace';

export interface RecordedSpans {
  exporter: InMemorySpanExporter;
  spans(): ReadableSpan[];
  /** The first ended span whose name is `name`; throws when none is. */
  named(name: string): ReadableSpan;
  /** Resolves once a span named `name` (matching `match`) has ended; rejects after `ms`. */
  ended(name: string, match?: (span: ReadableSpan) => boolean, ms?: number): Promise<ReadableSpan>;
}

/** Registers the global tracer provider for this test process (each test file runs in its own). */
export function recordSpans(): RecordedSpans {
  const exporter = new InMemorySpanExporter();
  const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
  trace.setGlobalTracerProvider(provider);
  const spans = () => exporter.getFinishedSpans();
  return {
    exporter,
    spans,
    named(name) {
      const span = spans().find((s) => s.name === name);
      if (!span) throw new Error(`no span named ${name}: ${spans().map((s) => s.name)}`);
      return span;
    },
    async ended(name, match = () => true, ms = 10_000) {
      const until = Date.now() + ms;
      for (;;) {
        const span = spans().find((s) => s.name === name && match(s));
        if (span) return span;
        if (Date.now() > until) throw new Error(`no span ${name} ended within ${ms} ms`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
  };
}

/** The span id of a traceparent header. */
export const parentIdOf = (traceparent: string | string[] | undefined): string | undefined =>
  typeof traceparent === 'string' ? traceparent.split('-')[2] : undefined;
