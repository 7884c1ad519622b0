import * as fs from "node:fs";
import * as path from "node:path";
import {
  compile,
  createEngine,
  dataframe,
  dir,
  type ExecutionResult,
  file,
  interfaceOf,
  isTernRef,
  type LocalEngine,
  readDataFrame,
  type TaskCtx,
  TernError,
  type TernFile,
  t,
  task,
  toJsonSchema,
  workflow,
} from "@tern/core";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { cleanupTempDirs, tempDir } from "./helpers.js";

afterAll(cleanupTempDirs);

const engines: LocalEngine[] = [];
afterEach(async () => {
  await Promise.all(engines.splice(0).map((e) => e.close()));
});

async function engine(opts: Parameters<typeof createEngine>[0] = {}): Promise<LocalEngine> {
  const local = await createEngine({ workDir: tempDir(), random: () => 0.5, ...opts });
  engines.push(local);
  return local;
}

function expectFailed(r: ExecutionResult, code: string): NonNullable<ExecutionResult["error"]> {
  expect(r.phase).toBe("failed");
  expect(r.error?.code).toBe(code);
  return r.error!;
}

describe("by-reference values between tasks", () => {
  const writeCsv = task(
    { name: "ty_write_csv", inputs: { n: z.number() }, output: t.file({ format: "csv" }), cache: true },
    async ({ n }, ctx) => {
      const p = path.join(ctx.scratchDir, "numbers.csv");
      fs.writeFileSync(p, Array.from({ length: n }, (_, i) => `${i + 1}`).join("\n"));
      return file(p);
    },
  );
  const sumCsv = task(
    { name: "ty_sum_csv", inputs: { f: t.file({ format: "csv" }) }, output: z.number() },
    async ({ f }) => {
      return fs
        .readFileSync(f.path!, "utf8")
        .split("\n")
        .reduce((a, l) => a + Number(l), 0);
    },
  );
  const wf = workflow(
    { name: "ty_files", inputs: { n: z.number() }, output: z.object({ sum: z.number(), f: t.file() }) },
    ({ n }) => {
      const f = writeCsv({ n });
      return { sum: sumCsv({ f }), f };
    },
  );

  it("a file written in one task's scratch dir is read by the next, through blob storage", async () => {
    const local = await engine();
    const r = await local.run(wf, { n: 4 });
    expect(r.phase).toBe("succeeded");
    const out = r.outputs as { sum: number; f: TernFile };
    expect(out.sum).toBe(10);
    expect(out.f).toMatchObject({ $tern: "file", format: "csv", name: "numbers.csv" });
    expect(out.f.uri).toMatch(/^file:\/\/.*\/cas\/([0-9a-f]{2})\/\1[0-9a-f]{62}\/numbers\.csv$/);
    expect(Buffer.from(await local.blobs.get(out.f.uri!)).toString("utf8")).toBe("1\n2\n3\n4");
  });

  it("a cached file output is read back from blob storage, not from the producer's scratch dir", async () => {
    const local = await engine();
    const first = await local.run(wf, { n: 3 });
    const scratchFile = (first.outputs as { f: TernFile }).f.path!;
    fs.rmSync(path.join(local.workDir, ".tern", "scratch"), { recursive: true, force: true });
    expect(fs.existsSync(scratchFile)).toBe(false);
    const again = await local.run(wf, { n: 3 });
    expect(again.phase).toBe("succeeded");
    expect(again.nodes.find((n) => n.id === "ty_write_csv")?.cached).toBe(true);
    expect((again.outputs as { sum: number }).sum).toBe(6);
    // The cached literal keeps the URI, never a machine-local path.
    const [entry] = await local.catalog!.list({ task: "ty_write_csv" });
    expect(entry.outputs).not.toHaveProperty("path");
    expect(entry.outputs).toHaveProperty("uri");
  });

  it("a dataframe goes in as rows and comes out of readDataFrame downstream", async () => {
    const rowsOut = task(
      {
        name: "ty_df_make",
        inputs: { n: z.number() },
        output: t.dataframe({ columns: { id: z.number(), name: z.string() } }),
      },
      async ({ n }) => dataframe(Array.from({ length: n }, (_, i) => ({ id: i, name: `r${i}` }))),
    );
    const rowsIn = task(
      {
        name: "ty_df_read",
        inputs: { df: t.dataframe({ columns: { id: z.number() } }) },
        output: z.object({ count: z.number(), ids: z.array(z.number()) }),
      },
      async ({ df }) => {
        expect(df.rows).toBeUndefined();
        const rows = await readDataFrame(df);
        return { count: rows.length, ids: rows.map((r) => r.id) };
      },
    );
    const local = await engine();
    const events: unknown[] = [];
    const r = await local.run(
      workflow({ name: "ty_df", output: z.object({ count: z.number(), ids: z.array(z.number()) }) }, () =>
        rowsIn({ df: rowsOut({ n: 3 }) }),
      ),
      {},
      { onEvent: (e) => events.push(e) },
    );
    expect(r.phase).toBe("succeeded");
    expect(r.outputs).toEqual({ count: 3, ids: [0, 1, 2] });
    const made = (events as { node?: string; phase: string; outputs?: { uri: string } }[]).find(
      (e) => e.node === "ty_df_make" && e.phase === "succeeded",
    )!.outputs!;
    expect(made).toEqual({ $tern: "dataframe", uri: expect.stringMatching(/\.jsonl$/), format: "jsonl" });
    expect(Buffer.from(await local.blobs.get(made.uri)).toString("utf8")).toBe(
      '{"id":0,"name":"r0"}\n{"id":1,"name":"r1"}\n{"id":2,"name":"r2"}\n',
    );
  });

  it("a directory travels as a tree", async () => {
    const makeDir = task({ name: "ty_dir_make", output: t.dir() }, async (_i, ctx) => {
      const d = path.join(ctx.scratchDir, "model");
      fs.mkdirSync(path.join(d, "weights"), { recursive: true });
      fs.writeFileSync(path.join(d, "config.json"), "{}");
      fs.writeFileSync(path.join(d, "weights", "w.bin"), "0101");
      return dir(d);
    });
    const listDir = task(
      { name: "ty_dir_list", inputs: { d: t.dir() }, output: z.array(z.string()) },
      async ({ d }) => fs.readdirSync(d.path!, { recursive: true }).map(String).sort(),
    );
    const local = await engine();
    const r = await local.run(
      workflow({ name: "ty_dir", output: z.array(z.string()) }, () => listDir({ d: makeDir({}) })),
    );
    expect(r.outputs).toEqual(["config.json", "weights", "weights/w.bin"]);
  });

  it("returning a file that does not exist is TERN_E_OUTPUT_INVALID", async () => {
    const ghost = task({ name: "ty_ghost", output: t.file() }, async () => file("/nonexistent/ghost.txt"));
    const local = await engine();
    const e = expectFailed(await local.run(ghost), "TERN_E_OUTPUT_INVALID");
    expect(e.message).toContain('returned file "/nonexistent/ghost.txt" does not exist');
  });

  it("readDataFrame reads rows kept in memory", async () => {
    expect(await readDataFrame(dataframe([{ a: 1 }, { a: 2 }]))).toEqual([{ a: 1 }, { a: 2 }]);
    await expect(readDataFrame({ $tern: "dataframe" })).rejects.toMatchObject({
      code: "TERN_E_BLOB_NOT_FOUND",
    });
  });
});

