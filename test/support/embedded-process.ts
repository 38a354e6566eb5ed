/**
 * test/support/embedded-app.ts as a real child process, for crash tests: it
 * can be killed with SIGKILL and started again on the same store.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const APP = new URL('./embedded-app.ts', import.meta.url).pathname;

export interface AppProcess {
  url: string;
  child: ChildProcess;
  exited: Promise<number | null>;
}

/** Starts the app with `settings` (see embedded-app.ts); resolves once it listens. */
export async function spawnEmbeddedApp(dir: string, settings: Record<string, unknown>): Promise<AppProcess> {
  const path = join(dir, `app-${randomBytes(4).toString('hex')}.json`);
  writeFileSync(path, JSON.stringify(settings));
  const child = spawn(process.execPath, [APP, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const lines = createInterface({ input: child.stdout! });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the app did not start within 10 s')), 10_000);
    child.once('exit', (code) => reject(new Error(`the app exited with ${code} before it listened`)));
    lines.on('line', (line) => {
      let entry: { msg?: string; port?: number };
      try {
        entry = JSON.parse(line);
      } catch {
        return; // not a log line
      }
      if (entry.msg === 'listening' && entry.port !== undefined) {
        clearTimeout(timer);
        resolve(entry.port);
      }
    });
  });
  return { url: `http://127.0.0.1:${port}`, child, exited };
}
