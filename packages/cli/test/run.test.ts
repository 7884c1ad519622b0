/**
 * `tern run` end to end: the real binary in a temp project — outcomes, exit
 * statuses, the --json document, progress output, failure reports and the
 * execution records.
 */
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  makeProject,
  readEvents,
  removeProject,
  startTern,
  tern,
  ternBin,
  ternJson,
  waitFor,
} from "./helpers.js";

const ESC = String.fromCharCode(27);
let project: string;
beforeAll(() => {
  project = makeProject();
});
afterAll(() => removeProject(project));

describe("tern run", () => {
  it("runs a workflow and prints exactly one JSON document with --json", async () => {
    const r = await ternJson(project, ["run", "flows.ts", "hello", "--name", "Ada"]);
    expect(r.code).toBe(0);
    expect(Object.keys(r.json)).toEqual(["execution", "phase", "outputs", "error", "nodes"]);
    expect(r.json.execution).toMatch(/^x[a-z0-9]+$/);
    expect(r.json.phase).toBe("succeeded");
    expect(r.json.outputs).toBe("Hello, Ada!");
    expect(r.json.error).toBeNull();
    expect(r.json.nodes).toHaveLength(1);
    expect(Object.keys(r.json.nodes[0])).toEqual(["id", "task", "phase", "attempts", "cached", "durationMs"]);
    expect(r.json.nodes[0]).toMatchObject({
      id: "say_hello",
      task: "say_hello",
      phase: "succeeded",
      attempts: 1,
      cached: false,
    });
    expect(typeof r.json.nodes[0].durationMs).toBe("number");
  });

  it("runs a task by its name or its export name", async () => {
    const byName = await ternJson(project, ["run", "flows.ts", "say_hello", "--name", "Bo"]);
    expect(byName.json.outputs).toBe("Hello, Bo!");
    const byExport = await ternJson(project, ["run", "flows.ts", "sayHello", "--name", "Cy"]);
    expect(byExport.json.outputs).toBe("Hello, Cy!");
  });

  it("prints one progress line per phase change and a summary when stdout is not a terminal", async () => {
    const r = await tern(project, ["run", "flows.ts", "pipeline", "--n", "3"]);
    expect(r.code).toBe(0);
    const lines = r.stdout.split("\n");
    for (const node of ["square", "add_one"]) {
      for (const phase of ["queued", "running", "succeeded"]) {
        expect(
          lines.filter((l) => l.includes(`${phase} `) && l.includes(node)).length,
          `${node} ${phase}`,
        ).toBe(1);
      }
    }
    // Phase lines come in order for a node.
    const at = (s: string) => lines.findIndex((l) => l.includes(s));
    expect(at("queued       square")).toBeLessThan(at("succeeded    square"));
    expect(at("succeeded    square")).toBeLessThan(at("queued       add_one"));
    expect(r.stdout).toMatch(/✓ succeeded pipeline {2}execution x[a-z0-9]+ {2}in /);
    expect(r.stdout).toContain("outputs: 10");
    expect(r.stdout).not.toContain("\x1b[");
  });

  it("records the execution: events with strictly increasing seq, spec, inputs, result and logs", async () => {
    const r = await ternJson(project, ["run", "flows.ts", "hello", "--name", "Ada"]);
    const dir = path.join(project, ".tern/executions", r.json.execution);
    const events = readEvents(project, r.json.execution);
    expect(events.length).toBeGreaterThanOrEqual(4);
    expect(events[0].seq).toBe(1);
    for (let i = 1; i < events.length; i++) expect(events[i].seq).toBeGreaterThan(events[i - 1].seq);
    expect(events.every((e) => e.execution === r.json.execution)).toBe(true);
    expect(events.at(-1)).toMatchObject({ phase: "succeeded", outputs: "Hello, Ada!" });
    const spec = JSON.parse(fs.readFileSync(path.join(dir, "spec.json"), "utf8"));
    expect(spec.workflow.id.name).toBe("hello");
    expect(JSON.parse(fs.readFileSync(path.join(dir, "inputs.json"), "utf8"))).toEqual({ name: "Ada" });
    const result = JSON.parse(fs.readFileSync(path.join(dir, "result.json"), "utf8"));
    expect(result).toMatchObject({ id: r.json.execution, phase: "succeeded", outputs: "Hello, Ada!" });
    const run = JSON.parse(fs.readFileSync(path.join(dir, "run.json"), "utf8"));
    expect(run).toMatchObject({ file: "flows.ts", target: "hello", kind: "workflow", backend: "inline" });
    expect(run.bundle).toMatch(/^sha256:/);
    expect(fs.readFileSync(path.join(dir, "logs/say_hello.1.log"), "utf8")).toContain("greeting Ada");
  });

  it("names nested nodes by their qualified ids in plain progress", async () => {
    const r = await tern(project, ["run", "flows.ts", "nested", "--x", "3", "--no-cache"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/succeeded\s+inner\/square\s+square/);
    expect(r.stdout).toMatch(/succeeded\s+inner\/add_one\s+add_one/);
    expect(r.stdout).toMatch(/succeeded\s+inner\s+workflow\(inner\)/);
    expect(r.stdout).toContain("outputs: 10");
  });

  it("finishes the run when the reader of stdout goes away (tern run … | head)", async () => {
    const run = startTern(project, ["run", "flows.ts", "pipeline", "--n", "9", "--no-cache"]);
    run.child.stdout!.once("data", () => run.child.stdout!.destroy());
    const code = await run.exited;
    expect(code).toBe(0);
    expect(run.output().stderr).not.toContain("EPIPE");
  });

  it("keeps stdout for the JSON document even when a task writes to stdout", async () => {
    const r = await ternJson(project, ["run", "flows.ts", "chatty"]);
    expect(r.json.outputs).toBe("ok");
    expect(r.stderr).toContain("a task writing to stdout");
  });

  it("reports a failing task: exit 1, the node, its error and the tail of its log", async () => {
    const r = await tern(project, ["run", "flows.ts", "failing"]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("✗ failed");
    expect(r.stderr).toContain("error[TERN_E_TASK_FAILED]: boom at step 25");
    expect(r.stderr).toContain("node: explode (task explode)");
    // The last 20 of 25 log lines.
    expect(r.stderr).toContain("step 25 done");
    expect(r.stderr).toContain("step 6 done");
    expect(r.stderr).not.toContain("step 5 done");
    expect(r.stderr).toContain("last 20 of 25 lines");
    // The user's own frames, not Tern's or node's.
    expect(r.stderr).toMatch(/at failAt flows\.ts:\d+:\d+/);
    expect(r.stderr).not.toMatch(/packages\/core|node:internal|node_modules/);

    const j = await ternJson(project, ["run", "flows.ts", "failing", "--steps", "2"]);
    expect(j.code).toBe(1);
    expect(j.json.phase).toBe("failed");
    expect(j.json.outputs).toBeNull();
    expect(j.json.error).toEqual({
      kind: "user",
      message: "boom at step 2",
      node: "explode",
      code: "TERN_E_TASK_FAILED",
    });
    expect(j.json.nodes[0]).toMatchObject({ id: "explode", phase: "failed", attempts: 1 });
  });

  it("refuses a miswiring forced through `as any` with exit 2 and TERN_E_TYPE_MISMATCH", async () => {
    const r = await tern(project, ["run", "flows.ts", "miswired"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /^error\[TERN_E_TYPE_MISMATCH\]: workflow "miswired", node "length-2", input "text"/,
    );
    expect(r.stderr).toContain("hint:");
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.stdout).toBe("");

    const j = await ternJson(project, ["run", "flows.ts", "miswired"]);
    expect(j.code).toBe(2);
    expect(j.json).toEqual({
      execution: null,
      phase: "failed",
      outputs: null,
      error: {
        kind: "user",
        code: "TERN_E_TYPE_MISMATCH",
        message: expect.stringContaining('input "text"'),
        node: null,
      },
      nodes: [],
    });
  });

  it("exits 2 with TERN_E_FILE_NOT_FOUND for a missing file", async () => {
    const r = await tern(project, ["run", "nope.ts", "hello"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("error[TERN_E_FILE_NOT_FOUND]: file not found: nope.ts");
  });

  it("exits 2 with TERN_E_EXPORT_NOT_FOUND listing what the file defines", async () => {
    const r = await tern(project, ["run", "flows.ts", "helo"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      'error[TERN_E_EXPORT_NOT_FOUND]: flows.ts exports no workflow or task named "helo"',
    );
    expect(r.stderr).toMatch(/workflows: .*\bhello\b/);
    expect(r.stderr).toMatch(/tasks: .*say_hello \(export sayHello\)/);
    const j = await ternJson(project, ["run", "flows.ts", "helo"]);
    expect(j.json.error.code).toBe("TERN_E_EXPORT_NOT_FOUND");
    expect(j.json.execution).toBeNull();
  });

  it("aborts cleanly on Ctrl-C (SIGINT): exit 1, phase aborted", async () => {
    const run = startTern(project, ["run", "flows.ts", "sleepy"]);
    await waitFor(() => /running\s+nap/.test(run.output().stdout), "the nap task to run");
    run.child.kill("SIGINT");
    const code = await run.exited;
    const out = run.output();
    expect(code).toBe(1);
    expect(out.stdout).toMatch(/aborted\s+nap/);
    expect(out.stdout).toContain("■ aborted sleepy");
    expect(out.stderr).toContain("error[TERN_E_ABORTED]: interrupted (SIGINT)");
  });

  it("runs tasks in worker processes with --backend process", async () => {
    const ok = await ternJson(project, [
      "run",
      "flows.ts",
      "pipeline",
      "--n",
      "5",
      "--backend",
      "process",
      "--workers",
      "1",
      "--no-cache",
    ]);
    expect(ok.code).toBe(0);
    expect(ok.json.outputs).toBe(26);
    const bad = await tern(project, [
      "run",
      "flows.ts",
      "failing",
      "--steps",
      "3",
      "--backend",
      "process",
      "--workers",
      "1",
    ]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("error[TERN_E_TASK_FAILED]: boom at step 3");
    expect(bad.stderr).toContain("step 3 done");
  });

  it("draws a live tree in place when stdout is a terminal", async () => {
    const r = await inTerminal(["run", "flows.ts", "pipeline", "--n", "2"]);
    expect(r.code).toBe(0);
    expect(r.out).toContain(`${ESC}[?25l`); // cursor hidden while drawing…
    expect(r.out).toContain(`${ESC}[?25h`); // …and given back
    expect(r.out).toMatch(new RegExp(`${ESC}\\[\\d+A`)); // redrawn in place
    expect(r.out).toMatch(/├─ ✓ succeeded\s+square\s+square\s+\S+/);
    expect(r.out).toMatch(/└─ ✓ succeeded\s+add_one\s+add_one/);
    expect(r.out).toContain("outputs: 5");
  });

  it("nests subworkflow nodes in the tree and shows map progress", async () => {
    const r = await inTerminal(["run", "flows.ts", "nested", "--no-cache"]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/└─ ✓ succeeded\s+inner\s+workflow\(inner\)/);
    expect(r.out).toMatch(/ {3}├─ ✓ succeeded\s+square\s+square/);
    expect(r.out).toMatch(/ {3}└─ ✓ succeeded\s+add_one\s+add_one/);
    const m = await inTerminal(["run", "flows.ts", "outer"]);
    expect(m.code).toBe(0);
    expect(m.out).toMatch(/└─ ✓ succeeded\s+\S+\s+map\(add_one\)\s+3\/3 done/);
    expect(m.out).toContain("outputs:");
  });

  it("prints a task's own terminal output above the tree, not through it", async () => {
    const r = await inTerminal(["run", "flows.ts", "chatty"]);
    expect(r.code).toBe(0);
    // The frame is erased (up + clear to end of screen) right before the task's line…
    expect(r.out).toMatch(new RegExp(`${ESC}\\[\\d+A${ESC}\\[Ja task writing to stdout`));
    // …and the final frame is drawn after it.
    expect(r.out.lastIndexOf("└─ ✓ succeeded")).toBeGreaterThan(r.out.indexOf("a task writing to stdout"));
  });
});

/** Run the CLI on a pseudo-terminal (`script`), as from an interactive shell. */
function inTerminal(args: string[]): Promise<{ code: number; out: string }> {
  const cmd = `stty cols 100 rows 30; ${[process.execPath, ternBin, ...args].map((a) => JSON.stringify(a)).join(" ")}`;
  return new Promise((resolve) => {
    execFile(
      "script",
      ["-qec", cmd, "/dev/null"],
      { cwd: project, env: { ...process.env, NO_COLOR: "1" } },
      (err, stdout) => resolve({ code: err ? Number(err.code) : 0, out: String(stdout) }),
    );
  });
}
