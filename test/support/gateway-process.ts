/**
 * Spillway as a real child process (`bin/spillway.js serve`, or `worker`), for
 * crash and scale-out tests: it can be killed with SIGKILL and started again
 * on the same store. Each process gets its own config file in `dir`, so
 * several can start side by side.
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BIN } from './cli.ts';
import { spawnLogChild } from './log-child.ts';

export interface SpillwayProcess {
  adminUrl: string;
  child: ChildProcess;
  exited: Promise<number | null>;
}

export interface GatewayProcess extends SpillwayProcess {
  url: string;
}

/** `spillway serve` on loopback, ports chosen by the OS; resolves once it listens. `env` adds variables. */
export async function spawnGateway(
  dir: string,
  config: Record<string, unknown>,
  env: Record<string, string> = {},
): Promise<GatewayProcess> {
  const { child, exited, ready } = start(
    'serve',
    dir,
    { host: '127.0.0.1', port: 0, ...config },
    'listening',
    env,
  );
  const { port, adminPort } = await ready;
  return { url: `http://127.0.0.1:${port}`, adminUrl: `http://127.0.0.1:${adminPort}`, child, exited };
}

/** `spillway worker`, its admin port chosen by the OS; resolves once it replays. */
export async function spawnWorker(dir: string, config: Record<string, unknown>): Promise<SpillwayProcess> {
  const { child, exited, ready } = start('worker', dir, config, 'replaying');
  const { adminPort } = await ready;
  return { adminUrl: `http://127.0.0.1:${adminPort}`, child, exited };
}

function start(
  command: string,
  dir: string,
  config: Record<string, unknown>,
  readyMessage: string,
  env: Record<string, string> = {},
) {
  const configPath = join(dir, `${command}-${randomBytes(4).toString('hex')}.json`);
  writeFileSync(configPath, JSON.stringify({ adminPort: 0, ...config }));
  return spawnLogChild<{ port?: number; adminPort: number }>(
    command,
    [BIN, command, '--config', configPath],
    { ...process.env, SPILLWAY_LOG_LEVEL: 'info', ...env },
    (entry) => entry.msg === readyMessage,
  );
}
