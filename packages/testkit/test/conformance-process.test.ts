/**
 * The conformance suite proven against core's `process` backend (warm worker processes):
 * a temporary project whose task module is bundled with esbuild and shares the test's
 * `@tern/core` instance (node_modules symlinks, as in core's process-backend test).
 *
 * "External jobs" are counted from marker files the task body appends to (one line per
 * run of an attempt); the work is active while its worker process lives.
 */
import * as fs from "node:fs";
import { createRequire } from "node:module";
import * as os from "node:os";
import * as path from "node:path";
import {
  type AnyTask,
  type BackendPlugin,
  bundleEntry,
  compile,
  createEngine,
  importBundle,
  type Json,
  type TaskSpec,
} from "@tern/core";
import { testBackendPlugin } from "../src/index.js";

const CORE_DIR = path.dirname(createRequire(import.meta.url).resolve("@tern/core/package.json"));
const ZOD_DIR = path.dirname(createRequire(path.join(CORE_DIR, "package.json")).resolve("zod/package.json"));

const TASKS = `
import * as fs from "node:fs";
import * as path from "node:path";
import { task } from "@tern/core";
import { z } from "zod";

const mark = (dir: string, ctx: { execution: { id: string }; node: { id: string }; attempt: number }) =>
  fs.appendFileSync(path.join(dir, ctx.execution.id + "-" + ctx.node.id + "-" + ctx.attempt), process.pid + "\\n");

export const double = task(
  { name: "conf_double", inputs: { x: z.number(), marks: z.string() }, output: z.object({ y: z.number() }) },
  async ({ x, marks }, ctx) => {
    mark(marks, ctx);
    console.log("conformance: doubling " + x);
    await new Promise((r) => setTimeout(r, 300));
    return { y: x * 2 };
  },
);
export const fail = task({ name: "conf_fail", inputs: {}, output: z.number() }, async () => {
  throw new Error("conformance: user code failed");
});
export const hang = task({ name: "conf_hang", inputs: {}, output: z.number() }, async () => new Promise<number>(() => {}));
`;

// The project is built before the suite is registered: scenarios need compiled task specs.
const root = fs.mkdtempSync(path.join(os.tmpdir(), "tern-conf-process-"));
const marks = path.join(root, "marks");
fs.mkdirSync(marks);
fs.writeFileSync(
  path.join(root, "package.json"),
  JSON.stringify({ name: "conf-process", type: "module", private: true }),
);
fs.mkdirSync(path.join(root, "node_modules", "@tern"), { recursive: true });
fs.symlinkSync(CORE_DIR, path.join(root, "node_modules", "@tern", "core"), "dir");
fs.symlinkSync(ZOD_DIR, path.join(root, "node_modules", "zod"), "dir");
fs.writeFileSync(path.join(root, "tasks.ts"), TASKS);
const bundle = await bundleEntry(path.join(root, "tasks.ts"));
const mod = await importBundle(bundle.path);

function spec(name: string): TaskSpec {
  const compiled = compile(mod[name] as AnyTask, { bundle: bundle.digest, projectRoot: root });
  return Object.values(compiled.spec.tasks)[0];
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

type ProcessState = { attempt: string; pid: number | null };

testBackendPlugin<{ root: string }, ProcessState>({
  name: "process",
  fake: {
    start: () => ({ root }),
    stop: () => fs.rmSync(root, { recursive: true, force: true }),
    workDir: (f) => f.root,
    countExternal: (_f, ctx) => {
      const file = path.join(marks, `${ctx.execution.id}-${ctx.node.id}-${ctx.attempt.number}`);
      return fs.existsSync(file) ? fs.readFileSync(file, "utf8").trim().split("\n").length : 0;
    },
    isActive: (_f, _ctx, state) => state.pid !== null && alive(state.pid),
  },
  async create() {
    const local = await createEngine({ backend: "process", workDir: root, workers: 2, catalog: false });
    return local.registry.get("process") as BackendPlugin<ProcessState>;
  },
  scenarios: {
    success: { task: spec("double"), inputs: { x: 21, marks } as Record<string, Json>, outputs: { y: 42 } },
    userFailure: { task: spec("fail"), message: "conformance: user code failed" },
    systemFailure: {
      task: spec("hang"),
      induce: (_f, _ctx, state) => {
        process.kill(state.pid!, "SIGKILL");
      },
    },
    longRunning: { task: spec("hang") },
    logs: { task: spec("double"), inputs: { x: 1, marks }, lines: ["conformance: doubling 1"] },
  },
  reattach: "reports-lost",
  skip: { preemption: "worker processes on this machine are never preempted" },
});