describe("outputs", () => {
  class Point {
    constructor(
      readonly x: number,
      readonly y: number,
    ) {}
  }
  const cyclic = () => {
    const o: Record<string, unknown> = { a: 1 };
    o.self = o;
    return o;
  };

  it.each<[string, z.ZodType, () => unknown, RegExp]>([
    [
      "a string for a number",
      z.number(),
      () => "7",
      /returned a value that does not match its output schema: /,
    ],
    [
      "a missing field",
      z.object({ a: z.number(), b: z.string() }),
      () => ({ a: 1 }),
      /does not match its output schema at \.b: /,
    ],
    ["a wrong list item", z.array(z.number()), () => [1, "2"], /at \.1: /],
    ["NaN for a number", z.number(), () => Number.NaN, /does not match its output schema/],
  ])("not matching the schema (%s) is TERN_E_OUTPUT_INVALID", async (_what, output, value, message) => {
    const bad = task({ name: "ty_bad_output", output }, async () => value() as never);
    const local = await engine();
    const e = expectFailed(await local.run(bad), "TERN_E_OUTPUT_INVALID");
    expect(e.message).toMatch(message);
    expect(e.message).toContain('task "ty_bad_output"');
    expect(e.kind).toBe("user");
  });

  it("a value returned by a task that declares no output is TERN_E_OUTPUT_INVALID", async () => {
    const chatty = task({ name: "ty_chatty" }, async () => 42 as never);
    const local = await engine();
    const e = expectFailed(await local.run(chatty), "TERN_E_OUTPUT_INVALID");
    expect(e.message).toBe('task "ty_chatty" returned a value but declares no output');
  });

  it.each<[string, () => unknown, string]>([
    ["a Map", () => new Map([["a", 1]]), "returned a Map instance"],
    ["a class instance", () => new Point(1, 2), "returned a Point instance"],
    ["a nested Set", () => ({ tags: [1, new Set([1])] }), "returned a Set instance at .tags[1]"],
    ["NaN", () => Number.NaN, "returned NaN"],
    ["Infinity deep inside", () => ({ a: { b: Number.POSITIVE_INFINITY } }), "returned Infinity at .a.b"],
    ["a cycle", cyclic, "returned a circular structure at .self"],
    ["a function", () => ({ f: () => 1 }), "returned a function at .f"],
    ["a bigint", () => [10n], "returned a bigint at [0]"],
    ["a Date", () => ({ at: new Date(0) }), "returned a Date instance at .at"],
  ])("a non-serializable output (%s) is TERN_E_OUTPUT_NOT_SERIALIZABLE", async (_what, value, message) => {
    const odd = task({ name: "ty_odd", output: z.unknown() }, async () => value());
    const local = await engine();
    const e = expectFailed(await local.run(odd), "TERN_E_OUTPUT_NOT_SERIALIZABLE");
    expect(e.message).toBe(`task "ty_odd" ${message}, which cannot be stored`);
    expect(e.hint).toMatch(/JSON values or file\/dir\/dataframe/);
  });

  it("the same object twice (not a cycle) is fine", async () => {
    const shared = { v: 1 };
    const twice = task({ name: "ty_twice", output: z.unknown() }, async () => ({
      a: shared,
      b: [shared, shared],
    }));
    const local = await engine();
    const r = await local.run(twice);
    expect(r.phase).toBe("succeeded");
    expect(r.outputs).toEqual({ a: { v: 1 }, b: [{ v: 1 }, { v: 1 }] });
  });

  it("outputs are parsed by their schema: defaults filled, unknown keys stripped", async () => {
    const shaped = task(
      { name: "ty_shaped", output: z.object({ a: z.number(), b: z.string().default("dflt") }) },
      async () => ({ a: 1, extra: true }) as never,
    );
    const local = await engine();
    expect((await local.run(shaped)).outputs).toEqual({ a: 1, b: "dflt" });
  });
});

