/**
 * The bench's scenarios, each a warm-up and then a measured run:
 *
 * - sync: a healthy upstream, straight or through the gateway; timed runs.
 * - captures: the upstream is down, every request is captured and answered 202.
 *   Runs are sized by request count instead of time, so no request is cut off
 *   in flight and every capture the gateway made has its 202 counted here.
 *   With several gateways, the connections are split evenly between them.
 */
import { type LoadResult, type LoadSpec, runLoad, runLoads } from './load.ts';

export interface Timing {
  warmUpSeconds: number;
  seconds: number;
}

/** A small JSON body (~200 bytes), like a payment request. */
export const postBody = JSON.stringify({
  amount: 4200,
  currency: 'EUR',
  customer: 'cus_8f14e45fceea167a5a36dedd',
  description: 'Order 100234: 2 x espresso beans, 1 kg',
  metadata: { orderId: '100234', channel: 'web', campaign: 'autumn-2025' },
});

export const requests = {
  GET: { method: 'GET', path: '/payments/pay_0001' },
  POST: {
    method: 'POST',
    path: '/payments',
    headers: { 'content-type': 'application/json' },
    body: postBody,
  },
} as const;

export function loadSpec(baseUrl: string, method: keyof typeof requests, connections: number): LoadSpec {
  const { path, ...request } = requests[method];
  return { url: baseUrl + path, connections, ...request };
}

/** How long each proxy answers each method in warmUpSync (1 s with --quick). */
export const SYNC_WARM_UP_SECONDS = 8;

/**
 * Every sync request, through every proxy, before any is measured. V8 compiles
 * a gateway's paths over its first thousands of requests; a warm-up of only
 * the method measured first left the other one to be measured while it was
 * still being optimized (through Spillway, the first method measured came out
 * 15-25% dearer per request, whichever it was). Answers other than 200 are
 * returned as problems.
 */
export async function warmUpSync(
  baseUrls: string[],
  connections: number,
  seconds: number,
): Promise<string[]> {
  const problems: string[] = [];
  for (const baseUrl of baseUrls)
    for (const method of ['GET', 'POST'] as const) {
      const run = await runLoad(loadSpec(baseUrl, method, connections), { seconds });
      problems.push(...unexpectedAnswers(`${method} warm-up through ${baseUrl}`, run, '200'));
    }
  return problems;
}

/** Called between the warm-up and the measured run, to take readings (CPU time, event-loop delay) of the run alone. */
export type BeforeMeasured = () => Promise<void>;

export async function measureSync(
  spec: LoadSpec,
  timing: Timing,
  beforeMeasured?: BeforeMeasured,
): Promise<LoadResult> {
  if (timing.warmUpSeconds > 0) await runLoad(spec, { seconds: timing.warmUpSeconds });
  await beforeMeasured?.();
  return runLoad(spec, { seconds: timing.seconds });
}

export interface CaptureRuns {
  warmUp: LoadResult[];
  measured: LoadResult;
  /** Requests the measured run was sized to; all of them must be answered. */
  planned: number;
}

export async function measureCaptures(
  specs: LoadSpec[],
  timing: Timing,
  beforeMeasured?: BeforeMeasured,
): Promise<CaptureRuns> {
  const smallest = specs.reduce((sum, spec) => sum + spec.connections, 0) * 8;
  const warmUp: LoadResult[] = [];
  let elapsed = 0;
  let rate = 0;
  // A small first batch gives a first rate; the next ones, sized from the rate of the one
  // before, fill the warm-up time. Then the measured run is sized from the last rate seen.
  do {
    const left = Math.max(0.5, timing.warmUpSeconds - elapsed);
    const run = await runLoads(specs, { amount: Math.max(smallest, Math.round(rate * left)) });
    warmUp.push(run);
    elapsed += run.seconds;
    rate = run.perSecond;
  } while ((elapsed < timing.warmUpSeconds || warmUp.length < 2) && warmUp.length < 5);
  const planned = Math.max(smallest, Math.round(rate * timing.seconds));
  await beforeMeasured?.();
  return { warmUp, measured: await runLoads(specs, { amount: planned }), planned };
}

/** The 202s answered in `runs`; over a capture scenario's warm-up and measured run, what the store must hold. */
export const count202 = (runs: LoadResult[]) =>
  runs.reduce((sum, run) => sum + (run.statuses['202'] ?? 0), 0);

/** What is wrong with a run expected to answer only `status`: other statuses, unanswered requests, no answer at all. */
export function unexpectedAnswers(label: string, run: LoadResult, status: string): string[] {
  const problems: string[] = [];
  const others = Object.entries(run.statuses).filter(([code]) => code !== status);
  if (others.length > 0) {
    problems.push(`${label}: unexpected statuses ${others.map(([code, n]) => `${n}× ${code}`).join(', ')}`);
  }
  if (run.errors > 0) problems.push(`${label}: ${run.errors} requests failed or timed out without an answer`);
  if (run.answered === 0) problems.push(`${label}: no answers at all`);
  return problems;
}
