/**
 * Runs each server of the bench (upstream, gateway) in its own Node process,
 * so it has an event loop of its own, apart from the load generator. A child
 * script sends `{ ready: {...} }` over IPC once it listens, and exits on
 * SIGTERM. Children still running when the bench exits are killed.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export interface Child<Info> {
  /** What the child reported when it became ready (its ports). */
  info: Info;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code (null if killed). */
  stop(graceMs?: number): Promise<number | null>;
  /** Sends `message` over IPC; resolves with the child's next message. */
  ask<Answer>(message: string): Promise<Answer>;
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export function startChild<Info>(
  script: string,
  args: string[],
  env: Record<string, string> = {},
  readyTimeoutMs = 15_000,
): Promise<Child<Info>> {
  const path = fileURLToPath(new URL(script, import.meta.url));
  const child = spawn(process.execPath, [path, ...args], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, ...env },
  });
  running.add(child);
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      running.delete(child);
      resolve(code);
    });
  });

  const stop = async (graceMs = 15_000): Promise<number | null> => {
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    const code = await exited;
    clearTimeout(timer);
    return code;
  };

  const ask = <Answer>(message: string) =>
    new Promise<Answer>((resolve) => {
      child.once('message', (answer: Answer) => resolve(answer));
      child.send(message);
    });

  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      void stop(0);
      reject(new Error(`${script} did not report ready within ${readyTimeoutMs} ms`));
    }, readyTimeoutMs);
    child.once('message', (message: { ready?: Info }) => {
      clearTimeout(timer);
      if (message.ready === undefined) reject(new Error(`${script} sent an unexpected first message`));
      else resolve({ info: message.ready, stop, ask });
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${script} exited with code ${code} before it was ready`));
    });
  });
}
