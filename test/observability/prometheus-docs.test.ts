/**
 * The shipped Prometheus rules and Grafana dashboard stay true to the metrics:
 * the alert rules pass `promtool check rules` and their unit tests
 * (`promtool test rules`, alerts.test.yml beside this file); the dashboard is
 * valid JSON whose queries name only metric families Spillway exposes.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { buildConfig } from '../../src/config/config.ts';
import { LifecycleEvents } from '../../src/events/lifecycle.ts';
import { Metrics } from '../../src/ops/metrics.ts';
import { HealthMonitor } from '../../src/policy/health/health-monitor.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { ManualClock } from '../support/manual-clock.ts';
import { promtool } from '../support/prometheus.ts';

const path = (relative: string) => fileURLToPath(new URL(relative, import.meta.url));

describe('docs/prometheus/alerts.yml', () => {
  it('passes promtool check rules', () => {
    assert.match(
      promtool(['check', 'rules', path('../../docs/prometheus/alerts.yml')]),
      /SUCCESS: 4 rules found/,
    );
  });

  it('fires each alert when it should and not before (promtool test rules)', () => {
    assert.match(promtool(['test', 'rules', path('alerts.test.yml')]), /SUCCESS/);
  });
});

describe('docs/grafana/spillway-dashboard.json', () => {
  it('parses, and every query names only metric families Spillway exposes', async () => {
    const dashboard = JSON.parse(
      readFileSync(path('../../docs/grafana/spillway-dashboard.json'), 'utf8'),
    ) as {
      panels: Array<{ title: string; targets: Array<{ expr: string }> }>;
      templating: { list: Array<{ query?: unknown }> };
    };
    const clock = new ManualClock();
    const store = new SqliteStore({ path: ':memory:', clock });
    const config = buildConfig({ upstream: 'http://127.0.0.1:9' });
    const health = new HealthMonitor({ routes: config.routes, clock, store });
    const metrics = new Metrics({ events: new LifecycleEvents(), store, clock, health, routes: ['default'] });
    try {
      const exposed = new Set(
        [...(await metrics.render()).matchAll(/^# TYPE (\S+) (\S+)$/gm)].flatMap(([, name, type]) =>
          type === 'histogram' ? [`${name}_bucket`, `${name}_count`, `${name}_sum`] : [name!],
        ),
      );
      const queries = [
        ...dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr)),
        ...dashboard.templating.list.map((v) => v.query).filter((q): q is string => typeof q === 'string'),
      ];
      const named = new Set(
        queries.flatMap((q) => [...q.matchAll(/\b(?:spillway|process|nodejs)_[a-z_]+\b/g)].map(([m]) => m)),
      );
      assert.ok(named.size >= 10, `the dashboard queries ${[...named]}`);
      for (const name of named) assert.ok(exposed.has(name), `${name} is exposed by /metrics`);
      for (const family of [
        'spillway_backlog_operations',
        'spillway_dead_lettered_operations',
        'spillway_route_health_state',
      ])
        assert.ok(named.has(family), `the dashboard shows ${family}`);
    } finally {
      metrics.close();
      await store.close();
    }
  });
});
