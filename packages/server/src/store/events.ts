/**
 * The event log: every transition of an execution and its nodes, in order,
 * never lost. A batch is appended in one transaction and must continue the
 * stream exactly (first seq = last stored seq + 1, then consecutive), so a
 * duplicate or a gap is refused instead of silently reordering history.
 */
import type { ExecutionEvent, TernError } from "@tern/core";
import { chunks, fromJson, type StoreContext, toJson } from "./codec.js";
import { isForeignKeyViolation, isUniqueViolation, StoreErrorCodes, storeError } from "./errors.js";
import { type NodeExecutionUpsert, upsertNodeRows } from "./nodes.js";
import type { EventsTable } from "./schema.js";

/** An event as appended: `execution` is implied by the call. */
export type EventInput = Omit<ExecutionEvent, "execution"> & { execution?: string };

/** One execution's batch in {@link EventRepository.appendMany}. */
export interface AppendItem {
  execution: string;
  events: readonly EventInput[];
  /** The replica that must hold the execution. */
  owner: string;
  /** Node rows written with the events. */
  nodes?: readonly NodeExecutionUpsert[];
}

function eventRows(execution: string, events: readonly EventInput[]): EventsTable[] {
  return events.map((e) => ({
    execution,
    seq: e.seq,
    at: e.at,
    node_id: e.node ?? null,
    phase: e.phase,
    attempt: e.attempt ?? null,
    body: toJson({ ...e, execution }),
  }));
}

const ROWS_PER_INSERT = 500;

export class EventRepository {
  constructor(private readonly ctx: StoreContext) {}

  /**
   * Append events in one transaction. Throws `TERN_E_CONFLICT` when a seq is
   * already stored or the batch does not continue the stream, and
   * `TERN_E_NOT_FOUND` for an unknown execution; nothing is written then.
   *
   * With `owner`, the append is fenced by the executor lease: it is refused
   * (`TERN_E_CONFLICT`, `details.reason: "lease"`) unless that replica holds the
   * execution, so a replica that lost its lease cannot write into the history of the
   * one that took over. On PostgreSQL the execution row is share-locked for the
   * transaction, so a concurrent claim waits for (or skips) it.
   *
   * With `nodes`, those node rows (the projection of these events) are written in the
   * same transaction: the API never sees events without their rows, and one commit
   * serves both.
   */
  async append(
    execution: string,
    events: readonly EventInput[],
    opts: { owner?: string; nodes?: readonly NodeExecutionUpsert[] } = {},
  ): Promise<void> {
    if (events.length === 0) return;
    try {
      const [refused] = await this.write([{ execution, events, owner: opts.owner, nodes: opts.nodes }]);
      if (refused) throw refused;
    } catch (e) {
      // Two writers read the same last seq; the primary key lets only one through.
      if (isUniqueViolation(e))
        throw this.outOfOrder(execution, events[0].seq, await this.lastSeq(execution));
      if (isForeignKeyViolation(e)) {
        throw storeError(StoreErrorCodes.NOT_FOUND, `execution ${execution} does not exist`, {
          details: { execution },
        });
      }
      throw e;
    }
  }

  /**
   * Append the batches of several executions in one transaction (group commit), each
   * fenced by its owner like {@link append}. Returns, per item, the error that refused it
   * (`TERN_E_CONFLICT` or `TERN_E_NOT_FOUND`, as `append` would throw) or undefined when it
   * was stored; refused items write nothing, the others are stored together. Throws when
   * the transaction itself fails (then nothing was written).
   */
  appendMany(items: readonly AppendItem[]): Promise<(TernError | undefined)[]> {
    return this.write(items);
  }

