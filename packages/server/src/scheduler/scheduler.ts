/**
 * The scheduler: active launch plans with a schedule fire executions, each tick
 * exactly once across restarts and replicas.
 *
 * Every `intervalMs` (a "round"), each replica's scheduler reads the active scheduled
 * launch plans and, for each, the last tick recorded for it in the store. When a tick
 * of the plan's schedule is due (after the last one, at or before now) it claims it
 * (`store.schedules.claimTick`: one row per plan and tick time, so only the first
 * claimer wins) and launches the execution with the plan's defaults and fixed inputs,
 * under an id derived from the plan and the tick ({@link tickExecutionId}): a launch
 * retried after a crash between claim and launch is the same execution, created once.
 *
 * ## Ticks missed while no scheduler ran
 *
 * When the server was down (or every replica was) across several ticks, only the most
 * recent missed tick fires when a scheduler runs again: catch-up is one execution,
 * never a burst. The ones before it are skipped (and logged).
 *
 * ## Activation
 *
 * Activate and deactivate take effect at the next round. A plan seen active for the
 * first time starts at its next tick (nothing fires for the past); so does a plan
 * re-activated after the scheduler saw it deactivated (ticks missed while it was
 * inactive do not fire). The store keeps both facts as marker rows among the ticks, so
 * they hold across restarts and replicas. (A plan deactivated and re-activated while
 * no scheduler ran at all cannot be told from one that stayed active: it catches up
 * one tick.)
 */
import { createHash } from "node:crypto";
import {
  type CompiledWorkflow,
  ErrorCodes,
  type Identifier,
  type Json,
  type LaunchPlanSpec,
  TernError,
  toErrorDocument,
} from "@tern/core";
import { assembleCompiled, registryLookup } from "../api/compiled.js";
import type { LaunchRequest } from "../executor/executor.js";
import { type ExecutorLogger, silentLogger } from "../executor/logger.js";
import type { ExecutionRecord } from "../store/executions.js";
import type { NameKey, RegistryRecord } from "../store/registry.js";
import type { ScheduleTick } from "../store/schedules.js";
import type { Store } from "../store/store.js";
import { parseSchedule } from "./schedule.js";

/** Marker row: the scheduler first saw the plan active here; ticks after it fire. */
export const BASELINE_MARK = "~baseline";
/** Marker row: the scheduler saw the plan no longer active here. */
export const DEACTIVATED_MARK = "~deactivated";

export interface SchedulerOptions {
  store: Store;
  /** Creates executions (an {@link Executor}'s `launch`). */
  launcher: { launch(req: LaunchRequest): Promise<ExecutionRecord> };
  /** The compiled workflow a plan runs. @default assembled from the registry */
  resolveWorkflow?: (id: Identifier) => Promise<CompiledWorkflow>;
  /** Epoch-ms clock (tests move it by hand). @default Date.now */
  now?: () => number;
  /** Time between rounds. @default 1000 */
  intervalMs?: number;
  logger?: ExecutorLogger;
}

/** What one round did (for tests and logs). */
export interface RoundReport {
  at: number;
  /** Executions launched for due ticks (and for claimed ticks recovered). */
  fired: { plan: string; tickAt: number; execution: string }[];
  /** Ticks skipped by the catch-up policy. */
  skipped: { plan: string; count: number }[];
  errors: { plan: string; message: string }[];
}

/** How many missed ticks are looked at to report how many were skipped. */
const SKIP_COUNT_LIMIT = 1000;
/** Recent claimed ticks checked each round for an execution that was never created. */
const RECOVERY_WINDOW = 3;

/** The execution id of a plan's tick: the same on every replica and after restarts. */
export function tickExecutionId(plan: NameKey, tickAt: number): string {
  const h = createHash("sha256")
    .update(`${plan.project}\u0000${plan.domain}\u0000${plan.name}\u0000${tickAt}`)
    .digest("hex");
  return `s${h.slice(0, 20)}`;
}

