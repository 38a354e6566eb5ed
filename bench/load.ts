/**
 * One load run with autocannon, in this process, against one target or
 * several at once (the load split evenly between them, as a load balancer
 * would). autocannon's own latency histogram keeps whole milliseconds, too
 * coarse on loopback, so each response's latency is taken from its `response`
 * event and the percentiles are computed here; throughput is answered
 * requests over wall-clock time.
 */
import { performance } from 'node:perf_hooks';
import autocannon from 'autocannon';

export interface LoadSpec {
  url: string;
  method: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: string;
  connections: number;
}

/**
 * Run for a time (requests in flight at the end are dropped), or until `amount`
 * requests are answered (cut off after a minute, should the target stop answering).
 */
export type LoadLimit = { seconds: number } | { amount: number };

export interface LoadResult {
  /** Requests answered with a status (any status). */
  answered: number;
  seconds: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** Answers by status code. */
  statuses: Record<string, number>;
  /** Connection errors and timeouts: requests never answered. */
  errors: number;
}

export function runLoad(spec: LoadSpec, limit: LoadLimit): Promise<LoadResult> {
  return runLoads([spec], limit);
}

/** Runs every spec at once; an `amount` is split between them. One result for the whole. */
export async function runLoads(specs: LoadSpec[], limit: LoadLimit): Promise<LoadResult> {
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  const started = performance.now();
  let lastAnswer = started;
  const runs = specs.map((spec, i) => {
    const share =
      'amount' in limit
        ? { amount: Math.floor(limit.amount / specs.length) + (i < limit.amount % specs.length ? 1 : 0) }
        : { duration: limit.seconds };
    const instance = autocannon({
      url: spec.url,
      method: spec.method,
      connections: spec.connections,
      timeout: 10,
      ...(spec.headers ? { headers: spec.headers } : {}),
      ...(spec.body === undefined ? {} : { body: spec.body }),
      ...share,
    });
    instance.on('response', (_client, statusCode, _bytes, latencyMs) => {
      lastAnswer = performance.now();
      latencies.push(latencyMs);
      const status = String(statusCode);
      statuses[status] = (statuses[status] ?? 0) + 1;
    });
    const guard = 'amount' in limit ? setTimeout(() => instance.stop(), 60_000) : undefined;
    return Promise.resolve(instance).finally(() => clearTimeout(guard));
  });
  const results = await Promise.all(runs);
  const seconds = (lastAnswer - started) / 1000;
  const sorted = Float64Array.from(latencies).sort();
  return {
    answered: latencies.length,
    seconds,
    perSecond: seconds > 0 ? latencies.length / seconds : 0,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    statuses,
    errors: results.reduce((sum, result) => sum + result.errors, 0),
  };
}

/** Nearest-rank percentile of ascending values; NaN when there are none. */
function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/**
 * Several measured runs of the same load as one: counts and time add up, so
 * req/s is over all of them; the latency percentiles, which cannot be merged
 * without the samples, are the median of the runs' own.
 */
export function combineRuns(runs: LoadResult[]): LoadResult {
  const statuses: Record<string, number> = {};
  for (const run of runs) {
    for (const [status, n] of Object.entries(run.statuses)) statuses[status] = (statuses[status] ?? 0) + n;
  }
  const answered = sum(runs.map((run) => run.answered));
  const seconds = sum(runs.map((run) => run.seconds));
  return {
    answered,
    seconds,
    perSecond: seconds > 0 ? answered / seconds : 0,
    p50Ms: median(runs.map((run) => run.p50Ms)),
    p99Ms: median(runs.map((run) => run.p99Ms)),
    statuses,
    errors: sum(runs.map((run) => run.errors)),
  };
}

const sum = (values: number[]) => values.reduce((total, value) => total + value, 0);

/** The middle value (the mean of the two middle ones for an even count); NaN when there are none. */
export function median(values: number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}
