/**
 * An operation's status change as a CloudEvents 1.0 event in structured JSON
 * mode: the payload of every push channel (SSE now; WebSocket and webhooks
 * share it), so a consumer parses one shape whatever the transport.
 */
import type { OperationEvent } from '../store/port.ts';
import { operationLinks } from './status-monitor.ts';

export interface CloudEvent {
  specversion: '1.0';
  /** `<operation id>:<seq>`: unique, ordered per operation; also the SSE event id. */
  id: string;
  source: string;
  /** `dev.spillway.operation.<status in lower case>`, e.g. `dev.spillway.operation.succeeded`. */
  type: string;
  subject: string;
  time: string;
  datacontenttype: 'application/json';
  data: {
    id: string;
    status: OperationEvent['status'];
    attempts: number;
    lastActionDateTime: string;
    /** The result URL, once Succeeded or Failed. */
    resultLocation?: string;
    error?: OperationEvent['error'];
  };
}

export const eventId = (event: OperationEvent): string => `${event.operationId}:${event.seq}`;

export function toCloudEvent(event: OperationEvent, publicUrl: string): CloudEvent {
  const links = operationLinks(publicUrl, event.operationId);
  const time = new Date(event.at).toISOString();
  const terminal = event.status === 'Succeeded' || event.status === 'Failed';
  return {
    specversion: '1.0',
    id: eventId(event),
    source: `${publicUrl}/_spillway/operations`,
    type: `dev.spillway.operation.${event.status.toLowerCase()}`,
    subject: event.operationId,
    time,
    datacontenttype: 'application/json',
    data: {
      id: event.operationId,
      status: event.status,
      attempts: event.attempts,
      lastActionDateTime: time,
      ...(terminal ? { resultLocation: links.result } : {}),
      ...(event.error ? { error: event.error } : {}),
    },
  };
}
