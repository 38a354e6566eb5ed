import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough, Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { HttpUpstream } from './upstream.ts';

const BIG = Buffer.alloc(1024 * 1024, 'x'); // well past what is held before a reader comes

describe('StreamedAnswer (HttpUpstream over dispatch)', () => {
  let server: Server;
  let upstream: HttpUpstream;
  /** Responses of /hang, left open for the test to break or end. */
  const hanging: ServerResponse[] = [];
  const upstreamClosed: Array<Promise<unknown>> = [];

  before(async () => {
    server = createServer((req, res) => {
      if (req.url === '/big') {
        res.writeHead(200, { 'content-length': BIG.length });
        res.end(BIG);
      } else if (req.url === '/hang') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('first');
        hanging.push(res);
        upstreamClosed.push(once(res, 'close'));
      } else {
        res.writeHead(204);
        res.end();
      }
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    upstream = new HttpUpstream(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  });
  after(async () => {
    await upstream.close();
    server.closeAllConnections();
    server.close();
  });

  const get = (path: string) =>
    upstream.send(
      { method: 'GET', path, query: '', headers: [], body: new Uint8Array(0) },
      new AbortController().signal,
    );

  it('sendTo writes a body larger than what is held into a slow writer, whole and in order', async () => {
    const answer = await get('/big');
    const received: Buffer[] = [];
    const slow = new Writable({
      highWaterMark: 1024,
      write(chunk: Buffer, _encoding, callback) {
        received.push(chunk);
        setImmediate(callback);
      },
    });
    answer.sendTo!(slow);
    await once(slow, 'finish');
    assert.ok(Buffer.concat(received).equals(BIG));
  });

  it('a reader that comes after the body has arrived still gets all of it, and onClose fires once it is read', async () => {
    const answer = await get('/big');
    await new Promise((resolve) => setTimeout(resolve, 50)); // the upstream sends meanwhile; the answer holds, then pauses
    let closed = 0;
    answer.onClose!(() => closed++);
    const chunks: Buffer[] = [];
    for await (const chunk of answer.body) chunks.push(chunk as Buffer);
    assert.ok(Buffer.concat(chunks).equals(BIG));
    assert.equal(closed, 1);
  });

  it('the client leaving mid-body abandons the upstream call', async () => {
    const answer = await get('/hang');
    const out = new PassThrough();
    answer.sendTo!(out);
    const [first] = (await once(out, 'data')) as [Buffer];
    assert.equal(first.toString(), 'first');
    out.destroy();
    await upstreamClosed.at(-1); // the upstream's response closed: its connection was dropped
  });

  it('a client already gone when the answer comes abandons the upstream call', async () => {
    // Its 'close' came while the head was awaited: sendTo cannot wait for it, and no limit ends a streaming body.
    const answer = await get('/hang');
    const out = new PassThrough();
    out.destroy();
    await once(out, 'close');
    let closed = false;
    answer.onClose!(() => {
      closed = true;
    });
    answer.sendTo!(out);
    const gone = await Promise.race([
      upstreamClosed.at(-1)!.then(() => true),
      new Promise((resolve) => setTimeout(resolve, 5_000, false)),
    ]);
    assert.ok(gone, "the upstream's response closed: its connection was dropped");
    assert.ok(closed);
  });

  it('the upstream failing mid-body destroys the client response', async () => {
    const answer = await get('/hang');
    const out = new PassThrough();
    answer.sendTo!(out);
    await once(out, 'data');
    hanging.at(-1)!.destroy(); // the upstream breaks off
    await once(out, 'close');
    assert.equal(out.writableFinished, false);
  });

  it('an abort after the headers fails the body with the signal reason', async () => {
    const controller = new AbortController();
    const answer = await upstream.send(
      { method: 'GET', path: '/hang', query: '', headers: [], body: new Uint8Array(0) },
      controller.signal,
    );
    const reason = new Error('deadline');
    const failed = once(answer.body, 'error');
    controller.abort(reason);
    const [error] = (await failed) as [Error];
    assert.equal(error, reason);
  });

  it('an answer without a body closes at once', async () => {
    const answer = await get('/empty');
    assert.equal(answer.statusCode, 204);
    const out = new PassThrough();
    answer.sendTo!(out);
    out.resume();
    await once(out, 'finish');
    await new Promise<void>((resolve) => answer.onClose!(resolve));
  });
});
