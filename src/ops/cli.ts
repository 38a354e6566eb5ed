/**
 * `spillway` on the command line. Every flag has a SPILLWAY_* environment
 * variable; flags win over the environment, which wins over the config file.
 */
import { parseArgs } from 'node:util';
import { buildConfig, defaults, type GatewayConfig, readConfigFile } from '../config/config.ts';
import { newWebhookSecret } from '../delivery/webhooks/signing.ts';
import { startDemo } from '../demo/demo.ts';
import { newStoreKey } from '../store/sealed-values.ts';
import { healthCommand, overrideCommand, webhooksCommand } from './admin-commands.ts';
import { opsCommand, replayCommand } from './ops-commands.ts';
import { startSpillway } from './spillway.ts';
import { startupFailure } from './startup-failure.ts';
import { storeCommand } from './store-commands.ts';
import { startTracing } from './tracing.ts';
import { startWorkerProcess } from './worker-process.ts';

export const HELP = `Spillway: sync when it can, async when it must, and never drop a request.

Usage:
  spillway serve --upstream URL [options]   Run the gateway (public port, admin port, replay workers)
  spillway worker --store postgres://… --upstream URL [options]
                                            Run replay workers only, beside gateways sharing a PostgreSQL store
  spillway demo [--port N]                  Run the demo: gateway + a switchable "payments" upstream
  spillway health [--json] [--admin-url URL]
                                            Show each route's health state, reason, trips and signals
  spillway override ROUTE forced-async|forced-sync|none [--admin-url URL]
                                            Force a route async or sync, or clear the override (kept in the store)
  spillway webhooks deliveries --state pending|delivered|failed|disabled [--endpoint NAME] [--json]
                                            List webhook deliveries in a state, newest first (--limit N, --cursor C for more)
  spillway webhooks disabled [--json] [--admin-url URL]
                                            List the webhook subscriptions disabled by a 410 Gone
  spillway webhooks enable NAME [--admin-url URL]
                                            Enable a disabled subscription again (deliveries disabled meanwhile stay so)
  spillway webhooks resend OPERATION-ID ENDPOINT SEQ [--admin-url URL]
                                            Re-send a failed or disabled delivery, same webhook-id (msg_<id>_<seq>_<endpoint>)
  spillway ops list [--status S] [--route R] [--dead-lettered] [--json]
                                            List operations, newest first (--limit N, --cursor C for more)
  spillway ops show ID [--json]             One operation: its attempts (start, duration, outcome, status, error) and events
  spillway ops redrive ID… [--include-outcome-unknown]
                                            Send dead letters back to replay, with a fresh retry budget
  spillway ops redrive --dead-lettered [--route R] [--include-outcome-unknown] [--yes]
                                            Redrive every dead letter (of a route); asks first unless --yes
  spillway ops discard ID… | --dead-lettered [--route R] [--yes]
                                            Take dead letters off the list; they stay Failed
  spillway ops cancel ID                    Cancel an operation not started, or waiting between attempts
  spillway ops blocked-keys [--json]        Ordering keys held up by a dead letter at their head
  spillway replay pause|resume ROUTE        Pause or resume a route's replay in every process (kept in the store)
  spillway webhook-secret                   Print a new webhook signing secret (whsec_…, 32 random bytes)
  spillway store-key                        Print a new store encryption key (base64 of 32 random bytes)
  spillway store rekey [--store PATH|URL] [--config FILE] [--batch-size N]
                                            Re-encrypt every stored value (old keys, plaintext) under the newest
                                            key of SPILLWAY_STORE_ENCRYPTION_KEY, then forget the old keys; SQLite:
                                            stop the gateway first; PostgreSQL: gateways keep running
  spillway help                             Show this help
  spillway version                          Print the version

serve options (flag, environment variable, default):
  --upstream URL     SPILLWAY_UPSTREAM     (required) the service Spillway protects
  --port N           SPILLWAY_PORT         ${defaults.port}   public port: proxied routes and /_spillway/
  --host H           SPILLWAY_HOST         ${defaults.host}   public interface
  --admin-port N     SPILLWAY_ADMIN_PORT   ${defaults.adminPort}   admin port (/healthz, /readyz), on ${defaults.adminHost} (adminHost in the config file)
  --store PATH|URL   SPILLWAY_STORE        ${defaults.store}   SQLite file, or postgres://user@host:5432/db[?schema=name]
  --config FILE      SPILLWAY_CONFIG       none   JSON config: routes and limits (docs/configuration.md)
  --public-url URL   SPILLWAY_PUBLIC_URL   http://<host>:<port>   base of the URLs in 202 answers

worker options: --upstream, --store (a postgres:// URL), --config, --admin-port (/healthz, /readyz)
  as for serve, with the same environment variables; replay.concurrency in the config file sets its workers.

health, override, webhooks, ops and replay options:
  --admin-url URL    SPILLWAY_ADMIN_URL    http://127.0.0.1:${defaults.adminPort}   a running gateway's admin port
  --json             (health, webhooks deliveries|disabled) print the admin API's JSON instead of the table
  SPILLWAY_ADMIN_TOKEN               sent as the bearer token when set (the gateway's admin token)
  They talk to the gateway's admin API; exit code 1 when it cannot be reached or refuses (unknown route,
  endpoint not disabled, delivery unknown or not re-sendable, operation not dead-lettered…), 2 for a usage error.

demo options:
  --port N           SPILLWAY_PORT         8080   the gateway; the demo upstream takes port+10, its webhook receiver port+12, admin port+1

Other environment:
  SPILLWAY_LOG_LEVEL   trace|debug|info|warn|error|silent (default info); logs are JSON lines on stdout
  SPILLWAY_WEBHOOK_SECRET         webhooks.secrets: whsec_… secrets that sign webhooks, space- or comma-separated
                                  (all sign: list the new and the old during a rotation)
  SPILLWAY_CALLBACK_ALLOW         webhooks.callbackAllow: origins a Spillway-Callback may name, comma-separated,
                                  exactly (https://hooks.example); unset: callbacks refused (400)
  SPILLWAY_STORE_ENCRYPTION_KEY   storeEncryptionKey: keys that encrypt stored requests and results at rest,
                                  newest first, comma-separated (docs/operations.md#encryption-at-rest)
  SPILLWAY_CALLBACK_ALLOW_PRIVATE webhooks.allowPrivateNetworks: 1 lets webhooks reach loopback and private
                                  addresses (never cloud metadata); default refused

Signals: SIGTERM or SIGINT stop gracefully (stop accepting, finish or hand back in-flight work).
Docs: README.md, docs/http-api.md, docs/configuration.md, docs/policy.md, docs/operations.md.`;

