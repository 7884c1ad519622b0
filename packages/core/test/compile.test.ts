import {
  type AnyTask,
  after,
  type CompiledWorkflow,
  compile,
  dataframe,
  interfaceOf,
  type TaskOptions,
  TernError,
  t,
  task,
  validateCompiledWorkflow,
  validateTaskSpec,
  workflow,
} from "@tern/core";
import { describe, expect, it } from "vitest";
import { z } from "zod";

function thrown(fn: () => unknown): TernError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(TernError);
    return e as TernError;
  }
  throw new Error("expected a TernError, nothing was thrown");
}

const ints = task({ name: "c_ints", output: z.number().int() }, async () => 1);
const str = task({ name: "c_str", output: z.string() }, async () => "a");
const obj = task({ name: "c_obj", output: z.object({ a: z.number(), b: z.string() }) }, async () => ({
  a: 1,
  b: "",
}));
const takesNum = task({ name: "c_num", inputs: { x: z.number() } }, async () => {});
const takesEnum = task({ name: "c_enum", inputs: { e: z.enum(["a", "b"]) } }, async () => {});
const takesInt = task({ name: "c_int", inputs: { n: z.number().int().min(0) } }, async () => {});
const takesAny = task({ name: "c_any", inputs: { v: z.unknown() } }, async () => {});
const full = task(
  {
    name: "c_full",
    description: "does everything",
    inputs: {
      req: z.number(),
      withDefault: z.string().default("w").describe("a described input"),
      opt: z.boolean().optional(),
      f: t.file({ format: "csv" }),
      df: t.dataframe({ columns: { a: z.number() } }),
    },
    output: z.object({ total: z.number(), note: z.string().optional() }),
    cache: { version: "cv1", serialize: true, ignoreInputs: ["opt"] },
    retries: { user: 2, system: 4, backoff: { base: "2s", max: "1m", factor: 3, jitter: 0.1 } },
    timeout: "1m30s",
    interruptible: true,
    resources: { requests: { cpu: 1, memory: "1Gi" }, gpu: 1 },
    secrets: [{ group: "db", key: "password", env: "DB_PASSWORD" }],
    image: "node:20",
    env: { MODE: "x" },
  },
  async ({ req }) => ({ total: req }),
);

