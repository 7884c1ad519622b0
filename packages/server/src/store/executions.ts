/**
 * Executions, and the leases that share them among executor replicas: a
 * replica claims unowned (or expired) active executions, renews its leases
 * while it works, and a dead replica's executions are claimed by another once
 * their lease expires.
 */
import { createHash } from "node:crypto";
import type { ErrorDocument, Json, TernError } from "@tern/core";
import type { Kysely } from "kysely";
import {
  decodeCursor,
  definedOnly,
  encodeCursor,
  fromJson,
  fromJsonOrUndefined,
  orUndefined,
  type StoreContext,
  toJson,
  toJsonPatch,
} from "./codec.js";
import { StoreErrorCodes, storeError } from "./errors.js";
import { sql } from "./kysely.js";
import { insertRows, updateRows } from "./rows.js";
import type { Database, ExecutionsTable } from "./schema.js";

/**
 * Phases an executor still has work to do in: claimable. Every other phase
 * (`succeeded`, `failed`, `aborted`, …) is terminal for the lease logic.
 */
export const ACTIVE_EXECUTION_PHASES = ["queued", "running", "aborting"] as const;

export interface ExecutionRecord {
  id: string;
  project: string;
  domain: string;
  workflow: { name: string; version: string };
  launchPlan?: { name: string; version: string };
  /** Set for child executions (subworkflows, launch-plan nodes). */
  parent?: { execution: string; node: string };
  phase: string;
  inputs: Json;
  outputs?: Json;
  error?: ErrorDocument;
  /** The execution spec document (ExecutionSpec or a superset). */
  spec: Json;
  recoverFrom?: string;
  createdAt: number;
  startedAt?: number;
  endedAt?: number;
  updatedAt: number;
  /** Executor replica holding the execution, and until when. */
  owner?: string;
  leaseExpiresAt?: number;
}

export interface NewExecution {
  id: string;
  project: string;
  domain: string;
  workflow: { name: string; version: string };
  launchPlan?: { name: string; version: string };
  parent?: { execution: string; node: string };
  /** @default "queued" */
  phase?: string;
  inputs: Json;
  spec: Json;
  recoverFrom?: string;
  /** @default now */
  createdAt?: number;
  /** Created already claimed: this replica holds it until `leaseExpiresAt`. */
  owner?: string;
  leaseExpiresAt?: number;
  startedAt?: number;
}

/** Fields an update may change; `undefined` keeps a column, `null` clears it. */
export interface ExecutionPatch {
  phase?: string;
  outputs?: Json | null;
  error?: ErrorDocument | null;
  startedAt?: number | null;
  endedAt?: number | null;
}

export interface ExecutionFilter {
  project?: string;
  domain?: string;
  /** One phase or any of several. */
  phase?: string | readonly string[];
  workflowName?: string;
  parentExecution?: string;
  /** Created at or after (epoch ms). */
  createdAfter?: number;
  /** Created strictly before (epoch ms). */
  createdBefore?: number;
  /** @default 50, at most 500 */
  limit?: number;
  /** `nextCursor` of the previous page. */
  cursor?: string;
  /** Read each execution's spec document. @default true */
  spec?: boolean;
}

export interface ExecutionPage {
  items: ExecutionRecord[];
  /** Present when more items may follow. */
  nextCursor?: string;
}

/** Every column but `spec`: what reads that skip the spec document select. */
const COLUMNS_BUT_SPEC = [
  "id",
  "project",
  "domain",
  "workflow_name",
  "workflow_version",
  "launch_plan_name",
  "launch_plan_version",
  "parent_execution",
  "parent_node",
  "phase",
  "inputs",
  "outputs",
  "error",
  "recover_from",
  "spec_digest",
  "created_at",
  "started_at",
  "ended_at",
  "updated_at",
  "owner",
  "lease_expires_at",
] as const satisfies readonly (keyof ExecutionsTable)[];

