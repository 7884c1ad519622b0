/**
 * Node executions: the persisted state of each node of an execution, written
 * on every transition so a restarted engine resumes (re-attaching to external
 * work through `plugin` + `pluginState`) and never reruns a succeeded node.
 */
import type { ErrorDocument, Json } from "@tern/core";
import type { Kysely } from "kysely";
import {
  definedOnly,
  fromIntBool,
  fromJsonOrUndefined,
  orUndefined,
  type StoreContext,
  toIntBool,
  toJsonPatch,
} from "./codec.js";
import type { DialectName } from "./db.js";
import { isForeignKeyViolation, StoreErrorCodes, storeError } from "./errors.js";
import { insertRows, upsertClause } from "./rows.js";
import type { Database, NodeExecutionsTable } from "./schema.js";

export interface NodeExecutionRecord {
  execution: string;
  nodeId: string;
  phase: string;
  attempts: number;
  userFailures: number;
  systemFailures: number;
  cached: boolean;
  recovered: boolean;
  outputs?: Json;
  error?: ErrorDocument;
  /** Plugin running the current attempt, and its persisted state. */
  plugin?: string;
  pluginState?: Json;
  startedAt?: number;
  endedAt?: number;
  updatedAt: number;
}

/**
 * An upsert: `execution`, `nodeId` and `phase` are required; other fields left
 * `undefined` keep their stored value (or their default on insert); `null`
 * clears a nullable field.
 */
export interface NodeExecutionUpsert {
  execution: string;
  nodeId: string;
  phase: string;
  attempts?: number;
  userFailures?: number;
  systemFailures?: number;
  cached?: boolean;
  recovered?: boolean;
  outputs?: Json | null;
  error?: ErrorDocument | null;
  plugin?: string | null;
  pluginState?: Json | null;
  startedAt?: number | null;
  endedAt?: number | null;
}

function toRecord(row: NodeExecutionsTable): NodeExecutionRecord {
  const r: NodeExecutionRecord = {
    execution: row.execution,
    nodeId: row.node_id,
    phase: row.phase,
    attempts: Number(row.attempts),
    userFailures: Number(row.user_failures),
    systemFailures: Number(row.system_failures),
    cached: fromIntBool(row.cached),
    recovered: fromIntBool(row.recovered),
    updatedAt: Number(row.updated_at),
  };
  return Object.assign(
    r,
    definedOnly({
      outputs: fromJsonOrUndefined(row.outputs),
      error: fromJsonOrUndefined<ErrorDocument>(row.error),
      plugin: orUndefined(row.plugin),
      pluginState: fromJsonOrUndefined(row.plugin_state),
      startedAt: row.started_at === null ? undefined : Number(row.started_at),
      endedAt: row.ended_at === null ? undefined : Number(row.ended_at),
    }),
  );
}

export class NodeExecutionRepository {
  constructor(private readonly ctx: StoreContext) {}

  /** Insert or update one node's state (one statement). Returns the stored record. */
  async upsert(input: NodeExecutionUpsert): Promise<NodeExecutionRecord> {
    const changes = definedOnly({
      phase: input.phase,
      attempts: input.attempts,
      user_failures: input.userFailures,
      system_failures: input.systemFailures,
      cached: input.cached === undefined ? undefined : toIntBool(input.cached),
      recovered: input.recovered === undefined ? undefined : toIntBool(input.recovered),
      outputs: toJsonPatch(input.outputs),
      error: toJsonPatch(input.error),
      plugin: input.plugin,
      plugin_state: toJsonPatch(input.pluginState),
      started_at: input.startedAt,
      ended_at: input.endedAt,
      updated_at: this.ctx.now(),
    });
    const insert: NodeExecutionsTable = {
      execution: input.execution,
      node_id: input.nodeId,
      attempts: 0,
      user_failures: 0,
      system_failures: 0,
      cached: 0,
      recovered: 0,
      outputs: null,
      error: null,
      plugin: null,
      plugin_state: null,
      started_at: null,
      ended_at: null,
      ...changes,
      phase: input.phase,
      updated_at: changes.updated_at ?? this.ctx.now(),
    };
    try {
      const row = await this.ctx.db
        .insertInto("node_executions")
        .values(insert)
        .onConflict((oc) => oc.columns(["execution", "node_id"]).doUpdateSet(changes))
        .returningAll()
        .executeTakeFirstOrThrow();
      return toRecord(row);
    } catch (e) {
      if (isForeignKeyViolation(e)) {
        throw storeError(StoreErrorCodes.NOT_FOUND, `execution ${input.execution} does not exist`, {
          details: { execution: input.execution, node: input.nodeId },
        });
      }
      throw e;
    }
  }

