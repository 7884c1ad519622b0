/**
 * The scheduler, driven round by round with a hand-moved clock on a SQLite store:
 * ticks fire once (across scheduler restarts and two replicas), the catch-up policy
 * for ticks missed while down fires only the latest, (de)activation takes effect at
 * the next round, a tick claimed by a scheduler that died before launching is
 * recovered, and schedules are validated with clear errors.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { cron, every, LocalBlobStore, TernError, task, workflow } from "@tern/core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { Executor } from "../src/executor/index.js";
import {
  BASELINE_MARK,
  DEACTIVATED_MARK,
  parseSchedule,
  Scheduler,
  tickExecutionId,
} from "../src/scheduler/index.js";
import type { Store } from "../src/store/index.js";
import { registerPlan } from "./helpers/plans.js";
import { FakeClock, useStores } from "./helpers/store.js";

const greet = task(
  { name: "sched_greet", inputs: { who: z.string(), times: z.number() }, output: z.string() },
  async ({ who, times }) => `hi ${who}`.repeat(times),
);
const greetFlow = workflow(
  { name: "sched_greet_flow", inputs: { who: z.string(), times: z.number() }, output: z.string() },
  ({ who, times }) => greet({ who, times }),
);

const MINUTE = 60_000;
/** 2026-01-01T00:00:30Z: half a minute past a 5-minute boundary. */
const T0 = Date.UTC(2026, 0, 1, 0, 0, 30);

