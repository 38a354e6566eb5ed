/**
 * A child process that logs JSON lines, started for a test and waited on until
 * it logs that it is ready. Every child is killed when the test file's process
 * exits, and one that never becomes ready is killed at once: a failed start
 * must not leave a server holding ports and the runner waiting on its pipes.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** How long a child may take to become ready; generous, as CI machines run several suites at once. */
const START_BUDGET_MS = 30_000;

export interface LogChild<Ready> {
  child: ChildProcess;
  exited: Promise<number | null>;
  ready: Promise<Ready>;
}

/**
 * Runs `node args…` with `env`, resolving `ready` with the first log line that
 * `isReady` accepts. `label` names the child in errors.
 */
export function spawnLogChild<Ready extends object>(
  label: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  isReady: (entry: Record<string, unknown>) => boolean,
): LogChild<Ready> {
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'inherit'] });
  running.add(child);
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      running.delete(child);
      resolve(code);
    }),
  );
  const lines = createInterface({ input: child.stdout! });
  const ready = new Promise<Ready>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${label} did not start within ${START_BUDGET_MS / 1000} s`));
    }, START_BUDGET_MS);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${label} exited with ${code} before it was ready`));
    });
    lines.on('line', (line) => {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line);
      } catch {
        return; // not a log line
      }
      if (isReady(entry)) {
        clearTimeout(timer);
        resolve(entry as Ready);
      }
    });
  });
  return { child, exited, ready };
}
