/**
 * Peer child process: the floor of a durable capture in Node.js with
 * `node:sqlite`, what no capture server built on them can beat by much. A
 * `node:http` server reads each request's body, hands method, path, raw
 * headers and body to a worker thread, and answers 202 once that thread's
 * batch has committed. The thread group-commits everything that arrived
 * while the previous batch committed into one table with one index (its
 * primary key), in WAL mode with `synchronous=FULL`, so a capture is fsynced
 * before it is acknowledged, and the event loop never waits on the disk:
 * Spillway's own design (src/store/sqlite/store-thread.ts), without any of
 * Spillway (routes, limits, ids that sort by time, indexes for the replay
 * order, events, counts, metrics).
 *
 * It shows how far issue 11's capture target (1.5× Fastify + BullMQ) is
 * from what the platform allows on the machine the bench runs on.
 *
 *   node bench/peers/sqlite-floor.ts --file PATH
 *
 * Over IPC, `'count'` answers `{ stored }`: the rows in the table.
 * SIGTERM exits 0 once the thread has closed the file.
 */
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DatabaseSync } from 'node:sqlite';
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

/** One captured request: its id, then what Spillway stores of it. */
type Capture = [id: string, method: string, path: string, headers: string, body: Uint8Array];
type ToThread = { kind: 'batch'; captures: Capture[] } | { kind: 'count' } | { kind: 'close' };
type FromThread = { kind: 'committed' } | { kind: 'count'; stored: number } | { kind: 'closed' };

if (isMainThread) serve();
else keepCaptures(workerData as string);

function serve(): void {
  const { values } = parseArgs({ options: { file: { type: 'string' } } });
  if (!values.file) throw new Error('--file PATH: the SQLite file to capture into');
  const thread = new Worker(new URL(import.meta.url), { workerData: values.file });
  const send = (message: ToThread) => thread.postMessage(message);

  // Group commit: what arrives while a batch commits waits for the next one.
  let waiting: Capture[] = [];
  let answers: Array<() => void> = [];
  let committing: Array<() => void> | undefined;
  const commit = () => {
    if (committing !== undefined || waiting.length === 0) return;
    send({ kind: 'batch', captures: waiting });
    committing = answers;
    waiting = [];
    answers = [];
  };

  thread.on('message', (message: FromThread) => {
    if (message.kind === 'committed') {
      for (const answer of committing ?? []) answer();
      committing = undefined;
      commit();
    } else if (message.kind === 'count') process.send?.({ stored: message.stored });
    else process.exit(0);
  });
  thread.on('error', (error) => {
    console.error(error);
    process.exit(1);
  });

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      // Its own bytes: a slice of Node's pool would copy the whole pool to the thread.
      const body = new Uint8Array(Buffer.concat(chunks));
      const id = `op_${randomUUID()}`;
      waiting.push([id, req.method ?? 'GET', req.url ?? '/', JSON.stringify(req.rawHeaders), body]);
      answers.push(() => {
        res.writeHead(202, { 'content-type': 'application/json', location: `/operations/${id}` });
        res.end(JSON.stringify({ id, status: 'NotStarted' }));
      });
      if (waiting.length === 1) queueMicrotask(commit);
    });
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1', () => {
    process.send?.({ ready: { port: (server.address() as AddressInfo).port } });
  });

  process.on('message', (message) => {
    if (message === 'count') send({ kind: 'count' });
  });
  process.once('SIGTERM', () => {
    server.close();
    server.closeAllConnections();
    send({ kind: 'close' });
  });
}

function keepCaptures(file: string): void {
  const port = parentPort!;
  const db = new DatabaseSync(file);
  db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;');
  db.exec(`CREATE TABLE IF NOT EXISTS captures (
    id TEXT PRIMARY KEY, method TEXT NOT NULL, path TEXT NOT NULL, headers TEXT NOT NULL,
    body BLOB NOT NULL, created_at INTEGER NOT NULL) STRICT`);
  const insert = db.prepare('INSERT INTO captures VALUES (?, ?, ?, ?, ?, ?)');
  const count = db.prepare('SELECT count(*) AS n FROM captures');
  const reply = (message: FromThread) => port.postMessage(message);
  port.on('message', (message: ToThread) => {
    if (message.kind === 'batch') {
      const now = Date.now();
      db.exec('BEGIN');
      for (const [id, method, path, headers, body] of message.captures) {
        insert.run(id, method, path, headers, body, now);
      }
      db.exec('COMMIT');
      reply({ kind: 'committed' });
    } else if (message.kind === 'count') {
      reply({ kind: 'count', stored: Number((count.get() as { n: number }).n) });
    } else {
      db.close();
      reply({ kind: 'closed' });
    }
  });
}
