/**
 * Sealed values: the at-rest encryption of what a store keeps of a request's
 * content (`storeEncryptionKey`, docs/operations.md "Encryption at rest").
 * Both adapters call this one module; it knows no SQL and no driver.
 *
 * What is sealed is a stored message: a header list and a body, the captured
 * request, the upstream's answer kept as a result, and the answer an
 * Idempotency-Key record replays. Each part is sealed alone with AES-256-GCM
 * under the newest key, a fresh 96-bit IV each time, and authenticated with
 * where it belongs (`<row>/<part>`), so a sealed value moved to another row or
 * column does not open.
 *
 * Formats, chosen so that rows written before a key was set still read:
 * - headers, a JSON column: a plaintext value is a JSON array; a sealed one is
 *   a JSON string `sealed:1:<key id>:<base64 of IV, ciphertext, tag>`. Reading
 *   tells the two apart by the JSON type alone.
 * - body, a byte column: any bytes may be plaintext, so a body is taken as
 *   sealed exactly when its message's headers are (they are written together,
 *   in one statement). A sealed body is `1 (version) | key id length | key id
 *   | IV | ciphertext | tag`: it names its own key.
 *
 * A key id is derived from the key (16 hex digits of a SHA-256), never
 * configured; it tells which of the listed keys opens a value and is safe to
 * log. This module never returns or logs a key's bytes.
 *
 * A value that cannot be opened (its key is not listed, no key is set, or it
 * was altered) raises StoredValueUnreadableError: never garbage, never the
 * ciphertext passed off as a body.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { StoredValueUnreadableError } from '../errors.ts';
import type { HeaderList } from './port.ts';

const VERSION = 1;
const HEADERS_PREFIX = `sealed:${VERSION}:`;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;

/** A key that cannot be used: the message says what is wrong and never repeats the key. */
export class StoreKeyError extends Error {
  override name = 'StoreKeyError';
}

/** One AES-256 key and its id. */
export interface StoreKey {
  /** 16 hex digits derived from the key: names it in stored values and messages. */
  readonly id: string;
  readonly key: Buffer;
}

/** The base64 text of 32 random bytes: a new key, as `spillway store-key` prints it. */
export const newStoreKey = (): string => randomBytes(KEY_BYTES).toString('base64');

const keyIdOf = (key: Buffer): string =>
  createHash('sha256').update('spillway store key\0').update(key).digest('hex').slice(0, 16);

/** Reads one key: base64 (or base64url) of exactly 32 bytes. */
export function parseStoreKey(text: string): StoreKey {
  const encoded = text.trim();
  const bytes = /^[A-Za-z0-9+/_-]+={0,2}$/.test(encoded) ? Buffer.from(encoded, 'base64') : undefined;
  if (bytes?.byteLength !== KEY_BYTES) {
    throw new StoreKeyError(
      `a store encryption key must be base64 of exactly ${KEY_BYTES} random bytes; this one (${encoded.length} characters) ${bytes ? `holds ${bytes.byteLength} bytes` : 'is not base64'}. Make one with \`spillway store-key\` (or openssl rand -base64 32).`,
    );
  }
  return { id: keyIdOf(bytes), key: bytes };
}

/**
 * The keys a store opens sealed values with, newest first: new values are
 * sealed under the first, and a value opens with whichever key its id names,
 * so a rotation lists the new key first and keeps the old ones after it until
 * no stored value needs them.
 */
export class StoreKeyring {
  readonly keys: readonly StoreKey[];
  readonly #byId: ReadonlyMap<string, StoreKey>;

  private constructor(keys: readonly StoreKey[]) {
    this.keys = keys;
    this.#byId = new Map(keys.map((key) => [key.id, key]));
  }

  /** From a list (config file) or a string of keys separated by commas or spaces (SPILLWAY_STORE_ENCRYPTION_KEY). */
  static parse(value: string | readonly string[]): StoreKeyring {
    const texts = typeof value === 'string' ? value.split(/[\s,]+/).filter(Boolean) : value;
    if (texts.length === 0) throw new StoreKeyError('the list of store encryption keys is empty.');
    const keys = texts.map((text) => parseStoreKey(text));
    const ids = keys.map((key) => key.id);
    const twice = ids.find((id, i) => ids.indexOf(id) !== i);
    if (twice) throw new StoreKeyError(`the store encryption key ${twice} is listed twice.`);
    return new StoreKeyring(keys);
  }

  /** The key new values are sealed under. */
  get newest(): StoreKey {
    return this.keys[0]!;
  }

  get ids(): string[] {
    return this.keys.map((key) => key.id);
  }

  byId(id: string): StoreKey | undefined {
    return this.#byId.get(id);
  }
}

/** What each stored message belongs to: part of what authenticates it, and named in errors. */
export const messageRow = {
  request: (operationId: string) => `operation ${operationId} (request)`,
  result: (operationId: string) => `operation ${operationId} (result)`,
  idempotentAnswer: (key: string) => `Idempotency-Key record ${key} (answer)`,
  staleCopy: (resource: string, variant: string) => `stale copy ${resource}/${variant}`,
};

/**
 * The start-up check: every key recorded as having sealed values in this
 * store (`recorded`) must be one this process has, else reading those values
 * would fail later, request by request. Throws StoreKeyError saying what to set.
 */
