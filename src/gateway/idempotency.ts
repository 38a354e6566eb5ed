/**
 * The Idempotency-Key request header (draft-ietf-httpapi-idempotency-key-header,
 * with Stripe's proven behaviour; docs/http-api.md "Idempotency-Key"):
 * parsing and validating the key, the composite lookup key that scopes it to
 * one tenant, method and route, and the request fingerprint that tells a
 * retry from a different request reusing the key.
 */
import { createHash } from 'node:crypto';

/** Methods whose requests a key protects; on safe methods a key has no effect (Stripe). */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE']);

export const MAX_KEY_LENGTH = 255;

/** Whether a key on a request of this method means anything. */
export const keyApplies = (method: string): boolean => !SAFE_METHODS.has(method);

export type ParsedKey = { kind: 'absent' } | { kind: 'key'; key: string } | { kind: 'invalid'; why: string };

/**
 * Reads the key from its field lines. The draft's form is a structured-field
 * String (`"8e03…"`); bare keys, as Stripe and most SDKs send them, are
 * accepted too and mean the same key: `"abc"` and `abc` are one key.
 */
export function parseIdempotencyKey(method: string, fieldLines: string | string[] | undefined): ParsedKey {
  if (fieldLines === undefined || !keyApplies(method)) return { kind: 'absent' };
  const lines = [fieldLines].flat();
  if (lines.length !== 1) return { kind: 'invalid', why: 'it was sent more than once; send one key' };
  const text = lines[0]!.trim();
  const key = text.startsWith('"') ? unquote(text) : text;
  if (key === undefined) {
    return {
      kind: 'invalid',
      why: 'a quoted key must be one structured-field string (RFC 9651), like "8e03978e-40d5-43e8"',
    };
  }
  if (key.length === 0) return { kind: 'invalid', why: 'it is empty' };
  if (key.length > MAX_KEY_LENGTH) {
    return {
      kind: 'invalid',
      why: `it is ${key.length} characters long; at most ${MAX_KEY_LENGTH} are allowed`,
    };
  }
  // Quoted keys may hold spaces (RFC 9651 allows them in a String); bare keys are visible ASCII only.
  const allowed = text.startsWith('"') ? /^[\x20-\x7e]+$/ : /^[\x21-\x7e]+$/;
  if (!allowed.test(key)) {
    return { kind: 'invalid', why: 'it may hold only printable ASCII characters (a UUID is a good key)' };
  }
  return { kind: 'key', key };
}

/** An RFC 9651 sf-string's content, or undefined when the text is not exactly one. */
function unquote(text: string): string | undefined {
  let out = '';
  for (let i = 1; i < text.length; i++) {
    const c = text[i]!;
    if (c === '\\') {
      const next = text[++i];
      if (next !== '"' && next !== '\\') return undefined;
      out += next;
    } else if (c === '"') {
      return i === text.length - 1 ? out : undefined;
    } else {
      out += c;
    }
  }
  return undefined; // no closing quote
}

/**
 * The composite lookup key (draft §5): the client's key only ever names a
 * record of the same tenant, method and route, so two clients choosing the
 * same key never see each other's responses.
 */
export function lookupKey(tenant: string | null, method: string, route: string, key: string): string {
  return digest(JSON.stringify([tenant, method, route, key]));
}

/** What a retry must repeat exactly: method, target, content type and body bytes. */
export function fingerprint(request: {
  method: string;
  path: string;
  query: string;
  contentType: string | undefined;
  body: Uint8Array;
}): string {
  const hash = createHash('sha256');
  hash.update(JSON.stringify([request.method, request.path, request.query, request.contentType ?? null]));
  hash.update(request.body);
  return hash.digest('base64url');
}

const digest = (text: string) => createHash('sha256').update(text).digest('base64url');
