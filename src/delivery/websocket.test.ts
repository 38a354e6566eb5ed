import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseClientMessage } from './websocket.ts';

const parse = (text: string, isBinary = false) => parseClientMessage(Buffer.from(text), isBinary);

describe('parseClientMessage', () => {
  it('reads subscribe, with or without lastEventId, and unsubscribe', () => {
    assert.deepEqual(parse('{"type":"subscribe","operationId":"op_a"}'), {
      type: 'subscribe',
      operationId: 'op_a',
    });
    assert.deepEqual(parse('{"type":"subscribe","operationId":"op_a","lastEventId":"op_a:2"}'), {
      type: 'subscribe',
      operationId: 'op_a',
      lastEventId: 'op_a:2',
    });
    assert.deepEqual(parse('{"type":"unsubscribe","operationId":"op_a","lastEventId":5}'), {
      type: 'unsubscribe',
      operationId: 'op_a',
    });
  });

  it('says what is wrong with anything else', () => {
    for (const [text, why] of [
      ['nope', /not valid JSON/],
      ['null', /JSON object/],
      ['"subscribe"', /JSON object/],
      ['{"operationId":"op_a"}', /"type" must be "subscribe" or "unsubscribe", got nothing/],
      ['{"type":"SUBSCRIBE","operationId":"op_a"}', /got "SUBSCRIBE"/],
      ['{"type":"subscribe"}', /"operationId" must be/],
      ['{"type":"subscribe","operationId":""}', /"operationId" must be/],
      ['{"type":"subscribe","operationId":"op_a","lastEventId":2}', /"lastEventId" must be .*"op_a:2"/],
    ] as const) {
      const result = parse(text);
      assert.equal(typeof result, 'string', text);
      assert.match(result as string, why);
    }
    assert.match(parse('{"type":"subscribe","operationId":"op_a"}', true) as string, /text frames/);
  });
});
