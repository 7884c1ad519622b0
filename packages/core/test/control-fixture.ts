/**
 * Definitions the control-flow tests run. The tests import this module directly (the
 * inline backend calls these bodies in the test process), and control-harness.ts bundles
 * a copy into a temporary project for the process backend (the bodies run in worker
 * processes). Bodies log their calls to `$TERN_CONTROL_STATE/<execution id>.log`, so a
 * test counts what ran wherever it ran.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import {
  after,
  and,
  dynamic,
  eq,
  executionInfo,
  failureInfo,
  gate,
  gt,
  gte,
  isFalse,
  isNull,
  isTrue,
  launchPlan,
  lt,
  map,
  not,
  or,
  type TaskCtx,
  task,
  when,
  workflow,
} from "@tern/core";
import { z } from "zod";

export function stateDir(): string {
  const d = process.env.TERN_CONTROL_STATE;
  if (!d) throw new Error("TERN_CONTROL_STATE is not set");
  return d;
}

/** One line per body call: which task, node and attempt, in which process. */
function record(ctx: TaskCtx, what?: unknown): void {
  const line = JSON.stringify({
    task: ctx.task.name,
    node: ctx.node.id,
    attempt: ctx.attempt,
    pid: process.pid,
    what,
  });
  fs.appendFileSync(path.join(stateDir(), `${ctx.execution.id}.log`), `${line}\n`);
}

// ---------------------------------------------------------------------------
// Plain tasks

export const double = task(
  { name: "double", inputs: { x: z.number() }, output: z.number() },
  async ({ x }, ctx) => {
    record(ctx);
    return 2 * x;
  },
);

export const add = task(
  { name: "add", inputs: { a: z.number(), b: z.number() }, output: z.number() },
  async ({ a, b }, ctx) => {
    record(ctx);
    return a + b;
  },
);

export const sumAll = task(
  { name: "sum_all", inputs: { xs: z.array(z.number()) }, output: z.number() },
  async ({ xs }, ctx) => {
    record(ctx);
    return xs.reduce((s, x) => s + x, 0);
  },
);

export const label = task(
  { name: "label", inputs: { s: z.string() }, output: z.string() },
  async ({ s }, ctx) => {
    record(ctx);
    return s;
  },
);

// ---------------------------------------------------------------------------
// dynamic

/** One `double` per i < n (n is a real value here), summed. */
export const fanOut = dynamic(
  { name: "fan_out", inputs: { n: z.number().int().nonnegative() }, output: z.number() },
  ({ n }, ctx) => {
    record(ctx, { n });
    const parts = [];
    for (let i = 0; i < n; i++) parts.push(double({ x: i }));
    return sumAll({ xs: parts });
  },
);

export const PipelineOut = z.object({
  doubled: z.array(z.number()),
  size: z.string(),
  nested: z.number(),
  count: z.number(),
});

/** A map, a branch and a nested dynamic, shaped by the values it is given. */
export const mixed = dynamic(
  { name: "mixed", inputs: { xs: z.array(z.number()), threshold: z.number() }, output: PipelineOut },
  ({ xs, threshold }, ctx) => {
    record(ctx, { xs, threshold });
    const doubled = map(double, { x: xs });
    const total = sumAll({ xs: doubled });
    const size = when(gt(total, threshold))
      .then(() => label({ s: "big" }, { id: "big" }))
      .else(() => label({ s: "small" }, { id: "small" }));
    const nested = fanOut({ n: xs.length }, { id: "inner" });
    return { doubled, size, nested, count: xs.length };
  },
);

export const dynamicPipeline = workflow(
  {
    name: "dynamic_pipeline",
    inputs: { xs: z.array(z.number()), threshold: z.number() },
    output: z.object({ result: PipelineOut, plus: z.number() }),
  },
  ({ xs, threshold }) => {
    const r = mixed({ xs, threshold }, { id: "dyn" });
    return { result: r, plus: add({ a: r.nested, b: 1000 }, { id: "plus" }) };
  },
);

export const fanOutFlow = workflow(
  { name: "fan_out_flow", inputs: { n: z.number().int() }, output: z.number() },
  ({ n }) => add({ a: fanOut({ n }, { id: "dyn" }), b: 1 }, { id: "after_dyn" }),
);

/** Declares a number, builds tasks, then returns a string handle. */
export const wrongType = dynamic(
  { name: "wrong_type", inputs: { n: z.number().int() }, output: z.number() },
  ({ n }, ctx) => {
    record(ctx);
    for (let i = 0; i < n; i++) double({ x: i });
    return label({ s: "not a number" }) as unknown as number;
  },
);

