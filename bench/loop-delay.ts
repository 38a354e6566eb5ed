/**
 * Event-loop delay of a bench child, over IPC: `monitorEventLoopDelay`
 * sampling every 10 ms; `'loop-delay-reset'` starts a new window,
 * `'loop-delay'` answers its percentiles. The histogram records each
 * sample's whole interval, so the delay is what exceeds the 10 ms.
 *
 * The gateway child reports its own; an idle child (idle.ts) reports the same
 * over the same window as a control: on a machine whose cores are all busy,
 * a process waits for a core whatever its code does, and that wait is in
 * every event-loop delay measured there.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';

export interface LoopDelay {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  samples: number;
}

const RESOLUTION_MS = 10;

export function answerLoopDelay(): void {
  const histogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  histogram.enable();
  const delayMs = (nanoseconds: number) => Math.max(0, nanoseconds / 1e6 - RESOLUTION_MS);
  process.on('message', (message) => {
    if (message === 'loop-delay-reset') {
      histogram.reset();
      process.send?.({ reset: true });
    } else if (message === 'loop-delay') {
      const delay: LoopDelay = {
        p50Ms: delayMs(histogram.percentile(50)),
        p99Ms: delayMs(histogram.percentile(99)),
        maxMs: delayMs(histogram.max),
        samples: histogram.count,
      };
      process.send?.(delay);
    }
  });
}
