/**
 * The npm package as a user gets it (issue 10, item 2): `npm pack` (which
 * builds dist/ through `prepack`), the tarball installed offline into a fresh
 * project whose path holds a space, and there `npx spillway --help`, `npx
 * spillway serve` in front of a real upstream (one answer sync, one 202
 * completed by replay), `import('spillway')` (createSpillway run in front of
 * a function) and `import('spillway/client')`, the config file's JSON Schema
 * at `spillway/config.schema.json` (and `"$schema"` naming it accepted), and
 * a TypeScript file importing both under `tsc --noEmit`. The same run again on
 * Node.js 22 (installed from the npm registry into a temp prefix), and an
 * older Node gets one line naming the version needed.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { TestUpstream } from '../support/test-upstream.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const PKG = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as {
  version: string;
  engines: { node: string };
};
const TSC = join(REPO, 'node_modules', 'typescript', 'bin', 'tsc');
/** Node 24 (this test's own) first on PATH, so `npm` and `npx` run on it. */
const NODE_24_BIN = dirname(process.execPath);
const OLD_NODE = '/usr/bin/node';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(
  command: string,
  args: string[],
  options: { cwd: string; path?: string; timeout?: number } = { cwd: REPO },
): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      command,
      args,
      {
        cwd: options.cwd,
        env: childEnv(options.path ?? NODE_24_BIN),
        timeout: options.timeout ?? 60_000,
        maxBuffer: 16 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        if (!error) return resolve({ code: 0, stdout, stderr });
        const code = typeof error.code === 'number' ? error.code : 1;
        const killed = error.killed
          ? `\n(stopped by ${error.signal} after ${options.timeout ?? 60_000} ms)`
          : '';
        resolve({ code, stdout, stderr: stderr + killed });
      },
    );
  });
}

/** This environment with `nodeBin` first on PATH, less the npm_* settings that `npm test` passes down. */
function childEnv(nodeBin: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PATH: [nodeBin, process.env.PATH].join(delimiter),
    ...extra,
  };
  for (const key of Object.keys(env)) if (key.startsWith('npm_')) delete env[key];
  return env;
}

function ok(result: Run, what: string): Run {
  assert.equal(result.code, 0, `${what} failed (exit ${result.code}):\n${result.stderr}\n${result.stdout}`);
  return result;
}

interface PackedFile {
  path: string;
}

let work: string;
let tarball: string;
let packedFiles: string[];
let app: string;

before(async () => {
  // A space in the path: the installed package must not mistake a file URL's %20 for a path.
  work = mkdtempSync(join(tmpdir(), 'spillway pack '));
  const packed = ok(
    await run('npm', ['pack', '--json', '--pack-destination', work], { cwd: REPO, timeout: 180_000 }),
    'npm pack',
  );
  const [info] = JSON.parse(packed.stdout) as [{ filename: string; files: PackedFile[] }];
  tarball = join(work, info.filename);
  packedFiles = info.files.map((f) => f.path);
  app = await installInFreshProject(join(work, 'app'));
});

