/**
 * docs/configuration.md against the configuration's schema (src/config/schema.ts):
 * every option the schema has is in one of the doc's tables with the
 * schema's default, every value of an enumerated option and the range of a
 * bounded one are what the schema says, and every option a table names
 * exists. A new option without docs fails here.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { buildConfig, routeDefaults } from '../src/config/config.ts';
import { configSchema } from '../src/config/schema.ts';
import { HELP } from '../src/ops/cli.ts';

const doc = readFileSync(new URL('../docs/configuration.md', import.meta.url), 'utf8');

interface Schema {
  type?: string;
  properties?: Record<string, Schema>;
  default?: unknown;
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
}

/** The schema's options by dotted name: groups are walked into, lists and values are leaves. */
function options(schema: Schema, prefix: string, into = new Map<string, Schema>()): Map<string, Schema> {
  for (const [key, inner] of Object.entries(schema.properties ?? {})) {
    if (inner.type === 'object' && inner.properties) options(inner, `${prefix}${key}.`, into);
    else into.set(prefix + key, inner);
  }
  return into;
}

const code = options(configSchema as Schema, '');

/** Options named in the doc's tables, each with the default cells given for it and its rows. */
function documented(): Map<string, { defaults: string[]; rows: string[] }> {
  const found = new Map<string, { defaults: string[]; rows: string[] }>();
  let prefix = '';
  let columns: { name: number; fallback: number } | undefined;
  for (const line of doc.split('\n')) {
    // Route options and the health policy are documented by their name inside a route.
    if (line.startsWith('#')) {
      prefix = /^### Route options/.test(line)
        ? 'routeDefaults.'
        : /^### Health policy/.test(line)
          ? 'routeDefaults.health.'
          : '';
      columns = undefined;
    }
    if (!line.startsWith('|')) {
      columns = undefined;
      continue;
    }
    const cells = line
      .slice(1, -1)
      .split(/(?<!\\)\|/)
      .map((c) => c.trim());
    if (columns === undefined) {
      const name = cells.findIndex((c) => /^(config file key|key|option)$/.test(c));
      const fallback = cells.indexOf('default');
      if (name >= 0 && fallback >= 0) columns = { name, fallback };
      continue;
    }
    if (/^-+$/.test(cells[0] ?? '')) continue;
    const names = [...(cells[columns.name] ?? '').matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
    const values = [...(cells[columns.fallback] ?? '').matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
    let last = '';
    names.forEach((name, i) => {
      // `.min` after `adaptiveConcurrency.enabled` is `adaptiveConcurrency.min`.
      const full = name.startsWith('.') ? last.replace(/\.[^.]+$/, '') + name : name;
      last = full;
      const cell = names.length === values.length ? [values[i]!] : [cells[columns!.fallback] ?? ''];
      const key = prefix + full;
      const before = found.get(key) ?? { defaults: [], rows: [] };
      found.set(key, { defaults: [...before.defaults, ...cell], rows: [...before.rows, line] });
    });
  }
  return found;
}

/** How the doc writes a default: JSON, without quotes around a string in the command-line table. */
function spellings(value: unknown): string[] {
  const json = JSON.stringify(value).replace(/,/g, ', ');
  return typeof value === 'string' ? [json, value] : [json];
}

describe('docs/configuration.md', () => {
  const docs = documented();

  it('documents every option of the schema with its default', () => {
    for (const [name, schema] of code) {
      const cells = docs.get(name)?.defaults;
      assert.ok(cells, `${name} is not in a table of docs/configuration.md`);
      const value = schema.default;
      if (value === undefined) continue; // "unbounded", "http://<host>:<port>": said in words
      const said = cells.some((cell) =>
        spellings(value).some((s) => cell === s || cell.includes(`\`${s}\``)),
      );
      // A long list is given in words below its table ("see below"): each entry must be there.
      const listed =
        Array.isArray(value) &&
        value.length > 0 &&
        cells.some((cell) => /see below/.test(cell)) &&
        value.every((entry) => doc.includes(`\`${entry}\``));
      assert.ok(
        said || listed,
        `${name}: the schema's default is ${JSON.stringify(value)}, the doc says ${cells.join(' / ')}`,
      );
    }
  });

  it("gives an enumerated option's values and a bounded option's range as the schema does", () => {
    for (const [name, schema] of code) {
      const row = docs.get(name)?.rows.join(' ') ?? '';
      for (const value of schema.enum ?? []) {
        assert.ok(
          row.includes(JSON.stringify(value)),
          `${name}: the doc does not name the value ${JSON.stringify(value)}`,
        );
      }
      // A range the row states ("100–3600000 ms") is the schema's minimum and maximum.
      if (schema.minimum === undefined || schema.maximum === undefined) continue;
      for (const [stated, low, high] of row.matchAll(/(\d+)–(\d+)/g)) {
        assert.deepEqual(
          [Number(low), Number(high)],
          [schema.minimum, schema.maximum],
          `${name}: the doc says ${stated}, the schema ${schema.minimum}–${schema.maximum}`,
        );
      }
    }
  });

  it('names no option that the schema does not have', () => {
    const extra = new Set(['webhooks.*']);
    for (const name of docs.keys()) {
      if (extra.has(name)) continue;
      const known = code.has(name) || [...code.keys()].some((key) => key.startsWith(`${name}.`));
      assert.ok(known, `docs/configuration.md names "${name}", which the schema does not have`);
    }
  });

  it('describes the merge of routeDefaults into a route as buildConfig does it', () => {
    const config = buildConfig({
      upstream: 'http://127.0.0.1:9',
      routeDefaults: { backoff: { multiplier: 3 }, health: { trip: { errorRate: 0.3 }, minCalls: 7 } },
      routes: [
        { name: 'pay', match: 'POST /pay', backoff: { initialMs: 50 }, health: { trip: { slowRate: 0.6 } } },
      ],
    });
    const pay = config.routes[0]!;
    // "the route backs off from 50 ms, tripling, up to 5 min"
    assert.match(
      doc,
      /With `routeDefaults.backoff`\s+`\{"multiplier": 3\}` and a route's `\{"initialMs": 50\}`/,
    );
    assert.deepEqual(pay.backoff, { initialMs: 50, multiplier: 3, maxMs: routeDefaults.backoff.maxMs });
    // "a route that sets its own `trip` replaces `routeDefaults.health.trip` whole"
    assert.match(doc, /a route\s+that sets its own `trip` replaces `routeDefaults.health.trip` whole/);
    assert.equal(pay.health.trip.errorRate, routeDefaults.health.trip.errorRate);
    assert.equal(pay.health.trip.slowRate, 0.6);
    assert.equal(pay.health.minCalls, 7);
  });

  it('lists the commands exactly as `spillway help` does', () => {
    const usage = HELP.split('Usage:\n')[1]!.split('\n\n')[0]!.replace(/^ {2}/gm, '');
    const block = /## Command line\n\n```\n([\s\S]*?)\n```/.exec(doc)?.[1];
    assert.equal(block, usage, 'docs/configuration.md "Command line" is not what `spillway help` prints');
  });
});
