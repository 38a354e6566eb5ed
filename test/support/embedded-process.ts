/**
 * test/support/embedded-app.ts as a real child process, for crash tests: it
 * can be killed with SIGKILL and started again on the same store.
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnLogChild } from './log-child.ts';

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
  const { child, exited, ready } = spawnLogChild<{ port: number }>(
    'the app',
    [APP, path],
    process.env,
    (entry) => entry.msg === 'listening' && entry.port !== undefined,
  );
  const { port } = await ready;
  return { url: `http://127.0.0.1:${port}`, child, exited };
}
