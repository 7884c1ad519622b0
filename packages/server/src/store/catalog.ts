/**
 * The catalog (cached task outputs) in the store's database, for the server
 * and its replicas. Entries are bounded by total size, least recently used
 * first; `serialize` leases live in `catalog_leases`, so two replicas on one
 * PostgreSQL compute an identical task once.
 */
import type { Catalog, CatalogEntry, CatalogFilter, Json } from "@tern/core";
import type { Kysely, Transaction } from "kysely";
import { fromJson, type StoreContext, toJson } from "./codec.js";
import type { CatalogEntriesTable, Database } from "./schema.js";

export interface SqlCatalogOptions {
  /** Largest total size of entries; least recently used ones go first. @default 1 GiB */
  maxBytes?: number;
  /**
   * A hit records its time only when the stored one is older than this, so
   * most hits are a plain read instead of a committed write (an fsync on
   * PostgreSQL). Eviction order is exact to within this interval.
   * @default 10_000
   */
  touchIntervalMs?: number;
}

function toEntry(row: CatalogEntriesTable): CatalogEntry {
  return {
    key: row.key,
    project: row.project,
    domain: row.domain,
    task: row.task,
    cacheVersion: row.cache_version,
    outputs: fromJson<Json>(row.outputs),
    producer: {
      execution: row.producer_execution,
      node: row.producer_node,
      attempt: Number(row.producer_attempt),
    },
    createdAt: Number(row.created_at),
    sizeBytes: Number(row.size_bytes),
  };
}

type Filter = CatalogFilter & { key?: string };

/** A {@link Catalog} over the store's tables. */
export class SqlCatalog implements Catalog {
  readonly maxBytes: number;
  private readonly touchIntervalMs: number;

  constructor(
    private readonly ctx: StoreContext,
    opts: SqlCatalogOptions = {},
  ) {
    this.maxBytes = opts.maxBytes ?? 1024 ** 3;
    this.touchIntervalMs = opts.touchIntervalMs ?? 10_000;
  }

  /** The entry for `key`, marking it used (see {@link SqlCatalogOptions.touchIntervalMs}). */
  async get(key: string): Promise<CatalogEntry | undefined> {
    const row = await this.ctx.db
      .selectFrom("catalog_entries")
      .selectAll()
      .where("key", "=", key)
      .executeTakeFirst();
    if (!row) return undefined;
    const now = this.ctx.now();
    if (now - Number(row.last_used_at) >= this.touchIntervalMs) {
      await this.ctx.db
        .updateTable("catalog_entries")
        .set({ last_used_at: now })
        .where("key", "=", key)
        .where("last_used_at", "<", now)
        .execute();
    }
    return toEntry(row);
  }

  /**
   * Store an entry (replacing one with the same key), then evict least recently
   * used entries until the total fits `maxBytes`. The new entry itself is never
   * evicted by its own put, even when it alone exceeds the bound.
   */
  async put(entry: Omit<CatalogEntry, "sizeBytes" | "createdAt">): Promise<CatalogEntry> {
    const now = this.ctx.now();
    const full: CatalogEntry = { ...entry, createdAt: now, sizeBytes: 0 };
    full.sizeBytes = Buffer.byteLength(JSON.stringify(full));
    const row: CatalogEntriesTable = {
      key: full.key,
      project: full.project,
      domain: full.domain,
      task: full.task,
      cache_version: full.cacheVersion,
      outputs: toJson(full.outputs),
      producer_execution: full.producer.execution,
      producer_node: full.producer.node,
      producer_attempt: full.producer.attempt,
      created_at: now,
      last_used_at: now,
      size_bytes: full.sizeBytes,
    };
    await this.ctx.db.transaction().execute(async (trx) => {
      await this.lockStats(trx);
      const old = await trx
        .selectFrom("catalog_entries")
        .select("size_bytes")
        .where("key", "=", full.key)
        .executeTakeFirst();
      const { key: _key, ...changes } = row;
      await trx
        .insertInto("catalog_entries")
        .values(row)
        .onConflict((oc) => oc.column("key").doUpdateSet(changes))
        .execute();
      let total = await this.addToTotal(trx, full.sizeBytes - Number(old?.size_bytes ?? 0));
      while (total > this.maxBytes) {
        const victims = await trx
          .selectFrom("catalog_entries")
          .select(["key", "size_bytes"])
          .where("key", "!=", full.key)
          .orderBy("last_used_at")
          .orderBy("key")
          .limit(100)
          .execute();
        if (victims.length === 0) break;
        const chosen: string[] = [];
        let freed = 0;
        for (const v of victims) {
          if (total - freed <= this.maxBytes) break;
          chosen.push(v.key);
          freed += Number(v.size_bytes);
        }
        await trx.deleteFrom("catalog_entries").where("key", "in", chosen).execute();
        total = await this.addToTotal(trx, -freed);
      }
    });
    return full;
  }

