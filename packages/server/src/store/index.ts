/**
 * The control plane's durable store: registry, projects, executions, node
 * state, events, catalog, executor leases, schedule ticks and signals, on
 * SQLite (embedded) or PostgreSQL (replicated), with one set of migrations.
 *
 * @example
 * import { Store } from "@tern/server";
 * const store = await Store.open(process.env.TERN_DATABASE_URL ?? "sqlite:.tern/tern.db");
 *
 * @module
 */
export { SqlCatalog, type SqlCatalogOptions } from "./catalog.js";
export type { StoreContext } from "./codec.js";
export {
  type DialectName,
  type OpenDatabase,
  type OpenDatabaseOptions,
  openDatabase,
  sqlitePath,
} from "./db.js";
export {
  isForeignKeyViolation,
  isTransientConflict,
  isUniqueViolation,
  type StoreErrorCode,
  StoreErrorCodes,
  storeError,
} from "./errors.js";
export { type AppendItem, type EventInput, EventRepository } from "./events.js";
export {
  ACTIVE_EXECUTION_PHASES,
  type ExecutionFilter,
  type ExecutionPage,
  type ExecutionPatch,
  type ExecutionRecord,
  ExecutionRepository,
  type NewExecution,
} from "./executions.js";
export { DEFAULT_DOMAINS, type MigrationReport, migrateToLatest, migrations } from "./migrations.js";
export { type NodeExecutionRecord, NodeExecutionRepository, type NodeExecutionUpsert } from "./nodes.js";
export { NotificationOutbox } from "./notifications.js";
export { type ProjectRecord, ProjectRepository } from "./projects.js";
export {
  type LaunchPlanDocument,
  type NameKey,
  type RegisterResult,
  type RegistryKind,
  type RegistryListFilter,
  type RegistryRecord,
  RegistryRepository,
  type RegistrySpecs,
  specDigest,
} from "./registry.js";
export { ScheduleRepository, type ScheduleTick } from "./schedules.js";
export type { Database } from "./schema.js";
export { type SignalRecord, SignalRepository } from "./signals.js";
export { describeDiff, diffSpecs, type SpecDiff, type SpecDiffOptions } from "./spec-diff.js";
export { Store, type StoreOptions } from "./store.js";
