/**
 * The notification outbox: a row per execution launched from a launch plan, written with
 * the execution, so its notifications are delivered at least once whatever happens to the
 * replica that ran it. A notifier claims the rows of ended executions with a lease,
 * delivers, and marks them done; rows whose lease ran out (the notifier died while
 * delivering) are claimed again.
 */
import type { StoreContext } from "./codec.js";

const ENDED = ["succeeded", "failed", "aborted"];

export class NotificationOutbox {
  constructor(private readonly ctx: StoreContext) {}

  /**
   * Claim up to `limit` pending rows of ended executions (only `ids` when given) for
   * `owner` until `ttlMs` from now. Returns the claimed executions' ids, oldest first.
   */
  async claim(owner: string, ttlMs: number, limit: number, ids?: readonly string[]): Promise<string[]> {
    if (limit <= 0 || (ids && ids.length === 0)) return [];
    const now = this.ctx.now();
    const rows = await this.ctx.db.transaction().execute(async (trx) => {
      let candidates = trx
        .selectFrom("notification_outbox as o")
        .innerJoin("executions as e", "e.id", "o.execution")
        .select("o.execution")
        .where("o.state", "=", "pending")
        .where("e.phase", "in", ENDED)
        .where((eb) => eb.or([eb("o.owner", "is", null), eb("o.lease_expires_at", "<=", now)]))
        .orderBy("o.updated_at")
        .limit(limit);
      if (ids) candidates = candidates.where("o.execution", "in", [...ids]);
      if (this.ctx.dialect === "postgres") candidates = candidates.forUpdate("o").skipLocked();
      return trx
        .updateTable("notification_outbox")
        .set((eb) => ({
          owner,
          lease_expires_at: now + ttlMs,
          attempts: eb("attempts", "+", 1),
          updated_at: now,
        }))
        .where("execution", "in", candidates)
        .where((eb) => eb.or([eb("owner", "is", null), eb("lease_expires_at", "<=", now)]))
        .returning(["execution", "updated_at"])
        .execute();
    });
    return rows.map((r) => r.execution);
  }

  /** Every webhook of the execution got its delivery (or gave up): the row is done. */
  async done(execution: string, owner: string): Promise<boolean> {
    const r = await this.ctx.db
      .updateTable("notification_outbox")
      .set({ state: "done", owner: null, lease_expires_at: null, updated_at: this.ctx.now() })
      .where("execution", "=", execution)
      .where("owner", "=", owner)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  /** The row of an execution (tests and diagnostics). */
  async get(
    execution: string,
  ): Promise<{ state: string; owner: string | null; attempts: number } | undefined> {
    return this.ctx.db
      .selectFrom("notification_outbox")
      .select(["state", "owner", "attempts"])
      .where("execution", "=", execution)
      .executeTakeFirst();
  }
}
