/**
 * `spillway/client`: the client SDK. Zero runtime dependencies; runs in
 * Node.js 24 and in browsers. See docs/sdk.md.
 */
export {
  type AcceptedOperation,
  type CallOptions,
  type ClientOptions,
  createClient,
  type FetchInput,
  type FetchLike,
  type OperationStatus,
  type PartialOperation,
  type SpillwayClient,
  spillway,
} from './client.ts';
export { parseRetryAfter } from './retry-after.ts';
export { createSseParser, readSse, type SseEvent, type SseHandlers, type SseParser } from './sse.ts';
