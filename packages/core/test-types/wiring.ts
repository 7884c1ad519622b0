/**
 * Compile-time checks of the workflow DSL's typing. Nothing here runs: `pnpm typecheck`
 * (tsc -p packages/core/test-types) must accept every line, and each `@ts-expect-error`
 * must be needed, so removing one makes the check fail.
 */
import { after, type Handle, t, task, workflow } from "@tern/core";
import { z } from "zod";

// ---------------------------------------------------------------------------
// Tasks used below

const makeText = task({ name: "make_text", output: z.string() }, async () => "text");
const makeNumber = task({ name: "make_number", output: z.number() }, async () => 1);
const makeColor = task({ name: "make_color", output: z.enum(["red", "green"]) }, async () => "red" as const);
const split = task(
  {
    name: "split",
    inputs: { rows: z.array(z.number()) },
    output: z.object({
      train: z.array(z.number()),
      test: z.array(z.number()),
      meta: z.object({ seed: z.number(), label: z.string() }),
    }),
  },
  async ({ rows }) => ({ train: rows, test: rows, meta: { seed: 1, label: "x" } }),
);
const square = task(
  { name: "square", inputs: { x: z.number() }, output: z.number() },
  async ({ x }) => x * x,
);
const shout = task({ name: "shout", inputs: { s: z.string() }, output: z.string() }, async ({ s }) =>
  s.toUpperCase(),
);
const train = task(
  { name: "train", inputs: { rows: z.array(z.number()), lr: z.number() }, output: z.number() },
  async ({ rows, lr }) => rows.length * lr,
);
const paint = task({ name: "paint", inputs: { color: z.enum(["red", "green"]) } }, async ({ color }) => {
  const c: "red" | "green" = color;
  void c;
});
const greet = task(
  {
    name: "greet",
    inputs: {
      name: z.string(),
      greeting: z.string().default("Hello"),
      punctuation: z.string().optional(),
      times: z.number().int().default(1),
    },
    output: z.string(),
  },
  async ({ name, greeting, punctuation, times }) => {
    // Inside the body, defaults are filled in: `greeting` is a string, not string | undefined.
    const g: string = greeting;
    const n: number = times;
    const p: string | undefined = punctuation;
    return `${g}, ${name}${p ?? "!"}`.repeat(n);
  },
);
const load = task(
  {
    name: "load",
    inputs: { f: t.file({ format: "csv" }) },
    output: t.dataframe({ columns: { id: z.number() } }),
  },
  async () => {
    throw new Error("types only");
  },
);
const count = task(
  { name: "count", inputs: { df: t.dataframe({ columns: { id: z.number() } }) }, output: z.number() },
  async () => 0,
);

// ---------------------------------------------------------------------------
// Correct wiring compiles

export const ok = workflow(
  {
    name: "ok",
    inputs: { rows: z.array(z.number()), who: z.string().default("world"), f: t.file() },
    output: z.object({ a: z.number(), b: z.string() }),
  },
  ({ rows, who, f }) => {
    const s = split({ rows });
    // Fields of object outputs are handles of the field's type.
    const trainRows: Handle<number[]> = s.train;
    const seed: Handle<number> = s.meta.seed;
    const model = train({ rows: trainRows, lr: seed });
    train({ rows: s.test, lr: 0.1 });
    square({ x: makeNumber({}) });
    shout({ s: s.meta.label });
    // An enum value fits a string input.
    shout({ s: makeColor({}) });
    paint({ color: makeColor({}) });
    paint({ color: "green" });
    // Optional inputs and inputs with defaults may be left out, or given.
    greet({ name: who });
    greet({ name: "Ada", greeting: "Hi", punctuation: "?", times: 2 });
    greet({ name: makeText({}), times: makeNumber({}) });
    count({ df: load({ f }) });
    after(model, shout({ s: "done" }));
    // Objects mixing handles and constants are accepted where an object is expected.
    return { a: model, b: shout({ s: who }) };
  },
);

// ---------------------------------------------------------------------------
// Miswiring is a compile error

export const bad = workflow({ name: "bad", inputs: { n: z.number(), s: z.string() } }, ({ n, s }) => {
  // @ts-expect-error a string handle into a number input
  square({ x: makeText({}) });
  // @ts-expect-error a string workflow input into a number input
  square({ x: s });
  // @ts-expect-error a number handle into a string input
  shout({ s: makeNumber({}) });
  // @ts-expect-error a number workflow input into a string input
  shout({ s: n });
  // @ts-expect-error a constant of the wrong type
  square({ x: "3" });
  // @ts-expect-error a missing required input
  square({});
  // @ts-expect-error a missing required input among given ones
  train({ rows: [1] });
  // @ts-expect-error an unknown input key
  square({ x: 1, y: 2 });
  const parts = split({ rows: [1, 2] });
  // @ts-expect-error a field the object output does not have
  train({ rows: parts.validation, lr: 1 });
  // @ts-expect-error a nested field the object output does not have
  square({ x: parts.meta.nope });
  // @ts-expect-error split.train is a number[] handle: not a number
  square({ x: parts.train });
  // @ts-expect-error split.meta.label is a string handle: not a number
  train({ rows: parts.train, lr: parts.meta.label });
  // @ts-expect-error a plain string does not fit an enum input
  paint({ color: makeText({}) });
  // @ts-expect-error a constant outside the enum
  paint({ color: "blue" });
  // @ts-expect-error optional inputs keep their type
  greet({ name: "x", punctuation: 1 });
  // @ts-expect-error a default does not make the input accept another type
  greet({ name: "x", times: "twice" });
  // @ts-expect-error a dataframe is not a file
  load({ f: load({ f: undefined as never }) });
  // @ts-expect-error positional arguments are not inputs
  square(5);
});

// A task body must return its declared output type.
// @ts-expect-error returns a number where a string is declared
task({ name: "wrong_return", output: z.string() }, async () => 42);
// @ts-expect-error a synchronous body is checked too
task({ name: "wrong_return_sync", inputs: { x: z.number() }, output: z.number() }, ({ x }) => `${x}`);
// @ts-expect-error an object missing a declared field
task({ name: "wrong_object", output: z.object({ a: z.number(), b: z.string() }) }, async () => ({ a: 1 }));
// Returning nothing is fine when no output is declared, and a value with a default may be omitted.
task({ name: "no_output" }, async () => {});
task(
  { name: "defaulted_field", output: z.object({ a: z.number(), b: z.string().default("x") }) },
  async () => ({ a: 1 }),
);

// A task body's inputs are typed from the schemas.
task({ name: "typed_inputs", inputs: { x: z.number(), tags: z.array(z.string()) } }, async ({ x, tags }) => {
  const n: number = x;
  const first: string | undefined = tags[0];
  // @ts-expect-error x is a number
  const wrong: string = x;
  void n;
  void first;
  void wrong;
});

// A workflow's output must match its declared type.
// @ts-expect-error the body returns a string handle for a number output
workflow({ name: "wrong_wf_output", output: z.number() }, () => shout({ s: "x" }));
workflow({ name: "right_wf_output", output: z.number() }, () => square({ x: 2 }));
