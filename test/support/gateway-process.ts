/**
 * Spillway as a real child process (`bin/spillway.js serve`, or `worker`), for
 * crash and scale-out tests: it can be killed with SIGKILL and started again
 * on the same store. Each process gets its own config file in `dir`, so
 * several can start side by side.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { BIN } from './cli.ts';

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
  const child = spawn(process.execPath, [BIN, command, '--config', configPath], {
    env: { ...process.env, SPILLWAY_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const lines = createInterface({ input: child.stdout! });
  const ready = new Promise<{ port?: number; adminPort: number }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${command} did not start within 10 s`)), 10_000);
    child.once('exit', (code) => reject(new Error(`${command} exited with ${code} before it was ready`)));
    lines.on('line', (line) => {
      let entry: { msg?: string; port?: number; adminPort: number };
      try {
        entry = JSON.parse(line);
      } catch {
        return; // not a log line
      }
      if (entry.msg === readyMessage) {
        clearTimeout(timer);
        resolve(entry);
      }
    });
  });
  return { child, exited, ready };
}
