/**
 * Scheduler ticks: each (launch plan, tick time) fires exactly once across
 * restarts and replicas. Whoever inserts the tick row first launches the
 * execution; everyone else sees `false` and moves on.
 */
import type { StoreContext } from "./codec.js";
import type { NameKey } from "./registry.js";

export interface ScheduleTick {
  tickAt: number;
  executionId: string;
  firedAt: number;
}

export class ScheduleRepository {
  constructor(private readonly ctx: StoreContext) {}

  /**
   * Claim the tick at `tickAt` for launch plan `lp` (by name: any version),
   * recording the execution it will start. True only for the first caller.
   */
  async claimTick(lp: NameKey, tickAt: number, executionId: string): Promise<boolean> {
    const r = await this.ctx.db
      .insertInto("schedule_ticks")
      .values({
        project: lp.project,
        domain: lp.domain,
        launch_plan: lp.name,
        tick_at: tickAt,
        execution_id: executionId,
        fired_at: this.ctx.now(),
      })
      .onConflict((oc) => oc.columns(["project", "domain", "launch_plan", "tick_at"]).doNothing())
      .executeTakeFirst();
    return Number(r.numInsertedOrUpdatedRows ?? 0n) === 1;
  }

  /** The latest claimed tick of a launch plan: where a restarted scheduler resumes. */
  async lastTick(lp: NameKey): Promise<ScheduleTick | undefined> {
    const [t] = await this.ticks(lp, 1);
    return t;
  }

  /** Claimed ticks, newest first. */
  async ticks(lp: NameKey, limit = 100): Promise<ScheduleTick[]> {
    const rows = await this.ctx.db
      .selectFrom("schedule_ticks")
      .select(["tick_at", "execution_id", "fired_at"])
      .where("project", "=", lp.project)
      .where("domain", "=", lp.domain)
      .where("launch_plan", "=", lp.name)
      .orderBy("tick_at", "desc")
      .limit(Math.max(1, limit))
      .execute();
    return rows.map((r) => ({
      tickAt: Number(r.tick_at),
      executionId: r.execution_id,
      firedAt: Number(r.fired_at),
    }));
  }
}
