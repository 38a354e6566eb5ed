/**
 * `npm start`: Spillway on the embedded store in front of the demo payments
 * upstream, with a webhook receiver that verifies what it gets, and a printed
 * guide of curl commands for each path.
 */
import { buildConfig, type SpillwayConfig } from '../config/config.ts';
import { newWebhookSecret, parseWebhookSecret } from '../delivery/webhooks/signing.ts';
import { createLogger, type Logger } from '../ops/logger.ts';
import { startSpillway } from '../ops/spillway.ts';
import { startPaymentsUpstream } from './payments-upstream.ts';
import { startWebhookReceiver } from './webhook-receiver.ts';

export interface DemoOptions {
  /**
   * The gateway's public port; the others default to port+1 (admin), port+10 (upstream), port+11 (its
   * control), port+12 (the webhook receiver).
   */
  port: number;
  ports?: { admin: number; upstream: number; control: number; webhooks: number };
  store?: string;
  /** Print the curl guide (default true). */
  guide?: boolean;
  /** Where the JSON log lines go (default stdout at SPILLWAY_LOG_LEVEL, else info: a line per capture and attempt). */
  logger?: Logger;
}

export async function startDemo({
  port,
  ports,
  store = 'spillway-demo.db',
  guide: printGuide = true,
  logger = createLogger(process.env.SPILLWAY_LOG_LEVEL ?? 'info'),
}: DemoOptions) {
  const {
    admin,
    upstream: upstreamPort,
    control,
    webhooks: webhooksPort,
  } = ports ?? { admin: port + 1, upstream: port + 10, control: port + 11, webhooks: port + 12 };
  const upstream = await startPaymentsUpstream(upstreamPort, control);
  const secret = process.env.SPILLWAY_WEBHOOK_SECRET?.split(/[\s,]+/)[0] || newWebhookSecret();
  const receiver = await startWebhookReceiver(webhooksPort, parseWebhookSecret(secret), (line) => {
    if (printGuide) console.log(line);
  });
  const config = buildConfig(
    demoConfig({ upstream: upstream.url, port, adminPort: admin, store, secret, receiver: receiver.origin }),
  );
  const spillway = await startSpillway(config, { logger });
  if (printGuide)
    console.log(guide(spillway.publicUrl, upstream.controlUrl, spillway.adminPort, store, receiver.url));
  return {
    spillway,
    upstream,
    receiver,
    stop: async () => {
      await spillway.stop();
      await upstream.stop();
      await receiver.stop();
    },
  };
}

/** The demo gateway's configuration, as a config file would hold it (checked against the published schema in a test). */
export function demoConfig(at: {
  upstream: string;
  port: number;
  adminPort: number;
  store: string;
  secret: string;
  receiver: string;
}): SpillwayConfig {
  return {
    upstream: at.upstream,
    host: '127.0.0.1',
    port: at.port,
    adminPort: at.adminPort,
    store: at.store,
    routes: [
      // The demo upstream deduplicates by Idempotency-Key, so a payment whose answer was lost may be resent.
      { name: 'payments', match: 'POST /payments', budgetMs: 2000, honoursIdempotencyKey: true },
      // A read that never waits: while the upstream cannot answer, the last price list (up to 10 min old).
      { name: 'prices', match: 'GET /prices', budgetMs: 1000, staleIfErrorMs: 600_000 },
    ],
    routeDefaults: { backoff: { initialMs: 500, maxMs: 5000, multiplier: 2 } },
    // Callbacks may reach the demo's own receiver, on loopback; a production gateway lists public origins.
    webhooks: { secrets: [at.secret], callbackAllow: [at.receiver], allowPrivateNetworks: true },
  };
}

function guide(gw: string, ctl: string, adminPort: number, store: string, hooks: string): string {
  const pay = `curl -si -X POST ${gw}/payments -H 'content-type: application/json' -d '{"amount": 42, "currency": "EUR"}'`;
  const mode = (body: string) => `curl -s -X PUT ${ctl}/mode -d '${body}'`;
  return `
Spillway demo — gateway ${gw}, admin http://127.0.0.1:${adminPort}, store ./${store}
The upstream is a small payments service; switch its behaviour on ${ctl}/mode.

1. Healthy: the payment is answered synchronously (201), straight from the upstream.
     ${pay}

2. Break the upstream, then pay again: 202 Accepted with a tracking id, captured durably.
     ${mode('{"mode":"down"}')}
     ${pay}
   Follow it (use the Operation-Location / Location headers of the 202):
     curl -s ${gw}/_spillway/operations/<id>
     curl -si ${gw}/_spillway/operations/<id>/result        # 202 until it is done

3. Bring the upstream back: the replay worker delivers it; /result then returns the upstream's 201.
     ${mode('{"mode":"healthy"}')}

4. Slow upstream (5 s, over the 2 s budget): 202 at about 2 s, and the same call completes the operation (adoption).
     ${mode('{"mode":"slow","delayMs":5000}')}
     ${pay}

5. Flaky upstream (half the calls answer 503): failed calls are captured and retried with backoff.
     ${mode('{"mode":"flaky","errorRate":0.5}')}

   Ask for async explicitly at any time:
     curl -si -X POST ${gw}/payments -H 'prefer: respond-async, wait=0' -d '{"amount": 7}'

6. Get the result pushed instead of polling. Break the upstream, pay with a callback, follow the events:
     ${mode('{"mode":"down"}')}
     curl -si -X POST ${gw}/payments -H 'content-type: application/json' -H 'spillway-callback: ${hooks}' -d '{"amount": 9}'
     curl -N ${gw}/_spillway/operations/<id>/events          # Server-Sent Events, CloudEvents inside
     ${mode('{"mode":"healthy"}')}
   This terminal prints the signed webhook when the payment completes (the receiver checks its signature).

7. Retry without paying twice: send the same Idempotency-Key again and get the first answer back.
     curl -si -X POST ${gw}/payments -H 'content-type: application/json' -H 'idempotency-key: order-1001' -d '{"amount": 5}'   # twice

8. Watch the health policy decide (state, reason, trips, signals); force a mode by hand:
     curl -s http://127.0.0.1:${adminPort}/api/health
     curl -s -X PUT http://127.0.0.1:${adminPort}/api/routes/payments/override -d forced-async   # or forced-sync, none

9. Reads that never wait: read the prices, break the upstream, read them again: the last list at once
   (200, with Age and Cache-Status: Spillway; hit; detail=stale-if-error), and an Operation-Location.
     curl -si ${gw}/prices
     ${mode('{"mode":"down"}')}
     curl -si ${gw}/prices
   Bring it back: that operation's result is the fresh list, and the next read is fresh again.
     ${mode('{"mode":"healthy"}')}
     curl -s ${gw}/_spillway/operations/<id>/result
     curl -si ${gw}/prices

Log lines (JSON, below): an info line per capture ("operation:captured") and per attempt
("attempt:finished", with its outcome), a warn line per dead letter, each with operationId, route,
attempt and traceId. Set SPILLWAY_LOG_LEVEL=debug for more, warn for fewer.

Ready: curl -s http://127.0.0.1:${adminPort}/readyz     Stop: Ctrl-C (graceful; nothing acknowledged is lost).
`;
}
