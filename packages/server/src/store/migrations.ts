/**
 * The store's migrations: one list, run on SQLite and PostgreSQL alike through
 * Kysely's `Migrator` (which takes a lock, so replicas starting together migrate
 * once). Append new migrations; never edit a released one.
 */

import { ErrorCodes, TernError } from "@tern/core";
import type { Kysely } from "kysely";
import { type Migration, type MigrationResultSet, Migrator } from "kysely/migration";
import { sql } from "./kysely.js";

/** Domains every store starts with, in display order. */
export const DEFAULT_DOMAINS = ["development", "staging", "production"] as const;

const initial: Migration = {
  async up(db: Kysely<any>): Promise<void> {
    await db.schema
      .createTable("projects")
      .addColumn("name", "text", (c) => c.primaryKey())
      .addColumn("description", "text")
      .addColumn("created_at", "bigint", (c) => c.notNull())
      .execute();

    await db.schema
      .createTable("domains")
      .addColumn("name", "text", (c) => c.primaryKey())
      .addColumn("position", "integer", (c) => c.notNull())
      .execute();
    await db
      .insertInto("domains")
      .values(DEFAULT_DOMAINS.map((name, position) => ({ name, position })))
      .execute();

    for (const table of ["tasks", "workflows", "launch_plans"]) {
      let t = db.schema
        .createTable(table)
        .addColumn("project", "text", (c) => c.notNull())
        .addColumn("domain", "text", (c) => c.notNull())
        .addColumn("name", "text", (c) => c.notNull())
        .addColumn("version", "text", (c) => c.notNull())
        .addColumn("digest", "text", (c) => c.notNull())
        .addColumn("spec", "text", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull());
      if (table === "launch_plans") {
        t = t.addColumn("active", "integer", (c) => c.notNull().defaultTo(0)).addColumn("schedule", "text");
      }
      await t.addPrimaryKeyConstraint(`${table}_pk`, ["project", "domain", "name", "version"]).execute();
      await db.schema
        .createIndex(`${table}_by_name_time`)
        .on(table)
        .columns(["project", "domain", "name", "created_at"])
        .execute();
    }
    await db.schema
      .createIndex("launch_plans_one_active")
      .on("launch_plans")
      .columns(["project", "domain", "name"])
      .unique()
      .where(sql.ref("active"), "=", 1)
      .execute();

    await db.schema
      .createTable("executions")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("project", "text", (c) => c.notNull())
      .addColumn("domain", "text", (c) => c.notNull())
      .addColumn("workflow_name", "text", (c) => c.notNull())
      .addColumn("workflow_version", "text", (c) => c.notNull())
      .addColumn("launch_plan_name", "text")
      .addColumn("launch_plan_version", "text")
      .addColumn("parent_execution", "text")
      .addColumn("parent_node", "text")
      .addColumn("phase", "text", (c) => c.notNull())
      .addColumn("inputs", "text", (c) => c.notNull())
      .addColumn("outputs", "text")
      .addColumn("error", "text")
      .addColumn("spec", "text", (c) => c.notNull())
      .addColumn("recover_from", "text")
      .addColumn("created_at", "bigint", (c) => c.notNull())
      .addColumn("started_at", "bigint")
      .addColumn("ended_at", "bigint")
      .addColumn("updated_at", "bigint", (c) => c.notNull())
      .addColumn("owner", "text")
      .addColumn("lease_expires_at", "bigint")
      .execute();
    await db.schema
      .createIndex("executions_by_time")
      .on("executions")
      .columns(["created_at", "id"])
      .execute();
    await db.schema
      .createIndex("executions_by_scope_time")
      .on("executions")
      .columns(["project", "domain", "created_at", "id"])
      .execute();
    await db.schema
      .createIndex("executions_by_phase_lease")
      .on("executions")
      .columns(["phase", "lease_expires_at"])
      .execute();
    await db.schema.createIndex("executions_by_parent").on("executions").column("parent_execution").execute();

    await db.schema
      .createTable("node_executions")
      .addColumn("execution", "text", (c) => c.notNull().references("executions.id").onDelete("cascade"))
      .addColumn("node_id", "text", (c) => c.notNull())
      .addColumn("phase", "text", (c) => c.notNull())
      .addColumn("attempts", "integer", (c) => c.notNull().defaultTo(0))
      .addColumn("user_failures", "integer", (c) => c.notNull().defaultTo(0))
      .addColumn("system_failures", "integer", (c) => c.notNull().defaultTo(0))
      .addColumn("cached", "integer", (c) => c.notNull().defaultTo(0))
      .addColumn("recovered", "integer", (c) => c.notNull().defaultTo(0))
      .addColumn("outputs", "text")
      .addColumn("error", "text")
      .addColumn("plugin", "text")
      .addColumn("plugin_state", "text")
      .addColumn("started_at", "bigint")
      .addColumn("ended_at", "bigint")
      .addColumn("updated_at", "bigint", (c) => c.notNull())
      .addPrimaryKeyConstraint("node_executions_pk", ["execution", "node_id"])
      .execute();

    await db.schema
      .createTable("events")
      .addColumn("execution", "text", (c) => c.notNull().references("executions.id").onDelete("cascade"))
      .addColumn("seq", "bigint", (c) => c.notNull())
      .addColumn("at", "bigint", (c) => c.notNull())
      .addColumn("node_id", "text")
      .addColumn("phase", "text", (c) => c.notNull())
      .addColumn("attempt", "integer")
      .addColumn("body", "text", (c) => c.notNull())
      .addPrimaryKeyConstraint("events_pk", ["execution", "seq"])
      .execute();

    await db.schema
      .createTable("catalog_entries")
      .addColumn("key", "text", (c) => c.primaryKey())
      .addColumn("project", "text", (c) => c.notNull())
      .addColumn("domain", "text", (c) => c.notNull())
      .addColumn("task", "text", (c) => c.notNull())
      .addColumn("cache_version", "text", (c) => c.notNull())
      .addColumn("outputs", "text", (c) => c.notNull())
      .addColumn("producer_execution", "text", (c) => c.notNull())
      .addColumn("producer_node", "text", (c) => c.notNull())
      .addColumn("producer_attempt", "integer", (c) => c.notNull())
      .addColumn("created_at", "bigint", (c) => c.notNull())
      .addColumn("last_used_at", "bigint", (c) => c.notNull())
      .addColumn("size_bytes", "bigint", (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex("catalog_by_use")
      .on("catalog_entries")
      .columns(["last_used_at", "key"])
      .execute();
    await db.schema
      .createIndex("catalog_by_task")
      .on("catalog_entries")
      .columns(["project", "domain", "task"])
      .execute();
    await db.schema
      .createTable("catalog_stats")
      .addColumn("id", "integer", (c) => c.primaryKey())
      .addColumn("total_bytes", "bigint", (c) => c.notNull())
      .execute();
    await db.insertInto("catalog_stats").values({ id: 1, total_bytes: 0 }).execute();
    await db.schema
      .createTable("catalog_leases")
      .addColumn("key", "text", (c) => c.primaryKey())
      .addColumn("owner", "text", (c) => c.notNull())
      .addColumn("acquired_at", "bigint", (c) => c.notNull())
      .addColumn("expires_at", "bigint", (c) => c.notNull())
      .execute();

    await db.schema
      .createTable("schedule_ticks")
      .addColumn("project", "text", (c) => c.notNull())
      .addColumn("domain", "text", (c) => c.notNull())
      .addColumn("launch_plan", "text", (c) => c.notNull())
      .addColumn("tick_at", "bigint", (c) => c.notNull())
      .addColumn("execution_id", "text", (c) => c.notNull())
      .addColumn("fired_at", "bigint", (c) => c.notNull())
      .addPrimaryKeyConstraint("schedule_ticks_pk", ["project", "domain", "launch_plan", "tick_at"])
      .execute();

    await db.schema
      .createTable("signals")
      .addColumn("execution", "text", (c) => c.notNull().references("executions.id").onDelete("cascade"))
      .addColumn("node_id", "text", (c) => c.notNull())
      .addColumn("name", "text", (c) => c.notNull())
      .addColumn("value", "text", (c) => c.notNull())
      .addColumn("set_by", "text")
      .addColumn("created_at", "bigint", (c) => c.notNull())
      .addPrimaryKeyConstraint("signals_pk", ["execution", "node_id", "name"])
      .execute();
  },

  async down(db: Kysely<any>): Promise<void> {
    for (const t of [
      "signals",
      "schedule_ticks",
      "catalog_leases",
      "catalog_stats",
      "catalog_entries",
      "events",
      "node_executions",
      "executions",
      "launch_plans",
      "workflows",
      "tasks",
      "domains",
      "projects",
    ]) {
      await db.schema.dropTable(t).ifExists().execute();
    }
  },
};

/** Notifications delivered at least once: an outbox row per launch plan execution. */
const notificationOutbox: Migration = {
  async up(db: Kysely<any>): Promise<void> {
    await db.schema
      .createTable("notification_outbox")
      .addColumn("execution", "text", (c) => c.primaryKey().references("executions.id").onDelete("cascade"))
      .addColumn("state", "text", (c) => c.notNull())
      .addColumn("owner", "text")
      .addColumn("lease_expires_at", "bigint")
      .addColumn("attempts", "integer", (c) => c.notNull().defaultTo(0))
      .addColumn("updated_at", "bigint", (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex("notification_outbox_pending")
      .on("notification_outbox")
      .columns(["updated_at"])
      .where(sql.ref("state"), "=", "pending")
      .execute();
  },
  async down(db: Kysely<any>): Promise<void> {
    await db.schema.dropTable("notification_outbox").ifExists().execute();
  },
};

/**
 * Execution specs stored once per distinct document: an execution row names its spec by
 * digest instead of carrying the whole compiled workflow (which made every insert and
 * every update of the row rewrite kilobytes). Rows written before keep theirs inline.
 */
const executionSpecs: Migration = {
  async up(db: Kysely<any>): Promise<void> {
    await db.schema
      .createTable("execution_specs")
      .addColumn("digest", "text", (c) => c.primaryKey())
      .addColumn("body", "text", (c) => c.notNull())
      .addColumn("created_at", "bigint", (c) => c.notNull())
      .execute();
    await db.schema.alterTable("executions").addColumn("spec_digest", "text").execute();
  },
  async down(db: Kysely<any>): Promise<void> {
    await db.schema.alterTable("executions").dropColumn("spec_digest").execute();
    await db.schema.dropTable("execution_specs").ifExists().execute();
  },
};

/** Every migration, by name; names sort in the order they apply. */
export const migrations: Readonly<Record<string, Migration>> = {
  "0001_initial": initial,
  "0002_notification_outbox": notificationOutbox,
  "0003_execution_specs": executionSpecs,
};

/** Names of the tables that record applied migrations. */
export const MIGRATION_TABLE = "tern_migrations";
export const MIGRATION_LOCK_TABLE = "tern_migrations_lock";

/** What {@link migrateToLatest} did. */
export interface MigrationReport {
  /** Migrations applied by this call (empty when already up to date). */
  applied: string[];
}

/**
 * Bring the schema up to date. Idempotent; safe when several replicas call it at
 * once (the Migrator serializes them through its lock table).
 */
export async function migrateToLatest(db: Kysely<any>): Promise<MigrationReport> {
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => ({ ...migrations }) },
    migrationTableName: MIGRATION_TABLE,
    migrationLockTableName: MIGRATION_LOCK_TABLE,
  });
  const result: MigrationResultSet = await migrator.migrateToLatest();
  if (result.error) {
    const failed = result.results?.find((r) => r.status === "Error")?.migrationName;
    throw new TernError(
      ErrorCodes.CONFIG,
      `store migration ${failed ?? "(setup)"} failed: ${(result.error as Error).message ?? String(result.error)}`,
      { hint: "check the database URL and that the user may create tables", cause: result.error },
    );
  }
  return {
    applied: (result.results ?? []).filter((r) => r.status === "Success").map((r) => r.migrationName),
  };
}
