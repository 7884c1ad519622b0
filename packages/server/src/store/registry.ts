/**
 * The registry: immutable, versioned tasks, workflows and launch plans per
 * project and domain. Registering the same id with the same content is a
 * no-op; with different content it is refused with what differs.
 */
import { createHash } from "node:crypto";
import {
  canonicalJson,
  ErrorCodes,
  type Identifier,
  type Json,
  type TaskSpec,
  TernError,
  type WorkflowSpec,
} from "@tern/core";
import type { Kysely } from "kysely";
import { fromIntBool, fromJson, fromJsonOrUndefined, type StoreContext, toJson } from "./codec.js";
import { isTransientConflict, isUniqueViolation, StoreErrorCodes, storeError } from "./errors.js";
import type { LaunchPlansTable, RegistryTable } from "./schema.js";
import { describeDiff, diffSpecs } from "./spec-diff.js";

/** What a launch plan document must carry for the store: its id, and a schedule if it has one. */
export interface LaunchPlanDocument {
  id: Identifier;
  schedule?: Json;
  [field: string]: unknown;
}

/** The spec type stored under each registry kind. */
export interface RegistrySpecs {
  task: TaskSpec;
  workflow: WorkflowSpec;
  launch_plan: LaunchPlanDocument;
}

export type RegistryKind = keyof RegistrySpecs;

const TABLES = { task: "tasks", workflow: "workflows", launch_plan: "launch_plans" } as const;

type RegistryRow = RegistryTable & Partial<LaunchPlansTable>;
/**
 * The three registry tables share their columns; queries are written once
 * against this view, with the real table name substituted at run time.
 */
type RegistryView = Kysely<{ registry: RegistryRow }>;

/** A registered version. */
export interface RegistryRecord<K extends RegistryKind = RegistryKind> {
  kind: K;
  id: Identifier;
  /** `sha256:<hex>` of the spec's canonical JSON. */
  digest: string;
  spec: RegistrySpecs[K];
  createdAt: number;
  /** Launch plans only. */
  active?: boolean;
  /** Launch plans only: the schedule the spec declared. */
  schedule?: Json;
}

/** What {@link RegistryRepository.register} did. */
export interface RegisterResult<K extends RegistryKind = RegistryKind> {
  status: "created" | "exists";
  record: RegistryRecord<K>;
}

/** A name within a project and domain. */
export interface NameKey {
  project: string;
  domain: string;
  name: string;
}

export interface RegistryListFilter {
  project: string;
  domain: string;
  /** Only versions of this name. */
  name?: string;
  /** @default 100 */
  limit?: number;
}

/** `sha256:<hex>` of a spec's canonical JSON: equal content, equal digest. */
export function specDigest(spec: unknown): string {
  return `sha256:${createHash("sha256").update(canonicalJson(spec)).digest("hex")}`;
}

function idText(id: Identifier): string {
  return `${id.project}/${id.domain}/${id.name}@${id.version}`;
}

export class RegistryRepository {
  constructor(private readonly ctx: StoreContext) {}

  private view(): RegistryView {
    return this.ctx.db as unknown as RegistryView;
  }

  private table(kind: RegistryKind): "registry" {
    return TABLES[kind] as unknown as "registry";
  }

  /**
   * Register a version. Same id and same digest: `status: "exists"`, nothing
   * written. Same id, other digest: throws `TERN_E_VERSION_CONFLICT` naming the
   * paths that differ.
   */
  async register<K extends RegistryKind>(kind: K, spec: RegistrySpecs[K]): Promise<RegisterResult<K>> {
    const id = (spec as { id?: Identifier }).id;
    if (!id?.project || !id.domain || !id.name || !id.version) {
      throw new TernError(
        ErrorCodes.SPEC_INVALID,
        `cannot register a ${kind.replace("_", " ")} without a complete id`,
        {
          hint: "the spec needs id: { project, domain, name, version }",
          details: { kind, id: id ?? null },
        },
      );
    }
    const row: RegistryRow = {
      project: id.project,
      domain: id.domain,
      name: id.name,
      version: id.version,
      digest: specDigest(spec),
      spec: toJson(spec),
      created_at: this.ctx.now(),
    };
    if (kind === "launch_plan") {
      const schedule = (spec as LaunchPlanDocument).schedule;
      row.active = 0;
      row.schedule = schedule === undefined ? null : toJson(schedule);
    }
    const inserted = await this.view()
      .insertInto(this.table(kind))
      .values(row)
      .onConflict((oc) => oc.columns(["project", "domain", "name", "version"]).doNothing())
      .executeTakeFirst();
    if (Number(inserted.numInsertedOrUpdatedRows ?? 0n) === 1) {
      return { status: "created", record: this.toRecord(kind, row) };
    }
    const existing = await this.get(kind, id);
    if (!existing) {
      // Only possible if the row was deleted between the two statements.
      return this.register(kind, spec);
    }
    if (existing.digest === row.digest) return { status: "exists", record: existing };
    const diff = diffSpecs(existing.spec, JSON.parse(row.spec));
    throw storeError(
      StoreErrorCodes.VERSION_CONFLICT,
      `${kind.replace("_", " ")} ${idText(id)} is already registered with different content (changed: ${describeDiff(diff)})`,
      {
        hint: "registered versions are immutable: register under a new version, or leave the version out to derive one from the content",
        details: {
          kind,
          id,
          existingDigest: existing.digest,
          digest: row.digest,
          changed: diff.paths,
          more: diff.more,
        },
      },
    );
  }

