/**
 * The HTTP side of stale-if-error (src/engine/stale-copies.ts): a read's
 * synchronous 2xx answer is kept as its copy on its way to the client, and a
 * partial answer (a stale copy or a fallback) is written with what tells it
 * apart: `Age`, a `Cache-Status` member (RFC 9211) and the refresh operation's
 * `Operation-Location`.
 */
import type { ServerResponse } from 'node:http';
import type { Clock } from '../clock.ts';
import { operationLinks } from '../delivery/status-monitor.ts';
import { endToEnd, type HeaderRecord } from '../engine/http-fields.ts';
import type { PartialAnswer, StaleCopies } from '../engine/stale-copies.ts';
import type { UpstreamResponse } from '../engine/upstream.ts';
import type { RoutePolicy } from '../policy/route-policy.ts';
import { CACHE_STATUS, type ReadRequest } from '../policy/stale-if-error.ts';
import type { HeaderList, Operation } from '../store/port.ts';
import { storedWithOwnHeaders } from './cors.ts';

/**
 * Watches a read's synchronous answer as it streams to the client and, once
 * it has ended whole, hands it to the stale copies. Nothing is held past
 * `maxCopyBytes`; an answer cut off is never kept.
 */
export function keepAsCopy(
  response: UpstreamResponse,
  route: RoutePolicy,
  read: ReadRequest,
  copies: StaleCopies,
  clock: Clock,
): void {
  const { statusCode } = response;
  if (!copies.keepsCopies(route, read.method) || statusCode < 200 || statusCode > 299) return;
  const chunks: Buffer[] = [];
  let size = 0;
  const collect = (chunk: Buffer) => {
    size += chunk.length;
    if (size <= copies.bounds.maxCopyBytes) chunks.push(chunk);
    else response.body.off('data', collect);
  };
  response.body.on('data', collect);
  response.body.once('end', () => {
    if (size > copies.bounds.maxCopyBytes) return;
    const headers = endToEnd(response.headers as HeaderRecord);
    copies.answered(route, read, { status: statusCode, headers, body: Buffer.concat(chunks) }, clock.now());
  });
}

/** Writes a stale copy or a fallback, with its refresh operation's monitor when one was captured. */
export function sendPartial(
  res: ServerResponse,
  method: string,
  answer: PartialAnswer,
  operation: Operation | null,
  publicUrl: string,
  ownHeaders: Record<string, string>,
): void {
  const { response } = answer;
  const head = method === 'HEAD';
  // A HEAD copy's Content-Length describes the GET's body: kept. Otherwise the body written here sets it.
  const stored = response.headers.filter(
    ([name]) =>
      name !== 'cache-status' && (head || (name !== 'content-length' && name !== 'transfer-encoding')),
  );
  const own: Record<string, string> = { ...ownHeaders };
  own['cache-status'] = [
    ...response.headers.filter(([name]) => name === 'cache-status').map(([, v]) => v),
    CACHE_STATUS[answer.source],
  ].join(', ');
  if (answer.ageSeconds !== undefined) own.age = String(answer.ageSeconds);
  // A fallback is no answer of the upstream's: no cache downstream keeps it, unless it was configured to.
  if (answer.source === 'fallback' && !stored.some(([name]) => name === 'cache-control'))
    own['cache-control'] = 'no-store';
  if (operation) own['operation-location'] = operationLinks(publicUrl, operation.id).monitor;
  mergeOwnVary(stored, own);
  const lines = storedWithOwnHeaders(stored, own);
  if (!head) lines.push('content-length', String(response.body.byteLength));
  res.writeHead(response.status, lines);
  res.end(head ? undefined : response.body);
}

/** One Vary field: the stored answer's names, and Spillway's own (Prefer, Origin) not already there. */
function mergeOwnVary(stored: HeaderList, own: Record<string, string>): void {
  const ownVary = own.vary;
  if (ownVary === undefined) return;
  const at = stored.findIndex(([name]) => name === 'vary');
  if (at === -1) return;
  const names = stored[at]![1].split(',').map((n) => n.trim());
  for (const name of ownVary.split(',').map((n) => n.trim())) {
    if (!names.some((n) => n.toLowerCase() === name.toLowerCase() || n === '*')) names.push(name);
  }
  stored[at] = ['vary', names.join(', ')];
  delete own.vary;
}
