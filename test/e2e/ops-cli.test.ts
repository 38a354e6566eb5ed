/**
 * The operator's command line and the admin token (docs/operations.md#cli,
 * #admin-token): bulk redrive and discard with their confirmation, progress
 * (a bar on a terminal, plain lines otherwise) and summary; replay paused and
 * resumed; the bearer token on the admin API and /metrics, probes and the
 * dashboard's files left open; `serve` refusing an admin port off loopback
 * without a token. Commands run in-process against a real gateway, except the
 * refusal, which runs the real bin.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, it, type TestContext } from 'node:test';
import { opsCommand, replayCommand, type Terminal } from '../../src/ops/ops-commands.ts';
import { spillway } from '../support/cli.ts';
import { jsonOf, operationIdOf, startGateway, type TestGateway, tempDir } from '../support/harness.ts';
import { TestUpstream } from '../support/test-upstream.ts';

const TOKEN = randomUUID();

/** A terminal whose output the test reads; `tty` makes both ends look like one, `answer` is typed in. */
function fakeTerminal(tty: boolean, answer = ''): Terminal & { text(): string } {
  const progress = Object.assign(new PassThrough(), {
    isTTY: tty,
    columns: 100,
    cursorTo: () => true,
    clearLine: () => true,
    moveCursor: () => true,
  });
  const input = Object.assign(new PassThrough(), { isTTY: tty });
  let text = '';
  progress.on('data', (chunk: Buffer) => {
    text += chunk.toString();
    if (answer && text.includes('[y/N]')) {
      input.write(`${answer}\n`);
      answer = '';
    }
  });
  return { progress, input, text: () => text };
}

async function gatewayWithDeadLetters(t: TestContext, count: number, unknown: number): Promise<TestGateway> {
  const upstream = await new TestUpstream().start();
  t.after(() => upstream.stop());
  upstream.behaviour = (req) =>
    req.url === '/unknown' ? { kind: 'reset' } : { kind: 'respond', status: 503 };
  const gw = await startGateway({
    upstream: upstream.url,
    adminToken: TOKEN,
    routes: [
      { name: 'payments', match: 'POST /payments', maxAttempts: 2, health: { minCalls: 1_000 } },
      { name: 'unknown', match: 'POST /unknown', maxAttempts: 2, health: { minCalls: 1_000 } },
    ],
  });
  t.after(() => gw.stop());
  const ids: string[] = [];
  for (let i = 0; i < count + unknown; i++) {
    const res = await fetch(`${gw.publicUrl}${i < count ? '/payments' : '/unknown'}`, {
      method: 'POST',
      body: 'x',
    });
    ids.push(operationIdOf(res));
  }
  for (const id of ids) assert.ok((await gw.settled(id)).deadLetteredAt, 'dead-lettered');
  upstream.behaviour = () => ({ kind: 'respond', status: 201, body: 'ok' });
  return gw;
}

const envOf = (gw: TestGateway, token = TOKEN) => ({
  SPILLWAY_ADMIN_URL: `http://127.0.0.1:${gw.adminPort}`,
  SPILLWAY_ADMIN_TOKEN: token,
});

