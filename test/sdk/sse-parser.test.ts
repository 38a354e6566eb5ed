/**
 * The SDK's own SSE parser against the WHATWG rules, and against
 * `eventsource-parser` on random streams cut at random places.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createParser } from 'eventsource-parser';
import fc from 'fast-check';
import { createSseParser, parseRetryAfter, readSse, type SseEvent } from '../../src/sdk/index.ts';

function parse(chunks: string[]) {
  const events: SseEvent[] = [];
  const comments: string[] = [];
  const retries: number[] = [];
  const parser = createSseParser({
    onEvent: (e) => events.push(e),
    onComment: (c) => comments.push(c),
    onRetry: (r) => retries.push(r),
  });
  for (const chunk of chunks) parser.feed(chunk);
  return { events, comments, retries, lastEventId: parser.lastEventId };
}

describe('SSE parser', () => {
  it('LF, CR and CRLF line ends, a CRLF split across chunks counting once', () => {
    for (const eol of ['\n', '\r', '\r\n']) {
      const text = `event: a${eol}data: 1${eol}${eol}data: 2${eol}${eol}`;
      assert.deepEqual(
        parse([text]).events.map((e) => [e.type, e.data]),
        [
          ['a', '1'],
          ['message', '2'],
        ],
        JSON.stringify(eol),
      );
    }
    // "data: x\r" | "\n\r\n": without the CRLF rule the lone LF would be an empty line too early.
    const { events } = parse(['data: x\r', '\ndata: y\r', '\n\r', '\n']);
    assert.deepEqual(
      events.map((e) => e.data),
      ['x\ny'],
    );
  });

  it('multi-line data, one space stripped, no-colon fields, comments, unknown fields', () => {
    const { events, comments } = parse([
      ': heartbeat\n',
      'data:no space\n',
      'data:  two spaces\n',
      'data\n',
      'foo: bar\n',
      '\n',
    ]);
    assert.deepEqual(comments, ['heartbeat']);
    assert.deepEqual(events, [{ type: 'message', data: 'no space\n two spaces\n', lastEventId: '' }]);
  });

  it('id carries over, a NUL id is ignored, retry only when digits, empty data dispatches nothing', () => {
    const { events, retries, lastEventId } = parse([
      'retry: 2000\nretry: 1.5\nretry: x\n\n',
      'id: op:1\ndata: a\n\n',
      'data: b\n\n',
      'id: bad\0id\ndata: c\n\n',
      'event: lonely\n\n',
      'id\ndata: d\n\n',
      'data: never dispatched',
    ]);
    assert.deepEqual(retries, [2000]);
    assert.deepEqual(
      events.map((e) => [e.type, e.data, e.lastEventId]),
      [
        ['message', 'a', 'op:1'],
        ['message', 'b', 'op:1'],
        ['message', 'c', 'op:1'],
        ['message', 'd', ''],
      ],
    );
    assert.equal(lastEventId, '');
  });

  it('a BOM at the start is dropped; UTF-8 split across chunks decodes whole', async () => {
    const bytes = new TextEncoder().encode('\uFEFFdata: é€😀\n\n');
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const b of bytes) controller.enqueue(new Uint8Array([b])); // one byte at a time
        controller.close();
      },
    });
    const events: SseEvent[] = [];
    await readSse(body, { onEvent: (e) => events.push(e) });
    assert.deepEqual(
      events.map((e) => e.data),
      ['é€😀'],
    );
    assert.deepEqual(
      parse(['\uFEFFdata: x\n\n']).events.map((e) => e.data),
      ['x'],
    );
  });

  it('agrees with eventsource-parser on random streams in random chunks', () => {
    const line = fc.oneof(
      fc.constantFrom('', ':', ': ping', 'data', 'data:', 'event: e', 'id: 7', 'retry: 50', 'bogus: 1'),
      fc
        .tuple(fc.constantFrom('data', 'event', 'id', ':'), fc.string({ unit: 'grapheme', maxLength: 6 }))
        .map(([f, v]) => `${f}: ${v.replace(/[\r\n\0]/g, '')}`),
    );
    const stream = fc.tuple(
      fc.array(fc.tuple(line, fc.constantFrom('\n', '\r', '\r\n')), { maxLength: 20 }),
      fc.array(fc.nat(), { maxLength: 6 }),
    );
    fc.assert(
      fc.property(stream, ([lines, cuts]) => {
        const text = lines.map(([l, eol]) => l + eol).join('');
        const points = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
        const chunks: string[] = [];
        let from = 0;
        for (const p of points) {
          chunks.push(text.slice(from, p));
          from = p;
        }
        chunks.push(text.slice(from));
        const theirs: Array<[string, string, string]> = [];
        const theirRetries: number[] = [];
        const reference = createParser({
          onEvent: (e) => theirs.push([e.event ?? 'message', e.data, e.id ?? '']),
          onRetry: (r) => theirRetries.push(r),
        });
        for (const c of chunks) reference.feed(c);
        const ours = parse(chunks);
        // eventsource-parser reports the id set by the event itself; ours, the buffer: compare data and type.
        assert.deepEqual(
          ours.events.map((e) => [e.type, e.data]),
          theirs.map(([t, d]) => [t, d]),
        );
        assert.deepEqual(ours.retries, theirRetries);
      }),
      { numRuns: 500 },
    );
  });
});

describe('Retry-After', () => {
  it('seconds, HTTP-date, and nonsense', () => {
    const now = Date.parse('Sun, 22 Nov 2026 10:00:00 GMT');
    assert.equal(parseRetryAfter('5', now), 5_000);
    assert.equal(parseRetryAfter(' 0 ', now), 0);
    assert.equal(parseRetryAfter('Sun, 22 Nov 2026 10:00:07 GMT', now), 7_000);
    assert.equal(parseRetryAfter('Sun, 22 Nov 2026 09:59:00 GMT', now), 0, 'a past date is now');
    assert.equal(parseRetryAfter(null, now), undefined);
    assert.equal(parseRetryAfter('-1', now), undefined);
    assert.equal(parseRetryAfter('1.5', now), undefined);
    assert.equal(parseRetryAfter('soon', now), undefined);
  });
});

describe('SDK packaging', () => {
  it('imports nothing but its own files: no node: modules, no packages', () => {
    const dir = join(import.meta.dirname, '../../src/sdk');
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts'))) {
      const source = readFileSync(join(dir, file), 'utf8');
      for (const [, spec] of source.matchAll(/(?:import|export)\s[^'"]*?from\s+'([^']+)'/g)) {
        assert.match(spec!, /^\.\/[\w-]+\.ts$/, `${file} imports ${spec}`);
      }
      assert.doesNotMatch(source, /\bimport\(|\brequire\(|\bprocess\.|\bBuffer\b/, file);
    }
  });

  it('is the package export "./client" (built from src/sdk/index.ts; the installed import is test/package/pack.test.ts)', async () => {
    // The export points at dist/, which exists only after `npm run build`; a clean
    // clone has none, so the source is checked here and the tarball by the pack test.
    const pkg = JSON.parse(readFileSync(join(import.meta.dirname, '../../package.json'), 'utf8'));
    assert.deepEqual(pkg.exports['./client'], {
      types: './dist/sdk/index.d.ts',
      default: './dist/sdk/index.js',
    });
    const source = await import('../../src/sdk/index.ts');
    assert.equal(typeof source.createClient, 'function');
    assert.equal(typeof source.spillway.fetch, 'function');
  });
});
