/**
 * Compile-time checks of control flow typing: map, when, gates, dynamic and subworkflow
 * calls. Nothing here runs: `pnpm typecheck` must accept every line, and each
 * `@ts-expect-error` must be needed.
 */
import {
  and,
  compile,
  dynamic,
  eq,
  gate,
  gt,
  type Handle,
  isNull,
  isTrue,
  launchPlan,
  map,
  not,
  run,
  task,
  when,
  workflow,
} from "@tern/core";
import { z } from "zod";

const square = task(
  { name: "t_square", inputs: { x: z.number() }, output: z.number() },
  async ({ x }) => x * x,
);
const scale = task(
  { name: "t_scale", inputs: { x: z.number(), factor: z.number() }, output: z.number() },
  async ({ x, factor }) => x * factor,
);
const shout = task({ name: "t_shout", inputs: { s: z.string() }, output: z.string() }, async ({ s }) =>
  s.toUpperCase(),
);
const flag = task({ name: "t_flag", output: z.boolean() }, async () => true);
const maybe = task({ name: "t_maybe", output: z.string().nullable() }, async () => null);
const numbers = task({ name: "t_numbers", output: z.array(z.number()) }, async () => [1, 2]);
const words = task({ name: "t_words", output: z.array(z.string()) }, async () => ["a"]);
const sum = task(
  { name: "t_sum", inputs: { xs: z.array(z.number()) }, output: z.number() },
  async ({ xs }) => xs.length,
);
const sumMaybe = task(
  { name: "t_sum_maybe", inputs: { xs: z.array(z.number().nullable()) }, output: z.number() },
  async ({ xs }) => xs.length,
);

/** A subworkflow: 2 inputs, an object output. */
const stats = workflow(
  {
    name: "t_stats",
    inputs: { xs: z.array(z.number()), label: z.string() },
    output: z.object({ n: z.number(), label: z.string() }),
  },
  ({ xs, label }) => ({ n: sum({ xs }), label: shout({ s: label }) }),
);

// ---------------------------------------------------------------------------
// map

export const mapping = workflow(
  { name: "t_mapping", inputs: { xs: z.array(z.number()), f: z.number() } },
  ({ xs, f }) => {
    // The output is a list of the target's output.
    const squares: Handle<number[]> = map(square, { x: xs });
    sum({ xs: squares });
    sum({ xs: map(scale, { x: numbers({}) }, { bound: { factor: f }, concurrency: 4 }) });
    sum({ xs: map(square, { x: [1, 2, 3] }) });
    // With minSuccessRatio, items may be null.
    const partial: Handle<(number | null)[]> = map(square, { x: xs }, { minSuccessRatio: 0.9 });
    sumMaybe({ xs: partial });
    // @ts-expect-error nullable items do not fit a list of numbers
    sum({ xs: map(square, { x: xs }, { minSuccessRatio: 0.9 }) });
    // @ts-expect-error a list of strings for a number input
    map(square, { x: words({}) });
    // @ts-expect-error a single number is not a list to map over
    map(square, { x: f });
    // @ts-expect-error constants are checked item by item
    map(square, { x: ["1", "2"] });
    // @ts-expect-error bound inputs are given whole, with the input's own type
    map(scale, { x: xs }, { bound: { factor: xs } });
    // @ts-expect-error an input the target does not have
    map(square, { y: xs });
    // @ts-expect-error the result is a list of numbers, not of strings
    const wrong: Handle<string[]> = map(square, { x: xs });
    void wrong;
    // A subworkflow maps too; its output type carries through.
    const many = map(stats, { xs: [xs, xs] }, { bound: { label: "x" } });
    const firsts: Handle<{ n: number; label: string }[]> = many;
    void firsts;
    // @ts-expect-error the subworkflow's label is a string
    map(stats, { xs: [xs] }, { bound: { label: 1 } });
  },
);

// ---------------------------------------------------------------------------
// when

