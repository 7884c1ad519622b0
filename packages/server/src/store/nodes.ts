/**
 * Node executions: the persisted state of each node of an execution, written
 * on every transition so a restarted engine resumes (re-attaching to external
 * work through `plugin` + `pluginState`) and never reruns a succeeded node.
 */
import type { ErrorDocument, Json } from "@tern/core";
import {
  definedOnly,
  fromIntBool,
  fromJsonOrUndefined,
  orUndefined,
  type StoreContext,
  toIntBool,
  toJsonPatch,
} from "./codec.js";
import { isForeignKeyViolation, StoreErrorCodes, storeError } from "./errors.js";
import type { NodeExecutionsTable } from "./schema.js";

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
