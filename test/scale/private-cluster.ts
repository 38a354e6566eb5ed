/**
 * A throwaway PostgreSQL cluster of the test's own (initdb in a temp
 * directory, loopback, a free port), for tests that stop and restart the
 * server: restarting the shared server at 127.0.0.1:5432 would break every
 * other test file running beside them. It starts in well under a second.
 *
 * Needs the server binaries (SPILLWAY_TEST_PG_BINDIR, else `pg_config
 * --bindir`, else the newest /usr/lib/postgresql/<n>/bin), and, when run as
 * root, the `postgres` user to run them as (the server refuses root).
 */
import { execFile, execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { closedPort } from '../support/test-upstream.ts';

const run = promisify(execFile);

export interface PrivateCluster {
  /** postgres://postgres@127.0.0.1:<port>/postgres */
  url: string;
  /** Stops the server like a crash (`-m immediate`: no checkpoint, WAL recovery at the next start). */
  crash(): Promise<void>;
  start(): Promise<void>;
  /** Stops the server and removes its files. Safe to call twice. */
  destroy(): Promise<void>;
}

interface Tools {
  bindir: string;
  /** Prefix that runs a command as the cluster's owner (empty unless we are root). */
  asOwner: string[];
  owner?: { uid: number; gid: number };
}

/** The binaries and the user to run them as, or a reason they cannot be had. */
function findTools(): Tools | string {
  const candidates = [
    process.env.SPILLWAY_TEST_PG_BINDIR,
    (() => {
      try {
        return execFileSync('pg_config', ['--bindir'], {
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'ignore'],
        }).trim();
      } catch {
        return undefined;
      }
    })(),
    ...(() => {
      try {
        return readdirSync('/usr/lib/postgresql')
          .sort((a, b) => Number(b) - Number(a))
          .map((version) => `/usr/lib/postgresql/${version}/bin`);
      } catch {
        return [];
      }
    })(),
  ];
  const bindir = candidates.find(
    (dir) => dir && existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'pg_ctl')),
  );
  if (!bindir) return 'no PostgreSQL server binaries (initdb, pg_ctl) found; set SPILLWAY_TEST_PG_BINDIR';
  if (process.getuid?.() !== 0) return { bindir, asOwner: [] };
  try {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    return { bindir, asOwner: ['runuser', '-u', 'postgres', '--'], owner: { uid, gid } };
  } catch {
    return 'running as root and there is no postgres user to run a private server as';
  }
}

/** Resolves with a reason a private cluster cannot be started here, or false. */
export function privateClusterUnavailable(): string | false {
  const tools = findTools();
  return typeof tools === 'string' ? tools : false;
}

export async function startPrivateCluster(): Promise<PrivateCluster> {
  const tools = findTools();
  if (typeof tools === 'string') throw new Error(tools);
  const dir = mkdtempSync(join(tmpdir(), 'spillway-pg-'));
  if (tools.owner) chownSync(dir, tools.owner.uid, tools.owner.gid);
  const data = join(dir, 'data');
  const port = await closedPort(); // free now, for the cluster to take
  const tool = (name: string, args: string[]) => {
    const [command, ...prefix] = [...tools.asOwner, join(tools.bindir, name)];
    return run(command!, [...prefix, ...args], { timeout: 30_000 });
  };
  const options = `-h 127.0.0.1 -p ${port} -k ${dir} -c max_connections=40`;
  await tool('initdb', [
    '-D',
    data,
    '-A',
    'trust',
    '-U',
    'postgres',
    '-E',
    'UTF8',
    '--locale=C',
    '--no-sync',
  ]);
  const start = async () => {
    await tool('pg_ctl', [
      '-D',
      data,
      '-o',
      options,
      '-l',
      join(dir, 'server.log'),
      '-w',
      '-t',
      '20',
      'start',
    ]);
  };
  const crash = async () => {
    await tool('pg_ctl', ['-D', data, '-m', 'immediate', '-w', '-t', '20', 'stop']);
  };
  let destroyed = false;
  await start();
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    crash,
    start,
    destroy: async () => {
      if (destroyed) return;
      destroyed = true;
      await crash().catch(() => {}); // already stopped, or never started
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
