import { after, compile, isTaskDef, isWorkflowDef, TernError, task, workflow } from "@tern/core";
import { describe, expect, it } from "vitest";
import { z } from "zod";

/** Run `fn` and return the TernError it throws. */
function thrown(fn: () => unknown): TernError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(TernError);
    return e as TernError;
  }
  throw new Error("expected a TernError, nothing was thrown");
}

const load = task({ name: "dsl_load", output: z.array(z.number()) }, async () => [1, 2, 3]);
const double = task(
  { name: "dsl_double", inputs: { x: z.number() }, output: z.number() },
  async ({ x }) => x * 2,
);
const split = task(
  {
    name: "dsl_split",
    inputs: { xs: z.array(z.number()) },
    output: z.object({
      train: z.array(z.number()),
      test: z.array(z.number()),
      meta: z.object({ n: z.number(), tag: z.string() }),
    }),
  },
  async ({ xs }) => ({ train: xs.slice(1), test: xs.slice(0, 1), meta: { n: xs.length, tag: "t" } }),
);
const count = task(
  { name: "dsl_count", inputs: { xs: z.array(z.number()) }, output: z.number() },
  async ({ xs }) => xs.length,
);
const shout = task({ name: "dsl_shout", inputs: { s: z.string() }, output: z.string() }, async ({ s }) =>
  s.toUpperCase(),
);
const noop = task({ name: "dsl_noop" }, async () => {});

describe("task()", () => {
  it("returns a callable definition carrying its options, schemas and call site", () => {
    expect(isTaskDef(double)).toBe(true);
    expect(isWorkflowDef(double)).toBe(false);
    expect(double.kind).toBe("task");
    expect(double.taskName).toBe("dsl_double");
    expect(Object.keys(double.inputSchemas)).toEqual(["x"]);
    expect(double.outputSchema).toBeDefined();
    expect(Object.isFrozen(double.options)).toBe(true);
    // The call site is this test file, not @tern/core's own sources.
    expect(double.callSite.file).toBe(new URL(import.meta.url).pathname);
    expect(double.callSite.line).toBeGreaterThan(0);
  });

  it("a task without inputs or output has empty schemas", () => {
    expect(noop.inputSchemas).toEqual({});
    expect(noop.outputSchema).toBeUndefined();
  });

  it.each([
    ["starts with a digit", "1abc"],
    ["contains a space", "has space"],
    ["contains a slash", "a/b"],
    ["is empty", ""],
    ["is too long", `a${"b".repeat(200)}`],
    ["is not a string", 42],
  ])("refuses a task name that %s", (_why, name) => {
    const e = thrown(() => task({ name: name as string }, async () => {}));
    expect(e.code).toBe("TERN_E_DEFINITION");
    expect(e.message).toContain("is not valid");
    expect(e.hint).toMatch(/letters, digits/);
  });

  it.each(["ok_name", "_private", "with.dots-and-dashes", "A1"])("accepts the task name %s", (name) => {
    expect(task({ name }, async () => {}).taskName).toBe(name);
  });

  it("refuses a task without a body", () => {
    const e = thrown(() => task({ name: "dsl_nobody" }, undefined as never));
    expect(e.code).toBe("TERN_E_DEFINITION");
    expect(e.message).toContain('task "dsl_nobody" has no body function');
  });

  it("calling a task outside a workflow body is a usage error", () => {
    const e = thrown(() => double({ x: 1 }));
    expect(e.code).toBe("TERN_E_USAGE");
    expect(e.message).toContain('task "dsl_double" was called outside a workflow body');
    expect(e.hint).toContain("run(task, inputs)");
  });
});

describe("workflow()", () => {
  it("returns a definition whose body runs once, on first graph() access", () => {
    let runs = 0;
    const wf = workflow({ name: "dsl_once", output: z.number() }, () => {
      runs++;
      return count({ xs: load({}) });
    });
    expect(isWorkflowDef(wf)).toBe(true);
    expect(runs).toBe(0);
    const g = wf.graph();
    expect(wf.graph()).toBe(g);
    compile(wf);
    expect(runs).toBe(1);
    expect(g.nodes.map((n) => n.id)).toEqual(["dsl_load", "dsl_count"]);
  });

  it.each([
    ["starts with a dash", "-wf"],
    ["contains a colon", "wf:1"],
  ])("refuses a workflow name that %s", (_why, name) => {
    expect(thrown(() => workflow({ name }, () => {})).code).toBe("TERN_E_DEFINITION");
  });

  it("refuses an async body, naming the workflow", () => {
    const wf = workflow({ name: "dsl_async", output: z.number() }, (async () => double({ x: 1 })) as never);
    const e = thrown(() => wf.graph());
    expect(e.code).toBe("TERN_E_DEFINITION");
    expect(e.message).toContain('workflow "dsl_async" body is async');
    expect(e.hint).toMatch(/synchronous/);
  });

  it("an async body that awaits before calling tasks fails at definition and leaves no unhandled rejection", async () => {
    const rejections: unknown[] = [];
    const onRejection = (r: unknown) => rejections.push(r);
    process.on("unhandledRejection", onRejection);
    try {
      const wf = workflow({ name: "dsl_async_await", output: z.number() }, (async () => {
        await Promise.resolve();
        return double({ x: 1 }); // runs after the builder is gone: a usage error inside the promise
      }) as never);
      expect(thrown(() => wf.graph()).code).toBe("TERN_E_DEFINITION");
      // Let the body's promise settle and Node report it if nobody handled it.
      await new Promise((r) => setImmediate(r));
      await new Promise((r) => setImmediate(r));
      expect(rejections).toEqual([]);
    } finally {
      process.off("unhandledRejection", onRejection);
    }
  });

  it("wraps a plain exception thrown by the body as a definition error with the cause", () => {
    const boom = new Error("boom");
    const wf = workflow({ name: "dsl_throws" }, () => {
      throw boom;
    });
    const e = thrown(() => wf.graph());
    expect(e.code).toBe("TERN_E_DEFINITION");
    expect(e.message).toContain('workflow "dsl_throws" body threw: boom');
    expect(e.cause).toBe(boom);
  });
});

