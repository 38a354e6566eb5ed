import { randomText } from './random-text.ts';

/**
 * The 64 symbols of an id's time prefix, in ASCII order, so that ids compare
 * as strings (SQLite's BINARY collation, PostgreSQL's "C" comparison of the
 * column) in the order they were made.
 */
const SORTED = '-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz';

/**
 * `op_`, the creation time (48 bits of milliseconds, 8 symbols that sort in
 * time order), then 96 bits from the CSPRNG (16 base64url symbols):
 * unguessable, URL-safe, and made in time order. The order is for the stores:
 * a new id lands at the end of every index keyed by it (the operations' key,
 * their events and attempts) instead of at a random page of each, so a commit
 * writes a few pages where random ids wrote one per capture. The time it shows
 * is the operation's `createdDateTime`, which its holder can read anyway.
 */
export function newOperationId(now: number = Date.now()): string {
  let time = '';
  for (let shift = 42; shift >= 0; shift -= 6) time += SORTED[Math.floor(now / 2 ** shift) % 64];
  return `op_${time}${randomText(12, 'base64url')}`;
}

/** Operation ids have exactly this shape; anything else is not one of ours. */
export const isOperationId = (value: string): boolean => /^op_[\w-]{24}$/.test(value);
