import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeProject, removeProject, tern, ternBin, ternJson } from "./helpers.js";

/** Workflows with gates, and one whose last node fails until a marker file exists (for recovery). */
const FLOWS = `
import * as fs from "node:fs";
import { gate, task, workflow } from "@tern/core";
import { z } from "zod";

export const report = task({ name: "report", inputs: { n: z.number() }, output: z.number() }, ({ n }) => n * 2);
export const release = workflow({ name: "release", inputs: { n: z.number().default(21) }, output: z.number() }, ({ n }) =>
  gate.approve(report({ n }), { name: "review" }),
);
export const scale = task({ name: "scale", inputs: { x: z.number(), k: z.number() }, output: z.number() }, ({ x, k }) => x * k);
export const tuned = workflow({ name: "tuned", inputs: {}, output: z.number() }, () =>
  scale({ x: 10, k: gate.input("threshold", z.number().min(0)) }),
);

const counter = (name: string) => {
  const f = ".calls-" + name;
  fs.appendFileSync(f, "x");
  return fs.readFileSync(f, "utf8").length;
};
export const first = task({ name: "first", inputs: {}, output: z.number() }, () => counter("first"));
export const last = task({ name: "last", inputs: { v: z.number() }, output: z.number() }, ({ v }) => {
  counter("last");
  if (!fs.existsSync("fixed")) throw new Error("not fixed yet");
  return v + 100;
});
export const recoverable = workflow({ name: "recoverable", inputs: {}, output: z.number() }, () => last({ v: first({}) }));
`;

let project: string;

beforeAll(() => {
  project = makeProject();
  fs.writeFileSync(path.join(project, "gates.ts"), FLOWS);
});
afterAll(() => removeProject(project));

describe("tern run: gates", () => {
  it("--signal review=true approves: the reviewed value passes through", async () => {
    const r = await ternJson(project, ["run", "gates.ts", "release", "--signal", "review=true"]);
    expect(r.code).toBe(0);
    expect(r.json.outputs).toBe(42);
  });

  it("--signal review=false rejects: exit 1 with TERN_E_GATE_REJECTED", async () => {
    const r = await ternJson(project, ["run", "gates.ts", "release", "--signal", "review=false"]);
    expect(r.code).toBe(1);
    expect(r.json.error.code).toBe("TERN_E_GATE_REJECTED");
    expect(r.json.error.node).toBe("review");
  });

  it("an input gate takes a typed value, and refuses one of the wrong type naming the gate", async () => {
    const ok = await ternJson(project, ["run", "gates.ts", "tuned", "--signal", "threshold=0.5"]);
    expect(ok.json.outputs).toBe(5);
    const bad = await ternJson(project, ["run", "gates.ts", "tuned", "--signal", "threshold=abc"]);
    expect(bad.code).toBe(1);
    expect(bad.json.error.code).toBe("TERN_E_INPUT_INVALID");
    expect(bad.json.error.message).toMatch(/gate "threshold"/);
    const negative = await ternJson(project, ["run", "gates.ts", "tuned", "--signal", "threshold=-1"]);
    expect(negative.json.error.code).toBe("TERN_E_INPUT_INVALID");
  });

  it("without a signal and no terminal, the gate fails and says how to give one", async () => {
    const r = await tern(project, ["run", "gates.ts", "release"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("TERN_E_SIGNAL_MISSING");
    expect(r.stderr).toContain("--signal review=true");
  });

  it("a malformed --signal is a usage error (exit 2)", async () => {
    const r = await tern(project, ["run", "gates.ts", "release", "--signal", "review"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/<gate>=<value>/);
  });

  it("in an interactive terminal the run asks, and the answer decides", async () => {
    const cmd = `stty cols 100 rows 30; ${[process.execPath, ternBin, "run", "gates.ts", "release", "--no-cache"].map((a) => JSON.stringify(a)).join(" ")}`;
    const child = spawn("script", ["-qec", cmd, "/dev/null"], {
      cwd: project,
      env: { ...process.env, NO_COLOR: "1" },
    });
    let out = "";
    let answered = false;
    child.stdout.on("data", (d) => {
      out += String(d);
      if (!answered && out.includes("gate review: approve 42?")) {
        answered = true;
        child.stdin.write("y\n");
      }
    });
    const code = await new Promise<number>((resolve) => child.on("close", (c) => resolve(c ?? 1)));
    expect(answered).toBe(true);
    expect(code).toBe(0);
    expect(out).toContain("succeeded");
  });
});

describe("tern run --recover", () => {
  it("reuses the nodes that succeeded and runs the rest", async () => {
    const failed = await ternJson(project, ["run", "gates.ts", "recoverable", "--no-cache"]);
    expect(failed.code).toBe(1);
    expect(failed.json.error.node).toBe("last");
    fs.writeFileSync(path.join(project, "fixed"), "");
    const recovered = await ternJson(project, [
      "run",
      "gates.ts",
      "recoverable",
      "--no-cache",
      "--recover",
      failed.json.execution,
    ]);
    expect(recovered.code).toBe(0);
    // first ran once (call 1) and was reused: its output is still 1.
    expect(recovered.json.outputs).toBe(101);
    expect(fs.readFileSync(path.join(project, ".calls-first"), "utf8")).toBe("x");
    expect(fs.readFileSync(path.join(project, ".calls-last"), "utf8")).toBe("xx");
    const first = recovered.json.nodes.find((n: { id: string }) => n.id === "first");
    expect(first.recovered).toBe(true);
    const runJson = JSON.parse(
      fs.readFileSync(path.join(project, ".tern/executions", recovered.json.execution, "run.json"), "utf8"),
    );
    expect(runJson.recoveredFrom).toBe(failed.json.execution);
  });

  it("refuses an unknown execution, or one of another workflow, with exit 2", async () => {
    const unknown = await tern(project, ["run", "gates.ts", "recoverable", "--recover", "xnope"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/no local execution "xnope"/);
    const other = await ternJson(project, ["run", "gates.ts", "release", "--signal", "review=true"]);
    const mismatch = await tern(project, [
      "run",
      "gates.ts",
      "recoverable",
      "--recover",
      other.json.execution,
    ]);
    expect(mismatch.code).toBe(2);
    expect(mismatch.stderr).toMatch(/ran workflow "release"/);
  });
});