describe("workflow inputs", () => {
  const echo = task(
    {
      name: "ty_echo",
      inputs: { n: z.number().int().min(1), tag: z.string().default("t") },
      output: z.string(),
    },
    async ({ n, tag }) => `${tag}${n}`,
  );
  const wf = workflow(
    {
      name: "ty_inputs",
      inputs: { count: z.number().int().min(1), tag: z.string().default("x") },
      output: z.string(),
    },
    ({ count, tag }) => echo({ n: count, tag }),
  );

  it.each<[string, Record<string, unknown>, string]>([
    [
      "of the wrong type",
      { count: "three" },
      'input "count" of workflow "ty_inputs": Invalid input: expected number, received string',
    ],
    [
      "out of range",
      { count: 0 },
      'input "count" of workflow "ty_inputs": Too small: expected number to be >=1',
    ],
    ["missing", {}, 'workflow "ty_inputs" needs input "count"'],
    ["unknown", { count: 1, cuont: 2 }, 'workflow "ty_inputs" has no input "cuont"'],
  ])("an input %s is TERN_E_INPUT_INVALID naming the input", async (_what, inputs, message) => {
    const local = await engine();
    const err = await local.run(wf, inputs).then(
      () => undefined,
      (e: unknown) => e as TernError,
    );
    expect(err).toBeInstanceOf(TernError);
    expect(err!.code).toBe("TERN_E_INPUT_INVALID");
    expect(err!.message).toBe(message);
    expect(err!.details.input).toBe(Object.keys(inputs).find((k) => k === "cuont") ?? "count");
  });

  it("defaults fill missing inputs", async () => {
    const local = await engine();
    expect((await local.run(wf, { count: 2 })).outputs).toBe("x2");
    expect((await local.run(wf, { count: 2, tag: "y" })).outputs).toBe("y2");
  });

  it("a compiled spec without zod schemas still checks names and fills defaults from the spec", async () => {
    const local = await engine();
    const { spec } = compile(wf);
    expect((await local.engine.run(spec, { count: 3 })).outputs).toBe("x3");
    await expect(local.engine.run(spec, {})).rejects.toMatchObject({
      code: "TERN_E_INPUT_INVALID",
      message: 'workflow "ty_inputs" needs input "count"',
    });
  });

  it("a task input that fails its schema at run time is TERN_E_INPUT_INVALID inside the task", async () => {
    const local = await engine();
    // Without the zod schemas the engine cannot check the value; the task's own parse does.
    const r = await local.engine.run(compile(echo).spec, { n: 0 });
    const e = expectFailed(r, "TERN_E_INPUT_INVALID");
    expect(e.message).toMatch(/^task "ty_echo", input "n": Too small/);
    expect(e.details).toMatchObject({ task: "ty_echo", input: "n", node: "ty_echo" });
  });
});