describe("compile(): spec shape", () => {
  const wf = workflow(
    {
      name: "c_shape",
      inputs: { n: z.number().default(3), f: t.file() },
      output: z.number(),
      failurePolicy: "continue",
      maxParallelism: 4,
      timeout: "1h",
      description: "shape",
    },
    ({ n, f }) => {
      const o = full({ req: n, f, df: dataframe([{ a: 1 }]) as never });
      return o.total;
    },
  );

  it("produces a workflow spec and its task specs keyed by name@version", () => {
    const { spec, tasks, inputSchemas } = compile(wf, { project: "p1", domain: "staging" });
    expect(spec.specVersion).toBe(1);
    const w = spec.workflow;
    expect(w.kind).toBe("workflow");
    expect(w.id).toMatchObject({ project: "p1", domain: "staging", name: "c_shape" });
    expect(w.id.version).toMatch(/^[0-9a-f]{20}$/);
    expect(w.failurePolicy).toBe("continue");
    expect(w.maxParallelism).toBe(4);
    expect(w.timeoutMs).toBe(3_600_000);
    expect(w.description).toBe("shape");
    expect(w.nodes).toHaveLength(1);
    const node = w.nodes[0];
    expect(node.id).toBe("c_full");
    expect(Object.keys(spec.tasks)).toEqual([node.task]);
    expect([...tasks.keys()]).toEqual([node.task]);
    expect(tasks.get(node.task)).toBe(full);
    expect(Object.keys(inputSchemas)).toEqual(["n", "f"]);
    expect(node.inputs.req).toEqual({ ref: { node: "$inputs", path: ["n"] } });
    expect(w.output).toEqual({ ref: { node: "c_full", path: ["total"] } });

    const ts = spec.tasks[node.task];
    expect(ts.id).toEqual({ project: "p1", domain: "staging", name: "c_full", version: ts.id.version });
    expect(node.task).toBe(`c_full@${ts.id.version}`);
    expect(ts.type).toBe("node");
    expect(ts.code?.hash).toMatch(/^[0-9a-f]{16}$/);
    expect(ts.metadata).toEqual({
      retries: { user: 2, system: 4, backoff: { baseMs: 2000, maxMs: 60_000, factor: 3, jitter: 0.1 } },
      timeoutMs: 90_000,
      cache: { version: "cv1", derived: false, serialize: true, ignoreInputs: ["opt"] },
      interruptible: true,
      resources: { requests: { cpu: 1, memory: "1Gi" }, gpu: 1 },
      secrets: [{ group: "db", key: "password", env: "DB_PASSWORD" }],
      image: "node:20",
      env: { MODE: "x" },
      description: "does everything",
    });
  });

  it("defaults: project, domain, fail-fast, retries 0 user / 3 system with 1s..5m backoff", () => {
    const { spec } = compile(workflow({ name: "c_defaults" }, () => takesNum({ x: 1 })));
    expect(spec.workflow.id).toMatchObject({ project: "default", domain: "development" });
    expect(spec.workflow.failurePolicy).toBe("fail-fast");
    expect(spec.workflow.output).toEqual({ literal: null });
    const ts = Object.values(spec.tasks)[0];
    expect(ts.metadata).toEqual({
      retries: { user: 0, system: 3, backoff: { baseMs: 1000, maxMs: 300_000, factor: 2, jitter: 0.2 } },
      interruptible: false,
      secrets: [],
      env: {},
    });
    expect(ts.interface.output).toEqual({ type: "null" });
  });

  it("round-trips through JSON and validateCompiledWorkflow", () => {
    const { spec } = compile(wf);
    const doc = JSON.parse(JSON.stringify(spec)) as unknown;
    expect(validateCompiledWorkflow(doc)).toEqual(spec);
    for (const ts of Object.values(spec.tasks))
      expect(validateTaskSpec(JSON.parse(JSON.stringify(ts)))).toEqual(ts);
  });

  it.each<[string, (s: CompiledWorkflow) => void, RegExp]>([
    [
      "a missing failure policy",
      (s) => delete (s.workflow as Partial<CompiledWorkflow["workflow"]>).failurePolicy,
      /workflow\.failurePolicy/,
    ],
    ["a bad node id", (s) => (s.workflow.nodes[0].id = "bad id"), /workflow\.nodes\.0\.id: node ids use/],
    [
      "a negative retry budget",
      (s) => (Object.values(s.tasks)[0].metadata.retries.user = -1),
      /metadata\.retries\.user/,
    ],
    [
      "a binding of unknown shape",
      (s) => ((s.workflow.nodes[0].inputs as Record<string, unknown>).req = { nope: 1 }),
      /inputs\.req/,
    ],
    [
      "a spec version from the future",
      (s) => ((s as { specVersion: number }).specVersion = 2),
      /specVersion/,
    ],
  ])(
    "validateCompiledWorkflow refuses %s with TERN_E_SPEC_INVALID naming the path",
    (_what, corrupt, path) => {
      const doc = structuredClone(compile(wf).spec);
      corrupt(doc);
      const e = thrown(() => validateCompiledWorkflow(doc));
      expect(e.code).toBe("TERN_E_SPEC_INVALID");
      expect(e.message).toMatch(path);
    },
  );

  it("a task compiles into a one-node workflow named after it, inputs bound from $inputs", () => {
    const { spec } = compile(takesNum);
    expect(spec.workflow.id.name).toBe("c_num");
    expect(spec.workflow.nodes).toEqual([
      {
        id: "c_num",
        kind: "task",
        task: Object.keys(spec.tasks)[0],
        inputs: { x: { ref: { node: "$inputs", path: ["x"] } } },
        upstream: [],
      },
    ]);
    expect(spec.workflow.interface).toEqual(Object.values(spec.tasks)[0].interface);
    expect(spec.workflow.output).toEqual({ ref: { node: "c_num", path: [] } });
  });

  it("records node overrides (retries, timeout, cache off)", () => {
    const cached = task({ name: "c_cached", cache: true }, async () => {});
    const { spec } = compile(
      workflow({ name: "c_overrides" }, () => {
        cached({}, { id: "a", retries: 5, timeout: "5s", cache: false, env: { X: "1" } });
        cached({}, { id: "b" });
      }),
    );
    const [a, b] = spec.workflow.nodes;
    expect(a.overrides).toMatchObject({ timeoutMs: 5000, env: { X: "1" } });
    expect(a.overrides?.retries?.user).toBe(5);
    expect("cache" in (a.overrides ?? {})).toBe(true);
    expect(a.overrides?.cache).toBeUndefined();
    expect(b.overrides).toBeUndefined();
  });

  it("compile() refuses something that is not a definition", () => {
    expect(thrown(() => compile({} as never)).code).toBe("TERN_E_USAGE");
  });
});

