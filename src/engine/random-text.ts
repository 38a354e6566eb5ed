/**
 * Random bytes from the CSPRNG, taken from a pool refilled 4 KiB at a time and
 * handed out only as text. A capture needs three draws (the operation id and
 * a traceparent's two ids); `randomBytes` per draw is a call into OpenSSL each
 * time, about 5 µs, where a slice of the pool costs a tenth of that (as nanoid
 * and Node's own `randomUUID` do). No byte is handed out twice: the offset only
 * moves forward, and the whole pool is redrawn before it wraps.
 */
import { randomFillSync } from 'node:crypto';

const POOL_BYTES = 4096;
const pool = Buffer.allocUnsafe(POOL_BYTES);
let offset = POOL_BYTES;

/** `bytes` fresh random bytes (at most the pool's 4 KiB), as `encoding` text. */
export function randomText(bytes: number, encoding: 'hex' | 'base64url'): string {
  if (bytes > POOL_BYTES) throw new RangeError(`randomText draws at most ${POOL_BYTES} bytes`);
  if (offset + bytes > POOL_BYTES) {
    randomFillSync(pool);
    offset = 0;
  }
  const start = offset;
  offset += bytes;
  return pool.toString(encoding, start, offset);
}
