/**
 * Running the real `bin/spillway.js` in a child process, as a user would,
 * for the command-line tests. SPILLWAY_ADMIN_URL from the test's own
 * environment is dropped unless the test sets it, so every run is explicit.
 */
import { execFile } from 'node:child_process';

export const BIN = new URL('../../bin/spillway.js', import.meta.url).pathname;

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export function spillway(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    const environment = { ...process.env, ...env };
    if (!('SPILLWAY_ADMIN_URL' in env)) delete environment.SPILLWAY_ADMIN_URL;
    execFile(
      process.execPath,
      [BIN, ...args],
      { env: environment, timeout: 20_000 },
      (error, stdout, stderr) =>
        resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}