describe("node ids", () => {
  it("default to the task name and are suffixed on repeats", () => {
    const wf = workflow({ name: "dsl_ids" }, () => {
      double({ x: 1 });
      double({ x: 2 });
      double({ x: 3 });
      shout({ s: "a" });
    });
    expect(wf.graph().nodes.map((n) => n.id)).toEqual([
      "dsl_double",
      "dsl_double-2",
      "dsl_double-3",
      "dsl_shout",
    ]);
  });

  it("take an explicit { id }, and defaults skip ids already taken", () => {
    const wf = workflow({ name: "dsl_ids_explicit" }, () => {
      double({ x: 1 }, { id: "first" });
      double({ x: 2 }, { id: "dsl_double" });
      double({ x: 3 }); // "dsl_double" is taken by the explicit id
      double({ x: 4 }, { id: "dsl_double-3" });
      double({ x: 5 }); // skips the explicit "dsl_double-3"
    });
    expect(wf.graph().nodes.map((n) => n.id)).toEqual([
      "first",
      "dsl_double",
      "dsl_double-2",
      "dsl_double-3",
      "dsl_double-4",
    ]);
  });

  it("clean task names that are not valid node ids", () => {
    const dotted = task({ name: "dsl.dotted.name" }, async () => {});
    const wf = workflow({ name: "dsl_ids_clean" }, () => {
      dotted({});
      dotted({});
    });
    expect(wf.graph().nodes.map((n) => n.id)).toEqual(["dsl_dotted_name", "dsl_dotted_name-2"]);
  });

  it.each([
    ["a duplicate id", ["same", "same"], /two nodes have the id "same"/],
    ["an id with a space", ["bad id"], /node id "bad id" is not valid/],
    ["an id with a dot", ["a.b"], /node id "a.b" is not valid/],
    ["an id starting with a digit", ["1a"], /node id "1a" is not valid/],
  ])("refuse %s", (_why, ids, message) => {
    const wf = workflow({ name: "dsl_bad_ids" }, () => {
      for (const id of ids) double({ x: 1 }, { id });
    });
    const e = thrown(() => wf.graph());
    expect(e.code).toBe("TERN_E_COMPILE");
    expect(e.message).toMatch(message);
    expect(e.message).toContain('workflow "dsl_bad_ids"');
  });

  it("refuse a call without an object of named inputs", () => {
    const wf = workflow({ name: "dsl_positional" }, () => {
      (double as unknown as (x: number) => unknown)(5);
    });
    const e = thrown(() => wf.graph());
    expect(e.code).toBe("TERN_E_COMPILE");
    expect(e.message).toContain("must be called with an object of named inputs");
    expect(e.hint).toBe("dsl_double({ x })");
  });
});