describe("interfaces as JSON Schema", () => {
  it("inputs carry their schema, optional flag, default and description; outputs their schema", () => {
    const iface = compile(full).spec.workflow.interface;
    expect(iface.inputs.req).toEqual({ schema: { type: "number" }, optional: false });
    expect(iface.inputs.withDefault).toEqual({
      schema: { type: "string", default: "w", description: "a described input" },
      optional: true,
      default: "w",
      description: "a described input",
    });
    expect(iface.inputs.opt).toEqual({ schema: { type: "boolean" }, optional: true });
    expect(iface.inputs.f.schema).toEqual({ "x-tern": { kind: "file", format: "csv" } });
    expect(iface.inputs.df.schema).toEqual({
      "x-tern": { kind: "dataframe", columns: { a: { type: "number" } } },
    });
    expect(iface.output).toEqual({
      type: "object",
      properties: { total: { type: "number" }, note: { type: "string" } },
      required: ["total"],
      additionalProperties: false,
    });
  });

  it("refuses an input that is not a zod schema", () => {
    const e = thrown(() => interfaceOf({ x: "string" as never }, undefined, 'task "c_bad"'));
    expect(e.code).toBe("TERN_E_DEFINITION");
    expect(e.message).toContain('task "c_bad": input "x" is not a zod schema');
  });

  it.each([
    [
      "z.date() input",
      { inputs: { d: z.date() } },
      /input "d" of task "c_unser".*cannot be serialized: date/,
    ],
    ["z.bigint() input", { inputs: { b: z.bigint() } }, /cannot be serialized: bigint/],
    [
      "z.map() output",
      { output: z.map(z.string(), z.number()) },
      /output of task "c_unser".*cannot be serialized: map/,
    ],
    ["z.set() output", { output: z.set(z.string()) }, /cannot be serialized: set/],
    ["a nested date", { output: z.object({ at: z.date() }) }, /cannot be serialized: date/],
    ["a function input", { inputs: { f: z.function() as unknown as z.ZodType } }, /cannot be serialized/],
  ])("refuses an unserializable type (%s) with TERN_E_DEFINITION", (_what, opts, message) => {
    const def = task({ name: "c_unser", ...(opts as Partial<TaskOptions<{}, z.ZodType>>) }, async () => {});
    const e = thrown(() => compile(def));
    expect(e.code).toBe("TERN_E_DEFINITION");
    expect(e.message).toMatch(message);
    expect(e.hint).toMatch(/z\.iso\.datetime/);
  });
});

