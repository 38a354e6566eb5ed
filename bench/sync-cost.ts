/**
 * `npm run bench:sync`: only the sync pass-through of the peer bench, Spillway
 * against the plain undici proxy (bench/peers/undici-proxy.ts), for iterating
 * on the sync path's cost without the four minutes of `--peers`. Both proxies
 * run at once on one upstream and are measured in turn, `rounds` times; the
 * figure is requests per CPU-second of each proxy's own process, and the
 * ratio Spillway/undici within this run.
 *
 *   npm run bench:sync [-- --seconds N] [--rounds N] [--connections N] [--method GET|POST] [--cpu-prof DIR] [--loaded-peer]
 *
 * `--loaded-peer` adds a third proxy: the same bare undici proxy, in a process
 * that also runs an idle Spillway gateway (nothing calls it). Its cost against
 * the bare proxy is what the process a gateway needs costs each request, apart
 * from anything Spillway's request path does.
 *
 * `--cpu-prof DIR` starts the gateway with `--cpu-prof` (a .cpuprofile in DIR
 * when it stops, the undici proxy's in DIR/undici), to see where the time goes;
 * with `--method`, the profile holds that method's requests only.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { childGroup } from './children.ts';
import { combineRuns, type LoadResult } from './load.ts';
import { loadSpec, measureSync, SYNC_WARM_UP_SECONDS, unexpectedAnswers, warmUpSync } from './scenarios.ts';
import { processCpuSeconds } from './store-check.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '3' },
    rounds: { type: 'string', default: '3' },
    connections: { type: 'string', default: '32' },
    method: { type: 'string', multiple: true, default: ['GET', 'POST'] },
    'cpu-prof': { type: 'string' },
    'loaded-peer': { type: 'boolean', default: false },
  },
});
const methods = values.method.map((m) => m.toUpperCase());
const unknownMethod = methods.find((m) => m !== 'GET' && m !== 'POST');
if (unknownMethod) throw new Error(`--method ${unknownMethod}: GET or POST`);
const seconds = Number(values.seconds);
const rounds = Number(values.rounds);
const connections = Number(values.connections);
const url = (port: number) => `http://127.0.0.1:${port}`;
const dir = mkdtempSync(join(tmpdir(), 'spillway-sync-cost-'));
const group = childGroup();
const problems: string[] = [];
type Ports = { port: number };

try {
  const upstream = await group.start<Ports>('./upstream.ts', []);
  const to = url(upstream.info.port);
  const profile = values['cpu-prof'];
  const gatewayEnv: Record<string, string> = {
    SPILLWAY_LOG_LEVEL: 'warn',
    ...(profile ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${resolve(profile)}` } : {}),
  };
  const proxies = [
    {
      system: 'Spillway',
      server: await group.start<Ports>(
        './gateway.ts',
        ['--upstream', to, '--store', join(dir, 'pass-through.db')],
        gatewayEnv,
      ),
    },
    {
      system: 'undici proxy',
      server: await group.start<Ports>(
        './peers/undici-proxy.ts',
        ['--upstream', to],
        profile ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${resolve(profile, 'undici')}` } : {},
      ),
    },
  ];
  if (values['loaded-peer'])
    proxies.push({
      system: 'undici, loaded',
      server: await group.start<Ports>('./peers/undici-proxy.ts', ['--upstream', to, '--load-spillway'], {
        SPILLWAY_LOG_LEVEL: 'warn',
      }),
    });
  console.log(
    `load average before: ${loadavg()
      .map((n) => n.toFixed(2))
      .join(' ')}`,
  );
  problems.push(
    ...(await warmUpSync(
      proxies.map(({ server }) => url(server.info.port)),
      connections,
      SYNC_WARM_UP_SECONDS,
    )),
  );
  for (const method of methods as ('GET' | 'POST')[]) {
    const perCpu = new Map<string, { loads: LoadResult[]; cpu: number }>();
    for (let round = 0; round < rounds; round++) {
      for (const { system, server } of proxies) {
        let before = 0;
        const load = await measureSync(
          loadSpec(url(server.info.port), method, connections),
          { warmUpSeconds: 0, seconds },
          async () => {
            before = processCpuSeconds(server.pid) ?? 0;
          },
        );
        const cpu = (processCpuSeconds(server.pid) ?? 0) - before;
        const entry = perCpu.get(system) ?? { loads: [], cpu: 0 };
        entry.loads.push(load);
        entry.cpu += cpu;
        perCpu.set(system, entry);
      }
    }
    const figures = [...perCpu].map(([system, { loads, cpu }]) => {
      const load = combineRuns(loads);
      problems.push(...unexpectedAnswers(`${method} through ${system}`, load, '200'));
      return { system, perSecond: load.perSecond, perCpuSecond: load.answered / cpu };
    });
    for (const { system, perSecond, perCpuSecond } of figures) {
      console.log(
        `${method} ${system.padEnd(14)} ${perSecond.toFixed(0).padStart(7)} req/s ${perCpuSecond.toFixed(0).padStart(7)} req/CPU-s`,
      );
    }
    const [spillway, bare, loaded] = figures;
    console.log(
      `${method} ratio Spillway/undici per CPU-second: ${(spillway!.perCpuSecond / bare!.perCpuSecond).toFixed(2)}x`,
    );
    if (loaded)
      console.log(
        `${method} ratio loaded undici/undici per CPU-second: ${(loaded.perCpuSecond / bare!.perCpuSecond).toFixed(2)}x; Spillway/loaded undici: ${(spillway!.perCpuSecond / loaded.perCpuSecond).toFixed(2)}x`,
      );
  }
  console.log(
    `load average after: ${loadavg()
      .map((n) => n.toFixed(2))
      .join(' ')}`,
  );
} finally {
  await group.stopAll();
  rmSync(dir, { recursive: true, force: true });
}
if (problems.length > 0) {
  console.error(problems.join('\n'));
  process.exitCode = 1;
}
