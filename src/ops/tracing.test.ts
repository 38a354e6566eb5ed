import assert from 'node:assert/strict';
import { it } from 'node:test';
import { startTracing, tracingRequested } from './tracing.ts';

it('traces are exported only when the OTEL_* variables ask, and never when the SDK is disabled', () => {
  assert.equal(tracingRequested({}), false);
  assert.equal(tracingRequested({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }), true);
  assert.equal(tracingRequested({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/v1/traces' }), true);
  assert.equal(tracingRequested({ OTEL_TRACES_EXPORTER: 'otlp' }), true);
  assert.equal(
    tracingRequested({ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c' }),
    false,
  );
  assert.equal(
    tracingRequested({ OTEL_SDK_DISABLED: 'true', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }),
    false,
  );
});

it('without the variables nothing is loaded or started', async () => {
  assert.equal(await startTracing({}), undefined);
});
