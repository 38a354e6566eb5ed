/**
 * Runs each server of the bench (upstream, gateway, peer) in its own process,
 * so it has an event loop (and a CPU account) of its own, apart from the load
 * generator. A Node child script sends `{ ready: {...} }` over IPC once it
 * listens, and exits on SIGTERM; a server that is not ours (redis-server,
 * nginx) is ready once its port accepts a connection. Children still running
 * when the bench exits are killed.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { connect, createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

export interface Child<Info> {
  /** What the child reported when it became ready (its ports). */
  info: Info;
  /** Its process id, to read its CPU time from /proc. */
  pid: number;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code (null if killed). */
  stop(graceMs?: number): Promise<number | null>;
  /** Sends `message` over IPC; resolves with the child's next message (Node children only). */
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
  const { child, exited, stop } = spawnTracked(process.execPath, [path, ...args], env, 'ipc');

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
      else resolve({ info: message.ready, pid: child.pid!, stop, ask });
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${script} exited with code ${code} before it was ready`));
    });
  });
}

/**
 * Starts a server program that is not a Node script of ours, told to listen on
 * 127.0.0.1:`port`; ready once that port accepts a connection.
 */
export async function startProgram(
  command: string,
  args: string[],
  port: number,
  readyTimeoutMs = 15_000,
): Promise<Child<{ port: number }>> {
  const { child, exited, stop } = spawnTracked(command, args, {}, 'ignore');
  let exitCode: number | null | undefined;
  void exited.then((code) => {
    exitCode = code;
  });
  const deadline = Date.now() + readyTimeoutMs;
  while (!(await accepts(port))) {
    if (exitCode !== undefined)
      throw new Error(`${command} exited with code ${exitCode} before it was ready`);
    if (Date.now() > deadline) {
      await stop(0);
      throw new Error(`${command} did not listen on port ${port} within ${readyTimeoutMs} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const ask = () => Promise.reject(new Error(`${command} does not answer over IPC`));
  return { info: { port }, pid: child.pid!, stop, ask };
}

/** Children started through it are stopped together at the end of a run. */
export function childGroup() {
  const children: Child<unknown>[] = [];
  const track = <C extends Child<unknown>>(child: C) => {
    children.push(child);
    return child;
  };
  return {
    start: async <Info>(script: string, args: string[], env?: Record<string, string>) =>
      track(await startChild<Info>(script, args, env)),
    program: async (command: string, args: string[], port: number) =>
      track(await startProgram(command, args, port)),
    stopAll: async (graceMs = 5_000) => {
      await Promise.all(children.map((child) => child.stop(graceMs)));
    },
  };
}

/** A loopback port nothing listens on: bound by the OS, then released. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

function spawnTracked(command: string, args: string[], env: Record<string, string>, ipc: 'ipc' | 'ignore') {
  const child = spawn(command, args, {
    // The children's output (log lines) goes to stderr, with the progress lines: stdout is the tables'.
    stdio: ['ignore', 2, 2, ipc],
    env: { ...process.env, ...env },
  });
  running.add(child);
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      running.delete(child);
      resolve(code);
    });
    // Spawning failed (no such program): no 'exit' follows.
    child.once('error', (error) => {
      running.delete(child);
      process.stderr.write(`· ${command}: ${error.message}\n`);
      resolve(null);
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
  return { child, exited, stop };
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