describe("versions", () => {
  /** Tasks made here have computed names, so their code hash is the whole file's: equal for all of them. */
  const mk = (opts: Partial<TaskOptions<z.core.$ZodShape & Record<string, z.ZodType>, z.ZodType>>): AnyTask =>
    task(
      { name: ["c", "ver"].join("_"), inputs: { x: z.number() }, output: z.number(), ...opts } as TaskOptions<
        any,
        any
      >,
      async () => 1,
    );
  const version = (def: AnyTask) => Object.values(compile(def).spec.tasks)[0].id.version;

  it("are stable across compiles", () => {
    const a = compile(full);
    const b = compile(full);
    expect(b.spec).toEqual(a.spec);
    const wf = workflow({ name: "c_stable", output: z.string() }, () => str({}));
    expect(compile(wf).spec).toEqual(compile(wf).spec);
  });

  it("two definitions with the same content share a version", () => {
    expect(version(mk({}))).toBe(version(mk({})));
  });

  it.each<[string, Parameters<typeof mk>[0]]>([
    ["an input type", { inputs: { x: z.string() } }],
    ["an added input", { inputs: { x: z.number(), y: z.number().optional() } }],
    ["the output type", { output: z.string() }],
    ["a default", { inputs: { x: z.number().default(1) } }],
    ["retries", { retries: 1 }],
    ["the timeout", { timeout: "1s" }],
    ["interruptible", { interruptible: true }],
    ["the cache version", { cache: { version: "2" } }],
    ["the image", { image: "x" }],
    ["env", { env: { A: "b" } }],
    ["the task type", { type: "other" }],
    ["the description", { description: "d" }],
  ])("change when %s changes", (_what, change) => {
    expect(version(mk(change))).not.toBe(version(mk({})));
  });

  it("the workflow version changes when a task it uses changes", () => {
    const wfOf = (def: AnyTask) =>
      compile(workflow({ name: "c_wfver" }, () => def({ x: 1 }))).spec.workflow.id.version;
    expect(wfOf(mk({}))).toBe(wfOf(mk({})));
    expect(wfOf(mk({ retries: 2 }))).not.toBe(wfOf(mk({})));
  });

  it("an explicit version is used for the workflow and all its tasks", () => {
    const { spec } = compile(
      workflow({ name: "c_explicit", output: z.string() }, () => str({})),
      { version: "v1.2.3" },
    );
    expect(spec.workflow.id.version).toBe("v1.2.3");
    expect(Object.keys(spec.tasks)).toEqual(["c_str@v1.2.3"]);
    expect(spec.workflow.nodes[0].task).toBe("c_str@v1.2.3");
  });

  it("the cache version defaults to the code hash and is marked derived", () => {
    const ts = Object.values(compile(mk({ cache: true })).spec.tasks)[0];
    expect(ts.metadata.cache).toEqual({
      version: ts.code!.hash,
      derived: true,
      serialize: false,
      ignoreInputs: [],
    });
  });
});

