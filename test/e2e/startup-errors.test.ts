/**
 * Start-up failures as an operator meets them: the real bin/spillway.js in a
 * child process. Each is one line on stderr that names what failed and what to
 * do, exit code 1, and no stack trace.
 */
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { buildConfig } from '../../src/config/config.ts';
import { createLogger } from '../../src/ops/logger.ts';
import { startSpillway } from '../../src/ops/spillway.ts';
import { type Run, spillway } from '../support/cli.ts';
import { spawnGateway } from '../support/gateway-process.ts';
import { tempDir } from '../support/harness.ts';
import { closedPort } from '../support/test-upstream.ts';

const dir = tempDir();
after(() => rmSync(dir, { recursive: true, force: true }));

/** A port some other program holds. */
async function occupied(): Promise<{ port: number; server: Server }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return { port: (server.address() as { port: number }).port, server };
}

function assertOneLine(run: Run, pattern: RegExp): void {
  assert.equal(run.code, 1, `exit code; stderr: ${run.stderr}`);
  const lines = run.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line on stderr, got:\n${run.stderr}`);
  assert.match(lines[0]!, /^spillway: /);
  assert.match(lines[0]!, pattern);
  assert.doesNotMatch(run.stderr + run.stdout, /^\s+at /m, 'no stack trace');
}

const upstream = 'http://127.0.0.1:9';

describe('start-up failures', () => {
  it('a public port in use names the port and the flag to change', async () => {
    const { port, server } = await occupied();
    try {
      const run = await spillway([
        'serve',
        '--upstream',
        upstream,
        '--host',
        '127.0.0.1',
        '--port',
        String(port),
        '--admin-port',
        '0',
        '--store',
        join(dir, 'a.db'),
      ]);
      assertOneLine(run, new RegExp(`port ${port} .*already in use.*--port`));
    } finally {
      server.close();
    }
  });

  it('an admin port in use names --admin-port', async () => {
    const { port, server } = await occupied();
    try {
      const run = await spillway([
        'serve',
        '--upstream',
        upstream,
        '--host',
        '127.0.0.1',
        '--port',
        '0',
        '--admin-port',
        String(port),
        '--store',
        join(dir, 'b.db'),
      ]);
      assertOneLine(run, new RegExp(`port ${port} .*already in use.*--admin-port`));
    } finally {
      server.close();
    }
  });

  it('an unreachable PostgreSQL store says to check the server and the URL', async () => {
    const store = `postgres://postgres@127.0.0.1:${await closedPort()}/spillway`;
    const run = await spillway([
      'serve',
      '--upstream',
      upstream,
      '--port',
      '0',
      '--admin-port',
      '0',
      '--store',
      store,
    ]);
    assertOneLine(run, /cannot be reached.*check that the store is reachable.*--store/);
  });

  it('an SQLite store in a directory that does not exist names the path', async () => {
    const store = join(dir, 'missing', 'deeper', 'c.db');
    const run = await spillway([
      'serve',
      '--upstream',
      upstream,
      '--port',
      '0',
      '--admin-port',
      '0',
      '--store',
      store,
    ]);
    assertOneLine(run, /--store.*missing\/deeper\/c\.db/);
  });

  it('a bad config file value names the option, exit code 1', async () => {
    const file = join(dir, 'bad.json');
    writeFileSync(file, JSON.stringify({ routeDefaults: { budgetMs: 40_000, attemptTimeoutMs: 30_000 } }));
    const run = await spillway(['serve', '--upstream', upstream, '--config', file]);
    assertOneLine(run, /routeDefaults\.attemptTimeoutMs \(30000\) must be longer than/);
  });

  it('a config file that is not JSON names the file', async () => {
    const file = join(dir, 'broken.json');
    writeFileSync(file, '{ "port": ');
    const run = await spillway(['serve', '--upstream', upstream, '--config', file]);
    assertOneLine(run, /broken\.json/);
  });

  it('spillway worker on an SQLite file says to use PostgreSQL, exit code 1', async () => {
    mkdirSync(join(dir, 'w'), { recursive: true });
    const run = await spillway(['worker', '--upstream', upstream, '--store', join(dir, 'w', 'x.db')]);
    assertOneLine(run, /needs a store several processes can share/);
  });
});

describe('two gateways on one SQLite file', () => {
  it('the second refuses to start, naming the first; once the first is killed -9, a new one starts', async () => {
    const shared = join(dir, 'shared');
    mkdirSync(shared);
    const store = join(shared, 'spillway.db');
    const first = await spawnGateway(shared, { upstream, store });
    try {
      const second = await spillway([
        'serve',
        '--upstream',
        upstream,
        '--port',
        '0',
        '--admin-port',
        '0',
        '--store',
        store,
      ]);
      assertOneLine(second, new RegExp(`in use by .*pid ${first.child.pid}\\b`));
      assert.match(second.stderr, /--store/);
    } finally {
      first.child.kill('SIGKILL');
      await first.exited;
    }
    const next = await spawnGateway(shared, { upstream, store }); // resolves once it listens
    next.child.kill('SIGKILL');
    await next.exited;
  });
});

describe('a gateway that fails to start in-process', () => {
  it('lets go of its store, so a second try on the same file starts', async () => {
    const { port, server } = await occupied();
    const store = join(dir, 'retry.db');
    const quiet = { logger: createLogger('silent') };
    const config = (p: number) =>
      buildConfig({ upstream, host: '127.0.0.1', port: p, adminPort: 0, store, shutdownGraceMs: 0 });
    try {
      await assert.rejects(startSpillway(config(port), quiet), { code: 'EADDRINUSE' });
    } finally {
      server.close();
    }
    const gw = await startSpillway(config(0), quiet);
    await gw.stop();
  });
});
