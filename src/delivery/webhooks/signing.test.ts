import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Webhook } from 'standardwebhooks';
import {
  newWebhookSecret,
  parseWebhookSecret,
  parseWebhookSecrets,
  signatureHeader,
  WebhookSecretError,
} from './signing.ts';

// The known-good vector of http-standards.md §4.2.
const VECTOR = {
  secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
  id: 'msg_p5jXN8AQM9LWM0D4loKWxJek',
  timestamp: 1674087231,
  body: '{"type":"job.succeeded","timestamp":"2023-01-19T00:13:51Z","data":{"id":"op_1"}}',
  signature: 'v1,74tAHt89e+g+2tm437R2f21XiuZM//PRlz2EOJHr1sg=',
};

describe('webhook signing', () => {
  it('signs the known-good vector exactly', () => {
    const secret = parseWebhookSecret(VECTOR.secret);
    const body = new TextEncoder().encode(VECTOR.body);
    assert.equal(signatureHeader([secret], VECTOR.id, VECTOR.timestamp, body), VECTOR.signature);
  });

  it('accepts whsec_ and bare base64 alike; one signature per secret, space-separated, in order', () => {
    const a = newWebhookSecret();
    const b = newWebhookSecret(64);
    assert.match(a, /^whsec_[A-Za-z0-9+/]+=*$/);
    const bare = parseWebhookSecret(a.slice('whsec_'.length));
    assert.deepEqual(bare.key, parseWebhookSecret(a).key);
    const secrets = parseWebhookSecrets(`${a}, ${b}`);
    assert.equal(secrets.length, 2);
    const body = new TextEncoder().encode('{"x":1}');
    const header = signatureHeader(secrets, 'msg_1', 1_700_000_000, body);
    const [first, second, extra] = header.split(' ');
    assert.equal(extra, undefined);
    assert.equal(first, new Webhook(a).sign('msg_1', new Date(1_700_000_000_000), '{"x":1}'));
    assert.equal(second, new Webhook(b).sign('msg_1', new Date(1_700_000_000_000), '{"x":1}'));
  });

  it('refuses secrets that are too short, too long, or not base64, without echoing them', () => {
    const short = `whsec_${Buffer.alloc(23, 1).toString('base64')}`;
    const long = `whsec_${Buffer.alloc(65, 1).toString('base64')}`;
    for (const bad of [short, long, 'whsec_not base64!', 'whsec_', '']) {
      assert.throws(
        () => parseWebhookSecret(bad),
        (error: Error) =>
          error instanceof WebhookSecretError && (bad.length < 8 || !error.message.includes(bad.slice(6))),
      );
    }
    assert.throws(() => parseWebhookSecret(short), /24–64 bytes.*holds 23/);
    assert.doesNotThrow(() => parseWebhookSecret(`whsec_${Buffer.alloc(24, 1).toString('base64')}`));
  });

  it('refuses webhook-ids that could be confused in the signed text', () => {
    const secret = parseWebhookSecret(newWebhookSecret());
    assert.throws(() => signatureHeader([secret], 'msg.1', 1, new Uint8Array()), /A-Za-z0-9_-/);
    assert.throws(() => signatureHeader([secret], 'op:1', 1, new Uint8Array()), /A-Za-z0-9_-/);
    assert.throws(() => signatureHeader([], 'msg_1', 1, new Uint8Array()), /no webhook secret/);
  });
});
