/**
 * The event log: every transition of an execution and its nodes, in order,
 * never lost. A batch is appended in one transaction and must continue the
 * stream exactly (first seq = last stored seq + 1, then consecutive), so a
 * duplicate or a gap is refused instead of silently reordering history.
 */
import type { ExecutionEvent, TernError } from "@tern/core";
import type { Kysely } from "kysely";
import { fromJson, type StoreContext, toJson } from "./codec.js";
import { isForeignKeyViolation, isUniqueViolation, StoreErrorCodes, storeError } from "./errors.js";
import type { ExecutionPatch, ExecutionRecord, ExecutionRepository, NewExecution } from "./executions.js";
import { type NodeExecutionUpsert, upsertNodeRows } from "./nodes.js";
import { fenceRows, insertRows } from "./rows.js";
import type { Database, EventsTable } from "./schema.js";

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
  /**
   * The execution ended: this patch is applied to its record in the same transaction, and
   * the owner gives it up (see `ExecutionRepository.update` with `release`). `events` may
   * be empty then (everything was stored before).
   */
  finish?: ExecutionPatch;
}

/** One transaction's worth of the executor's writes (see {@link EventRepository.writeGroup}). */
export interface GroupWrite {
  /** New executions, inserted first. */
  creates?: readonly NewExecution[];
  /** Event batches, each fenced by its owner. */
  appends?: readonly AppendItem[];
}

/** Per item of a {@link GroupWrite}: what was stored, or the error that refused it. */
export interface GroupOutcome {
  created: (ExecutionRecord | TernError)[];
  appended: (TernError | undefined)[];
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

const EVENT_COLUMNS = ["execution", "seq", "at", "node_id", "phase", "attempt", "body"] as const;

export class EventRepository {
  constructor(
    private readonly ctx: StoreContext,
    private readonly executions: ExecutionRepository,
  ) {}

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
    opts: { owner?: string; nodes?: readonly NodeExecutionUpsert[]; finish?: ExecutionPatch } = {},
  ): Promise<void> {
    if (events.length === 0 && !opts.finish) return;
    try {
      const [refused] = await this.write([{ execution, events, ...opts }]);
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
  async appendMany(items: readonly AppendItem[]): Promise<(TernError | undefined)[]> {
    return (await this.writeGroup({ appends: items })).appended;
  }

  /**
   * The executor's group commit: new executions, then event batches (each fenced like
   * {@link appendMany}, each optionally recording its execution's end), all in one
   * transaction. Per item, the outcome: a refused item writes nothing, the others are
   * stored. Throws when the transaction itself fails (then nothing was written).
   */
  async writeGroup(group: GroupWrite): Promise<GroupOutcome> {
    const creates = group.creates ?? [];
    let committed: (() => void) | undefined;
    let created: (ExecutionRecord | TernError)[] = [];
    const appended = await this.write(group.appends ?? [], async (trx) => {
      if (creates.length === 0) return;
      const out = await this.executions.insertMany(trx, creates);
      committed = out.commit;
      created = [...out];
    });
    committed?.();
    return { created, appended };
  }

  /** {@link appendMany}, for batches with or without an owner to fence by; `first` writes before them. */
  private async write(
    items: readonly (Omit<AppendItem, "owner"> & { owner?: string })[],
    first?: (trx: Kysely<Database>) => Promise<void>,
  ): Promise<(TernError | undefined)[]> {
    const result: (TernError | undefined)[] = items.map((it) =>
      it.finish && it.events.length === 0 ? undefined : this.checkConsecutive(it.execution, it.events),
    );
    const ids = [...new Set(items.filter((_, i) => !result[i]).map((it) => it.execution))];
    if (ids.length === 0 && !first) return result;
    const now = this.ctx.now();
    await this.ctx.db.transaction().execute(async (trx) => {
      await first?.(trx);
      if (ids.length === 0) return;
      const fenced = await fenceRows(trx, this.ctx.dialect, ids);
      const found = new Map(fenced.map((r) => [r.id, r]));
      const rows: EventsTable[] = [];
      const nodes: NodeExecutionUpsert[] = [];
      const finishes: { id: string; owner?: string; patch: ExecutionPatch }[] = [];
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
        if (it.events.length && it.events[0].seq !== lastSeq + 1) {
          result[i] = this.outOfOrder(it.execution, it.events[0].seq, lastSeq);
          return;
        }
        if (it.events.length) next.set(it.execution, it.events[it.events.length - 1].seq);
        rows.push(...eventRows(it.execution, it.events));
        if (it.nodes) nodes.push(...it.nodes);
        if (it.finish) finishes.push({ id: it.execution, owner: it.owner, patch: it.finish });
      });
      await insertRows(
        trx,
        this.ctx.dialect,
        "events",
        EVENT_COLUMNS,
        rows as unknown as Record<string, unknown>[],
      );
      if (nodes.length) await upsertNodeRows(trx, this.ctx.dialect, nodes, now);
      // After the events: an execution's end is recorded with (never before) its last batch.
      for (const f of finishes)
        await this.executions.update(f.id, f.patch, { owner: f.owner, release: true }, trx);
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