describe("compile errors", () => {
  interface Case {
    name: string;
    body: () => unknown;
    code: string;
    /** Every one of these must appear in the message. */
    mentions: string[];
  }
  const cases: Case[] = [
    {
      name: "integer output into a number input",
      body: () => takesNum({ x: ints({}) as any }),
      code: "TERN_E_TYPE_MISMATCH",
      mentions: [
        'workflow "c_err"',
        'node "c_num"',
        'input "x"',
        "expects number",
        'node "c_ints" gives integer',
      ],
    },
    {
      name: "string output into an enum input",
      body: () => takesEnum({ e: str({}) as any }),
      code: "TERN_E_TYPE_MISMATCH",
      mentions: [
        'workflow "c_err"',
        'node "c_enum"',
        'input "e"',
        "expects enum('a'|'b')",
        'node "c_str" gives string',
      ],
    },
    {
      name: "a field of an object output into the wrong type",
      body: () => takesNum({ x: obj({}).b as any }),
      code: "TERN_E_TYPE_MISMATCH",
      mentions: [
        'workflow "c_err"',
        'node "c_num"',
        'input "x"',
        "expects number",
        'node "c_obj" .b gives string',
      ],
    },
    {
      name: "a missing field of an object output",
      body: () => takesNum({ x: (obj({}) as any).nope }),
      code: "TERN_E_TYPE_MISMATCH",
      mentions: [
        'workflow "c_err"',
        'node "c_num"',
        'input "x"',
        "expects number",
        'node "c_obj" .nope does not exist',
        "{a: number, b: string}",
      ],
    },
    {
      name: "a string constant for an integer input",
      body: () => takesInt({ n: "x" as any }),
      code: "TERN_E_TYPE_MISMATCH",
      mentions: ['node "c_int"', 'input "n"', 'the constant "x" does not fit'],
    },
    {
      name: "an unknown input",
      body: () => takesNum({ x: 1, zz: 2 } as any),
      code: "TERN_E_COMPILE",
      mentions: ['workflow "c_err"', 'node "c_num"', 'task "c_num" has no input "zz"'],
    },
    {
      name: "a missing required input",
      body: () => takesNum({} as any),
      code: "TERN_E_COMPILE",
      mentions: ['workflow "c_err"', 'node "c_num"', 'required input "x" of task "c_num" is not given'],
    },
    {
      name: "a constant that fails zod",
      body: () => takesInt({ n: -1 }),
      code: "TERN_E_TYPE_MISMATCH",
      mentions: ['workflow "c_err"', 'node "c_int"', 'input "n"', "the constant -1 does not fit"],
    },
    {
      name: "a non-integer constant for an integer input",
      body: () => takesInt({ n: 1.5 }),
      code: "TERN_E_TYPE_MISMATCH",
      mentions: ["the constant 1.5 does not fit"],
    },
    {
      name: "a Date constant",
      body: () => takesAny({ v: new Date(0) }),
      code: "TERN_E_COMPILE",
      mentions: ['node "c_any"', 'input "v"', "Date cannot be a constant"],
    },
    {
      name: "a Map constant nested in an object",
      body: () => takesAny({ v: { m: new Map() } }),
      code: "TERN_E_COMPILE",
      mentions: ["Map cannot be a constant"],
    },
    {
      name: "a NaN constant",
      body: () => takesAny({ v: [1, Number.NaN] }),
      code: "TERN_E_COMPILE",
      mentions: ["NaN cannot be a constant"],
    },
    {
      name: "a function constant",
      body: () => takesAny({ v: () => 1 }),
      code: "TERN_E_COMPILE",
      mentions: ["function cannot be a constant"],
    },
    {
      name: "two different tasks with the same name",
      body: () => {
        takesNum({ x: 1 });
        task({ name: "c_num", inputs: { x: z.number() } }, async () => {})({ x: 2 });
      },
      code: "TERN_E_COMPILE",
      mentions: ['two different tasks are named "c_num"', "compile.test.ts"],
    },
    {
      name: "a cycle through after()",
      body: () => {
        const a = ints({}, { id: "a" });
        const b = takesInt({ n: a }, { id: "b" });
        after(b, a);
      },
      code: "TERN_E_COMPILE",
      mentions: ['workflow "c_err" has a cycle', "a → b → a"],
    },
  ];

  it.each(cases)("$name → $code", ({ body, code, mentions }) => {
    const e = thrown(() => compile(workflow({ name: "c_err" }, body as () => void)));
    expect(e.code).toBe(code);
    for (const m of mentions) expect(e.message).toContain(m);
  });

  it("lists and objects of handles fit an unknown input", () => {
    const { spec } = compile(
      workflow({ name: "c_any_struct" }, () => {
        const a = ints({}, { id: "a" });
        takesAny({ v: [a, { nested: a, k: 1 }] });
      }),
    );
    expect(spec.workflow.nodes[1].inputs.v).toEqual({
      list: [
        { ref: { node: "a", path: [] } },
        { object: { nested: { ref: { node: "a", path: [] } }, k: { literal: 1 } } },
      ],
    });
  });

  it("a list of handles for a non-list input is a type mismatch", () => {
    const e = thrown(() =>
      compile(workflow({ name: "c_list_bad" }, () => takesNum({ x: [ints({})] as any }))),
    );
    expect(e.code).toBe("TERN_E_TYPE_MISMATCH");
    expect(e.message).toContain("a list was given for number");
  });

  it("a type mismatch carries structured details", () => {
    const e = thrown(() =>
      compile(workflow({ name: "c_err_details" }, () => takesNum({ x: ints({}) as any }))),
    );
    expect(e.details).toMatchObject({
      workflow: "c_err_details",
      node: "c_num",
      input: "x",
      from: "integer",
      to: "number",
    });
    expect(e.hint).toMatch(/fix the wiring/);
  });

  it("the workflow's own output is type-checked", () => {
    const e = thrown(() => compile(workflow({ name: "c_out", output: z.number() }, () => str({}) as any)));
    expect(e.code).toBe("TERN_E_TYPE_MISMATCH");
    expect(e.message).toContain('node "(output)"');
    expect(e.message).toContain("expects number");
    expect(e.message).toContain("gives string");
  });

  it("cache.ignoreInputs naming something that is not an input is a definition error", () => {
    const def = task(
      { name: "c_ignore", inputs: { a: z.number() }, cache: { ignoreInputs: ["b" as "a"] } },
      async () => {},
    );
    const e = thrown(() => compile(def));
    expect(e.code).toBe("TERN_E_DEFINITION");
    expect(e.message).toContain('task "c_ignore": cache.ignoreInputs names "b", which is not an input');
    expect(e.hint).toBe("inputs are: a");
  });

  it.each([
    ["unparseable", "soon"],
    ["zero", 0],
    ["negative", -5],
    ["trailing garbage", "10sx"],
  ])("a %s timeout is a definition error", (_what, timeout) => {
    const def = task({ name: "c_timeout", timeout: timeout as never }, async () => {});
    expect(thrown(() => compile(def)).code).toBe("TERN_E_DEFINITION");
  });
});