  /** {@link appendMany}, for batches with or without an owner to fence by. */
  private async write(
    items: readonly (Omit<AppendItem, "owner"> & { owner?: string })[],
  ): Promise<(TernError | undefined)[]> {
    const result: (TernError | undefined)[] = items.map((it) =>
      this.checkConsecutive(it.execution, it.events),
    );
    const ids = [...new Set(items.filter((_, i) => !result[i]).map((it) => it.execution))];
    if (ids.length === 0) return result;
    const now = this.ctx.now();
    await this.ctx.db.transaction().execute(async (trx) => {
      let q = trx
        .selectFrom("executions")
        .select((eb) => [
          "id",
          "owner",
          eb
            .selectFrom("events")
            .select((e) => e.fn.max("seq").as("m"))
            .whereRef("events.execution", "=", "executions.id")
            .as("last_seq"),
        ])
        .where("id", "in", ids);
      if (this.ctx.dialect === "postgres") q = q.forShare();
      const found = new Map((await q.execute()).map((r) => [r.id, r]));
      const rows: EventsTable[] = [];
      const nodes: NodeExecutionUpsert[] = [];
      const next = new Map<string, number>();
      items.forEach((it, i) => {
        if (result[i]) return;
        const row = found.get(it.execution);
        if (!row) {
          result[i] = storeError(StoreErrorCodes.NOT_FOUND, `execution ${it.execution} does not exist`, {
            details: { execution: it.execution },
          });
          return;
        }
        if (it.owner !== undefined && row.owner !== it.owner) {
          result[i] = this.leaseLost(it.execution, it.owner, row.owner);
          return;
        }
        const lastSeq = next.get(it.execution) ?? (row.last_seq == null ? 0 : Number(row.last_seq));
        if (it.events[0].seq !== lastSeq + 1) {
          result[i] = this.outOfOrder(it.execution, it.events[0].seq, lastSeq);
          return;
        }
        next.set(it.execution, it.events[it.events.length - 1].seq);
        rows.push(...eventRows(it.execution, it.events));
        if (it.nodes) nodes.push(...it.nodes);
      });
      for (const batch of chunks(rows, ROWS_PER_INSERT))
        await trx.insertInto("events").values(batch).execute();
      if (nodes.length) await upsertNodeRows(trx, nodes, now);
    });
    return result;
  }

  private checkConsecutive(execution: string, events: readonly EventInput[]): TernError | undefined {
    if (events.length === 0) {
      return storeError(StoreErrorCodes.CONFLICT, `an append to ${execution} has no events`, {
        kind: "system",
        details: { execution },
      });
    }
    for (let i = 1; i < events.length; i++) {
      if (events[i].seq !== events[i - 1].seq + 1) {
        return storeError(
          StoreErrorCodes.CONFLICT,
          `events for ${execution} are not consecutive: seq ${events[i].seq} follows ${events[i - 1].seq}`,
          { kind: "system", details: { execution, seqs: events.map((e) => e.seq) } },
        );
      }
    }
    return undefined;
  }

  /** Events after `afterSeq` (exclusive), in order. */
  async list(execution: string, afterSeq = 0, limit = 1000): Promise<ExecutionEvent[]> {
    const rows = await this.ctx.db
      .selectFrom("events")
      .select("body")
      .where("execution", "=", execution)
      .where("seq", ">", afterSeq)
      .orderBy("seq")
      .limit(Math.max(1, Math.min(limit, 10_000)))
      .execute();
    return rows.map((r) => fromJson<ExecutionEvent>(r.body));
  }

  /** The last stored seq, 0 when there is none. */
  async lastSeq(execution: string): Promise<number> {
    const r = await this.ctx.db
      .selectFrom("events")
      .select((eb) => eb.fn.max("seq").as("seq"))
      .where("execution", "=", execution)
      .executeTakeFirst();
    return r?.seq == null ? 0 : Number(r.seq);
  }

  private leaseLost(execution: string, owner: string, holder: string | null) {
    return storeError(
      StoreErrorCodes.CONFLICT,
      `cannot append events to ${execution}: replica ${owner} no longer holds it (${holder ? `held by ${holder}` : "unowned"})`,
      {
        kind: "system",
        hint: "the lease lapsed and the execution was (or will be) resumed by the replica that claims it; stop driving it here",
        details: { execution, reason: "lease", owner, holder },
      },
    );
  }

  private outOfOrder(execution: string, first: number, lastSeq: number) {
    const what = first <= lastSeq ? `seq ${first} is already stored` : `seq ${first} would leave a gap`;
    return storeError(
      StoreErrorCodes.CONFLICT,
      `cannot append events to ${execution}: ${what} (last stored seq ${lastSeq})`,
      {
        kind: "system",
        hint: "another writer appended to this execution; reload its events and continue from the last seq",
        details: { execution, firstSeq: first, lastSeq },
      },
    );
  }
}
