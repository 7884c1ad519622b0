/**
 * Signals: values given to a waiting gate node (`gate.approve`, `gate.input`).
 * Each (execution, node, name) is set once; a second set is a conflict, so an
 * approval cannot be flipped after the workflow acted on it.
 */
import type { Json } from "@tern/core";
import { fromJson, orUndefined, type StoreContext, toJson } from "./codec.js";
import { isForeignKeyViolation, isUniqueViolation, StoreErrorCodes, storeError } from "./errors.js";
import type { SignalsTable } from "./schema.js";

export interface SignalRecord {
  execution: string;
  nodeId: string;
  name: string;
  value: Json;
  /** Who set it (a token name), when known. */
  setBy?: string;
  createdAt: number;
}

function toRecord(row: SignalsTable): SignalRecord {
  const r: SignalRecord = {
    execution: row.execution,
    nodeId: row.node_id,
    name: row.name,
    value: fromJson(row.value),
    createdAt: Number(row.created_at),
  };
  const setBy = orUndefined(row.set_by);
  if (setBy !== undefined) r.setBy = setBy;
  return r;
}

export class SignalRepository {
  constructor(private readonly ctx: StoreContext) {}

  /**
   * Set a signal. Throws `TERN_E_CONFLICT` if it is already set (whatever the
   * value) and `TERN_E_NOT_FOUND` for an unknown execution.
   */
  async set(
    execution: string,
    nodeId: string,
    name: string,
    value: Json,
    opts: { setBy?: string } = {},
  ): Promise<SignalRecord> {
    const row: SignalsTable = {
      execution,
      node_id: nodeId,
      name,
      value: toJson(value),
      set_by: opts.setBy ?? null,
      created_at: this.ctx.now(),
    };
    try {
      await this.ctx.db.insertInto("signals").values(row).execute();
    } catch (e) {
      if (isUniqueViolation(e)) {
        const existing = await this.get(execution, nodeId, name);
        throw storeError(
          StoreErrorCodes.CONFLICT,
          `signal ${name} of ${execution}/${nodeId} is already set`,
          {
            hint: "signals are set once; start a new execution to decide again",
            details: { execution, node: nodeId, name, setBy: existing?.setBy, setAt: existing?.createdAt },
          },
        );
      }
      if (isForeignKeyViolation(e)) {
        throw storeError(StoreErrorCodes.NOT_FOUND, `execution ${execution} does not exist`, {
          details: { execution },
        });
      }
      throw e;
    }
    return toRecord(row);
  }

  async get(execution: string, nodeId: string, name: string): Promise<SignalRecord | undefined> {
    const row = await this.ctx.db
      .selectFrom("signals")
      .selectAll()
      .where("execution", "=", execution)
      .where("node_id", "=", nodeId)
      .where("name", "=", name)
      .executeTakeFirst();
    return row ? toRecord(row) : undefined;
  }

  /** Every signal of an execution, in the order they were set. */
  async list(execution: string): Promise<SignalRecord[]> {
    const rows = await this.ctx.db
      .selectFrom("signals")
      .selectAll()
      .where("execution", "=", execution)
      .orderBy("created_at")
      .orderBy("node_id")
      .orderBy("name")
      .execute();
    return rows.map(toRecord);
  }
}
