/**
 * Keeps docs/errors.md and the error table in src/errors.ts in step: the same
 * codes, each with the same HTTP status and title. A code added, removed or
 * retitled on one side only fails here.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { errorTable } from '../src/errors.ts';

const ROW = /^\| `([^`]+)` \| (\d{3}) \| ([^|]+?) \| [^|]+ \| [^|]+ \|$/;

function documentedErrors(): Array<{ code: string; status: number; title: string }> {
  const text = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8');
  return text
    .split('\n')
    .map((line) => ROW.exec(line.trim()))
    .filter((match) => match !== null)
    .map(([, code, status, title]) => ({ code: code!, status: Number(status), title: title! }));
}

describe('docs/errors.md', () => {
  it('documents each code once', () => {
    const codes = documentedErrors().map((row) => row.code);
    assert.ok(codes.length > 0, 'no table rows found in docs/errors.md');
    assert.deepEqual(
      codes.filter((code, i) => codes.indexOf(code) !== i),
      [],
    );
  });

  it('lists exactly the codes, statuses and titles of src/errors.ts', () => {
    const documented = Object.fromEntries(
      documentedErrors().map(({ code, status, title }) => [code, { status, title }]),
    );
    const table = Object.fromEntries(
      Object.entries(errorTable).map(([code, { status, title }]) => [code, { status, title }]),
    );
    assert.deepEqual(documented, table);
  });
});
