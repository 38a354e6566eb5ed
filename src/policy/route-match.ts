/**
 * Route patterns: `METHOD /path` where METHOD may be `*`, a path segment
 * `:name` matches any one segment and a final `*` matches the rest of the path
 * (including nothing). Everything else matches literally.
 */
export type PathMatcher = (method: string, path: string) => boolean;

export function compileMatcher(method: string, pattern: string): PathMatcher {
  const wanted = method.toUpperCase();
  const segments = pattern.split('/').slice(1);
  const tail = segments.at(-1) === '*';
  const fixed = tail ? segments.slice(0, -1) : segments;
  // One regular expression per route, compiled once: the proxy matches every request against the
  // routes, and splitting the path per route per request showed in the sync path's profile.
  const source = fixed
    .map((segment) => (segment.startsWith(':') ? '/[^/]*' : `/${escapeRegExp(segment)}`))
    .join('');
  const path = new RegExp(`^${source}${tail ? '(?:/.*)?' : ''}$`, 's');
  return (requestMethod, requestPath) =>
    (wanted === '*' || requestMethod === wanted) && path.test(requestPath);
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