function toRecord(row: ExecutionsTable, spec: Json): ExecutionRecord {
  const r: ExecutionRecord = {
    id: row.id,
    project: row.project,
    domain: row.domain,
    workflow: { name: row.workflow_name, version: row.workflow_version },
    phase: row.phase,
    inputs: fromJson(row.inputs),
    spec,
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  };
  if (row.launch_plan_name !== null) {
    r.launchPlan = { name: row.launch_plan_name, version: row.launch_plan_version ?? "" };
  }
  if (row.parent_execution !== null)
    r.parent = { execution: row.parent_execution, node: row.parent_node ?? "" };
  const outputs = fromJsonOrUndefined(row.outputs);
  if (outputs !== undefined) r.outputs = outputs;
  const error = fromJsonOrUndefined<ErrorDocument>(row.error);
  if (error !== undefined) r.error = error;
  const optional = {
    recoverFrom: orUndefined(row.recover_from),
    startedAt: row.started_at === null ? undefined : Number(row.started_at),
    endedAt: row.ended_at === null ? undefined : Number(row.ended_at),
    owner: orUndefined(row.owner),
    leaseExpiresAt: row.lease_expires_at === null ? undefined : Number(row.lease_expires_at),
  };
  return Object.assign(r, definedOnly(optional));
}

/** Parsed spec documents kept in memory, by digest (they never change). */
const SPEC_CACHE_SIZE = 512;
/** Digests known to be stored, remembered so a launch does not write its spec again. */
const KNOWN_SPECS_MAX = 10_000;

/**
 * Spec documents by content: an execution row names its spec by digest, the document is
 * stored once in `execution_specs`. The digest of a spec object is computed once (the
 * registry hands out the same compiled object for every launch), parsed documents are
 * cached, and digests already stored are not written again.
 */
class SpecDocuments {
  private readonly digests = new WeakMap<object, { digest: string; body: string }>();
  private readonly parsed = new Map<string, Json>();
  private readonly stored = new Set<string>();

  constructor(private readonly ctx: StoreContext) {}

  /** The digest and text of a spec document. */
  encode(spec: Json): { digest: string; body: string } {
    const key = typeof spec === "object" && spec !== null ? spec : undefined;
    const known = key && this.digests.get(key);
    if (known) return known;
    const body = toJson(spec);
    const out = { digest: `sha256:${createHash("sha256").update(body).digest("hex")}`, body };
    if (key) this.digests.set(key, out);
    this.remember(out.digest, spec);
    return out;
  }

  /** Store the documents of `specs` not stored yet (inside the caller's transaction). */
  async write(db: Kysely<Database>, specs: readonly { digest: string; body: string }[], now: number) {
    const fresh = new Map<string, string>();
    for (const s of specs) if (!this.stored.has(s.digest)) fresh.set(s.digest, s.body);
    if (fresh.size === 0) return;
    await db
      .insertInto("execution_specs")
      .values([...fresh].map(([digest, body]) => ({ digest, body, created_at: now })))
      .onConflict((oc) => oc.column("digest").doNothing())
      .execute();
    return () => {
      // Known as stored only once the transaction committed.
      if (this.stored.size + fresh.size > KNOWN_SPECS_MAX) this.stored.clear();
      for (const d of fresh.keys()) this.stored.add(d);
    };
  }

  /** The spec of each row: inline (older rows), cached, or read in one query. */
  async resolve(rows: readonly ExecutionsTable[]): Promise<Json[]> {
    const missing = new Set<string>();
    for (const r of rows)
      if (r.spec_digest !== null && !this.parsed.has(r.spec_digest)) missing.add(r.spec_digest);
    if (missing.size) {
      const found = await this.ctx.db
        .selectFrom("execution_specs")
        .select(["digest", "body"])
        .where("digest", "in", [...missing])
        .execute();
      for (const f of found) {
        this.remember(f.digest, fromJson(f.body));
        this.stored.add(f.digest);
      }
    }
    return rows.map((r) =>
      r.spec_digest === null ? fromJson(r.spec) : (this.parsed.get(r.spec_digest) ?? null),
    );
  }

  private remember(digest: string, spec: Json): void {
    if (this.parsed.has(digest)) return;
    if (this.parsed.size >= SPEC_CACHE_SIZE) this.parsed.delete(this.parsed.keys().next().value as string);
    this.parsed.set(digest, spec);
  }
}

