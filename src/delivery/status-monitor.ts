/**
 * The status monitor: the client-facing view of an operation (BRIEF §6), with
 * the Azure long-running-operation statuses existing pollers understand.
 */
import { isTerminal, type Operation, type OperationError } from '../store/port.ts';

export interface StatusMonitor {
  id: string;
  status: Operation['status'];
  createdDateTime: string;
  lastActionDateTime: string;
  attempts: number;
  /** While waiting for its next attempt (none in flight): when that attempt is due. */
  nextAttemptDateTime?: string;
  /** While not terminal: why the last attempt failed. */
  lastError?: OperationError;
  /** Why the request went async rather than being answered synchronously. */
  failoverReason?: string;
  /** The result URL, once Succeeded. */
  resourceLocation?: string;
  error?: OperationError & { deadLettered: boolean };
}

export interface OperationLinks {
  monitor: string;
  result: string;
}

export function operationLinks(publicUrl: string, id: string): OperationLinks {
  const monitor = `${publicUrl}/_spillway/operations/${id}`;
  return { monitor, result: `${monitor}/result` };
}

export function statusMonitor(op: Operation, links: OperationLinks): StatusMonitor {
  const monitor: StatusMonitor = {
    id: op.id,
    status: op.status,
    createdDateTime: new Date(op.createdAt).toISOString(),
    lastActionDateTime: new Date(op.updatedAt).toISOString(),
    attempts: op.attempts,
  };
  if (!isTerminal(op.status)) {
    if (op.leaseOwner === null) monitor.nextAttemptDateTime = new Date(op.nextAttemptAt).toISOString();
    if (op.error) monitor.lastError = op.error;
  }
  if (op.failoverReason !== null) monitor.failoverReason = op.failoverReason;
  if (op.status === 'Succeeded') monitor.resourceLocation = links.result;
  if (op.status === 'Failed' && op.error)
    monitor.error = { ...op.error, deadLettered: op.deadLetteredAt !== null };
  return monitor;
}

/** Seconds a poller should wait: until the next attempt is due, between 1 and 30. */
export function retryAfterSeconds(op: Operation, now: number): number | undefined {
  if (isTerminal(op.status)) return undefined;
  const dueIn = (op.leaseExpiresAt === null ? op.nextAttemptAt : now) - now;
  return Math.min(30, Math.max(1, Math.ceil(dueIn / 1000)));
}