describe('spillway ops and replay', () => {
  it('bulk redrive asks first (refusing unasked without a terminal), shows plain progress lines, and sums up what it skipped', async (t) => {
    const gw = await gatewayWithDeadLetters(t, 3, 1);
    const env = envOf(gw);
    const unasked = await opsCommand(['redrive', '--dead-lettered'], env, fakeTerminal(false));
    assert.equal(unasked.code, 2);
    assert.match(unasked.err!, /redrive 4 dead letters of every route; add --yes/);

    const terminal = fakeTerminal(false);
    const done = await opsCommand(['redrive', '--dead-lettered', '--yes'], env, terminal);
    assert.equal(done.code, 0, done.err);
    assert.match(done.out!, /^Redriven 3 dead letters, skipped 1\./);
    assert.match(done.out!, /1 skipped: their outcome is unknown .*--include-outcome-unknown/);
    assert.match(terminal.text(), /^redriving: 4\/4 processed$/m);
    assert.ok(!terminal.text().includes('\u001b['), 'no terminal control codes when not a terminal');

    const rest = await opsCommand(
      ['redrive', '--dead-lettered', '--route', 'unknown', '--include-outcome-unknown', '--yes'],
      env,
      fakeTerminal(false),
    );
    assert.match(rest.out!, /^Redriven 1 dead letter, skipped 0\./);
    const none = await opsCommand(['discard', '--dead-lettered', '--yes'], env, fakeTerminal(false));
    assert.equal(none.out, 'No dead letter on every route.');
  });

  it('on a terminal: asks, draws a progress bar, and discards', async (t) => {
    const gw = await gatewayWithDeadLetters(t, 2, 0);
    const declined = fakeTerminal(true, 'n');
    const no = await opsCommand(['discard', '--dead-lettered', '--route', 'payments'], envOf(gw), declined);
    assert.equal(no.code, 1);
    assert.match(declined.text(), /Discard 2 dead letters of route "payments"\? \[y\/N\]/);
    const terminal = fakeTerminal(true, 'y');
    const yes = await opsCommand(['discard', '--dead-lettered', '--route', 'payments'], envOf(gw), terminal);
    assert.equal(yes.code, 0, yes.err);
    assert.match(yes.out!, /^Discarded 2 dead letters, skipped 0\./);
    assert.match(terminal.text(), /discarding \[=+\] 2\/2 dead letters/);
    const listed = await opsCommand(['list', '--dead-lettered'], envOf(gw));
    assert.equal(listed.out, 'No operation matches.');
  });

  it('redrives, discards and cancels by id, saying why when refused; pauses and resumes a route', async (t) => {
    const gw = await gatewayWithDeadLetters(t, 2, 1);
    const env = envOf(gw);
    const [a, b] = (
      await jsonOf(
        await fetch(`http://127.0.0.1:${gw.adminPort}/api/operations?deadLettered=true&route=payments`, {
          headers: { authorization: `Bearer ${TOKEN}` },
        }),
      )
    ).operations.map((o: { id: string }) => o.id);
    const unknownId = (await opsCommand(['list', '--route', 'unknown', '--json'], env)).out!;
    const [u] = JSON.parse(unknownId).operations.map((o: { id: string }) => o.id);

    const paused = await replayCommand(['pause', 'payments'], env);
    assert.equal(paused.code, 0, paused.err);
    assert.match(paused.out!, /paused in every process/);
    const redrive = await opsCommand(['redrive', a, u, 'op_nope'], env);
    assert.equal(redrive.code, 1);
    assert.match(redrive.out!, new RegExp(`Redriven ${a}`));
    assert.match(redrive.err!, new RegExp(`${u} not redriven: .*add --include-outcome-unknown`));
    assert.match(redrive.err!, /op_nope not redriven: No operation has the id/);
    await gw.worker.runOnce();
    await gw.worker.idle();
    assert.equal((await gw.store.get(a))?.status, 'NotStarted', 'paused: not replayed');
    const cancel = await opsCommand(['cancel', a], env);
    assert.equal(cancel.code, 0, cancel.err);
    assert.equal((await gw.store.get(a))?.status, 'Canceled');
    const again = await opsCommand(['cancel', a], env);
    assert.equal(again.code, 1);
    assert.match(again.err!, /already ended Canceled/);
    const resumed = await replayCommand(['resume', 'payments'], env);
    assert.equal(resumed.code, 0);
    const discard = await opsCommand(['discard', b], env);
    assert.equal(discard.code, 0, discard.err);
    assert.equal((await replayCommand(['pause', 'nope'], env)).code, 1);
    assert.equal((await replayCommand(['stop', 'payments'], env)).code, 2);
    assert.equal((await opsCommand(['redrive'], env)).code, 2);
    assert.equal((await opsCommand(['redrive', a, '--dead-lettered'], env)).code, 2);
    assert.equal((await opsCommand(['list', '--status', 'Lost'], env)).code, 2);
    const shown = await opsCommand(['show', u], env);
    assert.match(shown.out!, /spillway ops redrive .* --include-outcome-unknown/);
  });
});

describe('the admin token', () => {
  it('protects the admin API and /metrics; probes and the dashboard files stay open; a scrape token opens /metrics only', async (t) => {
    const upstream = await new TestUpstream().start();
    t.after(() => upstream.stop());
    const scrape = randomUUID();
    await using gw = await startGateway({ upstream: upstream.url, adminToken: TOKEN, metricsToken: scrape });
    const admin = (path: string, token?: string) =>
      fetch(
        `http://127.0.0.1:${gw.adminPort}${path}`,
        token ? { headers: { authorization: `Bearer ${token}` } } : {},
      );
    for (const path of ['/api/operations', '/api/health', '/metrics']) {
      const res = await admin(path);
      assert.equal(res.status, 401, path);
      assert.equal(res.headers.get('content-type'), 'application/problem+json');
      assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer/);
      assert.equal((await jsonOf(res)).code, 'unauthorized');
      assert.equal((await admin(path, 'x'.repeat(36))).status, 401, `${path} with a wrong token`);
    }
    assert.equal((await admin('/api/operations', TOKEN)).status, 200);
    assert.equal(
      (await admin('/api/operations', scrape)).status,
      401,
      'the scrape token opens /metrics only',
    );
    assert.notEqual((await admin('/metrics', scrape)).status, 401);
    assert.equal((await admin('/healthz')).status, 200);
    assert.equal((await admin('/readyz')).status, 200);
  });

  it('serve refuses an admin port off loopback without a token: one line, exit 1', async () => {
    const dir = tempDir();
    const config = join(dir, 'spillway.json');
    writeFileSync(
      config,
      JSON.stringify({ adminHost: '0.0.0.0', adminPort: 0, port: 0, store: join(dir, 's.db') }),
    );
    const run = await spillway(['serve', '--upstream', 'http://127.0.0.1:9', '--config', config], {
      SPILLWAY_ADMIN_TOKEN: '',
    });
    assert.equal(run.code, 1);
    assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
    assert.match(
      run.stderr,
      /^spillway: refusing to bind the admin port to 0\.0\.0\.0 without a token: set SPILLWAY_ADMIN_TOKEN/,
    );
    const short = await spillway(['serve', '--upstream', 'http://127.0.0.1:9', '--config', config], {
      SPILLWAY_ADMIN_TOKEN: 'short',
    });
    assert.equal(short.code, 1, 'a start-up failure, one line');
    assert.match(
      short.stderr,
      /adminToken \(SPILLWAY_ADMIN_TOKEN\) must be at least 16 printable characters/,
    );
    assert.doesNotMatch(short.stderr, /short/);
  });
});
