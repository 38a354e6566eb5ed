/**
 * `spillway ops …` and `spillway replay pause|resume`: thin clients of a
 * running gateway's (or worker's) operations admin API (docs/operations.md#cli).
 * Like the other admin commands they only talk HTTP to the admin port, with
 * SPILLWAY_ADMIN_TOKEN from the environment; they never open the store.
 *
 * Bulk commands (`--dead-lettered`) work a batch per request until the API
 * says none is left, with a progress bar on a terminal (stderr) and plain
 * lines otherwise, then print a summary. They ask before acting unless
 * `--yes` is given, and refuse to act unasked when there is no terminal to ask on.
 */
import { createInterface } from 'node:readline/promises';
import { SingleBar } from 'cli-progress';
import {
  AdminError,
  type AdminTarget,
  type CommandResult,
  call,
  columns,
  duration,
  failure,
  parse,
  usage,
} from './admin-commands.ts';

/** Where a command talks to the person running it: output streams, and whether they are terminals. */
export interface Terminal {
  /** Progress and questions go here (stderr), so stdout stays the result. */
  progress: NodeJS.WritableStream & { isTTY?: boolean };
  input: NodeJS.ReadableStream & { isTTY?: boolean };
}

const processTerminal = (): Terminal => ({ progress: process.stderr, input: process.stdin });

interface OperationView {
  id: string;
  route: string;
  method: string;
  path: string;
  status: string;
  attempts: number;
  deadLettered: boolean;
  outcomeUnknown: boolean;
  attemptInFlight: boolean;
  nextAttemptDateTime?: string;
  lastError?: { code: string; message: string; upstreamStatus?: number };
  failoverReason?: string;
  orderingKey?: string;
  waitingBehindOrderingKey?: boolean;
  blocksOrderingKey?: boolean;
  createdDateTime: string;
  lastActionDateTime: string;
  redrivenDateTime?: string;
  discardedDateTime?: string;
}

interface OperationDetail extends OperationView {
  query: string;
  resultStatus?: number;
  attemptHistory: Array<{
    attempt: number;
    startedDateTime: string;
    durationMs: number;
    outcome: string;
    upstreamStatus?: number;
    error?: string;
  }>;
  events: Array<{ seq: number; status: string; dateTime: string; attempts: number }>;
}

const OPS_USAGE = `spillway ops list [--status S] [--route R] [--dead-lettered] [--limit N] [--cursor C] [--json]
  spillway ops show ID [--json]
  spillway ops redrive ID… [--include-outcome-unknown]
  spillway ops redrive --dead-lettered [--route R] [--include-outcome-unknown] [--yes]
  spillway ops discard ID…  |  spillway ops discard --dead-lettered [--route R] [--yes]
  spillway ops cancel ID
  spillway ops blocked-keys [--limit N] [--json]`;

export async function opsCommand(
  args: string[],
  env: NodeJS.ProcessEnv,
  terminal: Terminal = processTerminal(),
): Promise<CommandResult> {
  const [action, ...rest] = args;
  try {
    switch (action) {
      case 'list':
        return await list(rest, env);
      case 'show':
        return await show(rest, env);
      case 'redrive':
      case 'discard':
        return await act(action, rest, env, terminal);
      case 'cancel':
        return await cancel(rest, env);
      case 'blocked-keys':
        return await blockedKeys(rest, env);
    }
  } catch (error) {
    return failure(error);
  }
  return usage(
    `spillway ops: expected list, show, redrive, discard, cancel or blocked-keys, got ${action === undefined ? 'nothing' : `"${action}"`}. Usage:\n  ${OPS_USAGE}`,
  );
}

