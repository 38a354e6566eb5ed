/**
 * `spillway health` and `spillway override`: thin clients of a running
 * gateway's admin API (GET /api/health, PUT /api/routes/{route}/override).
 * They only talk HTTP to the admin port; they never open the store, so what
 * they show is what that gateway decides, and an override goes through the
 * gateway, which keeps it in the store.
 */
import { parseArgs } from 'node:util';
import { defaults } from '../config/config.ts';

const OVERRIDES = ['forced-async', 'forced-sync', 'none'] as const;
const TIMEOUT_MS = 5_000;

/** What a command prints, and its exit code: 0 done, 1 failed, 2 usage error. */
export interface CommandResult {
  code: number;
  out?: string;
  err?: string;
}

interface RouteView {
  route: string;
  state: string;
  since: string;
  reason: string;
  trips: number;
  signals: {
    calls: number;
    errorRate: number;
    slowRate: number;
    latencyMs?: number;
    hung: number;
    inFlight: number;
    concurrencyLimit: number;
    syncShare: number;
    openMs: number;
    drills: number;
    replay: { calls: number; errorRate: number };
  };
}

/** The admin port could not be reached, or did not answer as a gateway's admin API does. */
class AdminError extends Error {}

export async function healthCommand(args: string[], env: NodeJS.ProcessEnv): Promise<CommandResult> {
  const parsed = parse(args, env, { json: { type: 'boolean' } }, 0, 'health');
  if ('code' in parsed) return parsed;
  try {
    const { body } = await call(parsed.adminUrl, 'GET', '/api/health');
    if (parsed.values.json) return { code: 0, out: JSON.stringify(body, null, 2) };
    return { code: 0, out: healthTable((body as { routes: RouteView[] }).routes, Date.now()) };
  } catch (error) {
    return failure(error);
  }
}

export async function overrideCommand(args: string[], env: NodeJS.ProcessEnv): Promise<CommandResult> {
  const parsed = parse(args, env, {}, 2, 'override');
  if ('code' in parsed) return parsed;
  const [route, value] = parsed.positionals as [string, string];
  if (!(OVERRIDES as readonly string[]).includes(value)) {
    return usage(`spillway override: the override must be one of ${OVERRIDES.join(', ')}, got "${value}".`);
  }
  try {
    const path = `/api/routes/${encodeURIComponent(route)}/override`;
    const answer = await call(parsed.adminUrl, 'PUT', path, value, [404]);
    if (answer.status === 404) {
      const { body } = await call(parsed.adminUrl, 'GET', '/api/health');
      const names = (body as { routes: RouteView[] }).routes.map((r) => r.route);
      return { code: 1, err: `spillway: no route is named "${route}". Routes: ${names.join(', ')}.` };
    }
    const view = answer.body as RouteView;
    const what =
      value === 'none'
        ? `Override cleared: route "${route}" follows its health policy again.`
        : value === 'forced-async'
          ? `Route "${route}" is forced-async: every request is captured and answered 202 at once.`
          : `Route "${route}" is forced-sync: every request tries the upstream, whatever its health.`;
    const clear = value === 'none' ? '' : ` Clear it with: spillway override ${route} none`;
    return { code: 0, out: `${what}${clear}\n\n${healthTable([view], Date.now())}` };
  } catch (error) {
    return failure(error);
  }
}

type Parsed =
  | { adminUrl: string; values: Record<string, string | boolean | undefined>; positionals: string[] }
  | CommandResult;

function parse(
  args: string[],
  env: NodeJS.ProcessEnv,
  options: Record<string, { type: 'boolean' | 'string' }>,
  positionals: number,
  command: string,
): Parsed {
  let values: Record<string, string | boolean | undefined>;
  let given: string[];
  try {
    ({ values, positionals: given } = parseArgs({
      args,
      options: { ...options, 'admin-url': { type: 'string' } },
      allowPositionals: positionals > 0,
    }));
  } catch (error) {
    return usage(`spillway ${command}: ${(error as Error).message}`);
  }
  if (given.length !== positionals) {
    return usage(`spillway ${command}: expected ${positionals} arguments, got ${given.length}.`);
  }
  const adminUrl = String(
    values['admin-url'] ?? env.SPILLWAY_ADMIN_URL ?? `http://127.0.0.1:${defaults.adminPort}`,
  ).replace(/\/+$/, '');
  try {
    const url = new URL(adminUrl);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('not http(s)');
  } catch {
    return usage(
      `spillway ${command}: the admin URL must be an http(s) URL (--admin-url or SPILLWAY_ADMIN_URL), got "${adminUrl}".`,
    );
  }
  return { adminUrl, values, positionals: given };
}

/** One request to the admin API; anything but a 2xx (or an `expected` status) is an AdminError saying what to do. */
async function call(
  adminUrl: string,
  method: 'GET' | 'PUT',
  path: string,
  body?: string,
  expected: number[] = [],
): Promise<{ status: number; body: unknown }> {
  let res: Response;
  try {
    res = await fetch(`${adminUrl}${path}`, {
      method,
      ...(body === undefined ? {} : { body, headers: { 'content-type': 'text/plain' } }),
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    const why =
      (error as Error).name === 'TimeoutError'
        ? `no answer within ${TIMEOUT_MS / 1000} s`
        : (cause?.code ?? cause?.message ?? (error as Error).message);
    throw new AdminError(
      `cannot reach the admin port at ${adminUrl} (${why}). Is the gateway running? Point --admin-url or SPILLWAY_ADMIN_URL at its admin port.`,
    );
  }
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (res.ok || expected.includes(res.status)) {
    if (parsed === undefined)
      throw new AdminError(`${adminUrl}${path} did not answer JSON: is it a Spillway admin port?`);
    return { status: res.status, body: parsed };
  }
  const detail = (parsed as { detail?: unknown } | undefined)?.detail;
  if (res.status === 404 && path === '/api/health') {
    throw new AdminError(
      `${adminUrl} has no health API (404): point --admin-url at a gateway's admin port (a \`spillway worker\` has none).`,
    );
  }
  throw new AdminError(
    `the admin port answered ${res.status}${typeof detail === 'string' ? `: ${detail}` : ''}`,
  );
}

function usage(message: string): CommandResult {
  return { code: 2, err: `${message}\nRun spillway help for usage.` };
}

function failure(error: unknown): CommandResult {
  if (error instanceof AdminError) return { code: 1, err: `spillway: ${error.message}` };
  throw error;
}

/** One line per route: its state and the signals an operator looks at first. */
export function healthTable(routes: readonly RouteView[], now: number): string {
  const pct = (rate: number) => `${Math.round(rate * 100)}%`;
  const rows = routes.map((r) => {
    const s = r.signals;
    return [
      r.route,
      r.state,
      duration(now - Date.parse(r.since)),
      String(r.trips),
      String(s.calls),
      pct(s.errorRate),
      pct(s.slowRate),
      s.latencyMs === undefined ? '-' : `${s.latencyMs} ms`,
      `${s.inFlight}/${s.concurrencyLimit}`,
      pct(s.syncShare),
      s.replay.calls === 0 ? '-' : `${s.replay.calls} (${pct(s.replay.errorRate)} failed)`,
      r.reason,
    ];
  });
  const header = [
    'ROUTE',
    'STATE',
    'FOR',
    'TRIPS',
    'CALLS',
    'ERRORS',
    'SLOW',
    'LATENCY',
    'IN FLIGHT',
    'SYNC',
    'REPLAYS',
    'REASON',
  ];
  const table = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
  return table
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
