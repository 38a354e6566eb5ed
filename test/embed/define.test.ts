/**
 * Function-level failover: spillway.define on a real SQLite store, its runs
 * replayed by the real replay workers. A sync result; capture when the
 * function fails and when it outlives the budget (adoption); exactly-once
 * effects when the function honours the idempotency key; dead letters with
 * the last error; restart; the operation on the monitor and SSE.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { describe, it } from 'node:test';
import { ConfigError } from '../../src/config/config.ts';
import { type FunctionContext, NotProcessedError } from '../../src/embed/functions.ts';
import { embedded } from '../support/embedded.ts';
import { jsonOf, tempDir } from '../support/harness.ts';

/** Waits until `check()` holds, or fails after `ms`. */
async function until(check: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    assert.ok(Date.now() < deadline, `still not: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('spillway.define', () => {
  it('answers done with the value when the function returns within the budget', async () => {
    await using spillway = embedded({});
    const seen: FunctionContext[] = [];
    const add = spillway.define('add', async (input: { a: number; b: number }, ctx) => {
      seen.push(ctx);
      return { sum: input.a + input.b };
    });
    assert.deepEqual(await add.call({ a: 2, b: 3 }), { status: 'done', value: { sum: 5 } });
    assert.equal(seen[0]?.attempt, 1);
    assert.match(seen[0]?.idempotencyKey ?? '', /^spillway-/);
    const nothing = spillway.define('nothing', async () => undefined);
    assert.deepEqual(await nothing.call(null), { status: 'done', value: undefined });
  });

  it('captures the input when the function did nothing (NotProcessedError), and runs it again with the same key', async () => {
    await using spillway = embedded({});
    const runs: Array<{ input: unknown; ctx: FunctionContext }> = [];
    let down = true;
    const charge = spillway.define('charge', async (input: { amount: number }, ctx) => {
      runs.push({ input, ctx });
      if (down) throw new NotProcessedError('provider unreachable');
      return { charged: input.amount };
    });
    const accepted = await charge.call({ amount: 42 });
    assert.equal(accepted.status, 'accepted');
    const id = accepted.status === 'accepted' ? accepted.id : '';
    assert.equal((await charge.result(id))?.status, 'pending');
    await until(() => runs.length >= 2, 'a replay while still down');
    down = false;
    await until(async () => (await charge.result(id))?.status === 'done', 'done');
    assert.deepEqual(await charge.result(id), { status: 'done', value: { charged: 42 } });
    assert.ok(
      runs.every((r) => JSON.stringify(r.input) === '{"amount":42}'),
      'every run gets the stored input',
    );
    assert.deepEqual(
      runs.map((r) => r.ctx.attempt),
      runs.map((_, i) => i + 1),
      'ctx.attempt counts',
    );
    assert.equal(new Set(runs.map((r) => r.ctx.idempotencyKey)).size, 1, 'one key on every run');
    // The monitor of /_spillway/ shows the same operation.
    const monitor = await spillway.json(`/_spillway/operations/${id}`);
    assert.equal(monitor.status, 'Succeeded');
    assert.equal(monitor.attempts, runs.length);
    const result = await spillway.fetch(new Request(`http://app.test/_spillway/operations/${id}/result`));
    assert.deepEqual(await result.json(), { charged: 42 });
  });

  it('a call that outlives the budget is accepted, and the run carries on and completes it (adoption)', async () => {
    await using spillway = embedded({});
    let finish: () => void = () => {};
    let runs = 0;
    const slow = spillway.define(
      'slow',
      async (input: string) => {
        runs++;
        await new Promise<void>((resolve) => {
          finish = resolve;
        });
        return `${input} done`;
      },
      { budgetMs: 100 },
    );
    const accepted = await slow.call('job');
    assert.equal(accepted.status, 'accepted');
    const id = accepted.status === 'accepted' ? accepted.id : '';
    assert.equal((await spillway.json(`/_spillway/operations/${id}`)).status, 'Running');
    finish();
    await until(async () => (await slow.result(id))?.status === 'done', 'done');
    assert.deepEqual(await slow.result(id), { status: 'done', value: 'job done' });
    assert.equal(runs, 1, 'the adopted run is not run again');
  });

  it('exactly once with the idempotency key: a run whose answer was lost runs again, and the dependency dedupes', async () => {
    await using spillway = embedded({});
    // A dependency that deduplicates by key, as a payment provider does.
    const charges = new Map<string, number>();
    let calls = 0;
    const charge = spillway.define(
      'charge',
      async (input: { amount: number }, ctx) => {
        calls++;
        if (!charges.has(ctx.idempotencyKey)) charges.set(ctx.idempotencyKey, input.amount);
        if (ctx.attempt === 1) throw new Error('the connection broke after the charge');
        return { charged: charges.get(ctx.idempotencyKey) };
      },
      { honoursIdempotencyKey: true },
    );
    const accepted = await charge.call({ amount: 7 }, { idempotencyKey: 'order-7' });
    assert.equal(accepted.status, 'accepted');
    const id = accepted.status === 'accepted' ? accepted.id : '';
    await until(async () => (await charge.result(id))?.status === 'done', 'done');
    assert.deepEqual(await charge.result(id), { status: 'done', value: { charged: 7 } });
    assert.equal(calls, 2);
    assert.deepEqual([...charges], [['order-7', 7]], 'charged once');
  });

  it('without honoursIdempotencyKey, a run that threw is never run again: dead-lettered, outcome unknown', async () => {
    await using spillway = embedded({});
    let calls = 0;
    const charge = spillway.define('charge', async () => {
      calls++;
      throw new Error('timeout talking to the provider');
    });
    const accepted = await charge.call({ amount: 1 });
    assert.equal(accepted.status, 'accepted');
    const id = accepted.status === 'accepted' ? accepted.id : '';
    await until(async () => (await charge.result(id))?.status === 'failed', 'failed');
    const outcome = await charge.result(id);
    assert.equal(outcome?.status, 'failed');
    assert.equal(outcome?.status === 'failed' && outcome.error.code, 'outcome-unknown');
    assert.equal(outcome?.status === 'failed' && outcome.deadLettered, true);
    assert.equal(calls, 1);
  });

  it('dead-letters after maxAttempts with the last error', async () => {
    await using spillway = embedded({});
    let calls = 0;
    const flaky = spillway.define(
      'flaky',
      async () => {
        calls++;
        throw new NotProcessedError(`refused #${calls}`);
      },
      { maxAttempts: 3, backoff: { initialMs: 10, maxMs: 20 } },
    );
    const accepted = await flaky.call({});
    const id = accepted.status === 'accepted' ? accepted.id : '';
    await until(async () => (await flaky.result(id))?.status === 'failed', 'failed');
    const outcome = await flaky.result(id);
    assert.ok(outcome?.status === 'failed');
    assert.equal(outcome.error.code, 'attempts-exhausted');
    assert.equal(outcome.deadLettered, true);
    assert.equal(outcome.attempts, 3);
    assert.match(outcome.error.message, /refused #3/);
    assert.equal(calls, 3);
  });

  it('after a restart, the process that defines the same name runs the stored calls', async (t) => {
    const dir = tempDir();
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const first = embedded({ config: { replay: { concurrency: 0 } } }, dir);
    const before = first.define('mail', async () => {
      throw new NotProcessedError('smtp down');
    });
    const accepted = await before.call({ to: 'a@example.com' });
    assert.equal(accepted.status, 'accepted');
    const id = accepted.status === 'accepted' ? accepted.id : '';
    await first.close();

    await using second = embedded({}, dir);
    const sent: unknown[] = [];
    const mail = second.define('mail', async (input: { to: string }) => {
      sent.push(input);
      return 'sent';
    });
    await until(async () => (await mail.result(id))?.status === 'done', 'done after the restart');
    assert.deepEqual(sent, [{ to: 'a@example.com' }]);
    // A function of another name does not see it.
    const other = second.define('other', async () => 'x');
    assert.equal(await other.result(id), undefined);
  });

  it('a process that does not define the function leaves its calls alone', async (t) => {
    const dir = tempDir();
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const first = embedded({ config: { replay: { concurrency: 0 } } }, dir);
    const accepted = await first
      .define('report', async () => {
        throw new NotProcessedError('later');
      })
      .call({});
    const id = accepted.status === 'accepted' ? accepted.id : '';
    await first.close();
    // An app with an upstream and no function of that name: its workers lease nothing of it.
    let upstreamCalls = 0;
    await using second = embedded(
      {
        upstream: async () => {
          upstreamCalls++;
          return new Response('ok');
        },
      },
      dir,
    );
    // A request captured after the call, replayed to completion: had the call been leasable, the same
    // lease (oldest first) would have taken it before.
    const later = await second.fetch(
      new Request('http://app.test/x', { method: 'POST', headers: { prefer: 'respond-async, wait=0' } }),
    );
    assert.equal(later.status, 202);
    const laterId = (await jsonOf(later)).id as string;
    assert.equal((await second.settled(laterId)).status, 'Succeeded');
    assert.equal(upstreamCalls, 1);
    const monitor = await second.json(`/_spillway/operations/${id}`);
    assert.deepEqual([monitor.status, monitor.attempts], ['NotStarted', 1]);
  });

  it('SSE follows a call to its end', async () => {
    await using spillway = embedded({});
    let down = true;
    const job = spillway.define('job', async () => {
      if (down) throw new NotProcessedError('busy');
      return 1;
    });
    const accepted = await job.call({});
    const id = accepted.status === 'accepted' ? accepted.id : '';
    const stream = await spillway.fetch(new Request(`http://app.test/_spillway/operations/${id}/events`));
    down = false;
    const text = await stream.text(); // the stream ends after the terminal event
    assert.match(text, /"status":"Succeeded"/);
  });

  it('refuses bad names, unknown options, a second definition and input that is not JSON', async () => {
    await using spillway = embedded({});
    assert.throws(() => spillway.define('a b', async () => 1), ConfigError);
    assert.throws(
      () => spillway.define('x', async () => 1, { retries: 3 } as never),
      /Unknown option "define\("x"\) options\.retries"/,
    );
    assert.throws(
      () => spillway.define('x', async () => 1, { budgetMs: -1 }),
      /define\("x"\) options\.budgetMs/,
    );
    spillway.define('twice', async () => 1);
    assert.throws(() => spillway.define('twice', async () => 1), /already defined/);
    const f = spillway.define('f', async () => 1);
    await assert.rejects(f.call(undefined), /must be JSON/);
    assert.throws(() => embedded({ config: { routes: [{ name: 'fn:x', match: 'GET /x' }] } }), /fn:/);
  });

  it('without an upstream, only /_spillway/ is served', async () => {
    await using spillway = embedded({});
    const res = await spillway.fetch(new Request('http://app.test/payments'));
    assert.equal(res.status, 404);
    assert.equal((await jsonOf(res)).code, 'not-found');
  });
});