after(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

/**
 * `npm install --offline <tarball>` in a new project. Its lockfile starts
 * with the production entries of the repo's own lockfile, so npm needs no
 * registry metadata: the dependencies come from the local cache (`npm ci`
 * put them there), at the versions this repo is tested with.
 */
async function installInFreshProject(dir: string): Promise<string> {
  const repoLock = JSON.parse(readFileSync(join(REPO, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { dev?: boolean; devOptional?: boolean }>;
  };
  const packages: Record<string, unknown> = { '': { name: 'app' } };
  for (const [path, entry] of Object.entries(repoLock.packages)) {
    if (path !== '' && !entry.dev && !entry.devOptional) packages[path] = entry;
  }
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  writeFileSync(
    join(dir, 'package-lock.json'),
    JSON.stringify({ name: 'app', lockfileVersion: 3, requires: true, packages }),
  );
  ok(
    await run('npm', ['install', '--offline', '--no-audit', '--no-fund', tarball], {
      cwd: dir,
      timeout: 120_000,
    }),
    'npm install --offline',
  );
  return dir;
}

describe('the tarball', () => {
  it('holds the built code, declarations, migrations, docs, README and LICENSE, and no sources, tests, bench or CI files', () => {
    for (const file of [
      'package.json',
      'README.md',
      'LICENSE',
      'CHANGELOG.md',
      'bin/spillway.js',
      'dist/index.js',
      'dist/index.d.ts',
      'dist/sdk/index.js',
      'dist/sdk/index.d.ts',
      'dist/ops/cli.js',
      'docs/openapi.json',
      'docs/sdk.md',
      'config.schema.json',
    ]) {
      assert.ok(packedFiles.includes(file), `${file} is in the tarball`);
    }
    for (const store of ['sqlite', 'postgres']) {
      const sql = readdirSql(store);
      assert.ok(sql.length > 0, `${store} has migrations`);
      for (const name of sql) {
        assert.ok(
          packedFiles.includes(`dist/store/${store}/migrations/${name}`),
          `${store} migration ${name}`,
        );
      }
    }
    const unwanted = packedFiles.filter(
      (f) =>
        /(^|\/)(test|bench|\.ci|src|scripts|node_modules)\//.test(f) ||
        /\.test\.(js|ts|d\.ts)$/.test(f) ||
        /(^|\/)(tsconfig[\w.]*\.json|biome\.json|package-lock\.json)$/.test(f) ||
        (f.endsWith('.ts') && !f.endsWith('.d.ts')),
    );
    assert.deepEqual(unwanted, []);
  });
});

function readdirSql(store: string): string[] {
  return readdirSync(join(REPO, 'src', 'store', store, 'migrations')).filter((f) => f.endsWith('.sql'));
}

/** What a user does with the installed package, on the Node.js whose bin directory comes first on PATH. */
function usesTheInstalledPackage(label: string, nodeBin: () => string | undefined) {
  describe(`installed, on ${label}`, () => {
    it('npx spillway --help prints the usage', async (t) => {
      const bin = nodeBin();
      if (!bin) return t.skip(`${label} is not available`);
      const res = ok(
        await run('npx', ['spillway', '--help'], { cwd: app, path: bin }),
        'npx spillway --help',
      );
      assert.match(res.stdout, /^Spillway: sync when it can, async when it must/);
      assert.match(res.stdout, /spillway serve --upstream URL/);
      const launcher = join(app, 'node_modules', '.bin', 'spillway');
      const version = ok(await run('node', [launcher, 'version'], { cwd: app, path: bin }), 'version');
      assert.equal(version.stdout.trim(), PKG.version);
    });

    it('npx spillway serve answers one request sync and completes one 202 by replay', async (t) => {
      const bin = nodeBin();
      if (!bin) return t.skip(`${label} is not available`);
      await using upstream = await new TestUpstream().start();
      await using gateway = await serve(bin, upstream.url);

      const sync = await fetch(`${gateway.url}/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ marker: 'sync-1' }),
      });
      assert.equal(sync.status, 200);
      assert.match(await sync.text(), /sync-1/);

      const accepted = await fetch(`${gateway.url}/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', prefer: 'respond-async, wait=0' },
        body: JSON.stringify({ marker: 'async-1' }),
      });
      assert.equal(accepted.status, 202);
      const monitor = accepted.headers.get('operation-location');
      const location = accepted.headers.get('location');
      assert.ok(monitor && location, 'the 202 names its monitor and result');
      await accepted.body?.cancel();
      const status = await waitFor(async () => {
        const body = (await (await fetch(new URL(monitor, gateway.url))).json()) as { status: string };
        return body.status === 'Succeeded' ? body.status : undefined;
      }, 20_000);
      assert.equal(status, 'Succeeded');
      const result = await fetch(new URL(location, gateway.url));
      assert.equal(result.status, 200);
      assert.match(await result.text(), /async-1/);
      assert.equal(upstream.count('async-1'), 1, 'replayed once');
    });

    it("import('spillway') and import('spillway/client') give the sources' exports, and both run", async (t) => {
      const bin = nodeBin();
      if (!bin) return t.skip(`${label} is not available`);
      writeFileSync(
        join(app, 'imports.mjs'),
        `const server = await import('spillway');
const client = await import('spillway/client');
// The gateway in-process, in front of a function: one request through it.
process.env.SPILLWAY_LOG_LEVEL = 'silent';
const embedded = server.createSpillway({
  upstream: async (request) => new Response('paid ' + (await request.text()), { status: 201 }),
  store: 'embedded.db',
});
const answer = await embedded.fetch(new Request('http://app.local/payments', { method: 'POST', body: 'order-1' }));
const embeddedText = [answer.status, await answer.text()].join(' ');
await embedded.close();
const sdk = await client.createClient().fetch('data:text/plain,hello');
// The config file's JSON Schema, by the package's export and by the path docs/configuration.md gives.
const { default: schema } = await import('spillway/config.schema.json', { with: { type: 'json' } });
const { readFileSync } = await import('node:fs');
const atDocumentedPath = JSON.parse(readFileSync('./node_modules/spillway/config.schema.json', 'utf8'));
console.log(JSON.stringify({
  server: Object.keys(server).sort(),
  client: Object.keys(client).sort(),
  embedded: embeddedText,
  sdk: await sdk.text(),
  schema,
  sameAtDocumentedPath: JSON.stringify(atDocumentedPath) === JSON.stringify(schema),
}));
`,
      );
      const res = ok(await run('node', ['imports.mjs'], { cwd: app, path: bin }), 'imports.mjs');
      const seen = JSON.parse(res.stdout.trim().split('\n').at(-1)!) as {
        server: string[];
        client: string[];
        embedded: string;
        sdk: string;
        schema: unknown;
        sameAtDocumentedPath: boolean;
      };
      assert.deepEqual(seen.server, Object.keys(await import('../../src/index.ts')).sort());
      assert.deepEqual(seen.client, Object.keys(await import('../../src/sdk/index.ts')).sort());
      assert.equal(seen.embedded, '201 paid order-1');
      assert.equal(seen.sdk, 'hello');
      assert.deepEqual(seen.schema, JSON.parse(readFileSync(join(REPO, 'config.schema.json'), 'utf8')));
      assert.ok(seen.sameAtDocumentedPath, './node_modules/spillway/config.schema.json is the exported file');
    });
  });
}

usesTheInstalledPackage(`Node.js ${process.versions.node}`, () => NODE_24_BIN);

// Node 22 LTS (>= 22.19) is supported by the built package: the same checks on it.
let node22Bin: string | undefined;
let node22Missing = '';
describe('Node.js 22', () => {
  before(async () => {
    const prefix = join(work, 'node22');
    const res = await run(
      'npm',
      ['install', '--no-save', '--no-audit', '--no-fund', '--prefix', prefix, 'node@22'],
      { cwd: work, timeout: 120_000 },
    );
    const bin = join(prefix, 'node_modules', 'node', 'bin');
    if (res.code === 0 && existsSync(join(bin, 'node'))) node22Bin = bin;
    else node22Missing = `node@22 could not be installed from the npm registry: ${res.stderr.trim()}`;
  });

  it('is installed from the npm registry', async (t) => {
    if (!node22Bin) return t.skip(`Node.js 22 part skipped: ${node22Missing}`);
    const res = ok(await run('node', ['--version'], { cwd: work, path: node22Bin }), 'node --version');
    assert.match(res.stdout, /^v22\./);
  });

  usesTheInstalledPackage('Node.js 22', () => node22Bin);
});

describe('an older Node.js', () => {
  for (const [where, launcher] of [
    ['the installed package', () => join(app, 'node_modules', 'spillway', 'bin', 'spillway.js')],
    ['the clone', () => join(REPO, 'bin', 'spillway.js')],
  ] as const) {
    it(`gets one line naming the version needed, and exit 1 (${where})`, async (t) => {
      const old = await run(OLD_NODE, ['--version'], { cwd: work });
      if (old.code !== 0) return t.skip(`no ${OLD_NODE} here to try an older Node.js with`);
      const version = old.stdout.trim().slice(1);
      if (Number(version.split('.')[0]) >= 22)
        return t.skip(`${OLD_NODE} is ${version}, not an older Node.js`);
      const res = await run(OLD_NODE, [launcher(), 'serve', '--help'], { cwd: work });
      assert.equal(res.code, 1);
      assert.equal(res.stdout, '');
      assert.equal(
        res.stderr,
        `spillway needs Node.js ${PKG.engines.node}; this is Node.js ${version}.\n`,
        'one line, no stack trace',
      );
    });
  }
});

describe('type-checking', () => {
  it('a TypeScript file importing spillway and spillway/client passes tsc --noEmit', async () => {
    writeFileSync(
      join(app, 'check.ts'),
      `import {
  buildConfig,
  type Clock,
  createSpillway,
  type GatewayConfig,
  type Spillway,
  type SpillwayConfig,
  startSpillway,
} from 'spillway';
import { type AcceptedOperation, createClient, type SpillwayClient } from 'spillway/client';

const file: SpillwayConfig = { upstream: 'http://127.0.0.1:9', routes: [{ name: 'pay', match: 'POST /pay' }] };
const config: GatewayConfig = buildConfig(file);
export const started: Promise<Spillway> = startSpillway(config);
export const embedded: Promise<Response> = createSpillway({
  upstream: async (request: Request) => new Response(await request.text()),
}).fetch(new Request('http://app.local/x'));
export const clock: Clock = { now: () => 0 } as Clock;
const client: SpillwayClient = createClient({
  timeoutMs: 1_000,
  onAccepted: (op: AcceptedOperation) => console.log(op.id, op.monitorUrl),
});
export const answer: Promise<Response> = client.fetch('http://127.0.0.1:9/x', { method: 'POST' });

// The declarations are real types, not any: these must be refused.
// @ts-expect-error timeoutMs is a number
createClient({ timeoutMs: 'soon' });
// @ts-expect-error a Clock has now()
export const notAClock: Clock = 42;
// @ts-expect-error port is a number
export const badPort: SpillwayConfig = { port: 'eighty' };
// @ts-expect-error a route has no retries
export const badRoute: SpillwayConfig = { routes: [{ name: 'pay', match: 'POST /pay', retries: 3 }] };
// @ts-expect-error createSpillway's config is a SpillwayConfig: budgetMs is a number
createSpillway({ config: { routes: [{ name: 'pay', match: 'POST /pay', budgetMs: 'fast' }] } });
`,
    );
    writeFileSync(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'es2024',
          module: 'nodenext',
          moduleResolution: 'nodenext',
          strict: true,
          noEmit: true,
          // As most projects set it (and tsc --init does); a dependency's missing types are reported all the same.
          skipLibCheck: true,
          types: ['node'],
          typeRoots: [join(REPO, 'node_modules', '@types')],
        },
        files: ['check.ts'],
      }),
    );
    ok(
      await run('node', [TSC, '--noEmit', '-p', 'tsconfig.json'], { cwd: app, timeout: 180_000 }),
      'tsc --noEmit',
    );
  });
});

