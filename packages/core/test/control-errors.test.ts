/**
 * Bad inputs to control flow, as a table: each gives a clear, coded error. What the compiler
 * can see throws at compile() (the CLI exits 2 on those); what only shows at run time fails
 * the node that met it, on either backend.
 */
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import { createRequire } from "node:module";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import {
  type AnyWorkflow,
  compile,
  ErrorCodes,
  type ErrorDocument,
  type ExecutionResult,
  eq,
  gt,
  isTernError,
  isTrue,
  map,
  type SignalProvider,
  when,
  workflow,
} from "@tern/core";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import {
  add,
  double,
  inputFlow,
  label,
  mapBound,
  mapsANumberFlow,
  measure,
  nightly,
  wrongConstantFlow,
  wrongTypeFlow,
} from "./control-fixture.js";
import { BACKENDS, type BackendName, calls, nodeOf, useBackend } from "./control-harness.js";

interface CompileCase {
  what: string;
  wf: () => AnyWorkflow;
  code: string;
  message: RegExp;
}

const compileCases: CompileCase[] = [
  {
    what: "branch cases of different types",
    wf: () =>
      workflow({ name: "bad_branch_types", inputs: { x: z.number() }, output: z.unknown() }, ({ x }) =>
        when(gt(x, 0))
          .then(() => double({ x }))
          .else(() => label({ s: "negative" }) as never),
      ),
    code: ErrorCodes.TYPE_MISMATCH,
    message: /branch "branch": the else case gives string, but the first case gives number/,
  },
  {
    what: "a condition on a value that is not a boolean",
    wf: () =>
      workflow({ name: "bad_condition", inputs: { x: z.number() }, output: z.string().nullable() }, ({ x }) =>
        when(isTrue(measure({ x }) as never))
          .then(() => label({ s: "yes" }))
          .end(),
      ),
    code: ErrorCodes.TYPE_MISMATCH,
    message: /the condition tests number for true, which is not a boolean/,
  },
  {
    what: "a string compared with a number",
    wf: () =>
      workflow({ name: "bad_compare", inputs: { s: z.string() }, output: z.string().nullable() }, ({ s }) =>
        when(gt(s as never, 3))
          .then(() => label({ s: "yes" }))
          .end(),
      ),
    code: ErrorCodes.TYPE_MISMATCH,
    message: /cannot compare string with integer using gt/,
  },
  {
    what: "a map over a value that is not a list",
    wf: () =>
      workflow({ name: "bad_map", inputs: { x: z.number() }, output: z.array(z.number()) }, ({ x }) =>
        map(double, { x: x as never }),
      ),
    code: ErrorCodes.TYPE_MISMATCH,
    message: /node "map_double", input "x": expects list<number>.* but workflow input \.x gives number/,
  },
  {
    what: "a map over a list of the wrong items",
    wf: () =>
      workflow(
        { name: "bad_map_items", inputs: { xs: z.array(z.boolean()) }, output: z.array(z.number()) },
        ({ xs }) => map(double, { x: xs as never }),
      ),
    code: ErrorCodes.TYPE_MISMATCH,
    message: /expects list<number>.* gives list<boolean>/,
  },
  {
    what: "a node of a branch case used after the branch",
    wf: () =>
      workflow({ name: "bad_scope", inputs: { x: z.number() }, output: z.number() }, ({ x }) => {
        let inside: ReturnType<typeof double> | undefined;
        when(eq(x, 1))
          .then(() => (inside = double({ x }, { id: "inside" })))
          .end();
        return add({ a: inside!, b: 1 }, { id: "outside" });
      }),
    code: ErrorCodes.COMPILE,
    message: /node "outside": node "inside" is inside a branch case/,
  },
  {
    what: "a fixed input of a launch plan given by the caller",
    wf: () =>
      workflow({ name: "bad_fixed", inputs: {}, output: z.string() }, () =>
        nightly({ suffix: "s", region: "us" }),
      ),
    code: ErrorCodes.COMPILE,
    message: /input "region" is fixed by launch plan "nightly_report"/,
  },
  {
    what: "minSuccessRatio out of range",
    wf: () =>
      workflow({ name: "bad_ratio", inputs: { xs: z.array(z.number()) }, output: z.unknown() }, ({ xs }) =>
        map(double, { x: xs }, { minSuccessRatio: 1.5 }),
      ),
    code: ErrorCodes.COMPILE,
    message: /minSuccessRatio must be between 0 and 1/,
  },
];

describe("bad control flow: compile-time errors", () => {
  it.each(compileCases)("$what", ({ wf, code, message }) => {
    let err: unknown;
    try {
      compile(wf());
    } catch (e) {
      err = e;
    }
    expect(isTernError(err)).toBe(true);
    const e = err as { code: string; message: string };
    expect(e.code).toBe(code);
    expect(e.message).toMatch(message);
  });
});

interface RunCase {
  what: string;
  run: (b: ReturnType<typeof useBackend>) => Promise<ExecutionResult>;
  node: string;
  code: string;
  message: RegExp;
  /** Tasks must not have run. */
  nothingRan?: boolean;
}