/** `spillway replay pause|resume ROUTE`: PUT /api/routes/{route}/replay, kept in the store for every process. */
export async function replayCommand(args: string[], env: NodeJS.ProcessEnv): Promise<CommandResult> {
  const [action, ...rest] = args;
  if (action !== 'pause' && action !== 'resume') {
    return usage(
      `spillway replay: expected pause or resume, got ${action === undefined ? 'nothing' : `"${action}"`}. Usage: spillway replay pause|resume ROUTE`,
    );
  }
  const parsed = parse(rest, env, {}, 1, `replay ${action}`);
  if ('code' in parsed) return parsed;
  const [route] = parsed.positionals as [string];
  try {
    const path = `/api/routes/${encodeURIComponent(route)}/replay`;
    const answer = await call(parsed.admin, 'PUT', path, action === 'pause' ? 'paused' : 'running', [404]);
    if (answer.status === 404)
      return { code: 1, err: `spillway: ${(answer.body as { detail: string }).detail}` };
    return {
      code: 0,
      out:
        action === 'pause'
          ? `Replay of route "${route}" is paused in every process sharing the store: captures go on, nothing is replayed.\nResume it with: spillway replay resume ${route}`
          : `Replay of route "${route}" is running again.`,
    };
  } catch (error) {
    return failure(error);
  }
}

async function list(args: string[], env: NodeJS.ProcessEnv): Promise<CommandResult> {
  const parsed = parse(
    args,
    env,
    {
      status: { type: 'string' },
      route: { type: 'string' },
      'dead-lettered': { type: 'boolean' },
      limit: { type: 'string' },
      cursor: { type: 'string' },
      json: { type: 'boolean' },
    },
    0,
    'ops list',
  );
  if ('code' in parsed) return parsed;
  const { values } = parsed;
  const query = new URLSearchParams();
  for (const key of ['status', 'route', 'limit', 'cursor'] as const) {
    if (typeof values[key] === 'string') query.set(key, values[key]);
  }
  if (values['dead-lettered']) query.set('deadLettered', 'true');
  const answer = await call(parsed.admin, 'GET', `/api/operations?${query}`, undefined, [400]);
  if (answer.status === 400) return usage(`spillway ops list: ${(answer.body as { detail: string }).detail}`);
  if (values.json) return { code: 0, out: JSON.stringify(answer.body, null, 2) };
  const { operations, nextCursor } = answer.body as {
    operations: OperationView[];
    nextCursor: string | null;
  };
  if (operations.length === 0) return { code: 0, out: 'No operation matches.' };
  const more = nextCursor ? `\n\nMore with: spillway ops list … --cursor ${nextCursor}` : '';
  return { code: 0, out: `${operationsTable(operations, Date.now())}${more}` };
}

/** `ops blocked-keys`: ordering keys a dead letter holds up (GET /api/ordering-keys/blocked). */
async function blockedKeys(args: string[], env: NodeJS.ProcessEnv): Promise<CommandResult> {
  const parsed = parse(
    args,
    env,
    { limit: { type: 'string' }, json: { type: 'boolean' } },
    0,
    'ops blocked-keys',
  );
  if ('code' in parsed) return parsed;
  const query = new URLSearchParams();
  if (typeof parsed.values.limit === 'string') query.set('limit', parsed.values.limit);
  const answer = await call(parsed.admin, 'GET', `/api/ordering-keys/blocked?${query}`, undefined, [400]);
  if (answer.status === 400)
    return usage(`spillway ops blocked-keys: ${(answer.body as { detail: string }).detail}`);
  if (parsed.values.json) return { code: 0, out: JSON.stringify(answer.body, null, 2) };
  const { blockedKeys: keys } = answer.body as {
    blockedKeys: Array<{
      route: string;
      orderingKey: string;
      deadLetteredOperationId: string;
      deadLetteredDateTime: string;
      waiting: number;
    }>;
  };
  if (keys.length === 0) return { code: 0, out: 'No ordering key is blocked by a dead letter.' };
  const now = Date.now();
  const table = columns([
    ['ROUTE', 'ORDERING KEY', 'DEAD LETTER', 'SINCE', 'WAITING'],
    ...keys.map((k) => [
      k.route,
      k.orderingKey,
      k.deadLetteredOperationId,
      duration(now - Date.parse(k.deadLetteredDateTime)),
      String(k.waiting),
    ]),
  ]);
  return {
    code: 0,
    out: `${table}\n\nNothing behind a dead letter replays until it is redriven (spillway ops redrive ID) or discarded (spillway ops discard ID).`,
  };
}

