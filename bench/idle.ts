/**
 * Bench child process that does nothing but watch its own event loop
 * (loop-delay.ts): the control for the gateway's event-loop delay, showing
 * how much of it is the wait for a core on a busy machine.
 *
 * SIGTERM ends it.
 */
import { answerLoopDelay } from './loop-delay.ts';

answerLoopDelay();
process.send?.({ ready: {} });
process.once('SIGTERM', () => process.exit(0));