let tmp: string;
const stores = useStores("sqlite");
const executors: Executor[] = [];

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "tern-sched-"));
});
afterEach(async () => {
  await Promise.all(executors.splice(0).map((e) => e.close()));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function setup(
  clock: FakeClock,
): Promise<{ store: Store; executor: Executor; scheduler: () => Scheduler }> {
  const store = await stores.open({ now: clock.now });
  // Not started: launched executions stay queued, which is all these tests look at.
  const executor = await Executor.create({
    store,
    blobs: new LocalBlobStore(path.join(tmp, "blobs")),
    workDir: tmp,
    backend: "inline",
  });
  executors.push(executor);
  return { store, executor, scheduler: () => new Scheduler({ store, launcher: executor, now: clock.now }) };
}

const plan = (name: string) => ({ project: "default", domain: "development", name });

describe("parseSchedule", () => {
  it("reads cron schedules in their timezone, and fixed rates from the epoch", () => {
    const paris = parseSchedule({ cron: "0 3 * * *", timezone: "Europe/Paris" });
    // 03:00 in Paris is 02:00 UTC in winter.
    expect(paris.nextAfter(T0)).toBe(Date.UTC(2026, 0, 1, 2, 0, 0));
    expect(paris.latestAtOrBefore(Date.UTC(2026, 0, 1, 2, 0, 0))).toBe(Date.UTC(2026, 0, 1, 2, 0, 0));
    expect(paris.latestAtOrBefore(Date.UTC(2026, 0, 1, 1, 59, 59))).toBe(Date.UTC(2025, 11, 31, 2, 0, 0));
    const utc = parseSchedule({ cron: "*/5 * * * *" });
    expect(utc.latestAtOrBefore(T0)).toBe(Date.UTC(2026, 0, 1, 0, 0, 0));
    expect(utc.nextAfter(T0)).toBe(Date.UTC(2026, 0, 1, 0, 5, 0));
    const rate = parseSchedule({ everyMs: 90_000 });
    expect(rate.latestAtOrBefore(T0)).toBe(Math.floor(T0 / 90_000) * 90_000);
    expect(rate.nextAfter(rate.latestAtOrBefore(T0)!)).toBe(rate.latestAtOrBefore(T0)! + 90_000);
  });

  it.each([
    [{ cron: "61 * * * *" }, /invalid cron expression "61 \* \* \* \*".*minute/],
    [{ cron: "every day" }, /invalid cron expression "every day"/],
    [{ cron: "0 3 * * *", timezone: "Mars/Olympus" }, /unknown timezone "Mars\/Olympus"/],
    [{ cron: "0 0 30 2 *" }, /never fires/],
    [{ everyMs: 0 }, /positive whole number of milliseconds/],
    [{ everyMs: 1.5 }, /positive whole number of milliseconds/],
    [{ at: "noon" }, /a schedule is \{ cron, timezone\? \} or \{ everyMs \}/],
  ])("refuses %j with TERN_E_SPEC_INVALID", (schedule, message) => {
    let err: unknown;
    try {
      parseSchedule(schedule, 'launch plan "nightly"');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TernError);
    expect(err).toMatchObject({ code: "TERN_E_SPEC_INVALID", details: { field: "schedule" } });
    expect((err as Error).message).toMatch(/^launch plan "nightly" has an invalid schedule: /);
    expect((err as Error).message).toMatch(message);
    expect((err as TernError).hint).toMatch(/cron expression/);
  });
});

describe("Scheduler", () => {
  it("fires each due tick once, with the plan's defaults and fixed inputs, under an id derived from the tick", async () => {
    const clock = new FakeClock(T0);
    const { store, scheduler } = await setup(clock);
    const lp = await registerPlan(store, greetFlow, {
      name: "every5",
      defaults: { times: 2 },
      fixed: { who: "ada" },
      schedule: cron("*/5 * * * *"),
    });
    const s = scheduler();

    // First sight of the plan: it starts from now; the 00:00 tick is in the past.
    expect((await s.round()).fired).toEqual([]);
    expect((await store.schedules.lastTick(plan("every5")))?.executionId).toBe(BASELINE_MARK);
    clock.advance(2 * MINUTE);
    expect((await s.round()).fired).toEqual([]);

    clock.t = Date.UTC(2026, 0, 1, 0, 5, 0);
    const tick = clock.t;
    const r = await s.round();
    const id = tickExecutionId(plan("every5"), tick);
    expect(r.fired).toEqual([{ plan: "default/development/every5", tickAt: tick, execution: id }]);
    const rec = await store.executions.get(id);
    expect(rec).toMatchObject({
      phase: "queued",
      project: "default",
      domain: "development",
      launchPlan: { name: "every5", version: lp.id.version },
      workflow: { name: "sched_greet_flow" },
      inputs: { who: "ada", times: 2 },
    });
    // Later rounds before the next tick fire nothing; a restarted scheduler neither.
    clock.advance(MINUTE);
    expect((await s.round()).fired).toEqual([]);
    expect((await scheduler().round()).fired).toEqual([]);
    clock.t = Date.UTC(2026, 0, 1, 0, 10, 0);
    expect((await scheduler().round()).fired.map((f) => f.tickAt)).toEqual([clock.t]);
    expect((await store.executions.list({ workflowName: "sched_greet_flow" })).items).toHaveLength(2);
  });

  it("fires a tick once when two replicas' schedulers race for it", async () => {
    const clock = new FakeClock(T0);
    const { store, scheduler } = await setup(clock);
    await registerPlan(store, greetFlow, {
      name: "raced",
      defaults: { who: "x", times: 1 },
      schedule: every("1m"),
    });
    const a = scheduler();
    const b = scheduler();
    await Promise.all([a.round(), b.round()]);
    let fired = 0;
    for (let i = 1; i <= 5; i++) {
      clock.advance(MINUTE);
      const [ra, rb] = await Promise.all([a.round(), b.round()]);
      expect(ra.fired.length + rb.fired.length).toBe(1);
      fired += ra.fired.length + rb.fired.length;
    }
    const ticks = (await store.schedules.ticks(plan("raced"), 100)).filter(
      (t) => !t.executionId.startsWith("~"),
    );
    expect(ticks).toHaveLength(fired);
    for (const t of ticks) expect(await store.executions.get(t.executionId)).toBeDefined();
  });

  it("fires only the most recent tick missed while no scheduler ran (catch-up = 1)", async () => {
    const clock = new FakeClock(T0);
    const { store, scheduler } = await setup(clock);
    await registerPlan(store, greetFlow, {
      name: "catchup",
      defaults: { who: "x", times: 1 },
      schedule: cron("*/5 * * * *"),
    });
    await scheduler().round();
    clock.t = Date.UTC(2026, 0, 1, 0, 5, 0);
    expect((await scheduler().round()).fired).toHaveLength(1);

    // Down from 00:06 to 00:33: the ticks 00:10 … 00:30 were missed.
    clock.t = Date.UTC(2026, 0, 1, 0, 33, 0);
    const r = await scheduler().round();
    expect(r.fired.map((f) => new Date(f.tickAt).toISOString())).toEqual(["2026-01-01T00:30:00.000Z"]);
    expect(r.skipped).toEqual([{ plan: "default/development/catchup", count: 4 }]);
    expect((await scheduler().round()).fired).toEqual([]);
    const real = (await store.schedules.ticks(plan("catchup"), 100)).filter(
      (t) => !t.executionId.startsWith("~"),
    );
    expect(real.map((t) => new Date(t.tickAt).toISOString())).toEqual([
      "2026-01-01T00:30:00.000Z",
      "2026-01-01T00:05:00.000Z",
    ]);
  });

  it("applies deactivation and activation at the next round, without catching up on inactive time", async () => {
    const clock = new FakeClock(T0);
    const { store, scheduler } = await setup(clock);
    const lp = await registerPlan(store, greetFlow, {
      name: "toggled",
      defaults: { who: "x", times: 1 },
      schedule: every("1m"),
    });
    const s = scheduler();
    await s.round();
    clock.advance(MINUTE);
    expect((await s.round()).fired).toHaveLength(1);

    await store.registry.deactivate(plan("toggled"));
    clock.advance(MINUTE);
    expect((await s.round()).fired).toEqual([]);
    expect((await store.schedules.lastTick(plan("toggled")))?.executionId).toBe(DEACTIVATED_MARK);
    clock.advance(5 * MINUTE);
    expect((await s.round()).fired).toEqual([]);

    // Active again: it starts from the next tick, even on a restarted scheduler.
    await store.registry.activate(lp.id);
    clock.advance(10_000);
    expect((await scheduler().round()).fired).toEqual([]);
    clock.advance(MINUTE);
    const r = await scheduler().round();
    expect(r.fired).toHaveLength(1);
    expect(r.skipped).toEqual([]);
  });

  it("launches the execution of a tick whose claimer stopped before launching it", async () => {
    const clock = new FakeClock(T0);
    const { store, scheduler } = await setup(clock);
    await registerPlan(store, greetFlow, {
      name: "orphan",
      defaults: { who: "x", times: 3 },
      schedule: every("1m"),
    });
    await scheduler().round();
    // Another scheduler claimed the next tick and died before creating its execution.
    clock.advance(MINUTE);
    const tick = Math.floor(clock.t / MINUTE) * MINUTE;
    const id = tickExecutionId(plan("orphan"), tick);
    expect(await store.schedules.claimTick(plan("orphan"), tick, id)).toBe(true);
    expect(await store.executions.get(id)).toBeUndefined();

    const r = await scheduler().round();
    expect(r.fired).toEqual([{ plan: "default/development/orphan", tickAt: tick, execution: id }]);
    expect(await store.executions.get(id)).toMatchObject({ phase: "queued", inputs: { who: "x", times: 3 } });
    expect((await scheduler().round()).fired).toEqual([]);
  });

  it("retries a launch that failed for a system reason at the next round", async () => {
    const clock = new FakeClock(T0);
    const { store, executor } = await setup(clock);
    await registerPlan(store, greetFlow, {
      name: "flaky",
      defaults: { who: "x", times: 1 },
      schedule: every("1m"),
    });
    let failures = 1;
    const launcher = {
      launch: async (req: Parameters<Executor["launch"]>[0]) => {
        if (failures-- > 0) throw new TernError("TERN_E_SYSTEM", "database unavailable", { kind: "system" });
        return executor.launch(req);
      },
    };
    const s = new Scheduler({ store, launcher, now: clock.now });
    await s.round();
    clock.advance(MINUTE);
    const first = await s.round();
    expect(first.fired).toEqual([]);
    expect(first.errors.map((e) => e.message)).toEqual(["database unavailable"]);
    const [tick] = await store.schedules.ticks(plan("flaky"), 1);
    expect(await store.executions.get(tick.executionId)).toBeUndefined();
    const second = await s.round();
    expect(second.fired.map((f) => f.execution)).toEqual([tick.executionId]);
    expect(await store.executions.get(tick.executionId)).toBeDefined();
  });

  it("records a tick whose plan cannot run as a failed execution instead of retrying forever", async () => {
    const clock = new FakeClock(T0);
    const { store, scheduler } = await setup(clock);
    // No default for `times`: the scheduled launch cannot give it.
    await registerPlan(store, greetFlow, {
      name: "incomplete",
      defaults: { who: "x" },
      schedule: every("1m"),
    });
    const s = scheduler();
    await s.round();
    clock.advance(MINUTE);
    const r = await s.round();
    expect(r.fired).toHaveLength(1);
    const rec = await store.executions.get(r.fired[0].execution);
    expect(rec).toMatchObject({
      phase: "failed",
      error: { code: "TERN_E_INPUT_INVALID" },
      launchPlan: { name: "incomplete" },
    });
    expect(rec?.error?.message).toMatch(/needs input "times"/);
  });
});