const signal =
  (value: unknown): SignalProvider =>
  async () => ({ value });

const runCases: RunCase[] = [
  {
    what: "a dynamic body whose output has the wrong type",
    run: async (b) => (await b.run(wrongTypeFlow, { n: 2 })).result,
    node: "dyn",
    code: ErrorCodes.TYPE_MISMATCH,
    message: /^dynamic "wrong_type": .*expects number.* gives string/,
  },
  {
    what: "a dynamic body returning a constant of the wrong type",
    run: async (b) => (await b.run(wrongConstantFlow, {})).result,
    node: "dyn",
    code: ErrorCodes.TYPE_MISMATCH,
    message:
      /^dynamic "wrong_constant": dynamic "wrong_constant" returned "seven", which does not fit its output/,
  },
  {
    what: "a dynamic body mapping over a number",
    run: async (b) => (await b.run(mapsANumberFlow, { n: 3 })).result,
    node: "dyn",
    code: ErrorCodes.TYPE_MISMATCH,
    message: /input "x": the constant 3 does not fit list<number>/,
  },
  {
    what: "a map over a value that is not a list (a hand-made spec)",
    run: async (b) => {
      const compiled = b.compile(mapBound);
      const spec = structuredClone(compiled.spec);
      const node = spec.workflow.nodes[0];
      if (node.kind !== "map") throw new Error("expected a map node");
      node.inputs.x = { literal: { not: "a list" } };
      return (await b.run({ ...compiled, spec }, { xs: [1], factor: 1 })).result;
    },
    node: "scaled",
    code: ErrorCodes.INPUT_INVALID,
    message: /^map "scaled": input "x" is not a list \(got object\)$/,
    nothingRan: true,
  },
  {
    what: "a signal of the wrong type",
    run: async (b) => (await b.run(inputFlow, { x: 1 }, { signals: signal({ threshold: 3 }) })).result,
    node: "threshold",
    code: ErrorCodes.INPUT_INVALID,
    message: /^gate "threshold" expects number, but the signal gave \{"threshold":3\}/,
    nothingRan: true,
  },
  {
    what: "a signal of the right type out of its bounds",
    run: async (b) => (await b.run(inputFlow, { x: 1 }, { signals: signal(-0.5) })).result,
    node: "threshold",
    code: ErrorCodes.INPUT_INVALID,
    message: /^gate "threshold" expects number, but the signal gave -0\.5 \(Too small/,
    nothingRan: true,
  },
];

describe.each(BACKENDS)("bad control flow: run-time errors (%s)", (name: BackendName) => {
  const backend = useBackend(name);

  it.each(runCases)("$what", async ({ run, node, code, message, nothingRan }) => {
    const result = await run(backend);
    expect(result.phase).toBe("failed");
    const err = nodeOf(result, node).error as ErrorDocument;
    expect(err.code).toBe(code);
    expect(err.message).toMatch(message);
    expect(result.error).toMatchObject({ code });
    if (nothingRan) expect(calls(result.id)).toEqual([]);
  });
});

describe("bad control flow: the CLI", () => {
  const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
  const tern = path.join(repo, "packages/cli/dist/bin/tern.js");

  it("exits 2 with the compiler's message on a compile-time error", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tern-control-cli-"));
    try {
      const core = path.join(repo, "packages/core");
      fs.writeFileSync(
        path.join(dir, "package.json"),
        JSON.stringify({ name: "bad", private: true, type: "module" }),
      );
      fs.mkdirSync(path.join(dir, "node_modules/@tern"), { recursive: true });
      fs.symlinkSync(core, path.join(dir, "node_modules/@tern/core"), "dir");
      const zod = path.dirname(createRequire(path.join(core, "package.json")).resolve("zod/package.json"));
      fs.symlinkSync(zod, path.join(dir, "node_modules/zod"), "dir");
      fs.writeFileSync(
        path.join(dir, "bad.ts"),
        `import { gt, task, when, workflow } from "@tern/core";
import { z } from "zod";
const num = task({ name: "num", inputs: { x: z.number() }, output: z.number() }, ({ x }) => x);
const str = task({ name: "str", inputs: { x: z.number() }, output: z.string() }, ({ x }) => String(x));
export const mixed = workflow({ name: "mixed", inputs: { x: z.number() }, output: z.unknown() }, ({ x }) =>
  when(gt(x, 0)).then(() => num({ x })).else(() => str({ x }) as never),
);
`,
      );
      const r = await new Promise<{ code: number; stderr: string; stdout: string }>((resolve) =>
        execFile(
          process.execPath,
          [tern, "run", "bad.ts", "mixed", "--x", "1"],
          { cwd: dir, env: { ...process.env, NO_COLOR: "1" } },
          (err, stdout, stderr) =>
            resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr }),
        ),
      );
      expect(r.code).toBe(2);
      expect(r.stderr + r.stdout).toMatch(/the else case gives string, but the first case gives number/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