export class ExecutionRepository {
  private readonly specs: SpecDocuments;

  constructor(private readonly ctx: StoreContext) {
    this.specs = new SpecDocuments(ctx);
  }

  /** Record a new execution; throws `TERN_E_CONFLICT` if the id exists. */
  async create(input: NewExecution): Promise<ExecutionRecord> {
    const result = await this.ctx.db.transaction().execute((trx) => this.insertMany(trx, [input]));
    result.commit();
    const [out] = result;
    if (out instanceof Error) throw out;
    return out;
  }

  /**
   * Insert new executions inside the caller's transaction (see the executor's group
   * commit): each gets its record, or a `TERN_E_CONFLICT` error when its id exists (then
   * nothing of it is written). Call `commit()` on the result once the transaction committed.
   */
  async insertMany(
    db: Kysely<Database>,
    inputs: readonly NewExecution[],
  ): Promise<(ExecutionRecord | TernError)[] & { commit: () => void }> {
    const now = this.ctx.now();
    const specs = inputs.map((i) => this.specs.encode(i.spec));
    const rows = inputs.map(
      (input, i): ExecutionsTable => ({
        id: input.id,
        project: input.project,
        domain: input.domain,
        workflow_name: input.workflow.name,
        workflow_version: input.workflow.version,
        launch_plan_name: input.launchPlan?.name ?? null,
        launch_plan_version: input.launchPlan?.version ?? null,
        parent_execution: input.parent?.execution ?? null,
        parent_node: input.parent?.node ?? null,
        phase: input.phase ?? "queued",
        inputs: toJson(input.inputs),
        outputs: null,
        error: null,
        spec: "null",
        spec_digest: specs[i].digest,
        recover_from: input.recoverFrom ?? null,
        created_at: input.createdAt ?? now,
        started_at: input.startedAt ?? null,
        ended_at: null,
        updated_at: now,
        owner: input.owner ?? null,
        lease_expires_at: input.owner !== undefined ? (input.leaseExpiresAt ?? null) : null,
      }),
    );
    const stored = await this.specs.write(db, specs, now);
    const inserted = new Set<string>();
    const columns = Object.keys(rows[0] ?? {});
    const got = await insertRows<{ id: string }>(
      db,
      this.ctx.dialect,
      "executions",
      columns,
      rows as unknown as Record<string, unknown>[],
      'on conflict ("id") do nothing returning "id"',
    );
    for (const g of got) inserted.add(g.id);
    // Their notifications are owed from the moment they exist (see NotificationOutbox).
    const owed = rows.filter((r) => r.launch_plan_name !== null && inserted.has(r.id));
    if (owed.length) {
      await db
        .insertInto("notification_outbox")
        .values(
          owed.map((r) => ({
            execution: r.id,
            state: "pending",
            owner: null,
            lease_expires_at: null,
            attempts: 0,
            updated_at: now,
          })),
        )
        .execute();
    }
    const seen = new Set<string>();
    const out = rows.map((row, i) => {
      // An id given twice in one call: the first is the one created.
      if (!inserted.has(row.id) || seen.has(row.id)) {
        return storeError(StoreErrorCodes.CONFLICT, `execution ${row.id} already exists`, {
          hint: "execution ids are unique; leave the id out to get a fresh one",
          details: { execution: row.id },
        });
      }
      seen.add(row.id);
      return toRecord(row, inputs[i].spec);
    });
    return Object.assign(out, { commit: () => stored?.() });
  }

  /**
   * One execution. With `{ spec: false }` the spec document (the whole compiled
   * workflow, the bulk of the row) is neither read nor parsed, and `spec` is null.
   */
  async get(id: string, opts: { spec?: boolean } = {}): Promise<ExecutionRecord | undefined> {
    const row = await this.selectRows(opts.spec !== false)
      .where("id", "=", id)
      .executeTakeFirst();
    return row ? (await this.toRecords([row], opts.spec !== false))[0] : undefined;
  }