export function checkStoreKeys(recorded: readonly string[], sealer: MessageSealer, store: string): void {
  const missing = recorded.filter((id) => !sealer.keyIds.includes(id));
  if (missing.length === 0) return;
  const keys = missing.join(', ');
  throw new StoreKeyError(
    sealer.sealing
      ? `the store ${store} holds values encrypted under store key ${keys}, which storeEncryptionKey (SPILLWAY_STORE_ENCRYPTION_KEY) does not list: add that key after the newest one, then start again.`
      : `the store ${store} holds values encrypted under store key ${keys}, and no storeEncryptionKey is set: set SPILLWAY_STORE_ENCRYPTION_KEY to the keys in use (newest first), then start again.`,
  );
}

/** A header list and a body as a store keeps them: headers as JSON text, the body as bytes. */
export interface StoredMessage {
  headers: string;
  body: Uint8Array;
}

/**
 * Seals and opens stored messages for one store. Without a keyring it writes
 * plaintext, as before encryption existed, and still opens plaintext rows;
 * a sealed row then raises StoredValueUnreadableError.
 */
export class MessageSealer {
  readonly #keyring: StoreKeyring | undefined;

  constructor(keyring?: StoreKeyring) {
    this.#keyring = keyring;
  }

  /** Whether new values are sealed. */
  get sealing(): boolean {
    return this.#keyring !== undefined;
  }

  /** The keys this store may open values with (none without a keyring). */
  get keyIds(): string[] {
    return this.#keyring?.ids ?? [];
  }

  /** The key new values are sealed under, or undefined when they are written in plaintext. */
  get newestKeyId(): string | undefined {
    return this.#keyring?.newest.id;
  }

  /** `row`: what the message belongs to (`op_…/request`, `op_…/result`, `idempotency:<key>`). */
  seal(headers: HeaderList, body: Uint8Array, row: string): StoredMessage {
    const headersJson = JSON.stringify(headers);
    if (!this.#keyring) return { headers: headersJson, body };
    const { id, key } = this.#keyring.newest;
    const sealedHeaders = encrypt(key, Buffer.from(headersJson, 'utf8'), `${row}/headers`);
    const sealedBody = encrypt(key, body, `${row}/body`);
    const keyId = Buffer.from(id, 'ascii');
    return {
      headers: JSON.stringify(`${HEADERS_PREFIX}${id}:${sealedHeaders.toString('base64')}`),
      body: Buffer.concat([Buffer.of(VERSION, keyId.byteLength), keyId, sealedBody]),
    };
  }

  /**
   * `headers`: the stored headers as parsed JSON (PostgreSQL's jsonb comes
   * parsed; SQLite's text is parsed by the caller). Plaintext is returned as it is.
   */
  open(headers: unknown, body: Uint8Array, row: string): { headers: HeaderList; body: Uint8Array } {
    if (Array.isArray(headers)) return { headers: headers as HeaderList, body };
    if (typeof headers !== 'string' || !headers.startsWith(HEADERS_PREFIX)) {
      throw new StoredValueUnreadableError(row, 'unknown-format', undefined);
    }
    const [keyId = '', sealed = ''] = headers.slice(HEADERS_PREFIX.length).split(':');
    const headersKey = this.#keyFor(keyId, row);
    const headersJson = decrypt(headersKey, Buffer.from(sealed, 'base64'), `${row}/headers`, row);
    const bytes = Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    const idLength = bytes[1] ?? 0;
    if (bytes[0] !== VERSION || bytes.byteLength < 2 + idLength + IV_BYTES + TAG_BYTES) {
      throw new StoredValueUnreadableError(row, 'unknown-format', keyId);
    }
    const bodyKey = this.#keyFor(bytes.subarray(2, 2 + idLength).toString('ascii'), row);
    return {
      headers: JSON.parse(headersJson.toString('utf8')) as HeaderList,
      body: decrypt(bodyKey, bytes.subarray(2 + idLength), `${row}/body`, row),
    };
  }

  /**
   * The message sealed again under the newest key (`spillway store rekey`), or
   * undefined when it already is. `headers` as for open(); plaintext is sealed.
   */
  reseal(headers: unknown, body: Uint8Array, row: string): StoredMessage | undefined {
    const newest = this.#keyring?.newest.id;
    if (
      newest !== undefined &&
      typeof headers === 'string' &&
      headers.startsWith(`${HEADERS_PREFIX}${newest}:`)
    ) {
      return undefined;
    }
    const opened = this.open(headers, body, row);
    return this.seal(opened.headers, opened.body, row);
  }

  #keyFor(keyId: string, row: string): StoreKey {
    const key = this.#keyring?.byId(keyId);
    if (!key) throw new StoredValueUnreadableError(row, this.#keyring ? 'key-missing' : 'no-key', keyId);
    return key;
  }
}

function encrypt(key: Buffer, plaintext: Uint8Array, aad: string): Buffer {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([iv, ciphertext, cipher.getAuthTag()]);
}

function decrypt({ id, key }: StoreKey, sealed: Buffer, aad: string, row: string): Buffer {
  if (sealed.byteLength < IV_BYTES + TAG_BYTES) throw new StoredValueUnreadableError(row, 'altered', id);
  const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, IV_BYTES));
  decipher.setAAD(Buffer.from(aad, 'utf8'));
  decipher.setAuthTag(sealed.subarray(sealed.byteLength - TAG_BYTES));
  try {
    return Buffer.concat([
      decipher.update(sealed.subarray(IV_BYTES, sealed.byteLength - TAG_BYTES)),
      decipher.final(),
    ]);
  } catch (error) {
    // The tag did not match: the value was altered, moved, or sealed under another key with a colliding id.
    throw new StoredValueUnreadableError(row, 'altered', id, { cause: error });
  }
}
