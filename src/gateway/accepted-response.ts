/**
 * The 202 Accepted answer for a request that went async: the operation's
 * URLs (BRIEF §6) and, unless `return=minimal` was applied, its monitor.
 */
import type { ServerResponse } from 'node:http';
import { operationLinks, retryAfterSeconds, statusMonitor } from '../delivery/status-monitor.ts';
import type { Operation } from '../store/port.ts';

export function sendAccepted(
  res: ServerResponse,
  op: Operation,
  publicUrl: string,
  now: number,
  headers: Record<string, string>,
  minimal = false,
): void {
  const links = operationLinks(publicUrl, op.id);
  const text = minimal ? '' : JSON.stringify(statusMonitor(op, links));
  res.writeHead(202, {
    location: links.result,
    'operation-location': links.monitor,
    ...(text ? { 'content-location': links.monitor, 'content-type': 'application/json' } : {}),
    'retry-after': String(retryAfterSeconds(op, now) ?? 1),
    'cache-control': 'no-store',
    ...headers,
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}
