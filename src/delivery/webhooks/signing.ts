/**
 * Standard Webhooks signing, symmetric scheme `v1` (http-standards.md §4.1):
 * HMAC-SHA256 over `${webhook-id}.${webhook-timestamp}.${body}`, the exact
 * bytes sent, base64, prefixed `v1,`. Several secrets sign at once, their
 * signatures space-separated, so a receiver can move from the old secret to
 * the new one without a moment where deliveries fail (rotation).
 *
 * Secrets are shown as `whsec_` + base64 of 24–64 random bytes; bare base64 is
 * accepted too (what the reference library accepts). Nothing here logs or
 * returns a secret's bytes except `newWebhookSecret`, which makes one.
 */
import { createHmac, randomBytes } from 'node:crypto';

export const SECRET_PREFIX = 'whsec_';
export const MIN_SECRET_BYTES = 24;
export const MAX_SECRET_BYTES = 64;

/** A secret that cannot sign: the message says what is wrong and never repeats the secret. */
export class WebhookSecretError extends Error {
  override name = 'WebhookSecretError';
}

/** A parsed signing secret: its key bytes, and a fingerprint safe to log. */
export interface WebhookSecret {
  key: Uint8Array;
  /** Eight characters that tell secrets apart in logs (an HMAC of a constant under the key); never reveals it. */
  fingerprint: string;
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** Reads `whsec_<base64>` or bare base64 holding 24–64 bytes. */
export function parseWebhookSecret(text: string): WebhookSecret {
  const trimmed = text.trim();
  const encoded = trimmed.startsWith(SECRET_PREFIX) ? trimmed.slice(SECRET_PREFIX.length) : trimmed;
  if (encoded === '' || encoded.length % 4 !== 0 || !BASE64.test(encoded)) {
    throw new WebhookSecretError(
      `a webhook secret must be "whsec_" followed by base64 (or bare base64) of ${MIN_SECRET_BYTES}–${MAX_SECRET_BYTES} random bytes; this one is not valid base64 (${encoded.length} characters). Make one with \`spillway webhook-secret\`.`,
    );
  }
  const key = new Uint8Array(Buffer.from(encoded, 'base64'));
  if (key.byteLength < MIN_SECRET_BYTES || key.byteLength > MAX_SECRET_BYTES) {
    throw new WebhookSecretError(
      `a webhook secret must hold ${MIN_SECRET_BYTES}–${MAX_SECRET_BYTES} bytes (Standard Webhooks), this one holds ${key.byteLength}. Make one with \`spillway webhook-secret\`.`,
    );
  }
  return { key, fingerprint: fingerprintOf(key) };
}

/**
 * Reads one or several secrets from a string (space- or comma-separated, as
 * `SPILLWAY_WEBHOOK_SECRET` holds them during a rotation) or an array.
 */
export function parseWebhookSecrets(value: string | readonly string[]): WebhookSecret[] {
  const texts = typeof value === 'string' ? value.split(/[\s,]+/).filter(Boolean) : value;
  return texts.map((text) => parseWebhookSecret(text));
}

/** `v1,<base64>` for one secret. */
export function signatureV1(
  secret: WebhookSecret,
  webhookId: string,
  timestampSeconds: number,
  body: Uint8Array,
): string {
  const hmac = createHmac('sha256', secret.key);
  hmac.update(`${webhookId}.${timestampSeconds}.`);
  hmac.update(body);
  return `v1,${hmac.digest('base64')}`;
}

/**
 * The `webhook-signature` value: one `v1,` entry per active secret, in the
 * order given, space-separated. Called again on every attempt, because the
 * timestamp is the attempt's.
 */
export function signatureHeader(
  secrets: readonly WebhookSecret[],
  webhookId: string,
  timestampSeconds: number,
  body: Uint8Array,
): string {
  if (secrets.length === 0) throw new WebhookSecretError('no webhook secret to sign with');
  if (!/^[A-Za-z0-9_-]+$/.test(webhookId)) {
    // The id is part of the signed text, `.`-separated: a `.` in it would make two messages sign alike.
    throw new WebhookSecretError(
      `a webhook-id must match ^[A-Za-z0-9_-]+$, got ${JSON.stringify(webhookId)}`,
    );
  }
  if (!Number.isInteger(timestampSeconds)) {
    throw new WebhookSecretError(`a webhook-timestamp must be whole seconds, got ${timestampSeconds}`);
  }
  return secrets.map((secret) => signatureV1(secret, webhookId, timestampSeconds, body)).join(' ');
}

/** A new secret, 32 random bytes, shown as `whsec_` + base64: what `spillway webhook-secret` prints. */
export function newWebhookSecret(bytes = 32): string {
  if (bytes < MIN_SECRET_BYTES || bytes > MAX_SECRET_BYTES) {
    throw new WebhookSecretError(
      `a webhook secret holds ${MIN_SECRET_BYTES}–${MAX_SECRET_BYTES} bytes, not ${bytes}`,
    );
  }
  return SECRET_PREFIX + randomBytes(bytes).toString('base64');
}

/** Names a secret in logs and errors without revealing it: an HMAC of a constant under the key. */
function fingerprintOf(key: Uint8Array): string {
  return createHmac('sha256', key)
    .update('spillway-webhook-secret-fingerprint')
    .digest('base64url')
    .slice(0, 8);
}