export const branching = workflow(
  { name: "t_branching", inputs: { n: z.number(), s: z.string(), b: z.boolean() }, output: z.string() },
  ({ n, s, b }) => {
    // The branch's output has the cases' type.
    const grade: Handle<string> = when(gt(n, 90))
      .then(() => shout({ s: "A" }))
      .elseIf(and(gt(n, 50), not(isTrue(b))), () => shout({ s: "B" }))
      .else(() => shout({ s }));
    shout({ s: grade });
    // .end() may give null.
    const maybeGrade: Handle<string | null> = when(eq(s, "x"))
      .then(() => shout({ s }))
      .end();
    // @ts-expect-error null does not fit a string input
    shout({ s: maybeGrade });
    // @ts-expect-error a string branch output into a number input
    square({ x: grade });
    // A later case must give the first case's type.
    when(gt(n, 0))
      .then(() => shout({ s }))
      // @ts-expect-error a number case after a string one
      .else(() => square({ x: n }));
    when(gt(n, 0))
      .then(() => shout({ s }))
      // @ts-expect-error an elseIf case too
      .elseIf(isTrue(b), () => square({ x: n }));
    // @ts-expect-error ordering is for numbers and strings, not a number against a string
    gt(n, s);
    // @ts-expect-error eq compares values of one type
    eq(n, "3");
    // @ts-expect-error isTrue takes a boolean
    isTrue(n);
    isTrue(flag({}));
    isNull(maybe({}));
    // A boolean handle is a condition by itself.
    when(flag({}))
      .then(() => shout({ s }))
      .end();
    return grade;
  },
);

// ---------------------------------------------------------------------------
// gates

export const gates = workflow({ name: "t_gates", inputs: { n: z.number() } }, ({ n }) => {
  // gate.input is typed by its schema.
  const threshold = gate.input("threshold", z.number().min(0));
  square({ x: threshold });
  const color = gate.input("color", z.enum(["red", "green"]));
  shout({ s: color });
  // @ts-expect-error a number input gate into a string input
  shout({ s: threshold });
  // gate.approve passes the value's type through.
  const approved: Handle<number> = gate.approve(square({ x: n }), { name: "review" });
  // @ts-expect-error the approved value is a number
  shout({ s: approved });
  const nap: Handle<null> = gate.sleep("1s");
  void nap;
});

// ---------------------------------------------------------------------------
// dynamic

export const sweep = dynamic(
  { name: "t_sweep", inputs: { rates: z.array(z.number()) }, output: z.array(z.number()) },
  ({ rates }) => {
    // Real values: rates is a number[].
    const first: number | undefined = rates[0];
    void first;
    return rates.map((rate) => square({ x: rate }));
  },
);

// A dynamic body may return handles, values, or a mix, of the declared output type.
dynamic({ name: "t_dyn_value", output: z.number() }, () => 3);
dynamic({ name: "t_dyn_async", inputs: { n: z.number() }, output: z.number() }, async ({ n }) =>
  square({ x: n }),
);
// @ts-expect-error a string handle where a number is declared
dynamic({ name: "t_dyn_wrong", inputs: { n: z.number() }, output: z.number() }, () => shout({ s: "x" }));
// @ts-expect-error a list of strings where numbers are declared
dynamic({ name: "t_dyn_wrong_list", output: z.array(z.number()) }, () => ["a"]);

export const usesSweep = workflow(
  { name: "t_uses_sweep", inputs: { rates: z.array(z.number()) } },
  ({ rates }) => {
    // A dynamic is called like a task, and its output is typed.
    sum({ xs: sweep({ rates }) });
    // @ts-expect-error its input is a list of numbers
    sweep({ rates: "fast" });
    // @ts-expect-error its output is a list, not a number
    square({ x: sweep({ rates }) });
  },
);

// ---------------------------------------------------------------------------
// subworkflows and launch plans

export const parent = workflow({ name: "t_parent", inputs: { xs: z.array(z.number()) } }, ({ xs }) => {
  const s = stats({ xs, label: "all" });
  // Object outputs of subworkflows expose typed fields.
  square({ x: s.n });
  shout({ s: s.label });
  // @ts-expect-error label is a string
  square({ x: s.label });
  // @ts-expect-error xs is a list of numbers
  stats({ xs: "1,2", label: "x" });
  // @ts-expect-error label is required
  stats({ xs });
  // @ts-expect-error an input the subworkflow does not have
  stats({ xs, label: "x", extra: 1 });
  const plan = launchPlan(stats, { name: "t_plan", defaults: { label: "nightly" } });
  square({ x: plan({ xs }).n });
  // @ts-expect-error launch plan inputs keep their types
  plan({ xs: ["a"] });
});

// ---------------------------------------------------------------------------
// Definitions with required inputs are what compile() and run() take

compile(mapping);
compile(parent);
compile(scale);
void run(stats, { xs: [1], label: "x" });
// @ts-expect-error compile() takes definitions, not handles or plain functions
compile(() => 1);