export const wrongTypeFlow = workflow(
  { name: "wrong_type_flow", inputs: { n: z.number().int() }, output: z.number() },
  ({ n }) => add({ a: wrongType({ n }, { id: "dyn" }), b: 1 }, { id: "after_dyn" }),
);

/** Returns a constant of the wrong type. */
export const wrongConstant = dynamic(
  { name: "wrong_constant", inputs: {}, output: z.number() },
  (_i, ctx) => {
    record(ctx);
    return "seven" as unknown as number;
  },
);

export const wrongConstantFlow = workflow({ name: "wrong_constant_flow", output: z.number() }, () =>
  wrongConstant({}, { id: "dyn" }),
);

/** Maps over a number it was given (a list was due): the sub-DAG fails its type check. */
export const mapsANumber = dynamic(
  { name: "maps_a_number", inputs: { n: z.number() }, output: z.array(z.number()) },
  ({ n }, ctx) => {
    record(ctx);
    return map(double, { x: n as unknown as number[] });
  },
);

export const mapsANumberFlow = workflow(
  { name: "maps_a_number_flow", inputs: { n: z.number() }, output: z.array(z.number()) },
  ({ n }) => mapsANumber({ n }, { id: "dyn" }),
);

// A wide dynamic (inline only): tasks that log nothing.
const quick = task({ name: "quick", inputs: { x: z.number() }, output: z.number() }, ({ x }) => 2 * x);
const total = task({ name: "total", inputs: { xs: z.array(z.number()) }, output: z.number() }, ({ xs }) => {
  let s = 0;
  for (const x of xs) s += x;
  return s;
});

export const wide = dynamic(
  { name: "wide", inputs: { n: z.number().int() }, output: z.number() },
  ({ n }) => {
    const parts = new Array(n);
    for (let i = 0; i < n; i++) parts[i] = quick({ x: i });
    return total({ xs: parts });
  },
);

export const wideFlow = workflow(
  { name: "wide_flow", inputs: { n: z.number().int() }, output: z.number() },
  ({ n }) => wide({ n }, { id: "dyn" }),
);

// ---------------------------------------------------------------------------
// map

export const scale = task(
  { name: "scale", inputs: { x: z.number(), factor: z.number() }, output: z.number() },
  async ({ x, factor }, ctx) => {
    record(ctx);
    return x * factor;
  },
);

export const pair = task(
  { name: "pair", inputs: { a: z.string(), b: z.number() }, output: z.string() },
  async ({ a, b }, ctx) => {
    record(ctx);
    return `${a}${b}`;
  },
);

export const mapBound = workflow(
  { name: "map_bound", inputs: { xs: z.array(z.number()), factor: z.number() }, output: z.array(z.number()) },
  ({ xs, factor }) => map(scale, { x: xs }, { bound: { factor }, id: "scaled" }),
);

export const mapPairs = workflow(
  {
    name: "map_pairs",
    inputs: { as: z.array(z.string()), bs: z.array(z.number()) },
    output: z.array(z.string()),
  },
  ({ as, bs }) => map(pair, { a: as, b: bs }, { id: "pairs" }),
);

/**
 * Marks itself active in a shared directory and waits (up to ~300 ms) for `want` peers, so
 * items that may overlap do; returns the most items it saw active at once.
 */
export const busy = task(
  { name: "busy", inputs: { i: z.number(), want: z.number() }, output: z.number() },
  async ({ i, want }, ctx) => {
    const dir = path.join(stateDir(), `${ctx.execution.id}.active`);
    fs.mkdirSync(dir, { recursive: true });
    const mine = path.join(dir, String(i));
    fs.writeFileSync(mine, "");
    let peak = 0;
    try {
      for (let k = 0; k < 60; k++) {
        peak = Math.max(peak, fs.readdirSync(dir).length);
        if (peak >= want) break;
        await delay(5);
      }
      peak = Math.max(peak, fs.readdirSync(dir).length);
    } finally {
      fs.rmSync(mine);
    }
    record(ctx, { i, peak });
    return peak;
  },
);

export const mapBusy = workflow(
  { name: "map_busy", inputs: { is: z.array(z.number()), want: z.number() }, output: z.array(z.number()) },
  ({ is, want }) => map(busy, { i: is }, { bound: { want }, concurrency: 3, id: "busy" }),
);

/** Fails (a user error, no retries) on multiples of 3. */
export const picky = task(
  { name: "picky", inputs: { x: z.number() }, output: z.number(), retries: 0 },
  async ({ x }, ctx) => {
    record(ctx);
    if (x % 3 === 0) throw new Error(`no multiples of 3, got ${x}`);
    return x;
  },
);