  /** Records of rows, their specs resolved (or null without `withSpec`). */
  private async toRecords(rows: readonly ExecutionsTable[], withSpec = true): Promise<ExecutionRecord[]> {
    if (!withSpec) return rows.map((r) => toRecord(r, null));
    const specs = await this.specs.resolve(rows);
    return rows.map((r, i) => toRecord(r, specs[i]));
  }

  /** Every column, or every column but the spec (read as JSON null). */
  private selectRows(withSpec: boolean) {
    const q = this.ctx.db.selectFrom("executions");
    if (withSpec) return q.selectAll();
    return q.select([...COLUMNS_BUT_SPEC, sql<string>`'null'`.as("spec")]);
  }

  /**
   * Change an execution. With `owner`, the write only happens while that
   * replica holds the execution (a replica that lost its lease cannot clobber
   * the new owner's progress); with `phases`, only while the execution is in one
   * of them (so `queued → running` does not undo a concurrent `aborting`);
   * with `release`, the replica gives the execution up in the same write.
   * Returns whether a row changed. `db` is a transaction to write in, when given.
   */
  async update(
    id: string,
    patch: ExecutionPatch,
    opts: { owner?: string; phases?: readonly string[]; release?: boolean } = {},
    db: Kysely<Database> = this.ctx.db,
  ): Promise<boolean> {
    const set = definedOnly({
      phase: patch.phase,
      outputs: toJsonPatch(patch.outputs),
      error: toJsonPatch(patch.error),
      started_at: patch.startedAt,
      ended_at: patch.endedAt,
      updated_at: this.ctx.now(),
      // Give the execution up in the same statement (its last one as this replica's).
      ...(opts.release ? { owner: null, lease_expires_at: null } : {}),
    });
    if (opts.phases?.length === 0) return false;
    const where: Record<string, unknown> = { id };
    if (opts.owner !== undefined) where.owner = opts.owner;
    if (opts.phases !== undefined) where.phase = [...opts.phases];
    return (await updateRows(db, this.ctx.dialect, "executions", set, where)) > 0;
  }

  /** A page of executions, newest first. */
  async list(filter: ExecutionFilter = {}): Promise<ExecutionPage> {
    const limit = Math.max(1, Math.min(filter.limit ?? 50, 500));
    let q = this.selectRows(filter.spec !== false);
    if (filter.project !== undefined) q = q.where("project", "=", filter.project);
    if (filter.domain !== undefined) q = q.where("domain", "=", filter.domain);
    if (filter.workflowName !== undefined) q = q.where("workflow_name", "=", filter.workflowName);
    if (filter.parentExecution !== undefined) q = q.where("parent_execution", "=", filter.parentExecution);
    if (typeof filter.phase === "string") q = q.where("phase", "=", filter.phase);
    else if (filter.phase) {
      if (filter.phase.length === 0) return { items: [] };
      q = q.where("phase", "in", [...filter.phase]);
    }
    if (filter.createdAfter !== undefined) q = q.where("created_at", ">=", filter.createdAfter);
    if (filter.createdBefore !== undefined) q = q.where("created_at", "<", filter.createdBefore);
    if (filter.cursor !== undefined) {
      const c = decodeCursor(filter.cursor);
      q = q.where((eb) =>
        eb.or([
          eb("created_at", "<", c.createdAt),
          eb.and([eb("created_at", "=", c.createdAt), eb("id", "<", c.id)]),
        ]),
      );
    }
    const rows = await q
      .orderBy("created_at", "desc")
      .orderBy("id", "desc")
      .limit(limit + 1)
      .execute();
    const items = await this.toRecords(rows.slice(0, limit), filter.spec !== false);
    const last = items[items.length - 1];
    return rows.length > limit && last
      ? { items, nextCursor: encodeCursor(last.createdAt, last.id) }
      : { items };
  }

  /** How many executions are in each phase (phases with none are left out). */
  async countByPhase(filter: { project?: string; domain?: string } = {}): Promise<Record<string, number>> {
    let q = this.ctx.db
      .selectFrom("executions")
      .select((eb) => ["phase", eb.fn.countAll<number>().as("n")])
      .groupBy("phase");
    if (filter.project !== undefined) q = q.where("project", "=", filter.project);
    if (filter.domain !== undefined) q = q.where("domain", "=", filter.domain);
    const out: Record<string, number> = {};
    for (const r of await q.execute()) out[r.phase] = Number(r.n);
    return out;
  }

