/**
 * Steady client load for the end-to-end health tests: a few clients, each
 * sending one request after another over real HTTP, every answer recorded
 * with its latency and, for a 202, its operation id and failover reason.
 * Bounded by a request count or a duration, so a test always stops.
 */
import { performance } from 'node:perf_hooks';

export interface Answer {
  status: number;
  /** When the request was sent, ms since the load started. */
  at: number;
  ms: number;
  /** Spillway-Failover-Reason of a 202. */
  reason?: string;
  /** The operation id of a 202. */
  id?: string;
  /** A network error instead of an answer. */
  error?: string;
}

export interface LoadOptions {
  clients: number;
  /** Stop after this many requests in all (whichever of `requests`, `durationMs` comes first). */
  requests?: number;
  durationMs?: number;
  /** Pause of each client between its requests. */
  pauseMs?: number;
  send: (n: number) => Promise<Response>;
}

export async function runLoad({
  clients,
  requests = Number.POSITIVE_INFINITY,
  durationMs = Number.POSITIVE_INFINITY,
  pauseMs = 0,
  send,
}: LoadOptions): Promise<Answer[]> {
  const answers: Answer[] = [];
  const start = performance.now();
  let sent = 0;
  const client = async () => {
    while (sent < requests && performance.now() - start < durationMs) {
      const n = sent++;
      const at = performance.now() - start;
      try {
        const res = await send(n);
        const body = await res.text();
        const answer: Answer = { status: res.status, at, ms: performance.now() - start - at };
        if (res.status === 202) {
          answer.reason = res.headers.get('spillway-failover-reason') ?? undefined;
          answer.id = (JSON.parse(body) as { id: string }).id;
        }
        answers.push(answer);
      } catch (error) {
        answers.push({ status: 0, at, ms: performance.now() - start - at, error: String(error) });
      }
      if (pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs));
    }
  };
  await Promise.all(Array.from({ length: clients }, client));
  return answers;
}

/** The p-th percentile (0–100) of some numbers, by rank. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}