export const mapTolerant = workflow(
  { name: "map_tolerant", inputs: { xs: z.array(z.number()) }, output: z.array(z.number().nullable()) },
  ({ xs }) => map(picky, { x: xs }, { minSuccessRatio: 0.6, id: "picky" }),
);

export const mapIntolerant = workflow(
  { name: "map_intolerant", inputs: { xs: z.array(z.number()) }, output: z.array(z.number().nullable()) },
  ({ xs }) => map(picky, { x: xs }, { minSuccessRatio: 0.8, id: "picky" }),
);

/** The first attempt of every item fails. */
export const shaky = task(
  {
    name: "shaky",
    inputs: { x: z.number() },
    output: z.number(),
    retries: { user: 2, backoff: { base: 1 } },
  },
  async ({ x }, ctx) => {
    record(ctx);
    if (ctx.attempt === 1) throw new Error(`attempt 1 of ${x} fails`);
    return x * 10 + ctx.attempt;
  },
);

export const mapShaky = workflow(
  { name: "map_shaky", inputs: { xs: z.array(z.number()) }, output: z.array(z.number()) },
  ({ xs }) => map(shaky, { x: xs }, { id: "shaky" }),
);

export const cachedSquare = task(
  { name: "cached_square", inputs: { x: z.number() }, output: z.number(), cache: true },
  async ({ x }, ctx) => {
    record(ctx);
    return x * x;
  },
);

export const mapCached = workflow(
  { name: "map_cached", inputs: { xs: z.array(z.number()) }, output: z.array(z.number()) },
  ({ xs }) => map(cachedSquare, { x: xs }, { id: "squares" }),
);

/** 2x + plus. */
export const doublePlus = workflow(
  { name: "double_plus", inputs: { x: z.number(), plus: z.number().default(1) }, output: z.number() },
  ({ x, plus }) => add({ a: double({ x }), b: plus }),
);

export const mapSubworkflow = workflow(
  {
    name: "map_subworkflow",
    inputs: { xs: z.array(z.number()), plus: z.number() },
    output: z.array(z.number()),
  },
  ({ xs, plus }) => map(doublePlus, { x: xs }, { bound: { plus }, id: "each" }),
);

export const mapSubworkflowDefault = workflow(
  { name: "map_subworkflow_default", inputs: { xs: z.array(z.number()) }, output: z.array(z.number()) },
  ({ xs }) => map(doublePlus, { x: xs }, { id: "each" }),
);

// ---------------------------------------------------------------------------
// when

export const measure = task(
  { name: "measure", inputs: { x: z.number() }, output: z.number() },
  async ({ x }, ctx) => {
    record(ctx);
    return x * 10;
  },
);

export const positive = task(
  { name: "positive", inputs: { x: z.number() }, output: z.boolean() },
  async ({ x }, ctx) => {
    record(ctx);
    return x > 0;
  },
);

/** Null for an empty name. */
export const maybeName = task(
  { name: "maybe_name", inputs: { s: z.string() }, output: z.string().nullable() },
  async ({ s }, ctx) => {
    record(ctx);
    return s === "" ? null : s;
  },
);

export const grade = workflow(
  { name: "grade", inputs: { score: z.number() }, output: z.string() },
  ({ score }) =>
    when(gte(score, 90))
      .then(() => label({ s: "A" }, { id: "a" }))
      .elseIf(gte(score, 75), () => label({ s: "B" }, { id: "b" }))
      .elseIf(gte(score, 50), () => label({ s: "C" }, { id: "c" }))
      .else(() => label({ s: "F" }, { id: "f" })),
);

