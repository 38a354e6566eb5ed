/**
 * The Redis the BullMQ peer writes to, started by the bench itself so its
 * durability is known: `appendonly yes` with `appendfsync always` (each write
 * fsynced to the append-only file before Redis answers, as durable as
 * Spillway's SQLite `synchronous=FULL` or PostgreSQL's `synchronous_commit=on`),
 * no RDB snapshots, its files in a directory of the bench's temporary one.
 * Loopback only, on a free port.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Child, freePort } from '../children.ts';

export const REDIS_SERVER = 'redis-server';

export async function startRedis(
  program: (command: string, args: string[], port: number) => Promise<Child<{ port: number }>>,
  dir: string,
): Promise<Child<{ port: number }>> {
  const port = await freePort();
  const data = join(dir, 'redis');
  mkdirSync(data, { recursive: true });
  return program(
    REDIS_SERVER,
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--appendonly',
      'yes',
      '--appendfsync',
      'always',
      '--save',
      '',
      '--dir',
      data,
      '--logfile',
      join(data, 'redis.log'),
      '--loglevel',
      'warning',
    ],
    port,
  );
}