describe("handles", () => {
  it("object outputs expose fields, nested fields and array items as handles with paths", () => {
    const wf = workflow(
      { name: "dsl_fields", inputs: { n: z.object({ a: z.number() }) }, output: z.number() },
      ({ n }) => {
        const s = split({ xs: load({}) });
        double({ x: s.meta.n });
        double({ x: n.a });
        return count({ xs: s.train });
      },
    );
    const spec = compile(wf).spec.workflow;
    const byId = Object.fromEntries(spec.nodes.map((n) => [n.id, n]));
    expect(byId.dsl_split.inputs.xs).toEqual({ ref: { node: "dsl_load", path: [] } });
    expect(byId.dsl_double.inputs.x).toEqual({ ref: { node: "dsl_split", path: ["meta", "n"] } });
    expect(byId["dsl_double-2"].inputs.x).toEqual({ ref: { node: "$inputs", path: ["n", "a"] } });
    expect(byId.dsl_count.inputs.xs).toEqual({ ref: { node: "dsl_split", path: ["train"] } });
    expect(spec.output).toEqual({ ref: { node: "dsl_count", path: [] } });
  });

  it("the same field handle is returned for repeated access", () => {
    let same = false;
    workflow({ name: "dsl_field_identity" }, () => {
      const s = split({ xs: [1] });
      const [t1, t2, n1, n2] = [s.train, s.train, s.meta.n, s.meta.n];
      same = t1 === t2 && n1 === n2;
    }).graph();
    expect(same).toBe(true);
  });

  it("objects and arrays mixing handles and constants become structured bindings", () => {
    const pair = task(
      { name: "dsl_pair", inputs: { p: z.object({ a: z.number(), b: z.string() }), l: z.array(z.number()) } },
      async () => {},
    );
    const wf = workflow({ name: "dsl_structured" }, () => {
      const d = double({ x: 1 });
      pair({ p: { a: d, b: "const" }, l: [d, 7] });
    });
    const node = compile(wf).spec.workflow.nodes.find((n) => n.id === "dsl_pair")!;
    expect(node.inputs.p).toEqual({
      object: { a: { ref: { node: "dsl_double", path: [] } }, b: { literal: "const" } },
    });
    expect(node.inputs.l).toEqual({ list: [{ ref: { node: "dsl_double", path: [] } }, { literal: 7 }] });
  });

  it.each([
    ["a template string", (h: unknown) => `value: ${h}`],
    ["string concatenation", (h: unknown) => "v" + (h as string)],
    ["arithmetic", (h: unknown) => (h as number) + 1],
    ["JSON.stringify", (h: unknown) => JSON.stringify({ h })],
    ["String()", (h: unknown) => String(h)],
  ])("using a handle as a value (%s) is a definition error with a hint", (_how, use) => {
    const wf = workflow({ name: "dsl_as_value", output: z.string() }, () => {
      const s = split({ xs: [1, 2] });
      return shout({ s: use(s.meta.tag) as string });
    });
    const e = thrown(() => wf.graph());
    expect(e.code).toBe("TERN_E_DEFINITION");
    expect(e.message).toContain(
      'the output of node "dsl_split".meta.tag was used as a value inside a workflow body',
    );
    expect(e.hint).toMatch(/cannot read values.*task.*dynamic/);
  });

  it("workflow input handles used as values name $inputs", () => {
    const wf = workflow({ name: "dsl_input_value", inputs: { s: z.string() }, output: z.string() }, ({ s }) =>
      shout({ s: `${s}!` }),
    );
    const e = thrown(() => wf.graph());
    expect(e.message).toContain('"$inputs".s was used as a value');
  });

  it("handles are not thenable, so returning one from a body is not mistaken for a promise", () => {
    let then: unknown = "unset";
    workflow({ name: "dsl_not_thenable" }, () => {
      then = (double({ x: 1 }) as unknown as { then?: unknown }).then;
    }).graph();
    expect(then).toBeUndefined();
  });

  it("a handle from another workflow cannot be used", () => {
    let leaked: unknown;
    workflow({ name: "dsl_leak_src" }, () => {
      leaked = double({ x: 1 });
    }).graph();
    const wf = workflow({ name: "dsl_leak_dst" }, () => {
      double({ x: leaked as number });
    });
    const e = thrown(() => wf.graph());
    expect(e.code).toBe("TERN_E_COMPILE");
    expect(e.message).toContain('node "dsl_double" uses a handle from workflow "dsl_leak_src"');
  });
});

describe("after()", () => {
  it("orders nodes without passing data", () => {
    const wf = workflow({ name: "dsl_after" }, () => {
      const a = double({ x: 1 }, { id: "a" });
      const b = double({ x: 2 }, { id: "b" });
      const c = double({ x: 3 }, { id: "c" });
      const d = double({ x: 4 }, { id: "d" });
      after(a, b, c); // b and c wait for a
      after([b, c], d); // d waits for b and c
    });
    const nodes = Object.fromEntries(compile(wf).spec.workflow.nodes.map((n) => [n.id, n.upstream]));
    expect(nodes).toEqual({ a: [], b: ["a"], c: ["a"], d: ["b", "c"] });
  });

  it("refuses handles that are not nodes (workflow inputs)", () => {
    const wf = workflow({ name: "dsl_after_inputs", inputs: { x: z.number() } }, ({ x }) => {
      after(x, double({ x: 1 }));
    });
    const e = thrown(() => wf.graph());
    expect(e.code).toBe("TERN_E_COMPILE");
    expect(e.message).toContain('after(): "$inputs" is not a node of workflow "dsl_after_inputs"');
  });

  it("accepts a field handle as the upstream: it names its node", () => {
    const wf = workflow({ name: "dsl_after_field" }, () => {
      const s = split({ xs: [1] });
      after(s.train, double({ x: 1 }));
    });
    // s.train points at node dsl_split: a field handle still names its node.
    expect(compile(wf).spec.workflow.nodes.find((n) => n.id === "dsl_double")!.upstream).toEqual([
      "dsl_split",
    ]);
  });
});
