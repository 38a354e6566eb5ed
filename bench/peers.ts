/**
 * `npm run bench -- --peers`: Spillway side by side with what a team would
 * otherwise run, in one run, on the same upstream and the same load:
 *
 *   1. Sync pass-through: Spillway, a plain undici `Pool` + `node:http` proxy,
 *      `@fastify/http-proxy` (and nginx when installed), GET and POST to the
 *      healthy upstream; req/s, and requests per CPU-second of the proxy's own
 *      process (read from /proc), the figure that depends least on who else
 *      got the cores.
 *   2. Durable captures, answered 202 once stored: Spillway on SQLite and on
 *      PostgreSQL, Fastify + pg-boss (PostgreSQL), Fastify + BullMQ (a Redis
 *      started here with `appendfsync always`), and the floor of a capture
 *      on `node:http` + `node:sqlite` (peers/sqlite-floor.ts). Afterwards
 *      each store must hold exactly one operation or job per 202.
 *   3. Drain after an outage: a backlog captured while the upstream's port is
 *      closed, then the upstream comes back on that port; the time to the
 *      first replay reaching it and to the last, Spillway vs pg-boss workers.
 *      Every operation must reach the upstream exactly once.
 *   4. The Spillway gateway's event-loop delay over each of its measured runs,
 *      beside an idle process's over the same runs.
 *
 * In 1 and 2 all systems run at once and are measured in turn, `rounds`
 * times, so a change in the machine's load falls on all of them. Every
 * server is a child process on 127.0.0.1; the load is autocannon in this
 * process (load.ts). Runs are bounded in time (sync) or in requests (the
 * rest). What goes wrong is returned as problems: the bench then exits non-zero.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { type Child, childGroup, freePort } from './children.ts';
import { combineRuns, type LoadResult, median, runLoad } from './load.ts';
import type { LoopDelay } from './loop-delay.ts';
import { nginxInstalled, startNginx } from './peers/nginx.ts';
import { startRedis } from './peers/redis.ts';
import {
  BULLMQ,
  FLOOR,
  type PeerCaptureRun,
  type PeerDrainRun,
  type PeerResults,
  type PeerSyncRun,
  SPILLWAY,
  UNDICI_PROXY,
} from './report.ts';
import {
  count202,
  loadSpec,
  measureCaptures,
  measureSync,
  type Timing,
  unexpectedAnswers,
  warmUpSync,
} from './scenarios.ts';
import { postgresBenchStore, processCpuSeconds, sqliteBenchStore } from './store-check.ts';

export interface PeerSettings {
  connections: number;
  timing: Timing;
  /** PostgreSQL for Spillway's PostgreSQL store and pg-boss; undefined: those rows are skipped. */
  postgres?: string;
  /** Measured runs of each proxy and request in the sync scenario, taken in turn; their sum is reported. */
  rounds: number;
  /** Seconds of each request through each proxy before the sync scenario measures any (warmUpSync). */
  syncWarmUpSeconds: number;
  /** Requests captured during the outage of the drain scenario. */
  drainBacklog: number;
  /** How long the upstream stays down in the drain scenario, from the first capture. */
  outageSeconds: number;
  /** A temporary directory for stores and server files, removed by the caller. */
  dir: string;
  progress(message: string): void;
}

type Ports = { port: number };
type Server = Child<Ports>;

/** A system under a capture or drain run: its server, and how to read what it stored. */
interface Running {
  server: Server;
  /** CPU seconds its store's processes have spent, when they run on this machine (not SQLite: in-process). */
  storeCpuSeconds?: () => Promise<number | undefined>;
  /** Operations or jobs it has marked done (drain runs). */
  completed(): Promise<number>;
  /** Stops it (and its store's server) and resolves with the operations or jobs its store holds. */
  stop(): Promise<number>;
}

const GATEWAY_ENV = { SPILLWAY_LOG_LEVEL: 'warn' };
const POLL_MS = 50;
/** A drain that has not finished by then is reported as a problem. */
const DRAIN_LIMIT_MS = 120_000;
const url = (port: number) => `http://127.0.0.1:${port}`;