describe("task ctx", () => {
  it("gives the attempt number, execution and node ids, and a lazily created scratch dir", async () => {
    const seen: {
      attempt: number;
      execution: TaskCtx["execution"];
      node: string;
      task: string;
      scratchExisted: boolean;
      scratch: string;
      existsAfter: boolean;
    }[] = [];
    let scratchRoot = "";
    const probe = task({ name: "ty_ctx", retries: { user: 1, backoff: { base: 1 } } }, async (_i, ctx) => {
      const expected = path.join(scratchRoot, ctx.execution.id, ctx.node.id, String(ctx.attempt));
      const scratchExisted = fs.existsSync(expected);
      const scratch = ctx.scratchDir;
      seen.push({
        attempt: ctx.attempt,
        execution: ctx.execution,
        node: ctx.node.id,
        task: ctx.task.name,
        scratchExisted,
        scratch,
        existsAfter: fs.existsSync(scratch),
      });
      expect(ctx.scratchDir).toBe(scratch);
      if (ctx.attempt === 1) throw new Error("retry me");
    });
    const local = await engine();
    scratchRoot = path.join(local.workDir, ".tern", "scratch");
    const r = await local.run(
      workflow({ name: "ty_ctx_wf" }, () => probe({}, { id: "probe_node" })),
      {},
      { id: "xctx1", project: "proj", domain: "staging" },
    );
    expect(r.phase).toBe("succeeded");
    expect(seen.map((s) => s.attempt)).toEqual([1, 2]);
    for (const s of seen) {
      expect(s.execution).toEqual({ id: "xctx1", project: "proj", domain: "staging" });
      expect(s.node).toBe("probe_node");
      expect(s.task).toBe("ty_ctx");
      expect(s.scratchExisted).toBe(false);
      expect(s.existsAfter).toBe(true);
      expect(s.scratch).toBe(path.join(scratchRoot, "xctx1", "probe_node", String(s.attempt)));
    }
  });

  it("a checkpoint saved in attempt 1 is loaded in attempt 2", async () => {
    const loads: unknown[] = [];
    const resumable = task(
      {
        name: "ty_checkpoint",
        inputs: { total: z.number() },
        output: z.number(),
        retries: { user: 2, backoff: { base: 1 } },
      },
      async ({ total }, ctx) => {
        const saved = await ctx.checkpoint.loadJson<{ done: number }>();
        loads.push(saved);
        let done = saved?.done ?? 0;
        while (done < total) {
          done++;
          await ctx.checkpoint.save({ done });
          if (ctx.attempt === 1 && done === 3) throw new Error("crashed half-way");
        }
        return done;
      },
    );
    const local = await engine();
    const r = await local.run(resumable, { total: 5 });
    expect(r.phase).toBe("succeeded");
    expect(r.outputs).toBe(5);
    expect(r.nodes[0].attempts).toBe(2);
    expect(loads).toEqual([undefined, { done: 3 }]);
  });

  it("checkpoints hold bytes too, and are private to one node of one execution", async () => {
    const results: (string | undefined)[] = [];
    const bin = task(
      { name: "ty_checkpoint_bin", inputs: { v: z.string() }, retries: { user: 1, backoff: { base: 1 } } },
      async ({ v }, ctx) => {
        const b = await ctx.checkpoint.load();
        results.push(b === undefined ? undefined : Buffer.from(b).toString("utf8"));
        if (ctx.attempt === 1) {
          await ctx.checkpoint.save(new TextEncoder().encode(v));
          throw new Error("again");
        }
      },
    );
    const local = await engine();
    await local.run(workflow({ name: "ty_cp_bin" }, () => bin({ v: "one" }, { id: "a" })));
    await local.run(workflow({ name: "ty_cp_bin" }, () => bin({ v: "one" }, { id: "a" })));
    expect(results).toEqual([undefined, "one", undefined, "one"]);
  });

  it("logs go to the attempt's log", async () => {
    const chatty = task({ name: "ty_logs" }, async (_i, ctx) => {
      ctx.logger.info("hello", { n: 1 });
      ctx.logger.warn("careful");
    });
    const local = await engine();
    const h = local.engine.start(compile(chatty), {});
    await h.result;
    const lines = h.logs("ty_logs");
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z INFO hello \{"n":1\}$/);
    expect(lines[1]).toMatch(/ WARN careful$/);
    expect(h.logs("nope")).toEqual([]);
  });
});