export class Scheduler {
  private readonly now: () => number;
  private readonly intervalMs: number;
  private readonly logger: ExecutorLogger;
  private readonly resolveWorkflow: (id: Identifier) => Promise<CompiledWorkflow>;
  private timer?: NodeJS.Timeout;
  private running?: Promise<RoundReport>;
  /** Plans active at the last round (`project/domain/name`). */
  private seen = new Map<string, NameKey>();
  /** Tick executions known to exist (no need to look again). */
  private readonly launched = new Set<string>();

  constructor(private readonly opts: SchedulerOptions) {
    this.now = opts.now ?? Date.now;
    this.intervalMs = opts.intervalMs ?? 1000;
    this.logger = opts.logger ?? silentLogger;
    this.resolveWorkflow =
      opts.resolveWorkflow ??
      (async (id) => {
        const rec = await opts.store.registry.get("workflow", id);
        if (!rec) {
          throw new TernError(
            ErrorCodes.NOT_FOUND,
            `workflow ${id.name}@${id.version} is not registered in ${id.project}/${id.domain}`,
            { details: { id } },
          );
        }
        return assembleCompiled(rec.spec, registryLookup(opts.store, id.project, id.domain));
      });
  }

  /** Run rounds every `intervalMs` until {@link close}. */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.round(), this.intervalMs);
    void this.round();
  }

  /** Stop after the round in progress. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** One round now (rounds never overlap: a call during one returns it). */
  round(): Promise<RoundReport> {
    this.running ??= this.doRound().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async doRound(): Promise<RoundReport> {
    const at = this.now();
    const report: RoundReport = { at, fired: [], skipped: [], errors: [] };
    let plans: RegistryRecord<"launch_plan">[];
    try {
      plans = await this.opts.store.registry.scheduledLaunchPlans();
    } catch (e) {
      this.logger.warn({ err: (e as Error).message }, "scheduler: listing launch plans failed");
      report.errors.push({ plan: "*", message: (e as Error).message });
      return report;
    }
    const active = new Map<string, NameKey>();
    for (const rec of plans) {
      const key: NameKey = { project: rec.id.project, domain: rec.id.domain, name: rec.id.name };
      active.set(planText(key), key);
      try {
        await this.planRound(rec, key, at, report);
      } catch (e) {
        report.errors.push({ plan: planText(key), message: (e as Error).message });
        this.logger.warn(
          { plan: planText(key), err: (e as Error).message },
          "scheduler: a launch plan's round failed",
        );
      }
    }
    for (const [text, key] of this.seen) {
      if (active.has(text)) continue;
      // Deactivated since the last round: ticks missed while inactive never fire.
      try {
        await this.opts.store.schedules.claimTick(key, at, DEACTIVATED_MARK);
      } catch (e) {
        report.errors.push({ plan: text, message: (e as Error).message });
      }
    }
    this.seen = active;
    return report;
  }

  private async planRound(
    rec: RegistryRecord<"launch_plan">,
    key: NameKey,
    now: number,
    report: RoundReport,
  ): Promise<void> {
    const plan = planText(key);
    const schedule = parseSchedule(
      rec.schedule ?? (rec.spec as { schedule?: Json }).schedule,
      `launch plan "${plan}"`,
    );
    const { schedules } = this.opts.store;
    const ticks = await schedules.ticks(key, RECOVERY_WINDOW);
    const last = ticks[0];
    if (!last || last.executionId === DEACTIVATED_MARK) {
      // New to the scheduler, or active again: start from now.
      await schedules.claimTick(key, now, BASELINE_MARK);
      this.logger.info(
        { plan, schedule: schedule.text, next: schedule.nextAfter(now) },
        "scheduler: plan is active",
      );
      return;
    }
    await this.recover(rec, key, ticks, report);
    const due = schedule.latestAtOrBefore(now);
    if (due === undefined || due <= last.tickAt) return;
    const skipped = countBetween(schedule, last.tickAt, due);
    if (skipped > 0) {
      report.skipped.push({ plan, count: skipped });
      this.logger.warn(
        { plan, skipped, firing: due },
        "scheduler: ticks were missed while no scheduler ran; firing only the latest",
      );
    }
    const id = tickExecutionId(key, due);
    if (!(await schedules.claimTick(key, due, id))) return; // another replica has it
    await this.fire(rec, key, due, id, report);
  }

  /** Claimed ticks whose execution does not exist (the claimer stopped in between): create it now. */
  private async recover(
    rec: RegistryRecord<"launch_plan">,
    key: NameKey,
    ticks: ScheduleTick[],
    report: RoundReport,
  ): Promise<void> {
    for (const t of ticks) {
      if (t.executionId.startsWith("~") || this.launched.has(t.executionId)) continue;
      if (await this.opts.store.executions.get(t.executionId)) {
        this.launched.add(t.executionId);
        continue;
      }
      await this.fire(rec, key, t.tickAt, t.executionId, report);
    }
  }

  /** Launch a tick's execution (idempotent: the id is the tick's). */
  private async fire(
    rec: RegistryRecord<"launch_plan">,
    key: NameKey,
    tickAt: number,
    id: string,
    report: RoundReport,
  ): Promise<void> {
    const spec = rec.spec as unknown as LaunchPlanSpec;
    const plan = planText(key);
    const launchPlan = { name: rec.id.name, version: rec.id.version };
    const inputs = { ...(spec.defaults ?? {}), ...(spec.fixed ?? {}) };
    try {
      const compiled = await this.resolveWorkflow({
        ...spec.workflow,
        project: key.project,
        domain: key.domain,
      });
      await this.opts.launcher.launch({
        id,
        project: key.project,
        domain: key.domain,
        compiled,
        inputs,
        launchPlan,
      });
    } catch (e) {
      if (e instanceof TernError && e.code === ErrorCodes.CONFLICT) {
        // Created already (by another replica recovering the same tick).
        this.launched.add(id);
        return;
      }
      if (!(e instanceof TernError) || e.kind === "system" || e.code === ErrorCodes.BLOB_NOT_FOUND) throw e; // retried next round
      // The plan cannot run as registered (inputs, spec): the tick's execution records why.
      await this.recordFailedTick(key, spec, launchPlan, id, inputs, e);
    }
    this.launched.add(id);
    report.fired.push({ plan, tickAt, execution: id });
    this.logger.info({ plan, tickAt: new Date(tickAt).toISOString(), execution: id }, "scheduler: fired");
  }

  private async recordFailedTick(
    key: NameKey,
    spec: LaunchPlanSpec,
    launchPlan: { name: string; version: string },
    id: string,
    inputs: Record<string, unknown>,
    e: TernError,
  ): Promise<void> {
    const now = this.now();
    try {
      await this.opts.store.executions.create({
        id,
        project: key.project,
        domain: key.domain,
        workflow: { name: spec.workflow.name, version: spec.workflow.version },
        launchPlan,
        phase: "failed",
        inputs: inputs as Json,
        spec: {} as Json,
        createdAt: now,
      });
      await this.opts.store.executions.update(id, { error: toErrorDocument(e), endedAt: now });
    } catch (err) {
      if (!(err instanceof TernError && err.code === ErrorCodes.CONFLICT)) throw err;
    }
  }
}

function planText(k: NameKey): string {
  return `${k.project}/${k.domain}/${k.name}`;
}

/** Ticks strictly between `after` and `before` (capped, for the report). */
function countBetween(s: ReturnType<typeof parseSchedule>, after: number, before: number): number {
  let n = 0;
  for (let t = s.nextAfter(after); t !== undefined && t < before && n < SKIP_COUNT_LIMIT; t = s.nextAfter(t))
    n++;
  return n;
}