export const logic = workflow(
  {
    name: "logic",
    inputs: { x: z.number(), strict: z.boolean(), name: z.string() },
    output: z.array(z.string()),
  },
  ({ x, strict, name }) => {
    const m = measure({ x }, { id: "m" });
    const pos = positive({ x }, { id: "pos" });
    const who = maybeName({ s: name }, { id: "who" });
    const r1 = when(and(gt(m, 100), not(isTrue(strict))))
      .then(() => label({ s: "big-lenient" }, { id: "r1_yes" }))
      .else(() => label({ s: "no" }, { id: "r1_no" }));
    const r2 = when(or(eq(name, "root"), lt(m, 0)))
      .then(() => label({ s: "special" }, { id: "r2_yes" }))
      .else(() => label({ s: "normal" }, { id: "r2_no" }));
    const r3 = when(isFalse(pos))
      .then(() => label({ s: "non-positive" }, { id: "r3_yes" }))
      .else(() => label({ s: "positive" }, { id: "r3_no" }));
    const r4 = when(isNull(who))
      .then(() => label({ s: "anonymous" }, { id: "r4_yes" }))
      .else(() => label({ s: "named" }, { id: "r4_no" }));
    // A case may use nodes from outside the branch; the nodes inside it chain.
    const r5 = when(eq(strict, true))
      .then(() => {
        const twice = double({ x: m }, { id: "r5_twice" });
        return double({ x: twice }, { id: "r5_four" });
      })
      .else(() => double({ x: 0 }, { id: "r5_zero" }));
    // A branch on another branch's output.
    const r6 = when(gt(r5, 0))
      .then(() => label({ s: "r5>0" }, { id: "r6_yes" }))
      .else(() => label({ s: "r5=0" }, { id: "r6_no" }));
    return [r1, r2, r3, r4, r6];
  },
);

export const mustPass = workflow(
  { name: "must_pass", inputs: { score: z.number() }, output: z.string() },
  ({ score }) =>
    when(gte(score, 50))
      .then(() => label({ s: "pass" }, { id: "pass" }))
      .fail("score below 50: not published"),
);

export const maybeBonus = workflow(
  { name: "maybe_bonus", inputs: { score: z.number() }, output: z.string().nullable() },
  ({ score }) =>
    when(gt(score, 100))
      .then(() => label({ s: "bonus" }, { id: "bonus" }))
      .end(),
);

// ---------------------------------------------------------------------------
// Subworkflows and launch plans

/** 2x + 1 */
export const inner = workflow({ name: "inner", inputs: { x: z.number() }, output: z.number() }, ({ x }) =>
  add({ a: double({ x }), b: 1 }),
);

/** v = 2x + 1, w = 4x + 1 */
export const middle = workflow(
  { name: "middle", inputs: { x: z.number() }, output: z.object({ v: z.number(), w: z.number() }) },
  ({ x }) => ({ v: inner({ x }), w: inner({ x: double({ x }) }) }),
);

/** 6x + 2 */
export const outer = workflow({ name: "outer", inputs: { x: z.number() }, output: z.number() }, ({ x }) => {
  const m = middle({ x }, { id: "mid" });
  return add({ a: m.v, b: m.w }, { id: "total" });
});

export const report = task(
  { name: "report", inputs: { region: z.string(), n: z.number(), suffix: z.string() }, output: z.string() },
  async ({ region, n, suffix }, ctx) => {
    record(ctx, { region, n, suffix });
    return `${region}:${n}:${suffix}`;
  },
);

export const reportFlow = workflow(
  {
    name: "report_flow",
    inputs: { region: z.string(), n: z.number().default(1), suffix: z.string() },
    output: z.string(),
  },
  ({ region, n, suffix }) => report({ region, n, suffix }),
);

export const nightly = launchPlan(reportFlow, {
  name: "nightly_report",
  defaults: { n: 3 },
  fixed: { region: "eu" },
});

export const withPlan = workflow(
  { name: "with_plan", inputs: { suffix: z.string() }, output: z.string() },
  ({ suffix }) => label({ s: nightly({ suffix }, { id: "plan" }) }, { id: "relabel" }),
);

export const withPlanN = workflow(
  { name: "with_plan_n", inputs: { suffix: z.string(), n: z.number() }, output: z.string() },
  ({ suffix, n }) => nightly({ suffix, n }, { id: "plan" }),
);

// ---------------------------------------------------------------------------
// Gates

export const approveFlow = workflow(
  { name: "approve_flow", inputs: { x: z.number() }, output: z.number() },
  ({ x }) => {
    const draft = double({ x }, { id: "draft" });
    const approved = gate.approve(draft, { name: "review" });
    return add({ a: approved, b: 1 }, { id: "publish" });
  },
);

export const approveWithTimeout = workflow(
  { name: "approve_with_timeout", inputs: { x: z.number() }, output: z.number() },
  ({ x }) => gate.approve(double({ x }, { id: "draft" }), { name: "review", timeout: "50ms" }),
);

export const inputFlow = workflow(
  { name: "input_flow", inputs: { x: z.number() }, output: z.number() },
  ({ x }) => {
    const threshold = gate.input("threshold", z.number().min(0));
    return add({ a: x, b: threshold }, { id: "sum" });
  },
);

export const sleepFlow = workflow(
  { name: "sleep_flow", inputs: { x: z.number() }, output: z.number() },
  ({ x }) => {
    const nap = gate.sleep("20ms", { name: "nap" });
    const d = double({ x }, { id: "after_nap" });
    after(nap, d);
    return d;
  },
);