  /** One version, or `undefined`. */
  async get<K extends RegistryKind>(kind: K, id: Identifier): Promise<RegistryRecord<K> | undefined> {
    const row = await this.view()
      .selectFrom(this.table(kind))
      .selectAll()
      .where("project", "=", id.project)
      .where("domain", "=", id.domain)
      .where("name", "=", id.name)
      .where("version", "=", id.version)
      .executeTakeFirst();
    return row ? this.toRecord(kind, row) : undefined;
  }

  /** The most recently registered version of a name, or `undefined`. */
  async latest<K extends RegistryKind>(kind: K, key: NameKey): Promise<RegistryRecord<K> | undefined> {
    const [first] = await this.list(kind, { ...key, limit: 1 });
    return first;
  }

  /** Versions, newest first. */
  async list<K extends RegistryKind>(kind: K, filter: RegistryListFilter): Promise<RegistryRecord<K>[]> {
    let q = this.view()
      .selectFrom(this.table(kind))
      .selectAll()
      .where("project", "=", filter.project)
      .where("domain", "=", filter.domain);
    if (filter.name !== undefined) q = q.where("name", "=", filter.name);
    const rows = await q
      .orderBy("created_at", "desc")
      .orderBy("name", "asc")
      .orderBy("version", "desc")
      .limit(Math.max(1, Math.min(filter.limit ?? 100, 1000)))
      .execute();
    return rows.map((r) => this.toRecord(kind, r));
  }

  /**
   * Make `id` the active version of its launch plan, deactivating any other
   * version of the same name. Throws `TERN_E_NOT_FOUND` for an unknown version.
   */
  async activate(id: Identifier): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.ctx.db.transaction().execute(async (trx) => {
          if (this.ctx.dialect === "postgres") {
            // Lock every version in one order first: two activations then queue instead of deadlocking.
            await trx
              .selectFrom("launch_plans")
              .select("version")
              .where("project", "=", id.project)
              .where("domain", "=", id.domain)
              .where("name", "=", id.name)
              .orderBy("version")
              .forUpdate()
              .execute();
          }
          await trx
            .updateTable("launch_plans")
            .set({ active: 0 })
            .where("project", "=", id.project)
            .where("domain", "=", id.domain)
            .where("name", "=", id.name)
            .where("active", "=", 1)
            .where("version", "!=", id.version)
            .execute();
          const r = await trx
            .updateTable("launch_plans")
            .set({ active: 1 })
            .where("project", "=", id.project)
            .where("domain", "=", id.domain)
            .where("name", "=", id.name)
            .where("version", "=", id.version)
            .executeTakeFirst();
          if (Number(r.numUpdatedRows) === 0) {
            throw storeError(StoreErrorCodes.NOT_FOUND, `launch plan ${idText(id)} is not registered`, {
              hint: "register the launch plan version before activating it",
              details: { id },
            });
          }
        });
        return;
      } catch (e) {
        // A concurrent activation won the unique index, or a deadlock was broken: redo on top of it.
        if ((isUniqueViolation(e) || isTransientConflict(e)) && attempt < 5) continue;
        throw e;
      }
    }
  }

  /** Deactivate every version of a launch plan. Returns whether one was active. */
  async deactivate(key: NameKey): Promise<boolean> {
    const r = await this.ctx.db
      .updateTable("launch_plans")
      .set({ active: 0 })
      .where("project", "=", key.project)
      .where("domain", "=", key.domain)
      .where("name", "=", key.name)
      .where("active", "=", 1)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  /** The active version of a launch plan, or `undefined`. */
  async activeLaunchPlan(key: NameKey): Promise<RegistryRecord<"launch_plan"> | undefined> {
    const row = await this.ctx.db
      .selectFrom("launch_plans")
      .selectAll()
      .where("project", "=", key.project)
      .where("domain", "=", key.domain)
      .where("name", "=", key.name)
      .where("active", "=", 1)
      .executeTakeFirst();
    return row ? this.toRecord("launch_plan", row) : undefined;
  }

  /** Every active launch plan that has a schedule (what the scheduler runs), optionally in one project. */
  async scheduledLaunchPlans(
    filter: { project?: string; domain?: string } = {},
  ): Promise<RegistryRecord<"launch_plan">[]> {
    let q = this.ctx.db
      .selectFrom("launch_plans")
      .selectAll()
      .where("active", "=", 1)
      .where("schedule", "is not", null);
    if (filter.project !== undefined) q = q.where("project", "=", filter.project);
    if (filter.domain !== undefined) q = q.where("domain", "=", filter.domain);
    const rows = await q.orderBy("project").orderBy("domain").orderBy("name").execute();
    return rows.map((r) => this.toRecord("launch_plan", r));
  }

  private toRecord<K extends RegistryKind>(kind: K, row: RegistryRow): RegistryRecord<K> {
    const record: RegistryRecord<K> = {
      kind,
      id: { project: row.project, domain: row.domain, name: row.name, version: row.version },
      digest: row.digest,
      spec: fromJson<RegistrySpecs[K]>(row.spec),
      createdAt: Number(row.created_at),
    };
    if (kind === "launch_plan") {
      record.active = fromIntBool(row.active ?? 0);
      const schedule = fromJsonOrUndefined(row.schedule ?? null);
      if (schedule !== undefined) record.schedule = schedule;
    }
    return record;
  }
}