async function show(args: string[], env: NodeJS.ProcessEnv): Promise<CommandResult> {
  const parsed = parse(args, env, { json: { type: 'boolean' } }, 1, 'ops show');
  if ('code' in parsed) return parsed;
  const [id] = parsed.positionals as [string];
  const answer = await call(
    parsed.admin,
    'GET',
    `/api/operations/${encodeURIComponent(id)}`,
    undefined,
    [404],
  );
  if (answer.status === 404)
    return { code: 1, err: `spillway: ${(answer.body as { detail: string }).detail}` };
  if (parsed.values.json) return { code: 0, out: JSON.stringify(answer.body, null, 2) };
  return { code: 0, out: detailText(answer.body as OperationDetail) };
}

async function cancel(args: string[], env: NodeJS.ProcessEnv): Promise<CommandResult> {
  const parsed = parse(args, env, {}, 1, 'ops cancel');
  if ('code' in parsed) return parsed;
  const [id] = parsed.positionals as [string];
  const answer = await call(
    parsed.admin,
    'POST',
    `/api/operations/${encodeURIComponent(id)}/cancel`,
    undefined,
    [404, 409],
  );
  if (answer.status !== 200)
    return { code: 1, err: `spillway: not canceled: ${(answer.body as { detail: string }).detail}` };
  return { code: 0, out: `Canceled ${id}: no attempt will be made.` };
}

/** `ops redrive|discard ID…` one by one, or `--dead-lettered` in bulk. */
async function act(
  action: 'redrive' | 'discard',
  args: string[],
  env: NodeJS.ProcessEnv,
  terminal: Terminal,
): Promise<CommandResult> {
  const options: Record<string, { type: 'boolean' | 'string'; short?: string }> = {
    'dead-lettered': { type: 'boolean' },
    route: { type: 'string' },
    yes: { type: 'boolean', short: 'y' },
  };
  if (action === 'redrive') options['include-outcome-unknown'] = { type: 'boolean' };
  const parsed = parse(args, env, options, { min: 0, max: Infinity }, `ops ${action}`);
  if ('code' in parsed) return parsed;
  const { values, positionals } = parsed;
  const includeOutcomeUnknown = values['include-outcome-unknown'] === true;
  if (values['dead-lettered']) {
    if (positionals.length > 0) {
      return usage(`spillway ops ${action}: give operation ids or --dead-lettered, not both.`);
    }
    return bulk(
      action,
      parsed.admin,
      values.route as string | undefined,
      includeOutcomeUnknown,
      values.yes === true,
      terminal,
    );
  }
  if (values.route !== undefined || values.yes) {
    return usage(`spillway ops ${action}: --route and --yes go with --dead-lettered.`);
  }
  if (positionals.length === 0) {
    return usage(
      `spillway ops ${action}: give the ids to ${action}, or --dead-lettered for all dead letters.`,
    );
  }
  const lines: string[] = [];
  const errors: string[] = [];
  for (const id of positionals) {
    const answer = await call(
      parsed.admin,
      'POST',
      `/api/operations/${encodeURIComponent(id)}/${action}`,
      action === 'redrive' && includeOutcomeUnknown ? { includeOutcomeUnknown: true } : undefined,
      [404, 409],
    );
    if (answer.status === 200) {
      lines.push(
        action === 'redrive'
          ? `Redriven ${id}: NotStarted, due now, with a fresh retry budget.`
          : `Discarded ${id}: it stays Failed, off the dead-letter list.`,
      );
    } else {
      const { code, detail } = answer.body as { code: string; detail: string };
      const hint =
        code === 'redrive-needs-confirmation' ? ' (add --include-outcome-unknown to redrive it anyway)' : '';
      errors.push(`spillway: ${id} not ${action === 'redrive' ? 'redriven' : 'discarded'}: ${detail}${hint}`);
    }
  }
  return {
    code: errors.length > 0 ? 1 : 0,
    ...(lines.length > 0 ? { out: lines.join('\n') } : {}),
    ...(errors.length > 0 ? { err: errors.join('\n') } : {}),
  };
}