  /**
   * Take up to `limit` active executions that nobody holds or whose lease
   * expired, for `owner`, until now + `ttlMs`. Atomic across replicas: on
   * PostgreSQL through `FOR NO KEY UPDATE SKIP LOCKED` (concurrent claimers pass
   * over each other's rows instead of waiting), on SQLite through one
   * write-locked statement. Oldest executions first.
   */
  async claim(owner: string, ttlMs: number, limit: number): Promise<ExecutionRecord[]> {
    if (limit <= 0) return [];
    const now = this.ctx.now();
    const rows = await this.ctx.db.transaction().execute(async (trx) => {
      let candidates = trx
        .selectFrom("executions")
        .select("id")
        .where("phase", "in", [...ACTIVE_EXECUTION_PHASES])
        .where((eb) => eb.or([eb("owner", "is", null), eb("lease_expires_at", "<=", now)]))
        .orderBy("created_at")
        .orderBy("id")
        .limit(limit);
      if (this.ctx.dialect === "postgres") candidates = candidates.forNoKeyUpdate().skipLocked();
      return (
        trx
          .updateTable("executions")
          .set({ owner, lease_expires_at: now + ttlMs, updated_at: now })
          .where("id", "in", candidates)
          // Re-checked on the locked row version, so a row claimed meanwhile is left alone.
          .where((eb) => eb.or([eb("owner", "is", null), eb("lease_expires_at", "<=", now)]))
          .returningAll()
          .execute()
      );
    });
    return (await this.toRecords(rows)).sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1));
  }

  /** Extend every lease `owner` holds on an active execution. Returns the ids still held. */
  async renewLeases(owner: string, ttlMs: number): Promise<string[]> {
    const now = this.ctx.now();
    const rows = await this.ctx.db
      .updateTable("executions")
      .set({ lease_expires_at: now + ttlMs })
      .where("owner", "=", owner)
      .where("phase", "in", [...ACTIVE_EXECUTION_PHASES])
      .returning("id")
      .execute();
    return rows.map((r) => r.id).sort();
  }

  /** Replicas holding active executions now (whatever their lease says). */
  async activeOwners(): Promise<string[]> {
    const rows = await this.ctx.db
      .selectFrom("executions")
      .select("owner")
      .distinct()
      .where("phase", "in", [...ACTIVE_EXECUTION_PHASES])
      .where("owner", "is not", null)
      .execute();
    return rows.map((r) => r.owner!).sort();
  }

  /**
   * Move up to `limit` active executions held by `from` to `to` (lease until now +
   * `ttlMs`), whatever `from`'s lease says: for a replica that knows `from` is dead.
   * Compare-and-set on the owner, so of two replicas doing it, one gets each execution.
   */
  async transfer(from: string, to: string, ttlMs: number, limit: number): Promise<ExecutionRecord[]> {
    if (limit <= 0) return [];
    const now = this.ctx.now();
    const rows = await this.ctx.db.transaction().execute(async (trx) => {
      let candidates = trx
        .selectFrom("executions")
        .select("id")
        .where("owner", "=", from)
        .where("phase", "in", [...ACTIVE_EXECUTION_PHASES])
        .orderBy("created_at")
        .orderBy("id")
        .limit(limit);
      if (this.ctx.dialect === "postgres") candidates = candidates.forNoKeyUpdate().skipLocked();
      return trx
        .updateTable("executions")
        .set({ owner: to, lease_expires_at: now + ttlMs, updated_at: now })
        .where("id", "in", candidates)
        .where("owner", "=", from)
        .returningAll()
        .execute();
    });
    return (await this.toRecords(rows)).sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1));
  }

  /** Give an execution back (e.g. on shutdown) so another replica claims it at once. */
  async release(id: string, owner: string): Promise<boolean> {
    const r = await this.ctx.db
      .updateTable("executions")
      .set({ owner: null, lease_expires_at: null, updated_at: this.ctx.now() })
      .where("id", "=", id)
      .where("owner", "=", owner)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }
}