// ---------------------------------------------------------------------------
// Checkpoints

/**
 * Counts to `total`, saving a checkpoint every `every` iterations; attempt 1 throws after
 * iteration `failAt`. An attempt starts from the last checkpoint.
 */
export const longLoop = task(
  {
    name: "long_loop",
    inputs: { total: z.number().int(), every: z.number().int(), failAt: z.number().int() },
    output: z.object({ resumedFrom: z.number(), work: z.number(), attempt: z.number(), sum: z.number() }),
    retries: { user: 2, backoff: { base: 1 } },
  },
  async ({ total, every, failAt }, ctx) => {
    const saved = await ctx.checkpoint.loadJson<{ next: number; sum: number }>();
    const resumedFrom = saved?.next ?? 0;
    let sum = saved?.sum ?? 0;
    let work = 0;
    for (let i = resumedFrom; i < total; i++) {
      sum += i;
      work++;
      if ((i + 1) % every === 0) await ctx.checkpoint.save({ next: i + 1, sum });
      if (ctx.attempt === 1 && i === failAt) {
        record(ctx, { resumedFrom, work });
        throw new Error(`crashed after iteration ${i}`);
      }
    }
    record(ctx, { resumedFrom, work });
    return { resumedFrom, work, attempt: ctx.attempt, sum };
  },
);

export const loopFlow = workflow(
  {
    name: "loop_flow",
    inputs: { total: z.number().int(), every: z.number().int(), failAt: z.number().int() },
    output: z.object({ resumedFrom: z.number(), work: z.number(), attempt: z.number(), sum: z.number() }),
  },
  ({ total, every, failAt }) => longLoop({ total, every, failAt }, { id: "loop" }),
);

// ---------------------------------------------------------------------------
// Recovery and failure handlers

/** Fails until the test creates `$TERN_CONTROL_STATE/fixed-<token>`. */
export const gatekeeper = task(
  { name: "gatekeeper", inputs: { x: z.number(), token: z.string() }, output: z.number(), retries: 0 },
  async ({ x, token }, ctx) => {
    record(ctx);
    if (!fs.existsSync(path.join(stateDir(), `fixed-${token}`))) throw new Error(`not fixed yet (${token})`);
    return x + 1;
  },
);

export const steps = dynamic(
  { name: "steps", inputs: { x: z.number(), token: z.string() }, output: z.number() },
  ({ x, token }, ctx) => {
    record(ctx);
    const first = double({ x }, { id: "first" });
    const second = double({ x: first }, { id: "second" });
    return gatekeeper({ x: second, token }, { id: "last" });
  },
);

/** a → sub (a subworkflow) → m (a map) → sum → dyn (a dynamic whose last node fails on a first run) → end */
export const recoverable = workflow(
  { name: "recoverable", inputs: { x: z.number(), token: z.string() }, output: z.number() },
  ({ x, token }) => {
    const a = double({ x }, { id: "a" });
    const sub = inner({ x: a }, { id: "sub" });
    const m = map(double, { x: [a, sub] }, { id: "m" });
    const sum = sumAll({ xs: m }, { id: "sum" });
    const dyn = steps({ x: sum, token }, { id: "dyn" });
    return add({ a: dyn, b: sum }, { id: "end" });
  },
);

export const onFail = task(
  { name: "on_fail", inputs: { error: failureInfo, execution: executionInfo, x: z.number() } },
  async ({ error, execution, x }, ctx) => {
    record(ctx);
    fs.writeFileSync(
      path.join(stateDir(), `${execution.id}.failure.json`),
      JSON.stringify({ error, execution, x }),
    );
  },
);

export const broken = task(
  { name: "broken", inputs: { x: z.number() }, output: z.number(), retries: 0 },
  async () => {
    throw new Error("broken on purpose");
  },
);

/** Runs until the attempt is stopped. */
export const endless = task(
  { name: "endless", inputs: { x: z.number() }, output: z.number() },
  async (_i, ctx) => {
    record(ctx);
    return new Promise<number>((_resolve, reject) => {
      ctx.signal.addEventListener("abort", () => reject(new Error("stopped")), { once: true });
    });
  },
);

export const withHandler = workflow(
  { name: "with_handler", inputs: { x: z.number() }, output: z.number(), onFailure: onFail },
  ({ x }) => {
    const slow = endless({ x }, { id: "slow" });
    const bad = broken({ x }, { id: "bad" });
    return add({ a: slow, b: bad }, { id: "sum" });
  },
);
