/**
 * The published JSON Schema (config.schema.json) against the code: it is
 * what scripts/config-schema.ts writes from src/config/schema.ts, a standard
 * validator (ajv, as editors' language servers do) accepts every example
 * config of the docs, the examples and the demo, and it refuses what
 * buildConfig refuses where a schema can say it.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { Ajv } from 'ajv';
import { config as expressConfig } from '../examples/express.ts';
import { config as fastifyConfig } from '../examples/fastify.ts';
import { config as honoConfig } from '../examples/hono.ts';
import { configSchemaText, schemaFile } from '../scripts/config-schema.ts';
import { buildConfig, ConfigError } from '../src/config/config.ts';
import { demoConfig } from '../src/demo/demo.ts';

const published: unknown = JSON.parse(readFileSync(schemaFile, 'utf8'));
// `errorMessage` is the schema's one non-standard keyword (VS Code and ajv-errors read it).
const ajv = new Ajv({ strict: true, allErrors: true });
ajv.addKeyword('errorMessage');
const validate = ajv.compile(published as object);
const upstream = 'http://127.0.0.1:9';

/** The config files the docs show: JSON blocks holding any option only a config file has. */
function docExamples(): Array<[string, Record<string, unknown>]> {
  const found: Array<[string, Record<string, unknown>]> = [];
  for (const file of [
    'README.md',
    'docs/configuration.md',
    'docs/policy.md',
    'docs/scaling.md',
    'docs/operations.md',
    'docs/embedding.md',
  ]) {
    const text = readFileSync(new URL(`../${file}`, import.meta.url), 'utf8');
    for (const [, block] of text.matchAll(/```json\n([\s\S]*?)```/g)) {
      let value: unknown;
      try {
        value = JSON.parse(block!);
      } catch {
        continue; // log lines and the like
      }
      const keys = Object.keys(value as object);
      if (
        keys.some((k) => ['routes', 'routeDefaults', 'webhooks', 'publicUrl', 'store', 'replay'].includes(k))
      )
        found.push([file, value as Record<string, unknown>]);
    }
  }
  return found;
}

describe('config.schema.json', () => {
  it('is what scripts/config-schema.ts generates from src/config/schema.ts (npm run config-schema)', () => {
    assert.ok(
      readFileSync(schemaFile, 'utf8') === configSchemaText(),
      'config.schema.json is not what src/config/schema.ts says: run `npm run config-schema` and commit it',
    );
  });

  it('accepts the example configs of the docs, examples/ and the demo, as buildConfig does', () => {
    const examples: Array<[string, Record<string, unknown>]> = [
      ...docExamples(),
      ['examples/hono.ts', honoConfig],
      ['examples/express.ts', expressConfig],
      ['examples/fastify.ts', fastifyConfig],
      [
        'src/demo/demo.ts',
        demoConfig({
          upstream,
          port: 8080,
          adminPort: 8081,
          store: 'spillway-demo.db',
          secret: 'whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD',
          receiver: 'http://127.0.0.1:8092',
        }),
      ],
    ];
    assert.ok(examples.length >= 8, `found ${examples.length} examples`);
    for (const [where, example] of examples) {
      assert.ok(
        validate(example),
        `${where}: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(example)}`,
      );
      // A doc's fragment may lean on the main example's routes and on secrets from the environment.
      const context = {
        upstream,
        routes: [{ name: 'create-payment', match: 'POST /payments' }],
        webhooks: { secrets: ['whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD'] },
      };
      const { webhooks } = example as { webhooks?: object };
      buildConfig({ ...context, ...example, webhooks: { ...context.webhooks, ...webhooks } });
    }
  });

  it('accepts "$schema" pointing at it', () => {
    const file = { $schema: './node_modules/spillway/config.schema.json', upstream };
    assert.ok(validate(file));
    assert.equal(buildConfig(file).upstream, upstream);
  });

  it('refuses what buildConfig refuses, where a schema can say it', () => {
    const route = { name: 'pay', match: 'POST /pay' };
    const refused: Array<Record<string, unknown>> = [
      { nope: 1 },
      { sse: { retryMS: 1_000 } },
      { websocket: { pingMS: 1_000 } },
      { replay: { concurency: 2 } },
      { port: 70_000 },
      { maxStoreBytes: 100 },
      { forwardedHeaders: 'x-real-ip' },
      { corsOrigins: ['https://app.example/path'] },
      { tenantHeader: 'not a header' },
      { adminToken: 'short' },
      { routes: [{ ...route, budgetMs: -1 }] },
      { routes: [{ ...route, match: 'payments' }] },
      { routes: [{ ...route, failoverStatuses: [200] }] },
      { routes: [{ match: 'GET /x' }] },
      { routeDefaults: { health: { probeShare: 0 } } },
      { routeDefaults: { health: { trip: { errorRate: 2 } } } },
      { routeDefaults: { name: 'x' } },
      { webhooks: { jitter: 1 } },
      { webhooks: { subscriptions: [{ name: 'a.b', url: 'https://h.example' }] } },
      { webhooks: { subscriptions: [{ name: 'a', url: 'https://h.example', events: ['running'] }] } },
    ];
    for (const config of refused) {
      assert.throws(() => buildConfig({ upstream, ...config }), ConfigError, JSON.stringify(config));
      assert.equal(validate({ upstream, ...config }), false, `the schema accepts ${JSON.stringify(config)}`);
    }
  });
});