async function bulk(
  action: 'redrive' | 'discard',
  admin: AdminTarget,
  route: string | undefined,
  includeOutcomeUnknown: boolean,
  yes: boolean,
  terminal: Terminal,
): Promise<CommandResult> {
  const scope = route === undefined ? 'every route' : `route "${route}"`;
  const total = await deadLetterCount(admin, route);
  if (total === 0) return { code: 0, out: `No dead letter on ${scope}.` };
  const what = `${total ?? 'all the'} dead letter${total === 1 ? '' : 's'} of ${scope}`;
  if (!yes) {
    if (!terminal.input.isTTY) {
      return usage(
        `spillway ops ${action} --dead-lettered: this would ${action} ${what}; add --yes to confirm.`,
      );
    }
    const ask = createInterface({ input: terminal.input, output: terminal.progress });
    const answer = await ask.question(`${action === 'redrive' ? 'Redrive' : 'Discard'} ${what}? [y/N] `);
    ask.close();
    if (!/^y(es)?$/i.test(answer.trim())) return { code: 1, err: 'spillway: nothing done.' };
  }
  const progress = progressOf(action, total, terminal);
  const done: string[] = [];
  const skipped: Array<{ id: string; reason: string }> = [];
  let cursor: string | undefined;
  try {
    for (;;) {
      const { body } = await call(admin, 'POST', `/api/operations/${action}`, {
        ...(route === undefined ? {} : { route }),
        ...(includeOutcomeUnknown ? { includeOutcomeUnknown: true } : {}),
        ...(cursor === undefined ? {} : { cursor }),
      });
      const batch = body as {
        redriven?: string[];
        discarded?: string[];
        skipped: typeof skipped;
        nextCursor: string | null;
      };
      done.push(...(batch.redriven ?? batch.discarded ?? []));
      skipped.push(...batch.skipped);
      progress.update(done.length + skipped.length);
      if (!batch.nextCursor) break;
      cursor = batch.nextCursor;
    }
  } finally {
    progress.stop();
  }
  return { code: 0, out: summary(action, done, skipped) };
}

/** How many dead letters the bulk action will meet, from /api/health; undefined where it is not served (a worker). */
async function deadLetterCount(admin: AdminTarget, route: string | undefined): Promise<number | undefined> {
  try {
    const { body } = await call(admin, 'GET', '/api/health');
    const health = body as {
      routes: Array<{ route: string; deadLettered: number }>;
      totals: { deadLettered: number };
    };
    if (route === undefined) return health.totals.deadLettered;
    const found = health.routes.find((r) => r.route === route);
    if (!found)
      throw new AdminError(
        `no route is named "${route}". Routes: ${health.routes.map((r) => r.route).join(', ')}.`,
      );
    return found.deadLettered;
  } catch (error) {
    if (error instanceof AdminError && /has no health API/.test(error.message)) return undefined;
    throw error;
  }
}

interface Progress {
  update(processed: number): void;
  stop(): void;
}

/** A bar on a terminal; on anything else a plain line per batch, so logs stay readable. */
function progressOf(action: string, total: number | undefined, terminal: Terminal): Progress {
  const verb = action === 'redrive' ? 'redriving' : 'discarding';
  if (terminal.progress.isTTY && total !== undefined) {
    const bar = new SingleBar({
      format: `${verb} [{bar}] {value}/{total} dead letters`,
      stream: terminal.progress,
      hideCursor: true,
      clearOnComplete: false,
    });
    bar.start(total, 0);
    return { update: (n) => bar.update(Math.min(n, total)), stop: () => bar.stop() };
  }
  return {
    update: (n) =>
      terminal.progress.write(`${verb}: ${n}${total === undefined ? '' : `/${total}`} processed\n`),
    stop: () => {},
  };
}