  /**
   * Write the whole state of many nodes (of one or more executions) in few statements:
   * each row replaces what is stored for its node. For a projection computed from the
   * event log by the execution's single writer; fields left out are stored as null/0.
   */
  async putMany(rows: readonly NodeExecutionUpsert[]): Promise<void> {
    if (rows.length === 0) return;
    try {
      await this.ctx.db
        .transaction()
        .execute((trx) => upsertNodeRows(trx, this.ctx.dialect, rows, this.ctx.now()));
    } catch (e) {
      if (isForeignKeyViolation(e)) {
        throw storeError(StoreErrorCodes.NOT_FOUND, "a node row names an execution that does not exist", {
          details: { executions: [...new Set(rows.map((r) => r.execution))] },
        });
      }
      throw e;
    }
  }

  async get(execution: string, nodeId: string): Promise<NodeExecutionRecord | undefined> {
    const row = await this.ctx.db
      .selectFrom("node_executions")
      .selectAll()
      .where("execution", "=", execution)
      .where("node_id", "=", nodeId)
      .executeTakeFirst();
    return row ? toRecord(row) : undefined;
  }

  /** Every node of an execution, by node id. */
  async list(execution: string): Promise<NodeExecutionRecord[]> {
    const rows = await this.ctx.db
      .selectFrom("node_executions")
      .selectAll()
      .where("execution", "=", execution)
      .orderBy("node_id")
      .execute();
    return rows.map(toRecord);
  }
}

/** Columns of a node row, in the order the upsert binds them. */
const NODE_COLUMNS = [
  "execution",
  "node_id",
  "phase",
  "attempts",
  "user_failures",
  "system_failures",
  "cached",
  "recovered",
  "outputs",
  "error",
  "plugin",
  "plugin_state",
  "started_at",
  "ended_at",
  "updated_at",
] as const satisfies readonly (keyof NodeExecutionsTable)[];
const NODE_UPSERT = upsertClause(["execution", "node_id"], NODE_COLUMNS);

/** Replace the stored rows of `rows`' nodes (inside the caller's transaction). */
export async function upsertNodeRows(
  db: Kysely<Database>,
  dialect: DialectName,
  rows: readonly NodeExecutionUpsert[],
  now: number,
): Promise<void> {
  const full: NodeExecutionsTable[] = rows.map((r) => ({
    execution: r.execution,
    node_id: r.nodeId,
    phase: r.phase,
    attempts: r.attempts ?? 0,
    user_failures: r.userFailures ?? 0,
    system_failures: r.systemFailures ?? 0,
    cached: toIntBool(r.cached ?? false),
    recovered: toIntBool(r.recovered ?? false),
    // A node whose output is JSON null stores "null"; no outputs store SQL NULL.
    outputs:
      r.outputs === undefined || (r.outputs === null && r.phase !== "succeeded")
        ? null
        : JSON.stringify(r.outputs),
    error: toJsonPatch(r.error) ?? null,
    plugin: r.plugin ?? null,
    plugin_state: toJsonPatch(r.pluginState) ?? null,
    started_at: r.startedAt ?? null,
    ended_at: r.endedAt ?? null,
    updated_at: now,
  }));
  await insertRows(
    db,
    dialect,
    "node_executions",
    NODE_COLUMNS,
    full as unknown as Record<string, unknown>[],
    NODE_UPSERT,
  );
}
