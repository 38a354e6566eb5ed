/**
 * Spillway as a library: embed it in an app (`createSpillway`: a fetch
 * handler and a node:http listener, no ports), start the whole gateway
 * in-process, or use the failover engine and the store port directly.
 */
export type { Clock } from './clock.ts';
export { systemClock } from './clock.ts';
export type { GatewayConfig, RouteConfig, SpillwayConfig } from './config/config.ts';
export { buildConfig, ConfigError, defaults, readConfigFile, routeDefaults } from './config/config.ts';
export type {
  CallOutcome,
  CreateSpillwayOptions,
  EmbeddedSpillway,
  SpillwayFunction,
} from './embed/create-spillway.ts';
export { createSpillway } from './embed/create-spillway.ts';
export type { DefinedFunction, DefineOptions, FunctionContext, FunctionOutcome } from './embed/functions.ts';
export { NotProcessedError } from './embed/functions.ts';
export { fromNodeHandler, isSpillwayCall } from './embed/in-memory-http.ts';
export type { EngineAnswer, Submission } from './engine/failover-engine.ts';
export { FailoverEngine } from './engine/failover-engine.ts';
export type { FetchHandler } from './engine/fetch-upstream.ts';
export { FetchUpstream } from './engine/fetch-upstream.ts';
export type { ForwardRequest, Upstream, UpstreamResponse } from './engine/upstream.ts';
export { HttpUpstream } from './engine/upstream.ts';
export type { ErrorCode, Problem } from './errors.ts';
export { errorTable, problem, StoreUnavailableError } from './errors.ts';
export { openStore } from './ops/open-store.ts';
export type { Spillway, StartOptions } from './ops/spillway.ts';
export { startSpillway } from './ops/spillway.ts';
export type { WorkerProcess, WorkerProcessOptions } from './ops/worker-process.ts';
export { startWorkerProcess } from './ops/worker-process.ts';
export type { RoutePolicy } from './policy/route-policy.ts';
export type { StoreCapabilities, StoreEngine } from './store/capabilities.ts';
export { storeCapabilities } from './store/capabilities.ts';
export type {
  EventLog,
  IdempotencyKeys,
  NewOperation,
  Operation,
  OperationQueue,
  OperationStatus,
  OperationStore,
  OperatorViews,
  RouteControls,
  StaleCopyStore,
  StoredResponse,
  StoreLifecycle,
  WebhookOutbox,
} from './store/port.ts';
export type { PostgresStoreOptions } from './store/postgres/postgres-store.ts';
export { PostgresStore } from './store/postgres/postgres-store.ts';
export { SqliteStore } from './store/sqlite/sqlite-store.ts';
export { ThreadedSqliteStore } from './store/sqlite/threaded-store.ts';
export { ReplayWorker } from './workers/replay-worker.ts';