const flagToOption = {
  upstream: 'upstream',
  port: 'port',
  host: 'host',
  'admin-port': 'adminPort',
  store: 'store',
  'public-url': 'publicUrl',
} as const;

export async function main(argv: string[]): Promise<number> {
  const [command = 'help', ...rest] = argv;
  if (command === 'help' || command === '--help' || command === '-h') {
    console.log(HELP);
    return 0;
  }
  if (command === 'version' || command === '--version') {
    const pkg = await import('../../package.json', { with: { type: 'json' } });
    console.log(pkg.default.version);
    return 0;
  }
  if (command === 'webhook-secret') {
    console.log(newWebhookSecret());
    return 0;
  }
  if (command === 'store-key') {
    console.log(newStoreKey());
    return 0;
  }
  if (
    command === 'health' ||
    command === 'override' ||
    command === 'webhooks' ||
    command === 'ops' ||
    command === 'replay' ||
    command === 'store'
  ) {
    const run = {
      health: healthCommand,
      override: overrideCommand,
      webhooks: webhooksCommand,
      ops: opsCommand,
      replay: replayCommand,
      store: storeCommand,
    }[command];
    const { code, out, err } = await run(rest, process.env);
    if (out !== undefined) console.log(out);
    if (err !== undefined) console.error(err);
    return code;
  }
  if (command !== 'serve' && command !== 'demo' && command !== 'worker') {
    console.error(`Unknown command "${command}".\n\n${HELP}`);
    return 2;
  }
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: rest,
      options: {
        upstream: { type: 'string' },
        port: { type: 'string' },
        host: { type: 'string' },
        'admin-port': { type: 'string' },
        store: { type: 'string' },
        config: { type: 'string' },
        'public-url': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  let config: GatewayConfig | undefined;
  try {
    if (command === 'demo') {
      const port = Number(values.port ?? process.env.SPILLWAY_PORT ?? 8080);
      const demo = await startDemo({ port });
      onSignal(() => demo.stop());
      return 0;
    }
    const configFile = (values.config as string | undefined) ?? process.env.SPILLWAY_CONFIG;
    const raw: Record<string, unknown> = configFile ? readConfigFile(configFile) : {};
    for (const [flag, option] of Object.entries(flagToOption)) {
      const env = process.env[`SPILLWAY_${option.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`];
      const value = values[flag] ?? env;
      if (value !== undefined && value !== '') raw[option] = value;
    }
    raw.webhooks = webhooksFromEnv(raw.webhooks, process.env);
    // Tokens and keys come from the environment (or the config file), never from flags: those show in ps.
    for (const [variable, option] of [
      ['SPILLWAY_ADMIN_TOKEN', 'adminToken'],
      ['SPILLWAY_METRICS_TOKEN', 'metricsToken'],
      ['SPILLWAY_STORE_ENCRYPTION_KEY', 'storeEncryptionKey'],
    ] as const) {
      const value = process.env[variable];
      if (value !== undefined && value !== '') raw[option] = value;
    }
    config = buildConfig(raw);
    // Traces are exported only when the OTEL_* variables ask (src/ops/tracing.ts); flushed after the stop.
    const tracing = await startTracing();
    let running: { stop(): Promise<void> };
    try {
      running = command === 'worker' ? await startWorkerProcess(config) : await startSpillway(config);
    } catch (error) {
      await tracing?.shutdown();
      throw error;
    }
    onSignal(async () => {
      await running.stop();
      await tracing?.shutdown();
    });
    return 0;
  } catch (error) {
    // One line that says what to do; the stack only when asked for (SPILLWAY_LOG_LEVEL=debug or trace).
    console.error(`spillway: ${startupFailure(error, config)}`);
    if (/^(debug|trace)$/.test(process.env.SPILLWAY_LOG_LEVEL ?? '')) console.error(error);
    return 1;
  }
}

/** The SPILLWAY_* variables of the `webhooks` options, over the config file's. */
function webhooksFromEnv(fromFile: unknown, env: NodeJS.ProcessEnv): unknown {
  const variables = {
    secrets: env.SPILLWAY_WEBHOOK_SECRET,
    callbackAllow: env.SPILLWAY_CALLBACK_ALLOW,
    allowPrivateNetworks: env.SPILLWAY_CALLBACK_ALLOW_PRIVATE,
  };
  const set = Object.entries(variables).filter(([, value]) => value !== undefined && value !== '');
  if (set.length === 0) return fromFile;
  // A malformed file value is left for buildConfig to report.
  const base = typeof fromFile === 'object' && fromFile !== null ? fromFile : {};
  return { ...base, ...Object.fromEntries(set) };
}

function onSignal(stop: () => Promise<void>): void {
  const handler = () => {
    stop().then(
      () => process.exit(0),
      (error: unknown) => {
        console.error(error);
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', handler);
  process.once('SIGINT', handler);
}
