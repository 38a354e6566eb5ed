/**
 * A latency histogram with fixed, roughly logarithmic bucket bounds (1-2-5 per
 * decade, 1 ms to 10 min): percentiles are read from counts, never by sorting
 * samples, so memory is constant whatever the traffic.
 */
const BOUNDS_MS: readonly number[] = (() => {
  const bounds: number[] = [];
  for (let decade = 1; decade <= 100_000; decade *= 10) for (const m of [1, 2, 5]) bounds.push(m * decade);
  bounds.push(600_000);
  return bounds;
})();

export class LatencyHistogram {
  readonly counts = new Array<number>(BOUNDS_MS.length + 1).fill(0);
  total = 0;

  record(ms: number): void {
    let i = 0;
    while (i < BOUNDS_MS.length && ms > BOUNDS_MS[i]!) i++;
    this.counts[i]!++;
    this.total++;
  }

  subtract(other: LatencyHistogram): void {
    for (let i = 0; i < this.counts.length; i++) this.counts[i]! -= other.counts[i]!;
    this.total -= other.total;
  }

  /** The upper bound of the bucket holding the p-th percentile (0 < p ≤ 100); undefined when empty. */
  percentile(p: number): number | undefined {
    if (this.total === 0) return undefined;
    const rank = Math.ceil((p / 100) * this.total);
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return BOUNDS_MS[i] ?? Number.POSITIVE_INFINITY;
    }
    return Number.POSITIVE_INFINITY;
  }
}