  /** Entries matching the filter, oldest first. */
  async list(filter: CatalogFilter = {}): Promise<CatalogEntry[]> {
    const rows = await this.where(this.ctx.db.selectFrom("catalog_entries").selectAll(), filter)
      .orderBy("created_at")
      .orderBy("key")
      .execute();
    return rows.map(toEntry);
  }

  /** Remove matching entries (all of them without a filter); returns how many. */
  async evict(filter: Filter = {}): Promise<number> {
    return this.ctx.db.transaction().execute(async (trx) => {
      await this.lockStats(trx);
      const gone = await this.where(trx.deleteFrom("catalog_entries"), filter)
        .returning("size_bytes")
        .execute();
      const freed = gone.reduce((n, r) => n + Number(r.size_bytes), 0);
      if (freed) await this.addToTotal(trx, -freed);
      return gone.length;
    });
  }

  /** Total size of the stored entries. */
  async sizeBytes(): Promise<number> {
    const r = await this.ctx.db
      .selectFrom("catalog_stats")
      .select("total_bytes")
      .where("id", "=", 1)
      .executeTakeFirst();
    return Number(r?.total_bytes ?? 0);
  }

  /**
   * Take the lease that lets one caller compute `key` (`cache.serialize`). True
   * when `owner` now holds it: it was free, expired, or already `owner`'s (then
   * it is renewed for another `ttlMs`). One atomic upsert; the winner is the
   * caller whose statement changed a row.
   */
  async acquire(key: string, owner: string, ttlMs: number): Promise<boolean> {
    const now = this.ctx.now();
    const r = await this.ctx.db
      .insertInto("catalog_leases")
      .values({ key, owner, acquired_at: now, expires_at: now + ttlMs })
      .onConflict((oc) =>
        oc
          .column("key")
          .doUpdateSet((eb) => ({
            owner: eb.ref("excluded.owner"),
            acquired_at: eb.ref("excluded.acquired_at"),
            expires_at: eb.ref("excluded.expires_at"),
          }))
          .where((eb) =>
            eb.or([eb("catalog_leases.owner", "=", owner), eb("catalog_leases.expires_at", "<=", now)]),
          ),
      )
      .executeTakeFirst();
    return Number(r.numInsertedOrUpdatedRows ?? 0n) > 0;
  }

  /** Drop `owner`'s lease on `key` (a no-op if someone else holds it). */
  async release(key: string, owner: string): Promise<void> {
    await this.ctx.db
      .deleteFrom("catalog_leases")
      .where("key", "=", key)
      .where("owner", "=", owner)
      .execute();
  }

  /** The store owns the connection; nothing to close here. */
  async close(): Promise<void> {}

  /** Serialize writers on the stats row (SQLite's write lock already does). */
  private async lockStats(trx: Transaction<Database>): Promise<void> {
    if (this.ctx.dialect === "postgres") {
      await trx.selectFrom("catalog_stats").select("id").where("id", "=", 1).forUpdate().execute();
    }
  }

  private async addToTotal(trx: Kysely<Database>, delta: number): Promise<number> {
    const r = await trx
      .updateTable("catalog_stats")
      .set((eb) => ({ total_bytes: eb("total_bytes", "+", delta) }))
      .where("id", "=", 1)
      .returning("total_bytes")
      .executeTakeFirstOrThrow();
    return Number(r.total_bytes);
  }

  private where<Q extends { where: (...args: any[]) => any }>(q: Q, f: Filter): Q {
    let out = q;
    if (f.key !== undefined) out = out.where("key", "=", f.key);
    if (f.task !== undefined) out = out.where("task", "=", f.task);
    if (f.project !== undefined) out = out.where("project", "=", f.project);
    if (f.domain !== undefined) out = out.where("domain", "=", f.domain);
    return out;
  }
}
