/**
 * Encryption at rest through the real `spillway serve` (issue 9 item 11):
 * with SPILLWAY_STORE_ENCRYPTION_KEY set, a request captured while the
 * upstream is down is replayed with its body and Authorization header intact,
 * its result reads back byte for byte, and neither the store file nor its WAL
 * ever holds them in plaintext. Started again without the key, the gateway
 * refuses in one line that names the key it lacks.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parseStoreKey } from '../../src/store/sealed-values.ts';
import { spillway } from '../support/cli.ts';
import { spawnGateway } from '../support/gateway-process.ts';
import { jsonOf, operationIdOf, tempDir } from '../support/harness.ts';
import { TestUpstream } from '../support/test-upstream.ts';

const dir = tempDir();
after(() => rmSync(dir, { recursive: true, force: true }));

const SECRET_BODY = '{"card":"4111111111111111","cvc":"737"}';
const SECRET_TOKEN = 'Bearer sk_live_e2e_secret_51Hx';
const SECRET_RESULT = '{"receipt":"rcpt_e2e_plaintext_9001"}';

/** The store file and its WAL, as bytes on disk. */
const onDisk = (path: string) =>
  Buffer.concat(
    [path, `${path}-wal`].filter((file) => existsSync(file)).map((file) => readFileSync(file)),
  ).toString('latin1');

describe('encryption at rest: spillway serve', () => {
  it('captures while the upstream is down, replays, answers the result, and keeps no plaintext on disk', async () => {
    const key = (await spillway(['store-key'])).stdout.trim();
    const keyId = parseStoreKey(key).id;
    const store = join(dir, 'sealed.db');
    await using upstream = await new TestUpstream().start();
    await upstream.stop(); // down: the request is captured
    const gw = await spawnGateway(
      dir,
      {
        upstream: upstream.url,
        store,
        routeDefaults: { budgetMs: 500, backoff: { initialMs: 50, maxMs: 200 } },
      },
      { SPILLWAY_STORE_ENCRYPTION_KEY: key },
    );
    try {
      const res = await fetch(`${gw.url}/payments`, {
        method: 'POST',
        headers: { authorization: SECRET_TOKEN, 'content-type': 'application/json' },
        body: SECRET_BODY,
      });
      assert.equal(res.status, 202);
      const id = operationIdOf(res);
      // Operations are read with the credential that created them (the tenant).
      const asCreator = { headers: { authorization: SECRET_TOKEN } };

      upstream.behaviour = () => ({
        kind: 'respond',
        status: 201,
        headers: { 'content-type': 'application/json', 'x-receipt': 'r-1' },
        body: SECRET_RESULT,
      });
      await upstream.start();
      const deadline = Date.now() + 30_000;
      let status = '';
      while (status !== 'Succeeded') {
        assert.ok(Date.now() < deadline, `replayed within 30 s (status ${status})`);
        await new Promise((resolve) => setTimeout(resolve, 50));
        status = String(
          (await jsonOf(await fetch(`${gw.url}/_spillway/operations/${id}`, asCreator))).status,
        );
      }
      const replayed = upstream.received.at(-1);
      assert.equal(replayed?.body.toString(), SECRET_BODY, 'the replay sent the original body');
      assert.equal(replayed?.headers.authorization, SECRET_TOKEN, 'and the original Authorization');

      const result = await fetch(`${gw.url}/_spillway/operations/${id}/result`, asCreator);
      assert.equal(result.status, 201);
      assert.equal(result.headers.get('x-receipt'), 'r-1');
      assert.equal(await result.text(), SECRET_RESULT);

      const running = onDisk(store);
      for (const secret of [SECRET_BODY, SECRET_TOKEN, SECRET_RESULT]) {
        assert.ok(!running.includes(secret), `${secret} is not in the store file or its WAL`);
      }
      assert.ok(running.includes(`sealed:1:${keyId}:`));
    } finally {
      gw.child.kill('SIGTERM');
      assert.equal(await gw.exited, 0);
    }
    const stopped = onDisk(store);
    for (const secret of [SECRET_BODY, SECRET_TOKEN, SECRET_RESULT]) {
      assert.ok(!stopped.includes(secret), `${secret} is not in the file after the stop either`);
    }

    // Without the key, the gateway cannot read what it stored: it says so in one line and stops.
    const run = await spillway(
      ['serve', '--upstream', upstream.url, '--store', store, '--admin-port', '0', '--port', '0'],
      {
        SPILLWAY_STORE_ENCRYPTION_KEY: '',
      },
    );
    assert.equal(run.code, 1, run.stderr);
    const lines = run.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, run.stderr);
    assert.match(lines[0]!, new RegExp(`^spillway: .*store key ${keyId}.*SPILLWAY_STORE_ENCRYPTION_KEY`));
  });
});
