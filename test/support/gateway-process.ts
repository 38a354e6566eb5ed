/**
 * Spillway as a real child process (`bin/spillway.js serve`), for crash tests:
 * it can be killed with SIGKILL and started again on the same store file.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const BIN = new URL('../../bin/spillway.js', import.meta.url).pathname;

export interface GatewayProcess {
  url: string;
  adminUrl: string;
  child: ChildProcess;
  exited: Promise<number | null>;
}

export async function spawnGateway(dir: string, config: Record<string, unknown>): Promise<GatewayProcess> {
  const configPath = join(dir, 'config.json');
  writeFileSync(configPath, JSON.stringify({ host: '127.0.0.1', port: 0, adminPort: 0, ...config }));
  const child = spawn(process.execPath, [BIN, 'serve', '--config', configPath], {
    env: { ...process.env, SPILLWAY_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const lines = createInterface({ input: child.stdout! });
  const listening = await new Promise<{ port: number; adminPort: number }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('gateway did not start within 10 s')), 10_000);
    child.once('exit', (code) => reject(new Error(`gateway exited with ${code} before listening`)));
    lines.on('line', (line) => {
      const entry = JSON.parse(line) as { msg?: string; port?: number; adminPort?: number };
      if (entry.msg === 'listening') {
        clearTimeout(timer);
        resolve({ port: entry.port!, adminPort: entry.adminPort! });
      }
    });
  });
  return {
    url: `http://127.0.0.1:${listening.port}`,
    adminUrl: `http://127.0.0.1:${listening.adminPort}`,
    child,
    exited,
  };
}
