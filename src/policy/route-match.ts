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
  return (requestMethod, path) => {
    if (wanted !== '*' && requestMethod !== wanted) return false;
    const parts = path.split('/').slice(1);
    if (tail ? parts.length < fixed.length : parts.length !== fixed.length) return false;
    return fixed.every((segment, i) => segment.startsWith(':') || segment === parts[i]);
  };
}
