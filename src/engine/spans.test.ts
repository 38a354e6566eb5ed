import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ROOT_CONTEXT, trace } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import {
  contextWith,
  endSpan,
  formatTraceparent,
  newTraceparent,
  parseTraceparent,
  remoteContext,
  SpanKind,
  startSpan,
} from './spans.ts';

describe('traceparent', () => {
  it('parses a valid one and formats it back', () => {
    const value = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const context = parseTraceparent(value, 'a=1');
    assert.ok(context);
    assert.equal(context.traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
    assert.equal(context.traceState?.get('a'), '1');
    assert.equal(formatTraceparent(context), value);
  });

  it('refuses version ff, zero ids, extra fields on version 00, and garbage', () => {
    for (const bad of [
      'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
      `00-${'0'.repeat(32)}-00f067aa0ba902b7-01`,
      `00-4bf92f3577b34da6a3ce929d0e0e4736-${'0'.repeat(16)}-01`,
      '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra',
      'not a traceparent',
      '',
    ]) {
      assert.equal(parseTraceparent(bad), undefined, bad);
    }
  });

  it('accepts a later version with extra fields (W3C forward compatibility)', () => {
    assert.ok(parseTraceparent('01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future'));
  });

  it('starts new, valid, unsampled traces', () => {
    const a = newTraceparent();
    assert.ok(parseTraceparent(a));
    assert.match(a, /-00$/);
    assert.notEqual(a, newTraceparent());
  });
});

describe('spans', () => {
  const client = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

  it('without an SDK, a span adds nothing to its context: the parent is passed on as it is', () => {
    trace.disable();
    for (const parent of [ROOT_CONTEXT, remoteContext(client)]) {
      const span = startSpan('GET r', SpanKind.SERVER, parent, {});
      assert.equal(span.isRecording(), false);
      assert.equal(contextWith(parent, span), parent);
    }
  });

  it('uses an SDK registered after spans were made without one, and the next one after trace.disable()', () => {
    trace.disable();
    endSpan(startSpan('before', SpanKind.SERVER, ROOT_CONTEXT, {}));
    const record = () => {
      const exporter = new InMemorySpanExporter();
      trace.setGlobalTracerProvider(
        new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] }),
      );
      return exporter;
    };
    const first = record();
    const parent = remoteContext(client);
    const span = startSpan('first', SpanKind.SERVER, parent, {});
    assert.equal(span.isRecording(), true);
    // A recording span is its children's parent.
    const child = startSpan('child', SpanKind.CLIENT, contextWith(parent, span), {});
    assert.equal(child.spanContext().traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
    endSpan(child);
    endSpan(span);
    trace.disable();
    const second = record();
    endSpan(startSpan('second', SpanKind.SERVER, ROOT_CONTEXT, {}));
    trace.disable();
    assert.deepEqual(
      first.getFinishedSpans().map((s) => s.name),
      ['child', 'first'],
    );
    assert.deepEqual(
      second.getFinishedSpans().map((s) => s.name),
      ['second'],
    );
    assert.equal(first.getFinishedSpans()[0]?.parentSpanContext?.spanId, span.spanContext().spanId);
  });
});