function summary(
  action: 'redrive' | 'discard',
  done: string[],
  skipped: Array<{ id: string; reason: string }>,
): string {
  const verb = action === 'redrive' ? 'Redriven' : 'Discarded';
  const lines = [
    `${verb} ${done.length} dead letter${done.length === 1 ? '' : 's'}, skipped ${skipped.length}.`,
  ];
  const byReason = new Map<string, string[]>();
  for (const { id, reason } of skipped) byReason.set(reason, [...(byReason.get(reason) ?? []), id]);
  for (const [reason, ids] of byReason) {
    const why =
      {
        'outcome-unknown':
          'their outcome is unknown (check the upstream; --include-outcome-unknown redrives them anyway)',
        'not-dead-lettered': 'no longer dead-lettered (acted on meanwhile)',
        purged: 'purged meanwhile',
      }[reason] ?? reason;
    lines.push(`  ${ids.length} skipped: ${why}: ${ids.join(' ')}`);
  }
  return lines.join('\n');
}

/** One line per operation: what an operator scans for first. */
export function operationsTable(operations: readonly OperationView[], now: number): string {
  const header = ['ID', 'ROUTE', 'STATUS', 'ATTEMPTS', 'DEAD', 'AGE', 'NEXT', 'LAST ERROR'];
  const rows = operations.map((o) => [
    o.id,
    o.route,
    o.status,
    String(o.attempts),
    o.deadLettered ? 'yes' : '-',
    duration(now - Date.parse(o.createdDateTime)),
    o.attemptInFlight
      ? 'in flight'
      : o.nextAttemptDateTime
        ? `in ${duration(Date.parse(o.nextAttemptDateTime) - now)}`
        : '-',
    o.lastError ? `${o.lastError.code}: ${o.lastError.message}` : '-',
  ]);
  return columns([header, ...rows]);
}

function detailText(op: OperationDetail): string {
  const lines = [
    `${op.id}  ${op.method} ${op.path}${op.query ? `?${op.query}` : ''}  route ${op.route}`,
    `status       ${op.status}${op.deadLettered ? ' (dead-lettered)' : ''}${op.outcomeUnknown ? ', outcome unknown' : ''}`,
    `attempts     ${op.attempts}${op.attemptInFlight ? ', one in flight' : ''}`,
    `created      ${op.createdDateTime}`,
    `last action  ${op.lastActionDateTime}`,
  ];
  if (op.failoverReason) lines.push(`went async   ${op.failoverReason}`);
  if (op.orderingKey) {
    const state = op.blocksOrderingKey
      ? ' (this dead letter blocks the key: redrive or discard it)'
      : op.waitingBehindOrderingKey
        ? ' (waiting behind an earlier operation of the key)'
        : '';
    lines.push(`ordering key ${op.orderingKey}${state}`);
  }
  if (op.nextAttemptDateTime) lines.push(`next attempt ${op.nextAttemptDateTime}`);
  if (op.lastError) lines.push(`last error   ${op.lastError.code}: ${op.lastError.message}`);
  if (op.resultStatus !== undefined) lines.push(`result       ${op.resultStatus}`);
  if (op.redrivenDateTime) lines.push(`redriven     ${op.redrivenDateTime}`);
  if (op.discardedDateTime) lines.push(`discarded    ${op.discardedDateTime}`);
  lines.push('', 'Attempts:');
  lines.push(
    op.attemptHistory.length === 0
      ? '  none recorded'
      : columns([
          ['  #', 'STARTED', 'TOOK', 'OUTCOME', 'STATUS', 'ERROR'],
          ...op.attemptHistory.map((a) => [
            `  ${a.attempt}`,
            a.startedDateTime,
            `${a.durationMs} ms`,
            a.outcome,
            a.upstreamStatus === undefined ? '-' : String(a.upstreamStatus),
            a.error ?? '-',
          ]),
        ]),
  );
  lines.push('', 'Events:');
  lines.push(
    columns([['  SEQ', 'AT', 'STATUS'], ...op.events.map((e) => [`  ${e.seq}`, e.dateTime, e.status])]),
  );
  if (op.deadLettered) {
    lines.push(
      '',
      `Redrive it with: spillway ops redrive ${op.id}${op.outcomeUnknown ? ' --include-outcome-unknown' : ''}`,
    );
  }
  return lines.join('\n');
}
