/**
 * The client-facing operations API under the reserved prefix `/_spillway/`:
 * the status monitor and the result (BRIEF §6).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Clock } from '../clock.ts';
import { operationLinks, retryAfterSeconds, statusMonitor } from '../delivery/status-monitor.ts';
import { isOperationId } from '../engine/operation-id.ts';
import { type ErrorCode, errorTable } from '../errors.ts';
import type { Operation, OperationStore } from '../store/port.ts';
import { sendProblem } from './problem-response.ts';

export const RESERVED_PREFIX = '/_spillway/';

export interface OperationsApiOptions {
  store: OperationStore;
  clock: Clock;
  publicUrl: string;
}

export async function serveOperationsApi(
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  { store, clock, publicUrl }: OperationsApiOptions,
): Promise<void> {
  const match = /^\/_spillway\/operations\/([^/]+)(\/result)?$/.exec(path);
  if (!match) {
    sendProblem(
      res,
      'not-found',
      `Nothing is served at ${path}. See GET /_spillway/operations/{id} and its /result.`,
    );
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    sendProblem(res, 'method-not-allowed', `${req.method} is not supported here; use GET.`, {
      allow: 'GET, HEAD',
    });
    return;
  }
  const id = decodeURIComponent(match[1]!);
  const op = isOperationId(id) ? await store.get(id) : undefined;
  if (!op) {
    sendProblem(
      res,
      'operation-not-found',
      `No operation has the id ${JSON.stringify(id)}. Check the id from the 202's Operation-Location.`,
    );
    return;
  }
  const links = operationLinks(publicUrl, op.id);
  const retryAfter = retryAfterSeconds(op, clock.now());
  const pollHeaders: Record<string, string | number> = { 'cache-control': 'no-store' };
  if (retryAfter !== undefined) pollHeaders['retry-after'] = retryAfter;

  if (match[2] === undefined || retryAfter !== undefined) {
    // The monitor, or the result of an operation still under way: 202 with itself as Location.
    const pending = match[2] !== undefined;
    sendJson(res, pending ? 202 : 200, statusMonitor(op, links), {
      ...pollHeaders,
      ...(pending ? { location: links.result } : {}),
    });
    return;
  }
  sendResult(res, op, links.monitor);
}

function sendResult(res: ServerResponse, op: Operation, monitor: string): void {
  if (op.result) {
    // The upstream's own answer, byte for byte (its final success, or its final refusal).
    res.writeHead(op.result.status, op.result.headers.flat());
    res.end(op.result.body);
    return;
  }
  // Failed by Spillway's own decision (an upstream's final answer is replayed above).
  const code: ErrorCode =
    op.error && op.error.code in errorTable ? (op.error.code as ErrorCode) : 'upstream-failed';
  const detail = op.error?.message ?? `The operation ended ${op.status}.`;
  sendProblem(
    res,
    code,
    detail,
    { link: `<${monitor}>; rel="monitor"` },
    {
      operationId: op.id,
      attempts: op.attempts,
      deadLettered: op.deadLetteredAt !== null,
      ...(op.error?.upstreamStatus === undefined ? {} : { upstreamStatus: op.error.upstreamStatus }),
    },
  );
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string | number> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}
