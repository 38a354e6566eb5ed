/**
 * Bad input and faults: malformed HTTP, a store that cannot take writes, and
 * graceful shutdown. Nothing is acknowledged that is not stored.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { spawnGateway } from '../support/gateway-process.ts';
import { jsonOf, operationIdOf, startGateway, tempDir } from '../support/harness.ts';
import { closedPort, TestUpstream } from '../support/test-upstream.ts';

/** Sends raw bytes and returns the raw answer. */
function rawRequest(port: number, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.end(bytes));
    let answer = '';
    socket.on('data', (chunk) => {
      answer += chunk;
    });
    socket.on('end', () => resolve(answer));
    socket.on('error', reject);
  });
}

describe('malformed requests', () => {
  it('answers 400 problem+json to bytes that are not HTTP, and 431 to oversized headers', async () => {
    await using gw = await startGateway({ upstream: `http://127.0.0.1:${await closedPort()}` });
    const garbage = await rawRequest(gw.port, 'THIS IS NOT HTTP\r\n\r\n');
    assert.match(garbage, /^HTTP\/1\.1 400 /);
    assert.match(garbage, /content-type: application\/problem\+json/i);
    assert.match(garbage, /"type":"https:\/\/spillway.dev\/problems\/bad-request"/);
    const huge = await rawRequest(
      gw.port,
      `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
    );
    assert.match(huge, /^HTTP\/1\.1 431 /);
    const counts = await gw.store.counts();
    assert.equal(counts.NotStarted, 0);
  });
});

describe('the in-flight bound', () => {
  it('answers 503 overloaded with Retry-After past maxInFlight, and serves again once below it', async () => {
    const upstream = await new TestUpstream().start();
    upstream.behaviour = () => ({
      kind: 'delay',
      ms: 300,
      and: { kind: 'respond', status: 200, body: 'ok' },
    });
    await using gw = await startGateway({ upstream: upstream.url, maxInFlight: 2 });
    const held = [fetch(`${gw.publicUrl}/a`), fetch(`${gw.publicUrl}/b`)];
    while (upstream.received.length < 2) await new Promise((r) => setTimeout(r, 5));
    const refused = await fetch(`${gw.publicUrl}/c`);
    assert.equal(refused.status, 503);
    assert.equal(refused.headers.get('retry-after'), '1');
    assert.equal((await jsonOf(refused)).type, 'https://spillway.dev/problems/overloaded');
    assert.deepEqual(
      (await Promise.all(held)).map((r) => r.status),
      [200, 200],
    );
    assert.equal((await fetch(`${gw.publicUrl}/d`)).status, 200);
    await upstream.stop();
  });
});

describe('a store that cannot take writes', () => {
  it('answers 503 problem+json with Retry-After, and every 202 it gave is stored', async () => {
    await using gw = await startGateway({
      upstream: `http://127.0.0.1:${await closedPort()}`,
      maxStoreBytes: 256 * 1024,
      replay: { concurrency: 0 },
    });
    const body = Buffer.alloc(16 * 1024, 'x');
    const accepted: string[] = [];
    let refused: Response | undefined;
    for (let i = 0; i < 200 && !refused; i++) {
      const res = await fetch(`${gw.publicUrl}/payments`, { method: 'POST', body });
      if (res.status === 202) accepted.push(operationIdOf(res));
      else refused = res;
    }
    assert.ok(refused, 'the store filled up');
    assert.ok(accepted.length > 0);
    assert.equal(refused.status, 503);
    assert.equal(refused.headers.get('content-type'), 'application/problem+json');
    assert.ok(Number(refused.headers.get('retry-after')) > 0);
    const doc = await jsonOf(refused);
    assert.equal(doc.type, 'https://spillway.dev/problems/store-unavailable');
    for (const id of accepted) assert.ok(await gw.store.get(id), `acknowledged ${id} is stored`);
    const counts = await gw.store.counts();
    assert.equal(counts.NotStarted, accepted.length, 'nothing stored that was refused');
    // The gateway keeps serving: reading the operations still works.
    assert.equal((await fetch(`${gw.publicUrl}/_spillway/operations/${accepted[0]}`)).status, 200);
  });
});

describe('graceful shutdown on SIGTERM', () => {
  const dir = tempDir();
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('lets an adopted attempt finish within the grace period and records it before exiting', async () => {
    const upstream = await new TestUpstream().start();
    upstream.behaviour = () => ({
      kind: 'delay',
      ms: 800,
      and: { kind: 'respond', status: 201, body: 'late but fine' },
    });
    const config = {
      upstream: upstream.url,
      store: join(dir, 'graceful.db'),
      shutdownGraceMs: 5_000,
      routeDefaults: { budgetMs: 100 },
    };
    const gw = await spawnGateway(dir, config);
    const res = await fetch(`${gw.url}/payments`, { method: 'POST', body: 'x' });
    assert.equal(res.status, 202);
    const id = operationIdOf(res);
    gw.child.kill('SIGTERM');
    assert.equal(await gw.exited, 0);
    const store = new SqliteStore({ path: config.store });
    const op = await store.get(id);
    await store.close();
    assert.equal(op?.status, 'Succeeded');
    assert.equal(op?.leaseOwner, null);
    await upstream.stop();
  });

  it('hands back the lease of an attempt still in flight after the grace period, outcome unknown', async () => {
    const upstream = await new TestUpstream().start();
    upstream.behaviour = () => ({ kind: 'black-hole' });
    const config = {
      upstream: upstream.url,
      store: join(dir, 'handback.db'),
      shutdownGraceMs: 300,
      routeDefaults: { budgetMs: 100, attemptTimeoutMs: 30_000 },
    };
    const gw = await spawnGateway(dir, config);
    const res = await fetch(`${gw.url}/payments`, { method: 'POST', body: 'x' });
    assert.equal(res.status, 202);
    const id = operationIdOf(res);
    gw.child.kill('SIGTERM');
    assert.equal(await gw.exited, 0);
    const store = new SqliteStore({ path: config.store });
    const op = await store.get(id);
    await store.close();
    assert.equal(op?.status, 'Running');
    assert.equal(op?.leaseOwner, null, 'released, so the next process need not wait for the lease to expire');
    assert.equal(op?.outcomeUnknown, true);
    assert.equal(op?.attempts, 1);
    await upstream.stop();
  });

  it('stops within its grace period while a client holds a half-sent request on the admin port', async () => {
    // A connection whose request has begun is not idle, so closing the port waited for it: a client
    // that sent part of its head held the shutdown until the server's header timeout (30 s), one
    // that trickled it in, until its request timeout. Past shutdownGraceMs such a connection is dropped.
    const gw = await startGateway({ upstream: 'http://127.0.0.1:1', shutdownGraceMs: 300 });
    const socket = connect(gw.adminPort, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.on('error', () => {});
    socket.write('GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n'); // the blank line never comes
    const dropped = new Promise((resolve) => socket.once('close', resolve));
    const started = Date.now();
    const stopped = gw.stop().then(() => Date.now() - started);
    const limit = new Promise<string>((resolve) =>
      setTimeout(() => resolve('still running'), 10_000).unref(),
    );
    try {
      const took = await Promise.race([stopped, limit]);
      assert.equal(typeof took, 'number', `the gateway was ${took} after 10 s`);
      await dropped;
    } finally {
      socket.destroy();
    }
  });
});
