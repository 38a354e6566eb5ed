/**
 * Traces through the queue, with the OpenTelemetry API only (a no-op until a
 * process registers an SDK: src/ops/tracing.ts does from the OTEL_* variables).
 *
 * One trace tells a request's whole story, across processes and restarts: the
 * incoming request (SERVER), its sync attempt (CLIENT), its capture (PRODUCER),
 * every replay attempt (CONSUMER) and every webhook delivery (CLIENT). The link
 * between the request and what happens later is the `traceparent` stored with
 * the operation: the capture span's, or the client's when no SDK records spans,
 * or one Spillway starts when the client sent none. Replay and webhook spans
 * are children of it (and replays also link to it, as the messaging semantic
 * conventions recommend); what they send carries their own span as parent.
 *
 * Contexts are passed explicitly rather than through the active context, so
 * the story holds without a context manager and across the store.
 */
import {
  type Attributes,
  type Context,
  createTraceState,
  isSpanContextValid,
  ROOT_CONTEXT,
  type Span,
  type SpanContext,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  type Tracer,
  trace,
} from '@opentelemetry/api';
import type { Decision } from '../policy/attempt-decision.ts';
import type { HeaderList } from '../store/port.ts';
import { attemptResultOf } from './attempt-events.ts';
import { randomText } from './random-text.ts';

export { SpanKind };

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/**
 * The tracer of the global provider, kept while that provider stays the same object. The API's
 * provider is a proxy that hands its tracers on to an SDK registered later, so an SDK registered
 * after import is still used; `trace.disable()` puts a new proxy in place, and a new tracer is taken.
 * (Asking for a tracer on every span built a new proxy tracer per span: two per request.)
 */
let tracerOf: { provider: unknown; tracer: Tracer } | undefined;
const tracer = (): Tracer => {
  const provider = trace.getTracerProvider();
  if (tracerOf?.provider !== provider) tracerOf = { provider, tracer: provider.getTracer('spillway') };
  return tracerOf.tracer;
};

/** A W3C traceparent as a remote span context; undefined when absent or malformed (version ff, zero ids). */
export function parseTraceparent(
  traceparent: string | null | undefined,
  tracestate?: string | null,
): SpanContext | undefined {
  if (!traceparent) return undefined; // most requests: no regular expression run on ''
  const match = TRACEPARENT.exec(traceparent.trim().toLowerCase());
  if (!match || match[1] === 'ff' || (match[1] === '00' && match[5] !== undefined)) return undefined;
  const context: SpanContext = {
    traceId: match[2]!,
    spanId: match[3]!,
    traceFlags: Number.parseInt(match[4]!, 16) & TraceFlags.SAMPLED,
    isRemote: true,
    ...(tracestate ? { traceState: createTraceState(tracestate) } : {}),
  };
  return isSpanContextValid(context) ? context : undefined;
}

export function formatTraceparent(context: SpanContext): string {
  return `00-${context.traceId}-${context.spanId}-0${context.traceFlags & TraceFlags.SAMPLED}`;
}

/** The context whose parent is the given traceparent (ROOT_CONTEXT without a valid one). */
export function remoteContext(traceparent: string | null | undefined, tracestate?: string | null): Context {
  const parent = parseTraceparent(traceparent, tracestate);
  return parent ? trace.setSpanContext(ROOT_CONTEXT, parent) : ROOT_CONTEXT;
}

/** A new trace's traceparent, not sampled: Spillway starts one for a capture when there is none. */
export function newTraceparent(): string {
  return `00-${randomText(16, 'hex')}-${randomText(8, 'hex')}-00`;
}

/** What to propagate for a span: its own context when valid, else none. */
export function traceHeadersOf(span: Span): { traceparent: string; tracestate: string | null } | undefined {
  const context = span.spanContext();
  if (!isSpanContextValid(context)) return undefined;
  return { traceparent: formatTraceparent(context), tracestate: context.traceState?.serialize() || null };
}

/**
 * The headers with `traceparent`/`tracestate` set to the span's (each replacing
 * any there), so the next hop's spans are its children. Unchanged when the
 * span has no valid context (no SDK, no incoming trace).
 */
export function withTraceHeaders(headers: HeaderList, span: Span): HeaderList {
  const trace = traceHeadersOf(span);
  if (!trace) return headers;
  // A span that only carries its parent's context (no SDK) changes nothing: leave the headers as sent.
  if (headers.some(([name, value]) => name === 'traceparent' && value.toLowerCase() === trace.traceparent))
    return headers;
  const kept = headers.filter(([name]) => name !== 'traceparent' && name !== 'tracestate');
  kept.push(['traceparent', trace.traceparent]);
  if (trace.tracestate) kept.push(['tracestate', trace.tracestate]);
  return kept;
}

export function startSpan(
  name: string,
  kind: SpanKind,
  parent: Context,
  attributes: Attributes,
  linkToParent = false,
): Span {
  const parentContext = trace.getSpanContext(parent);
  return tracer().startSpan(
    name,
    {
      kind,
      attributes,
      ...(linkToParent && parentContext ? { links: [{ context: parentContext }] } : {}),
    },
    parent,
  );
}

/**
 * The context with `span` as the parent of what follows. A span that records nothing and only
 * carries its parent's own span context (no SDK: the API's no-op span) would change nothing a
 * reader of the context sees, so the parent is returned as it is, without a copy of the context.
 */
export function contextWith(parent: Context, span: Span): Context {
  if (!span.isRecording()) {
    const own = span.spanContext();
    const parents = trace.getSpanContext(parent);
    if (own === parents || (parents === undefined && !isSpanContextValid(own))) return parent;
  }
  return trace.setSpan(parent, span);
}

/** Ends a span; an error marks it failed with a short, low-cardinality `error.type`. */
export function endSpan(span: Span, attributes: Attributes = {}, error?: { type: string; message?: string }) {
  span.setAttributes(attributes);
  if (error) {
    span.setAttribute('error.type', error.type);
    span.setStatus({ code: SpanStatusCode.ERROR, ...(error.message ? { message: error.message } : {}) });
  }
  span.end();
}

/** Ends an attempt's span with what was decided (null: abandoned at shutdown; `held` false: lease lost). */
export function endAttemptSpan(span: Span, decision: Decision | null, held: boolean): void {
  const outcome = attemptResultOf(decision, held);
  if (decision === null) {
    endSpan(span, { 'spillway.outcome': outcome }, { type: outcome });
    return;
  }
  const status = decision.kind === 'complete' ? decision.result.status : decision.error.upstreamStatus;
  endSpan(
    span,
    { 'spillway.outcome': outcome, ...(status === undefined ? {} : { 'http.response.status_code': status }) },
    decision.kind === 'complete' ? undefined : { type: decision.error.code, message: decision.error.message },
  );
}
