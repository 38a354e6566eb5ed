/**
 * `spillway health`, `spillway override` and `spillway webhooks …`: thin
 * clients of a running gateway's admin API (GET /api/health, PUT
 * /api/routes/{route}/override, the webhook endpoints and re-send). They only
 * talk HTTP to the admin port; they never open the store, so what they show is
 * what that gateway decides, and an override, an enabled endpoint or a re-sent
 * delivery goes through the gateway, which keeps it in the store.
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
export class AdminError extends Error {}

export async function healthCommand(args: string[], env: NodeJS.ProcessEnv): Promise<CommandResult> {
  const parsed = parse(args, env, { json: { type: 'boolean' } }, 0, 'health');
  if ('code' in parsed) return parsed;
  try {
    const { body } = await call(parsed.admin, 'GET', '/api/health');
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
    const answer = await call(parsed.admin, 'PUT', path, value, [404]);
    if (answer.status === 404) {
      const { body } = await call(parsed.admin, 'GET', '/api/health');
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

interface DisabledEndpointView {
  name: string;
  url: string;
  disabledAt: string;
  reason: string;
}

/** A delivery as GET /api/webhooks/deliveries lists it. */
interface DeliveryView {
  operationId: string;
  seq: number;
  endpoint: string;
  state: string;
  attempts: number;
  nextAttemptDateTime?: string;
  lastError: string | null;
  createdDateTime: string;
}

const WEBHOOKS_USAGE =
  'spillway webhooks deliveries --state S [--endpoint NAME] [--limit N] [--cursor C] [--json] | disabled [--json] | enable NAME | resend OPERATION-ID ENDPOINT SEQ [--admin-url URL]';