export async function benchPeers(
  settings: PeerSettings,
): Promise<PeerResults & { problems: string[]; notes: string[] }> {
  const { connections, timing, postgres, dir, progress } = settings;
  const problems: string[] = [];
  const notes: string[] = [];
  const group = childGroup();
  const schemas: string[] = [];
  const results: PeerResults = { sync: [], captures: [], drains: [] };
  const newSchema = (prefix: string) => {
    const schema = `${prefix}_${randomBytes(4).toString('hex')}`;
    schemas.push(schema);
    return schema;
  };

  const gateway = (upstream: string, store: string, extra: string[] = []) =>
    group.start<Ports>('./gateway.ts', ['--upstream', upstream, '--store', store, ...extra], GATEWAY_ENV);
  let idle: Child<unknown> | undefined;
  /** Readings just before a measured run: the server's CPU time and, for a gateway, a new event-loop window. */
  const cpuBefore = new Map<Server, number | undefined>();
  const beforeMeasured = (server: Server, gateway: boolean) => async () => {
    if (gateway)
      await Promise.all([server, ...(idle ? [idle] : [])].map((child) => child.ask('loop-delay-reset')));
    cpuBefore.set(server, processCpuSeconds(server.pid));
  };
  /** Runs `run` (which calls beforeMeasured), then reads what the server spent and, for a gateway, its event loop's delay. */
  const measured = async <L>(server: Server, gateway: boolean, run: () => Promise<L>) => {
    const load = await run();
    const cpuSeconds = difference(cpuBefore.get(server), processCpuSeconds(server.pid));
    const [loopDelay, idleLoopDelay] = gateway
      ? await Promise.all([server.ask<LoopDelay>('loop-delay'), idle?.ask<LoopDelay>('loop-delay')])
      : [undefined, undefined];
    return { load, cpuSeconds, loopDelay, idleLoopDelay };
  };

  /** Spillway on SQLite or PostgreSQL: the store is counted once the gateway has stopped. */
  const spillway = async (upstream: string, onPostgres: boolean, extra: string[] = []): Promise<Running> => {
    const store = onPostgres
      ? postgresBenchStore(postgres!, newSchema('spillway_peers'))
      : sqliteBenchStore(join(dir, `spillway-${randomBytes(4).toString('hex')}.db`));
    const server = await gateway(upstream, store.location, extra);
    return {
      server,
      ...(onPostgres ? { storeCpuSeconds: async () => (await store.usage()).cpuSeconds } : {}),
      completed: () => store.succeeded(),
      stop: async () => {
        const code = await server.stop();
        if (code !== 0) problems.push(`a Spillway gateway exited with code ${code}`);
        return store.operations();
      },
    };
  };
  /** A queue peer's child answers `count` with what its store holds; it is asked before it stops. */
  const queuePeer = (server: Server, after: () => Promise<unknown> = async () => {}) => {
    const counts = async () => {
      const answer = await server.ask<{ stored: number; completed?: number; error?: string }>('count');
      if (answer.error) throw new Error(answer.error);
      return answer;
    };
    return {
      server,
      completed: async () => (await counts()).completed ?? 0,
      stop: async () => {
        const { stored } = await counts();
        await server.stop();
        await after();
        return stored;
      },
    };
  };
  const pgBoss = async (upstream?: string): Promise<Running> => {
    const schema = newSchema('pgboss_peers');
    const server = await group.start<Ports>('./peers/pg-boss-server.ts', [
      '--postgres',
      postgres!,
      '--schema',
      schema,
      ...(upstream ? ['--upstream', upstream] : []),
    ]);
    const store = postgresBenchStore(postgres!, schema);
    return { ...queuePeer(server), storeCpuSeconds: async () => (await store.usage()).cpuSeconds };
  };
  const bullmq = async (): Promise<Running> => {
    const redis = await startRedis(group.program, dir);
    const server = await group.start<Ports>('./peers/bullmq-server.ts', [
      '--redis-port',
      String(redis.info.port),
    ]);
    return {
      ...queuePeer(server, () => redis.stop()),
      storeCpuSeconds: async () => processCpuSeconds(redis.pid),
    };
  };

  /** No Spillway at all: what a durable capture costs at least on node:http and node:sqlite. */
  const floor = async (): Promise<Running> => {
    const file = join(dir, `floor-${randomBytes(4).toString('hex')}.db`);
    return queuePeer(await group.start<Ports>('./peers/sqlite-floor.ts', ['--file', file]));
  };

  try {
    idle = await group.start<unknown>('./idle.ts', []);
    results.sync = await syncPassThrough();
    results.captures = await durableCaptures();
    results.drains = await drains();
  } catch (error) {
    problems.push(`the peer bench crashed: ${(error as Error).stack ?? String(error)}`);
  } finally {
    await group.stopAll();
    for (const schema of schemas) {
      await postgresBenchStore(postgres!, schema)
        .drop()
        .catch((error: unknown) => problems.push(`could not drop schema ${schema}: ${String(error)}`));
    }
  }
  return { ...results, problems, notes };

  async function syncPassThrough(): Promise<PeerSyncRun[]> {
    const upstream = await group.start<Ports & { listeningAt: number }>('./upstream.ts', []);
    const to = url(upstream.info.port);
    const proxies: Array<{ system: string; start: () => Promise<Server> }> = [
      { system: SPILLWAY, start: () => gateway(to, join(dir, 'pass-through.db')) },
      {
        system: UNDICI_PROXY,
        start: () => group.start<Ports>('./peers/undici-proxy.ts', ['--upstream', to]),
      },
      {
        system: '@fastify/http-proxy',
        start: () => group.start<Ports>('./peers/fastify-proxy.ts', ['--upstream', to]),
      },
    ];
    if (nginxInstalled()) {
      proxies.push({ system: 'nginx', start: () => startNginx(group.program, dir, upstream.info.port) });
    } else {
      notes.push('nginx is not installed: its pass-through rows are skipped.');
    }
    const runs: PeerSyncRun[] = [];
    // All proxies up at once (an idle one costs nothing), and each request measured on each in
    // turn, `rounds` times: a change in the machine's load then shows in every proxy's figures.
    const servers = [];
    for (const proxy of proxies) servers.push({ ...proxy, server: await proxy.start() });
    progress(`warming up every proxy with GET and POST, ${settings.syncWarmUpSeconds} s each`);
    problems.push(
      ...(await warmUpSync(
        servers.map(({ server }) => url(server.info.port)),
        connections,
        settings.syncWarmUpSeconds,
      )),
    );
    for (const method of ['GET', 'POST'] as const) {
      const rounds = new Map(servers.map(({ system }) => [system, [] as Round[]]));
      for (let round = 0; round < settings.rounds; round++) {
        for (const { system, server } of servers) {
          progress(
            `${method} through ${system}${settings.rounds > 1 ? `, round ${round + 1} of ${settings.rounds}` : ''}`,
          );
          const isGateway = system === SPILLWAY;
          rounds
            .get(system)!
            .push(
              await measured(server, isGateway, () =>
                measureSync(
                  loadSpec(url(server.info.port), method, connections),
                  { ...timing, warmUpSeconds: 0 },
                  beforeMeasured(server, isGateway),
                ),
              ),
            );
        }
      }
      for (const { system } of servers) {
        const done = rounds.get(system)!;
        const load = combineRuns(done.map((round) => round.load));
        problems.push(...unexpectedAnswers(`${method} through ${system}`, load, '200'));
        const cpuSeconds = total(done.map((round) => round.cpuSeconds));
        const loopDelay = combineLoopDelays(done.map((round) => round.loopDelay));
        const idleLoopDelay = combineLoopDelays(done.map((round) => round.idleLoopDelay));
        runs.push({
          system,
          method,
          load,
          ...(cpuSeconds === undefined ? {} : { cpuSeconds }),
          ...(loopDelay === undefined ? {} : { loopDelay }),
          ...(idleLoopDelay === undefined ? {} : { idleLoopDelay }),
        });
      }
    }
    for (const { system, server } of servers) {
      const code = await server.stop();
      if (system === SPILLWAY && code !== 0)
        problems.push(`the pass-through gateway exited with code ${code}`);
    }
    await upstream.stop();
    return runs;
  }

  async function durableCaptures(): Promise<PeerCaptureRun[]> {
    const down = url(await freePort());
    const capture = ['--replay-concurrency', '0'];
    const systems: Array<{ system: string; store: string; start: () => Promise<Running> }> = [
      { system: SPILLWAY, store: 'SQLite', start: () => spillway(down, false, capture) },
    ];
    if (postgres) {
      systems.push(
        { system: SPILLWAY, store: 'PostgreSQL', start: () => spillway(down, true, capture) },
        { system: 'Fastify + pg-boss', store: 'PostgreSQL', start: () => pgBoss() },
      );
    }
    systems.push(
      { system: BULLMQ, store: 'Redis, appendfsync always', start: bullmq },
      { system: FLOOR, store: 'SQLite', start: floor },
    );

    // As for the sync runs: all systems up at once, measured in turn, `rounds` times. Each round
    // sizes its run from a short warm-up of its own, at the machine's load of the moment.
    const started = [];
    for (const system of systems) started.push({ ...system, running: await system.start() });
    const rounds = new Map(
      started.map(({ running }) => [running, [] as Array<Round & { storeCpuSeconds?: number }>]),
    );
    const answered202 = new Map(started.map(({ running }) => [running, 0]));
    for (let round = 0; round < settings.rounds; round++) {
      for (const { system, store, running } of started) {
        const label = `${system} (${store})`;
        progress(
          `captures: ${label}${settings.rounds > 1 ? `, round ${round + 1} of ${settings.rounds}` : ''}`,
        );
        const { server } = running;
        const isGateway = system === SPILLWAY;
        let storeBefore: number | undefined;
        const { load: captures, ...readings } = await measured(server, isGateway, () =>
          measureCaptures(
            [loadSpec(url(server.info.port), 'POST', connections)],
            round === 0 ? timing : { ...timing, warmUpSeconds: 0 },
            async () => {
              await beforeMeasured(server, isGateway)();
              storeBefore = await running.storeCpuSeconds?.();
            },
          ),
        );
        const storeCpuSeconds = difference(storeBefore, await running.storeCpuSeconds?.());
        for (const run of [...captures.warmUp, captures.measured]) {
          problems.push(...unexpectedAnswers(`captures (${label})`, run, '202'));
        }
        if (captures.measured.answered !== captures.planned) {
          problems.push(
            `captures (${label}): ${captures.measured.answered} of ${captures.planned} requests answered`,
          );
        }
        answered202.set(
          running,
          answered202.get(running)! + count202([...captures.warmUp, captures.measured]),
        );
        rounds.get(running)!.push({
          load: captures.measured,
          ...readings,
          ...(storeCpuSeconds === undefined ? {} : { storeCpuSeconds }),
        });
      }
    }

    const runs: PeerCaptureRun[] = [];
    for (const { system, store, running } of started) {
      const stored = await running.stop();
      const answers202 = answered202.get(running)!;
      if (stored !== answers202) {
        problems.push(
          `captures lost or invented (${system}, ${store}): ${stored} stored, ${answers202} answers 202`,
        );
      }
      const done = rounds.get(running)!;
      const cpuSeconds = total(done.map((round) => round.cpuSeconds));
      const storeCpuSeconds = total(done.map((round) => round.storeCpuSeconds));
      const loopDelay = combineLoopDelays(done.map((round) => round.loopDelay));
      const idleLoopDelay = combineLoopDelays(done.map((round) => round.idleLoopDelay));
      runs.push({
        system,
        store,
        load: combineRuns(done.map((round) => round.load)),
        answers202,
        stored,
        ...(cpuSeconds === undefined ? {} : { cpuSeconds }),
        ...(storeCpuSeconds === undefined ? {} : { storeCpuSeconds }),
        ...(loopDelay === undefined ? {} : { loopDelay }),
        ...(idleLoopDelay === undefined ? {} : { idleLoopDelay }),
      });
    }
    return runs;
  }

  async function drains(): Promise<PeerDrainRun[]> {
    const runs = [await drain(SPILLWAY, (upstream) => spillway(upstream, false))];
    if (postgres) runs.push(await drain('pg-boss workers', (upstream) => pgBoss(upstream)));
    return runs;
  }

  /**
   * The upstream's port is closed while `drainBacklog` requests are captured;
   * once `outageSeconds` have passed since the first, the upstream starts on
   * that port, and the run lasts until every captured request has reached it.
   */
  async function drain(system: string, start: (upstream: string) => Promise<Running>): Promise<PeerDrainRun> {
    const port = await freePort();
    const running = await start(url(port));
    progress(
      `drain: ${system}, ${settings.drainBacklog.toLocaleString('en-US')} captured during a ${settings.outageSeconds} s outage`,
    );
    const outageStart = performance.now();
    const load = await runLoad(loadSpec(url(running.server.info.port), 'POST', connections), {
      amount: settings.drainBacklog,
    });
    problems.push(...unexpectedAnswers(`drain captures (${system})`, load, '202'));
    const backlog = load.statuses['202'] ?? 0;
    await sleep(outageStart + settings.outageSeconds * 1000 - performance.now());
    const upstream = await group.start<Ports & { listeningAt: number }>('./upstream.ts', [
      '--port',
      String(port),
    ]);
    const outageSeconds = (performance.now() - outageStart) / 1000;
    type Count = { posts: number; firstPostAt?: number; lastPostAt?: number };
    let delivered: Count = await upstream.ask<Count>('count');
    const deadline = performance.now() + DRAIN_LIMIT_MS;
    while (delivered.posts < backlog && performance.now() < deadline) {
      await sleep(POLL_MS);
      delivered = await upstream.ask<Count>('count');
    }
    // The store records an operation done just after the upstream answered it.
    let completed = await running.completed();
    while (completed < backlog && performance.now() < deadline) {
      await sleep(POLL_MS);
      completed = await running.completed();
    }
    await running.stop();
    await upstream.stop();
    if (delivered.posts !== backlog || completed !== backlog) {
      problems.push(
        `drain (${system}): ${backlog} captured, ${delivered.posts} delivered to the upstream, ${completed} recorded done`,
      );
    }
    const since = (at: number | undefined) =>
      at === undefined ? undefined : (at - upstream.info.listeningAt) / 1000;
    const firstReplaySeconds = since(delivered.firstPostAt);
    const drainSeconds = since(delivered.lastPostAt);
    return {
      system,
      backlog,
      outageSeconds,
      ...(firstReplaySeconds === undefined ? {} : { firstReplaySeconds }),
      ...(drainSeconds === undefined ? {} : { drainSeconds }),
      delivered: delivered.posts,
      completed,
    };
  }
}

type Round = {
  load: LoadResult;
  cpuSeconds: number | undefined;
  loopDelay: LoopDelay | undefined;
  idleLoopDelay: LoopDelay | undefined;
};

/** The sum, or undefined if any reading is missing. */
const total = (values: Array<number | undefined>) =>
  values.some((value) => value === undefined) ? undefined : values.reduce((a: number, b) => a + b!, 0);

/** Rounds' event-loop delays as one: the median of their percentiles, the largest maximum. */
function combineLoopDelays(delays: Array<LoopDelay | undefined>): LoopDelay | undefined {
  const known = delays.filter((delay) => delay !== undefined);
  if (known.length === 0) return undefined;
  return {
    p50Ms: median(known.map((delay) => delay.p50Ms)),
    p99Ms: median(known.map((delay) => delay.p99Ms)),
    maxMs: Math.max(...known.map((delay) => delay.maxMs)),
    samples: known.reduce((sum, delay) => sum + delay.samples, 0),
  };
}

const difference = (before: number | undefined, after: number | undefined) =>
  before === undefined || after === undefined ? undefined : after - before;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
