/**
 * The store's tables as Kysely sees them. One schema serves SQLite and
 * PostgreSQL, so the column types are the portable subset:
 *
 * - timestamps are epoch milliseconds in `bigint` columns (`number` here: the
 *   PostgreSQL pool parses int8 as a JS number, exact up to 2^53);
 * - JSON documents are `text` holding `JSON.stringify` output, on both
 *   databases (jsonb would reject `\u0000` in user values and reorder keys);
 * - booleans are integers 0/1; repositories hand out real booleans.
 *
 * Nullable columns are optional on insert.
 */

/** A JSON document serialized as text. */
export type JsonText = string;
/** Epoch milliseconds. */
export type EpochMs = number;
/** 0 or 1. */
export type IntBool = number;

export interface ProjectsTable {
  name: string;
  description: string | null;
  created_at: EpochMs;
}

export interface DomainsTable {
  name: string;
  /** Display order. */
  position: number;
}

/** `tasks` and `workflows`: immutable versions keyed by (project, domain, name, version). */
export interface RegistryTable {
  project: string;
  domain: string;
  name: string;
  version: string;
  /** `sha256:<hex>` of the spec's canonical JSON. */
  digest: string;
  spec: JsonText;
  created_at: EpochMs;
}

export interface LaunchPlansTable extends RegistryTable {
  /** At most one active version per (project, domain, name): a partial unique index enforces it. */
  active: IntBool;
  schedule: JsonText | null;
}

export interface ExecutionsTable {
  id: string;
  project: string;
  domain: string;
  workflow_name: string;
  workflow_version: string;
  launch_plan_name: string | null;
  launch_plan_version: string | null;
  parent_execution: string | null;
  parent_node: string | null;
  phase: string;
  inputs: JsonText;
  outputs: JsonText | null;
  error: JsonText | null;
  /** Inline spec document: rows written before `0003_execution_specs`; "null" when `spec_digest` is set. */
  spec: JsonText;
  /** The spec document in `execution_specs`. */
  spec_digest: string | null;
  recover_from: string | null;
  created_at: EpochMs;
  started_at: EpochMs | null;
  ended_at: EpochMs | null;
  updated_at: EpochMs;
  /** Executor replica holding the execution. */
  owner: string | null;
  lease_expires_at: EpochMs | null;
}

export interface NodeExecutionsTable {
  execution: string;
  node_id: string;
  phase: string;
  attempts: number;
  user_failures: number;
  system_failures: number;
  cached: IntBool;
  recovered: IntBool;
  outputs: JsonText | null;
  error: JsonText | null;
  plugin: string | null;
  plugin_state: JsonText | null;
  started_at: EpochMs | null;
  ended_at: EpochMs | null;
  updated_at: EpochMs;
}

export interface EventsTable {
  execution: string;
  seq: number;
  at: EpochMs;
  node_id: string | null;
  phase: string;
  attempt: number | null;
  /** The whole event. */
  body: JsonText;
}

export interface CatalogEntriesTable {
  key: string;
  project: string;
  domain: string;
  task: string;
  cache_version: string;
  outputs: JsonText;
  producer_execution: string;
  producer_node: string;
  producer_attempt: number;
  created_at: EpochMs;
  /** Bumped on every hit: eviction goes least recently used first. */
  last_used_at: EpochMs;
  size_bytes: number;
}

/** One row (`id = 1`): the catalog's total size, kept in step with every write. */
export interface CatalogStatsTable {
  id: number;
  total_bytes: number;
}

export interface CatalogLeasesTable {
  key: string;
  owner: string;
  acquired_at: EpochMs;
  expires_at: EpochMs;
}

export interface ScheduleTicksTable {
  project: string;
  domain: string;
  launch_plan: string;
  tick_at: EpochMs;
  execution_id: string;
  fired_at: EpochMs;
}

export interface SignalsTable {
  execution: string;
  node_id: string;
  name: string;
  value: JsonText;
  set_by: string | null;
  created_at: EpochMs;
}

/** A launch plan execution whose notifications are still to be delivered (or being delivered). */
export interface NotificationOutboxTable {
  execution: string;
  /** `pending` until every webhook of the plan got its delivery (or gave up), then `done`. */
  state: string;
  /** Replica delivering now, until `lease_expires_at`; another takes over after that. */
  owner: string | null;
  lease_expires_at: EpochMs | null;
  /** Deliveries started (more than one: a replica died while delivering). */
  attempts: number;
  updated_at: EpochMs;
}

/** Execution spec documents, content-addressed (see ExecutionsTable.spec_digest). */
export interface ExecutionSpecsTable {
  digest: string;
  body: JsonText;
  created_at: EpochMs;
}

/** Every table of the store. */
export interface Database {
  projects: ProjectsTable;
  domains: DomainsTable;
  tasks: RegistryTable;
  workflows: RegistryTable;
  launch_plans: LaunchPlansTable;
  executions: ExecutionsTable;
  execution_specs: ExecutionSpecsTable;
  node_executions: NodeExecutionsTable;
  events: EventsTable;
  catalog_entries: CatalogEntriesTable;
  catalog_stats: CatalogStatsTable;
  catalog_leases: CatalogLeasesTable;
  schedule_ticks: ScheduleTicksTable;
  signals: SignalsTable;
  notification_outbox: NotificationOutboxTable;
}
