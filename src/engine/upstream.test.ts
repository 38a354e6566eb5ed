import assert from 'node:assert/strict';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { systemClock } from '../clock.ts';
import { AttemptTimeoutError, attemptDeadline } from './attempt.ts';
import { HttpUpstream } from './upstream.ts';

// An attempt's deadline aborts the undici call through its signal's hook (abort-hook.ts), not a listener.
describe('HttpUpstream and the attempt deadline', () => {
  const held: ServerResponse[] = [];
  const server = createServer((req, res) => {
    if (req.url === '/silent')
      held.push(res); // never answers
    else {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first part');
      held.push(res); // the rest never comes
    }
  });
  let upstream: HttpUpstream;
  const request = (path: string) => ({ method: 'GET', path, query: '', headers: [], body: new Uint8Array() });

  before(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    upstream = new HttpUpstream(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  });
  after(async () => {
    await upstream.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it('before the headers: the call rejects with the deadline reason', async () => {
    const deadline = attemptDeadline(systemClock, 50);
    await assert.rejects(upstream.send(request('/silent'), deadline.signal), AttemptTimeoutError);
  });

  it('mid-body: the body fails with the deadline reason', async () => {
    const deadline = attemptDeadline(systemClock, 100);
    const response = await upstream.send(request('/partial'), deadline.signal);
    assert.equal(response.statusCode, 200);
    const chunks: Buffer[] = [];
    await assert.rejects(
      (async () => {
        for await (const chunk of response.body) chunks.push(chunk as Buffer);
      })(),
      AttemptTimeoutError,
    );
    assert.equal(Buffer.concat(chunks).toString(), 'first part');
  });

  it('aborted by hand (shutdown): the call rejects with that reason', async () => {
    const deadline = attemptDeadline(systemClock, 60_000);
    const call = upstream.send(request('/silent'), deadline.signal);
    setTimeout(() => deadline.abort(new Error('shutting down')), 20);
    await assert.rejects(call, /shutting down/);
  });
});