/** `spillway webhooks deliveries|disabled|enable|resend`: the webhook operator actions (docs/operations.md#webhooks). */
export async function webhooksCommand(args: string[], env: NodeJS.ProcessEnv): Promise<CommandResult> {
  const [action, ...rest] = args;
  try {
    if (action === 'deliveries') {
      const options = {
        state: { type: 'string' },
        endpoint: { type: 'string' },
        limit: { type: 'string' },
        cursor: { type: 'string' },
        json: { type: 'boolean' },
      } as const;
      const parsed = parse(rest, env, options, 0, 'webhooks deliveries');
      if ('code' in parsed) return parsed;
      const { values } = parsed;
      const query = new URLSearchParams();
      for (const key of ['state', 'endpoint', 'limit', 'cursor'] as const) {
        if (typeof values[key] === 'string') query.set(key, values[key]);
      }
      const answer = await call(parsed.admin, 'GET', `/api/webhooks/deliveries?${query}`, undefined, [400]);
      if (answer.status === 400) {
        return usage(`spillway webhooks deliveries: ${(answer.body as { detail: string }).detail}`);
      }
      if (values.json) return { code: 0, out: JSON.stringify(answer.body, null, 2) };
      const { deliveries, nextCursor } = answer.body as {
        deliveries: DeliveryView[];
        nextCursor: string | null;
      };
      if (deliveries.length === 0) return { code: 0, out: `No delivery is ${values.state}.` };
      const resend =
        values.state === 'failed' || values.state === 'disabled'
          ? '\n\nRe-send one with: spillway webhooks resend OPERATION-ID ENDPOINT SEQ'
          : '';
      const more = nextCursor ? `\n\nMore with: spillway webhooks deliveries … --cursor ${nextCursor}` : '';
      return { code: 0, out: `${deliveriesTable(deliveries, Date.now())}${resend}${more}` };
    }
    if (action === 'disabled') {
      const parsed = parse(rest, env, { json: { type: 'boolean' } }, 0, 'webhooks disabled');
      if ('code' in parsed) return parsed;
      const { body } = await call(parsed.admin, 'GET', '/api/webhooks/endpoints/disabled');
      if (parsed.values.json) return { code: 0, out: JSON.stringify(body, null, 2) };
      const { endpoints } = body as { endpoints: DisabledEndpointView[] };
      if (endpoints.length === 0) return { code: 0, out: 'No webhook endpoint is disabled.' };
      return {
        code: 0,
        out: `${disabledTable(endpoints)}\n\nEnable one again with: spillway webhooks enable NAME`,
      };
    }
    if (action === 'enable') {
      const parsed = parse(rest, env, {}, 1, 'webhooks enable');
      if ('code' in parsed) return parsed;
      const [name] = parsed.positionals as [string];
      const path = `/api/webhooks/endpoints/${encodeURIComponent(name)}/enable`;
      const answer = await call(parsed.admin, 'POST', path, undefined, [404]);
      if (answer.status === 404) {
        const { body } = await call(parsed.admin, 'GET', '/api/webhooks/endpoints/disabled');
        const names = [
          ...new Set((body as { endpoints: DisabledEndpointView[] }).endpoints.map((e) => e.name)),
        ];
        const disabled = names.length === 0 ? 'None is.' : `Disabled: ${names.join(', ')}.`;
        return { code: 1, err: `spillway: no endpoint named "${name}" is disabled. ${disabled}` };
      }
      const { enabled } = answer.body as { enabled: DisabledEndpointView[] };
      return {
        code: 0,
        out: [
          `Endpoint "${name}" is enabled again at ${enabled.map((e) => e.url).join(', ')}: its new deliveries are sent.`,
          'Deliveries disabled while it was stay disabled; re-send each one wanted with:',
          `  spillway webhooks resend OPERATION-ID ${name} SEQ`,
        ].join('\n'),
      };
    }
    if (action === 'resend') {
      const parsed = parse(rest, env, {}, 3, 'webhooks resend');
      if ('code' in parsed) return parsed;
      const [operationId, endpoint, seq] = parsed.positionals as [string, string, string];
      if (!/^[1-9][0-9]*$/.test(seq)) {
        return usage(
          `spillway webhooks resend: SEQ must be a positive integer (the terminal event's, as in msg_<operation id>_<seq>_<endpoint>), got "${seq}".`,
        );
      }
      const segments = [operationId, endpoint, seq].map(encodeURIComponent);
      const path = `/api/operations/${segments[0]}/deliveries/${segments[1]}/${segments[2]}/resend`;
      const answer = await call(parsed.admin, 'POST', path, undefined, [404, 409]);
      if (answer.status !== 200) {
        const { detail } = answer.body as { detail?: string };
        return {
          code: 1,
          err: `spillway: not re-sent: ${detail ?? `the admin port answered ${answer.status}`}`,
        };
      }
      const view = answer.body as {
        webhookId: string;
        url: string;
        previousState: string;
        nextAttemptAt: string;
        attempts: number;
      };
      return {
        code: 0,
        out: [
          `Re-sent ${view.webhookId} (it was ${view.previousState}, after ${view.attempts} attempt${view.attempts === 1 ? '' : 's'}): pending, due ${view.nextAttemptAt}, to ${view.url}.`,
          `It keeps its webhook-id, so receivers deduplicate it. Follow it at /_spillway/operations/${operationId}/deliveries.`,
        ].join('\n'),
      };
    }
  } catch (error) {
    return failure(error);
  }
  return usage(
    `spillway webhooks: expected deliveries, disabled, enable or resend, got ${action === undefined ? 'nothing' : `"${action}"`}. Usage: ${WEBHOOKS_USAGE}`,
  );
}

/** One line per delivery, newest first as listed. */
export function deliveriesTable(deliveries: readonly DeliveryView[], now: number): string {
  const header = ['OPERATION-ID', 'ENDPOINT', 'SEQ', 'STATE', 'ATTEMPTS', 'AGE', 'NEXT', 'LAST ERROR'];
  const rows = deliveries.map((d) => [
    d.operationId,
    d.endpoint,
    String(d.seq),
    d.state,
    String(d.attempts),
    duration(now - Date.parse(d.createdDateTime)),
    d.nextAttemptDateTime === undefined
      ? '-'
      : Date.parse(d.nextAttemptDateTime) <= now
        ? 'due'
        : `in ${duration(Date.parse(d.nextAttemptDateTime) - now)}`,
    d.lastError ?? '-',
  ]);
  return columns([header, ...rows]);
}

