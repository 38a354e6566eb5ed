/** Reading Prometheus exposition text in tests, and running promtool on it. */
import { spawnSync } from 'node:child_process';

/** The value of one sample (`name{label="v",…}` exactly as exposed, labels in prom-client's order), or undefined. */
export function sample(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

/** Runs promtool with `args`, `input` on stdin; throws with its output unless it exits 0. */
export function promtool(args: string[], input = ''): string {
  const run = spawnSync('promtool', args, { input, encoding: 'utf8', timeout: 60_000 });
  if (run.error)
    throw new Error(
      `promtool could not run (.ci/run installs it: apt-get install prometheus): ${run.error.message}`,
    );
  if (run.status !== 0)
    throw new Error(`promtool ${args.join(' ')} exited ${run.status}:\n${run.stdout}${run.stderr}`);
  return run.stdout + run.stderr;
}