interface Served {
  url: string;
  child: ChildProcess;
  [Symbol.asyncDispose](): Promise<void>;
}

/** `npx spillway serve` in the installed project, in its own process group; resolves once it listens. */
async function serve(nodeBin: string, upstream: string): Promise<Served> {
  const dir = mkdtempSync(join(work, 'serve-'));
  // "$schema" as docs/configuration.md shows it: an accepted key.
  const file = { $schema: './node_modules/spillway/config.schema.json', replay: { pollIntervalMs: 50 } };
  writeFileSync(join(dir, 'spillway.json'), JSON.stringify(file));
  const env = childEnv(nodeBin, { SPILLWAY_LOG_LEVEL: 'info' });
  const args = ['spillway', 'serve', '--upstream', upstream, '--host', '127.0.0.1', '--port', '0'];
  args.push('--admin-port', '0', '--store', join(dir, 'spillway.db'), '--config', join(dir, 'spillway.json'));
  const child = spawn('npx', args, { cwd: app, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk) => {
    stderr += chunk;
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    process.kill(-child.pid!, 'SIGTERM'); // npx and the node it started
    const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not listen within 20 s:\n${stderr}`)), 20_000);
    child.once('exit', (code) => reject(new Error(`serve exited with ${code}:\n${stderr}`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let entry: { msg?: string; port?: number };
      try {
        entry = JSON.parse(line);
      } catch {
        return; // not a log line
      }
      if (entry.msg === 'listening' && entry.port) {
        clearTimeout(timer);
        resolve(entry.port);
      }
    });
  }).catch(async (error: unknown) => {
    await stop();
    throw error;
  });
  return { url: `http://127.0.0.1:${port}`, child, [Symbol.asyncDispose]: stop };
}

async function waitFor<T>(probe: () => Promise<T | undefined>, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