/** One line per disabled URL. */
export function disabledTable(endpoints: readonly DisabledEndpointView[]): string {
  const header = ['NAME', 'URL', 'DISABLED AT', 'REASON'];
  const rows = endpoints.map((e) => [e.name, e.url, e.disabledAt.replace(/\.\d+Z$/, 'Z'), e.reason]);
  return columns([header, ...rows]);
}

/** A running gateway's (or worker's) admin port, and the bearer token to send it. */
export interface AdminTarget {
  url: string;
  /** SPILLWAY_ADMIN_TOKEN from the environment, when set. */
  token: string | undefined;
}

export type Parsed =
  | { admin: AdminTarget; values: Record<string, string | boolean | undefined>; positionals: string[] }
  | CommandResult;

export function parse(
  args: string[],
  env: NodeJS.ProcessEnv,
  options: Record<string, { type: 'boolean' | 'string'; short?: string }>,
  positionals: number | { min: number; max: number },
  command: string,
): Parsed {
  const { min, max } = typeof positionals === 'number' ? { min: positionals, max: positionals } : positionals;
  let values: Record<string, string | boolean | undefined>;
  let given: string[];
  try {
    ({ values, positionals: given } = parseArgs({
      args,
      options: { ...options, 'admin-url': { type: 'string' } },
      allowPositionals: max > 0,
    }));
  } catch (error) {
    return usage(`spillway ${command}: ${(error as Error).message}`);
  }
  if (given.length < min || given.length > max) {
    const expected = min === max ? `${min}` : max === Infinity ? `at least ${min}` : `${min} to ${max}`;
    return usage(`spillway ${command}: expected ${expected} arguments, got ${given.length}.`);
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
  const token = env.SPILLWAY_ADMIN_TOKEN === '' ? undefined : env.SPILLWAY_ADMIN_TOKEN;
  return { admin: { url: adminUrl, token }, values, positionals: given };
}

/**
 * One request to the admin API, with the bearer token when there is one; a
 * string body is sent as text, anything else as JSON. Anything but a 2xx (or
 * an `expected` status) is an AdminError saying what to do.
 */
export async function call(
  admin: AdminTarget,
  method: 'GET' | 'PUT' | 'POST',
  path: string,
  body?: unknown,
  expected: number[] = [],
): Promise<{ status: number; body: unknown }> {
  const adminUrl = admin.url;
  const headers: Record<string, string> = {};
  if (admin.token !== undefined) headers.authorization = `Bearer ${admin.token}`;
  if (body !== undefined)
    headers['content-type'] = typeof body === 'string' ? 'text/plain' : 'application/json';
  let res: Response;
  try {
    res = await fetch(`${adminUrl}${path}`, {
      method,
      headers,
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
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
  if (res.status === 401) {
    throw new AdminError(
      admin.token === undefined
        ? `the admin port at ${adminUrl} needs a token: set SPILLWAY_ADMIN_TOKEN to the gateway's.`
        : `the admin port at ${adminUrl} refused the token in SPILLWAY_ADMIN_TOKEN: it is not the gateway's.`,
    );
  }
  if (res.status === 404 && path === '/api/health') {
    throw new AdminError(
      `${adminUrl} has no health API (404): point --admin-url at a gateway's admin port (a \`spillway worker\` has none).`,
    );
  }
  throw new AdminError(
    `the admin port answered ${res.status}${typeof detail === 'string' ? `: ${detail}` : ''}`,
  );
}

export function usage(message: string): CommandResult {
  return { code: 2, err: `${message}\nRun spillway help for usage.` };
}

export function failure(error: unknown): CommandResult {
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
  return columns([header, ...rows]);
}

/** Aligned columns, two spaces apart; the last one is not padded. */
export function columns(table: readonly string[][]): string {
  const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
  return table
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