describe("type schemas", () => {
  it("by-reference types carry x-tern in their JSON Schema", () => {
    expect(toJsonSchema(t.file(), "input")).toEqual({ "x-tern": { kind: "file" } });
    expect(toJsonSchema(t.file({ format: "parquet" }), "output")).toEqual({
      "x-tern": { kind: "file", format: "parquet" },
    });
    expect(toJsonSchema(t.dir(), "input")).toEqual({ "x-tern": { kind: "dir" } });
    expect(
      toJsonSchema(t.dataframe({ columns: { a: z.number(), b: z.string().optional() } }), "output"),
    ).toEqual({
      "x-tern": { kind: "dataframe", columns: { a: { type: "number" }, b: { type: "string" } } },
    });
    expect(toJsonSchema(z.object({ f: t.file(), list: z.array(t.dir()) }), "output")).toEqual({
      type: "object",
      properties: {
        f: { "x-tern": { kind: "file" } },
        list: { type: "array", items: { "x-tern": { kind: "dir" } } },
      },
      required: ["f", "list"],
      additionalProperties: false,
    });
  });

  it("a described by-reference input is still serializable", () => {
    const iface = interfaceOf({ f: t.file().describe("the input csv") }, undefined, 'task "x"');
    expect(iface.inputs.f).toMatchObject({ optional: false, description: "the input csv" });
    expect((iface.inputs.f.schema as Record<string, unknown>)["x-tern"]).toEqual({ kind: "file" });
  });

  it("a user's z.custom is refused: it cannot be checked across a process boundary", () => {
    expect(() =>
      toJsonSchema(
        z.custom<string>((v) => typeof v === "string"),
        "input",
        'input "c"',
      ),
    ).toThrow(/input "c" uses a type that cannot be serialized: custom/);
  });

  it("by-reference schemas accept only their own kind", () => {
    expect(t.file().safeParse(file("/x.csv")).success).toBe(true);
    expect(t.file().safeParse(dir("/x")).success).toBe(false);
    expect(t.dir().safeParse(dir("/x")).success).toBe(true);
    expect(t.dataframe().safeParse(dataframe([])).success).toBe(true);
    expect(t.file().safeParse("/x.csv").success).toBe(false);
    expect(t.file().safeParse({ $tern: "file" }).success).toBe(true);
    const r = t.file().safeParse(42);
    expect(r.success ? "" : r.error.issues[0].message).toBe(
      "expected a file value (make one with file(path) from @tern/core)",
    );
  });

  it("file() infers the format from the extension; isTernRef recognises references", () => {
    expect(file("/data/Report.CSV")).toEqual({ $tern: "file", path: "/data/Report.CSV", format: "csv" });
    expect(file("/data/noext")).toEqual({ $tern: "file", path: "/data/noext", format: undefined });
    expect(file("/data/x.bin", { format: "raw" }).format).toBe("raw");
    expect([file("/a"), dir("/b"), dataframe([]), { $tern: "other" }, null, "file"].map(isTernRef)).toEqual([
      true,
      true,
      true,
      false,
      false,
      false,
    ]);
  });
});
