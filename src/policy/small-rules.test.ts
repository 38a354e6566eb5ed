import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backoffDelay } from './backoff.ts';
import { parseRetryAfter } from './retry-after.ts';
import { isResendSafe } from './retry-safety.ts';
import { compileMatcher } from './route-match.ts';

describe('backoffDelay (full jitter)', () => {
  const policy = { initialMs: 100, maxMs: 1_000, multiplier: 2 };
  it('draws from [0, min(max, initial · multiplier^(n-1))]', () => {
    assert.equal(
      backoffDelay(policy, 1, () => 0.999),
      99,
    );
    assert.equal(
      backoffDelay(policy, 3, () => 0.5),
      200,
    );
    assert.equal(
      backoffDelay(policy, 30, () => 0.5),
      500,
      'capped at maxMs',
    );
    assert.equal(
      backoffDelay(policy, 2, () => 0),
      0,
    );
  });
});

describe('parseRetryAfter', () => {
  const now = Date.UTC(2026, 0, 1);
  it('reads delay-seconds and HTTP-dates, ignores the unreadable', () => {
    assert.equal(parseRetryAfter('120', now), 120_000);
    assert.equal(parseRetryAfter(new Date(now + 5_000).toUTCString(), now), 5_000);
    assert.equal(parseRetryAfter(new Date(now - 5_000).toUTCString(), now), 0);
    assert.equal(parseRetryAfter('soon', now), undefined);
    assert.equal(parseRetryAfter('-1', now), undefined);
    assert.equal(parseRetryAfter(undefined, now), undefined);
  });
});

describe('isResendSafe', () => {
  it('allows idempotent methods, and anything when the upstream honours Idempotency-Key', () => {
    for (const m of ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE'])
      assert.equal(isResendSafe(m, false), true, m);
    for (const m of ['POST', 'PATCH']) assert.equal(isResendSafe(m, false), false, m);
    assert.equal(isResendSafe('POST', true), true);
  });
});

describe('compileMatcher', () => {
  it('matches method, literal segments, :params and a trailing *', () => {
    const byId = compileMatcher('POST', '/payments/:id');
    assert.equal(byId('POST', '/payments/7'), true);
    assert.equal(byId('GET', '/payments/7'), false);
    assert.equal(byId('POST', '/payments'), false);
    assert.equal(byId('POST', '/payments/7/refund'), false);
    const any = compileMatcher('*', '/orders/*');
    assert.equal(any('DELETE', '/orders'), true);
    assert.equal(any('GET', '/orders/1/items'), true);
    assert.equal(any('GET', '/orderz'), false);
    assert.equal(compileMatcher('*', '/*')('GET', '/'), true);
  });

  it('agrees with matching segment by segment on every pattern and path built from a small alphabet', () => {
    // The matcher is a compiled regular expression; this is the rule it must keep, written plainly.
    const bySegments = (pattern: string, path: string) => {
      const segments = pattern.split('/').slice(1);
      const tail = segments.at(-1) === '*';
      const fixed = tail ? segments.slice(0, -1) : segments;
      const parts = path.split('/').slice(1);
      if (tail ? parts.length < fixed.length : parts.length !== fixed.length) return false;
      return fixed.every((segment, i) => segment.startsWith(':') || segment === parts[i]);
    };
    const pieces = ['', 'a', 'a.b', ':id', '*', '(x)', 'a+'];
    const patterns: string[] = [];
    for (const x of pieces) for (const y of pieces) patterns.push(`/${x}`, `/${x}/${y}`);
    const paths = [
      '/',
      '//',
      '/a',
      '/a/',
      '/a.b',
      '/axb',
      '/a/a',
      '/a/a/a',
      '/(x)',
      '/aa',
      '/a+',
      '/*',
      '/a/*',
      '/a%2Fb',
    ];
    for (const pattern of patterns) {
      const matches = compileMatcher('GET', pattern);
      for (const path of paths) {
        assert.equal(matches('GET', path), bySegments(pattern, path), `${pattern} against ${path}`);
      }
    }
  });
});
