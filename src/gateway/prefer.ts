/**
 * The Prefer request header (RFC 7240): parsed across every field line,
 * quoted-strings respected, names case-insensitive, the first occurrence of a
 * preference wins, and anything malformed or unknown ignored, never an error.
 */

export interface Preferences {
  respondAsync: boolean;
  /** `wait=N` in milliseconds when N is a valid `1*DIGIT`. */
  waitMs: number | undefined;
  returnMinimal: boolean;
  /** The Prefer value to forward upstream: every preference but the ones the gateway consumes. */
  forward: string | undefined;
}

/** Preferences the gateway itself applies (it is the origin for the client, RFC 9110 §3.7). */
const CONSUMED = new Set(['respond-async', 'wait']);

/** No Prefer at all (most requests): one shared answer, read-only. */
const NO_PREFERENCES: Readonly<Preferences> = Object.freeze({
  respondAsync: false,
  waitMs: undefined,
  returnMinimal: false,
  forward: undefined,
});

export function parsePrefer(fieldLines: string | string[] | undefined): Readonly<Preferences> {
  if (fieldLines === undefined) return NO_PREFERENCES;
  const prefs: Preferences = {
    respondAsync: false,
    waitMs: undefined,
    returnMinimal: false,
    forward: undefined,
  };
  const seen = new Set<string>();
  const forwarded: string[] = [];
  for (const element of splitOutsideQuotes([fieldLines].flat().join(','), ',')) {
    const text = element.trim();
    if (text === '') continue;
    const [head = ''] = splitOutsideQuotes(text, ';');
    const eq = head.indexOf('=');
    const name = (eq === -1 ? head : head.slice(0, eq)).trim().toLowerCase();
    const value = eq === -1 ? '' : unquote(head.slice(eq + 1).trim());
    if (!/^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(name)) continue; // malformed: ignore just this one
    if (!CONSUMED.has(name)) forwarded.push(text);
    if (seen.has(name)) continue; // first occurrence wins
    seen.add(name);
    if (name === 'respond-async') prefs.respondAsync = true;
    else if (name === 'wait' && /^\d+$/.test(value))
      prefs.waitMs = Math.min(Number(value), 2 ** 31 / 1000) * 1000;
    else if (name === 'return' && value === 'minimal') prefs.returnMinimal = true;
  }
  prefs.forward = forwarded.length > 0 ? forwarded.join(', ') : undefined;
  return prefs;
}

function splitOutsideQuotes(text: string, separator: string): string[] {
  const parts: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted && ch === '\\') {
      current += ch + (text[++i] ?? '');
      continue;
    }
    if (ch === '"') quoted = !quoted;
    if (ch === separator && !quoted) {
      parts.push(current);
      current = '';
    } else current += ch;
  }
  parts.push(current);
  return parts;
}

function unquote(value: string): string {
  if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) {
    return value.slice(1, -1).replace(/\\(.)/g, '$1');
  }
  return value;
}
