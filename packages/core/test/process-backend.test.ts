/**
 * The `process` backend with real worker processes: a temporary project whose task
 * module is bundled with esbuild, run through `createEngine({ backend: "process" })`.
 *
 * Module identity: the test imports `@tern/core`, which resolves (workspace link)
 * to `packages/core/dist/index.js`. The temporary project links
 * `node_modules/@tern/core` to the same package, so when the test imports a bundle
 * its `@tern/core` import resolves to the same file, hence the same module
 * instance — the first test checks it. The workers load that dist too.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import { createRequire } from "node:module";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import * as core from "@tern/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const { bundleEntry, compile, createEngine, definedTasks, importBundle, isTaskDef } = core;
type LocalEngine = core.LocalEngine;
type AnyWorkflow = core.AnyWorkflow;
type AnyTask = core.AnyTask;
type BackendPlugin = core.BackendPlugin;
type Bundle = core.Bundle;

const CORE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const ZOD_DIR = path.dirname(createRequire(path.join(CORE_DIR, "package.json")).resolve("zod/package.json"));

const TASKS = `
import * as fs from "node:fs";
import * as path from "node:path";
import { file, t, task, workflow } from "@tern/core";
import { z } from "zod";

export const add = task(
  { name: "add", inputs: { a: z.number(), b: z.number() }, output: z.number() },
  async ({ a, b }) => a + b,
);
export const chain = workflow(
  { name: "chain", inputs: { x: z.number() }, output: z.number() },
  ({ x }) => {
    const one = add({ a: x, b: 1 });
    const two = add({ a: one, b: 10 });
    return add({ a: two, b: 100 });
  },
);

const Who = z.object({ i: z.number(), pid: z.number() });
export const whoami = task(
  { name: "whoami", inputs: { i: z.number() }, output: Who },
  async ({ i }) => ({ i, pid: process.pid }),
);
export const fan = workflow(
  { name: "fan", inputs: { n: z.number() }, output: z.array(Who) },
  () => Array.from({ length: 12 }, (_, i) => whoami({ i })),
);

export const boom = task(
  { name: "boom", inputs: {}, output: z.number(), retries: { user: 2, system: 0, backoff: { base: "1ms", max: "1ms" } } },
  async () => {
    throw new Error("kaboom from the task");
  },
);

export const quit = task(
  { name: "quit", inputs: {}, output: z.number(), retries: { user: 0, system: 0 } },
  async () => {
    process.exit(3);
  },
);

export const stray = task(
  { name: "stray", inputs: {}, output: z.number(), retries: 0 },
  async () => {
    setTimeout(() => {
      throw new Error("thrown from a timer");
    }, 1);
    return new Promise<number>(() => {});
  },
);

export const hang = task(
  { name: "hang", inputs: { ms: z.number() }, output: z.number(), timeout: "400ms", retries: 0 },
  async () => new Promise<number>(() => {}),
);
export const sleepy = task(
  { name: "sleepy", inputs: { i: z.number() }, output: z.number() },
  async () => new Promise<number>(() => {}),
);
export const twoSleepy = workflow(
  { name: "two_sleepy", inputs: {}, output: z.array(z.number()) },
  () => [sleepy({ i: 1 }), sleepy({ i: 2 })],
);

export const chatty = task(
  { name: "chatty", inputs: {}, output: z.string() },
  async (_inputs, ctx) => {
    console.log("hello from console.log");
    console.error("trouble on stderr");
    ctx.logger.info("via the logger", { k: 1 });
    process.stdout.write("no newline at the end");
    return "ok";
  },
);

export const big = task(
  { name: "big", inputs: { n: z.number() }, output: z.object({ text: z.string(), n: z.number() }) },
  async ({ n }) => ({ text: "x".repeat(n), n }),
);

export const writeFile = task(
  { name: "write_file", inputs: { text: z.string() }, output: t.file() },
  async ({ text }, ctx) => {
    const p = path.join(ctx.scratchDir, "data.txt");
    fs.writeFileSync(p, text);
    return file(p);
  },
);
export const readFile = task(
  { name: "read_file", inputs: { f: t.file() }, output: z.object({ text: z.string(), pid: z.number() }) },
  async ({ f }) => ({ text: fs.readFileSync(f.path!, "utf8"), pid: process.pid }),
);
export const fileFlow = workflow(
  { name: "file_flow", inputs: { text: z.string() }, output: z.object({ text: z.string(), pid: z.number() }) },
  ({ text }) => readFile({ f: writeFile({ text }) }),
);
`;

/** The same task name in two versions of the code, not exported: only the workflow is. */
const version = (v: string) => `
import { task, workflow } from "@tern/core";
import { z } from "zod";
const ver = task({ name: "ver", inputs: {}, output: z.string() }, async () => "${v}");
export const verFlow = workflow({ name: "ver_flow", inputs: {}, output: z.string() }, () => ver({}));
`;

let root: string;
let bundle: Bundle;
let mod: Record<string, unknown>;
let local: LocalEngine;

function setUpProject(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tern-process-"));
  fs.writeFileSync(
    path.join(dir, "package.json"),
    JSON.stringify({ name: "pb-fixture", type: "module", private: true }),
  );
  fs.mkdirSync(path.join(dir, "node_modules", "@tern"), { recursive: true });
  fs.symlinkSync(CORE_DIR, path.join(dir, "node_modules", "@tern", "core"), "dir");
  fs.symlinkSync(ZOD_DIR, path.join(dir, "node_modules", "zod"), "dir");
  fs.writeFileSync(path.join(dir, "tasks.ts"), TASKS);
  fs.writeFileSync(path.join(dir, "ver1.ts"), version("v1"));
  fs.writeFileSync(path.join(dir, "ver2.ts"), version("v2"));
  return dir;
}

function def<T extends AnyWorkflow | AnyTask>(name: string, from: Record<string, unknown> = mod): T {
  const d = from[name];
  if (!d) throw new Error(`the fixture exports no ${name}`);
  return d as T;
}

function processPlugin(l: LocalEngine): BackendPlugin & { pids: number[] } {
  return l.registry.get("process") as BackendPlugin & { pids: number[] };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Pids the engine recorded for a node's attempts (the plugin state of each launch). */
function launchPids(events: readonly core.ExecutionEvent[], node?: string): number[] {
  return events
    .filter((e) => e.phase === "initializing" && (!node || e.node === node))
    .map((e) => (e.pluginState as { pid: number }).pid);
}

/** The compiled spec of a fixture task (with its bundle). */
function taskSpec(name: string): core.TaskSpec {
  const compiled = compile(def(name), { bundle: bundle.digest, projectRoot: root });
  return Object.values(compiled.spec.tasks)[0];
}

/** A TaskContext as the engine would build it, for calling the plugin directly. */
function fakeContext(
  task: core.TaskSpec,
  inputs: Record<string, core.Json>,
  attemptId: string,
): core.TaskContext {
  const prefix = `executions/default/development/direct/${attemptId}`;
  const quiet = () => {};
  return {
    execution: { id: "direct", project: "default", domain: "development" },
    node: { id: attemptId },
    attempt: { id: attemptId, number: 1, interruptible: false },
    task,
    inputs,
    inputsUri: () => local.blobs.put(`${prefix}/1/inputs.json`, JSON.stringify(inputs)),
    outputPrefix: `${prefix}/1`,
    checkpointPrefix: prefix,
    blobs: local.blobs,
    logger: { debug: quiet, info: quiet, warn: quiet, error: quiet },
    workDir: root,
    signal: new AbortController().signal,
    notify: quiet,
  };
}

beforeAll(async () => {
  root = setUpProject();
  bundle = await bundleEntry(path.join(root, "tasks.ts"));
  mod = await importBundle(bundle.path);
  local = await createEngine({ backend: "process", workDir: root, workers: 2 });
});

afterAll(async () => {
  await local?.close();
  if (root) fs.rmSync(root, { recursive: true, force: true });
});

async function run(
  name: string,
  inputs: Record<string, unknown> = {},
  l: LocalEngine = local,
  b: Bundle = bundle,
  from = mod,
) {
  const compiled = compile(def(name, from), { bundle: b.digest, projectRoot: root });
  const handle = l.engine.start(compiled, inputs);
  return { handle, result: await handle.result };
}

/** Assert success, showing the error when there is one. */
function expectSucceeded(result: core.ExecutionResult): void {
  expect(result.error).toBeUndefined();
  expect(result.phase).toBe("succeeded");
}

describe("ProcessBackend", () => {
  it("shares one @tern/core instance between the test and the bundle", () => {
    // A task defined by the bundle registered in the same registry the test sees.
    expect(isTaskDef(mod.add)).toBe(true);
    expect(definedTasks("add")).toContain(mod.add);
    expect(bundle.path.startsWith(path.join(root, ".tern", "bundles"))).toBe(true);
  });

  it("runs a chain in worker processes", async () => {
    const { result } = await run("chain", { x: 1 });
    expectSucceeded(result);
    expect(result.outputs).toBe(112);
    expect(result.nodes.map((n) => n.phase)).toEqual(["succeeded", "succeeded", "succeeded"]);
  });

  it("runs a fan-out on a pool of reused workers", async () => {
    const first = await run("fan", { n: 12 });
    expectSucceeded(first.result);
    const outs = first.result.outputs as { i: number; pid: number }[];
    expect(outs.map((o) => o.i)).toEqual([...Array(12).keys()]);
    const second = await run("fan", { n: 12 });
    const pids = new Set([...outs, ...(second.result.outputs as { pid: number }[])].map((o) => o.pid));
    // 24 tasks on at most 2 workers, none of them the test process.
    expect(pids.size).toBe(2);
    expect(pids.has(process.pid)).toBe(false);
    for (const pid of pids) expect(processPlugin(local).pids).toContain(pid);
    expect(processPlugin(local).limits?.maxConcurrent).toBe(2);
  });

  it("reports a task's exception as a user error and spends its retries", async () => {
    const { result } = await run("boom");
    expect(result.phase).toBe("failed");
    const node = result.nodes[0];
    expect(node.attempts).toBe(3);
    expect(node.error?.kind).toBe("user");
    expect(node.error?.code).toBe("TERN_E_TASK_FAILED");
    expect(node.error?.message).toContain("kaboom from the task");
  });

  it("fails an attempt whose worker exits as a system error, and replaces the worker", async () => {
    const before = processPlugin(local).pids;
    const { handle, result } = await run("quit");
    expect(result.phase).toBe("failed");
    const err = result.nodes[0].error!;
    expect(err.kind).toBe("system");
    expect(err.code).toBe("TERN_E_SYSTEM");
    expect(err.message).toMatch(/exited with code 3/);
    const [dead] = launchPids(handle.events);
    expect(before).toContain(dead);
    expect(isAlive(dead)).toBe(false);
    // The pool still works, on a new process.
    const next = await run("whoami", { i: 7 });
    expect(next.result.outputs).toMatchObject({ i: 7 });
    expect((next.result.outputs as { pid: number }).pid).not.toBe(dead);
  });

  it("fails the attempt on an uncaught exception in task code, and retires that worker", async () => {
    const { handle, result } = await run("stray");
    expect(result.phase).toBe("failed");
    const err = result.nodes[0].error!;
    expect(err.kind).toBe("user");
    expect(err.message).toBe("uncaught exception in task code: thrown from a timer");
    const [pid] = launchPids(handle.events);
    // The worker leaves after reporting; the pool carries on without it.
    expect((await run("add", { a: 1, b: 1 })).result.outputs).toBe(2);
    expect(processPlugin(local).pids).not.toContain(pid);
  });

  it("kills the worker of an attempt that times out", async () => {
    const { handle, result } = await run("hang", { ms: 0 });
    expect(result.phase).toBe("failed");
    expect(result.nodes[0].error?.code).toBe("TERN_E_TIMEOUT");
    const [pid] = launchPids(handle.events);
    expect(pid).toBeGreaterThan(0);
    expect(isAlive(pid)).toBe(false);
    expect(processPlugin(local).pids).not.toContain(pid);
  });

  it("kills running work when an execution is aborted", async () => {
    const compiled = compile(def("twoSleepy"), { bundle: bundle.digest, projectRoot: root });
    const handle = local.engine.start(compiled, {});
    // Wait until both attempts are in a worker.
    while (launchPids(handle.events).length < 2) await new Promise((r) => setTimeout(r, 10));
    const pids = launchPids(handle.events);
    await handle.abort("test abort");
    const result = await handle.result;
    expect(result.phase).toBe("aborted");
    expect(result.nodes.map((n) => n.phase)).toEqual(["aborted", "aborted"]);
    for (const pid of pids) expect(isAlive(pid)).toBe(false);
    // And the pool comes back.
    expect((await run("add", { a: 2, b: 3 })).result.outputs).toBe(5);
  });

  it("puts a task's console output and logger lines in the attempt's log", async () => {
    const { handle, result } = await run("chatty");
    expect(result.outputs).toBe("ok");
    const node = result.nodes[0].id;
    const lines = handle.logs(node);
    expect(lines.some((l) => / INFO hello from console\.log$/.test(l))).toBe(true);
    expect(lines.some((l) => / ERROR trouble on stderr$/.test(l))).toBe(true);
    expect(lines.some((l) => / INFO via the logger \{"k":1\}$/.test(l))).toBe(true);
    expect(lines.some((l) => / INFO no newline at the end$/.test(l))).toBe(true);
    // The plugin serves the same lines after the attempt ended.
    const state =
      launchPids(handle.events).length && handle.events.find((e) => e.phase === "initializing")!.pluginState;
    const fromPlugin: string[] = [];
    for await (const l of processPlugin(local).logs!({} as core.TaskContext, state as core.Json))
      fromPlugin.push(l);
    expect(fromPlugin.map((l) => l.replace(/^\S+ /, ""))).toEqual(lines.map((l) => l.replace(/^\S+ /, "")));
  });

  it("returns outputs over 1 MiB through outputs.json", async () => {
    const n = 1.5 * 1024 * 1024;
    const { handle, result } = await run("big", { n });
    expectSucceeded(result);
    const out = result.outputs as { text: string; n: number };
    expect(out.n).toBe(n);
    expect(out.text.length).toBe(n);
    const node = result.nodes[0].id;
    const stored = local.blobs.uri(`executions/default/development/${handle.id}/${node}/1/outputs.json`);
    expect(await local.blobs.exists(stored)).toBe(true);
    // Small outputs come back inline. This pool is not durable (the default): it
    // keeps no journal (durable pools are tested in process-durability.test.ts).
    const small = await run("big", { n: 10 });
    const smallUri = local.blobs.uri(
      `executions/default/development/${small.handle.id}/${node}/1/outputs.json`,
    );
    expect((small.result.outputs as { text: string }).text).toBe("x".repeat(10));
    expect(await local.blobs.exists(smallUri)).toBe(false);
    expect(fs.existsSync(path.join(root, ".tern", "blobs", ".tern-journal"))).toBe(false);
  });

  it("passes a file produced in one worker to a task downstream", async () => {
    const { result } = await run("fileFlow", { text: "payload from a worker" });
    expectSucceeded(result);
    expect(result.outputs).toMatchObject({ text: "payload from a worker" });
    expect((result.outputs as { pid: number }).pid).not.toBe(process.pid);
  });

  it("refuses a task without a code bundle", async () => {
    const compiled = compile(def("chain"), { projectRoot: root });
    let err: unknown;
    try {
      local.engine.start(compiled, { x: 1 });
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: "TERN_E_CONFIG" });
    expect((err as Error).message).toMatch(/no code bundle/);
    expect((err as core.TernError).hint).toMatch(/bundleEntry/);
  });

  it("fails clearly when the bundle file is missing", async () => {
    const missing = `sha256:${"0".repeat(64)}`;
    const compiled = compile(def("chain"), { bundle: missing, projectRoot: root });
    const result = await local.engine.run(compiled, { x: 1 });
    expect(result.phase).toBe("failed");
    const err = result.nodes[0].error!;
    expect(err.code).toBe("TERN_E_FILE_NOT_FOUND");
    expect(err.message).toContain(missing);
    expect(err.message).toContain(path.join(root, ".tern", "bundles", `${"0".repeat(64)}.mjs`));
    expect(result.nodes[0].attempts).toBe(1);
  });

  it("runs the right version when one worker has loaded two bundles defining the same task", async () => {
    const one = await createEngine({ backend: "process", workDir: root, workers: 1 });
    try {
      const b1 = await bundleEntry(path.join(root, "ver1.ts"));
      const b2 = await bundleEntry(path.join(root, "ver2.ts"));
      const m1 = await importBundle(b1.path);
      const m2 = await importBundle(b2.path);
      const r1 = await run("verFlow", {}, one, b1, m1);
      expect(r1.result.outputs).toBe("v1");
      const r2 = await run("verFlow", {}, one, b2, m2);
      expect(r2.result.outputs).toBe("v2");
      expect(r2.result.nodes[0].attempts).toBe(1);
      const r3 = await run("verFlow", {}, one, b1, m1);
      expect(r3.result.outputs).toBe("v1");
    } finally {
      await one.close();
    }
  });

  it("launches idempotently and stops a running attempt that is finalized without abort", async () => {
    const plugin = processPlugin(local);
    const spec = taskSpec("sleepy");
    const ctx = fakeContext(spec, { i: 1 }, `finalize-${Date.now()}`);
    const state = (await plugin.launch(ctx)) as { attempt: string; pid: number };
    expect(await plugin.launch(ctx)).toEqual(state);
    expect(state.pid).toBeGreaterThan(0);
    expect((await plugin.check(ctx, state)).phase).toBe("running");
    await plugin.finalize!(ctx, state);
    expect(isAlive(state.pid)).toBe(false);
    // Abort after finalize is a no-op, and the attempt is now unknown: lost.
    await plugin.abort(ctx, state);
    const lost = await plugin.check(ctx, state);
    expect(lost.phase).toBe("failed");
    expect(lost.error).toMatchObject({ kind: "system", code: "TERN_E_SYSTEM" });
    expect(lost.error?.message).toMatch(/was lost/);
  });

  it("reports an attempt it does not know (an engine restart) as lost", async () => {
    const plugin = processPlugin(local);
    const ctx = fakeContext(taskSpec("add"), { a: 1, b: 2 }, "never-launched");
    const status = await plugin.check(ctx, { attempt: "never-launched", pid: 12345 });
    expect(status.phase).toBe("failed");
    expect(status.error?.kind).toBe("system");
    expect(status.error?.message).toMatch(/lost/);
  });

  it("aborts idempotently, and a later check says aborted", async () => {
    const plugin = processPlugin(local);
    const ctx = fakeContext(taskSpec("sleepy"), { i: 2 }, `abort-${Date.now()}`);
    const state = (await plugin.launch(ctx)) as { attempt: string; pid: number };
    await Promise.all([plugin.abort(ctx, state), plugin.abort(ctx, state)]);
    await plugin.abort(ctx, state);
    expect((await plugin.check(ctx, state)).phase).toBe("aborted");
    expect(isAlive(state.pid)).toBe(false);
    await plugin.finalize!(ctx, state);
  });

  it("kills its workers on close", async () => {
    const l = await createEngine({ backend: "process", workDir: root, workers: 2 });
    const { result } = await run("fan", { n: 12 }, l);
    expectSucceeded(result);
    const pids = processPlugin(l).pids;
    expect(pids.length).toBe(2);
    await l.close();
    for (const pid of pids) expect(isAlive(pid)).toBe(false);
  });
});

describe("tern-execute (one-shot, as in a pod)", () => {
  const script = path.join(CORE_DIR, "dist", "bin", "tern-execute.js");
  let store: string;
  let blobRoot: string;

  beforeAll(() => {
    store = fs.mkdtempSync(path.join(os.tmpdir(), "tern-oneshot-"));
    blobRoot = pathToFileURL(store).href;
    fs.mkdirSync(path.join(store, "in"), { recursive: true });
    fs.writeFileSync(path.join(store, "in", "add.json"), JSON.stringify({ a: 2, b: 40 }));
  });
  afterAll(() => fs.rmSync(store, { recursive: true, force: true }));

  const execute = (...args: string[]) =>
    spawnSync(process.execPath, [script, ...args], { cwd: root, encoding: "utf8" });
  const read = (key: string) => JSON.parse(fs.readFileSync(path.join(store, key), "utf8"));

  it("runs a task and writes outputs.json", () => {
    const inputs = pathToFileURL(path.join(store, "in", "add.json")).href;
    const r = execute(
      "--bundle",
      bundle.path,
      "--task",
      "add",
      "--inputs",
      inputs,
      "--output-prefix",
      "out/add",
      "--blob-root",
      blobRoot,
    );
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(read("out/add/outputs.json")).toBe(42);
  });

  it("takes the task from --task-spec, with a file: URL bundle and --flag=value", () => {
    const specFile = path.join(store, "in", "add.spec.json");
    fs.writeFileSync(specFile, JSON.stringify(taskSpec("add")));
    const r = execute(
      `--bundle=${pathToFileURL(bundle.path).href}`,
      `--task-spec=${specFile}`,
      `--inputs=${path.join(store, "in", "add.json")}`,
      "--output-prefix=out/spec",
      `--blob-root=${blobRoot}`,
      "--execution=x1",
      "--node=n0",
      "--attempt=2",
    );
    expect(r.status).toBe(0);
    expect(read("out/spec/outputs.json")).toBe(42);
  });

  it("writes error.json and exits 1 when the task fails", () => {
    const r = execute(
      "--bundle",
      bundle.path,
      "--task",
      "boom",
      "--output-prefix",
      "out/boom",
      "--blob-root",
      blobRoot,
    );
    expect(r.status).toBe(1);
    const doc = read("out/boom/error.json");
    expect(doc).toMatchObject({ code: "TERN_E_TASK_FAILED", kind: "user" });
    expect(doc.message).toContain("kaboom from the task");
    expect(r.stderr).toContain("kaboom from the task");
    expect(fs.existsSync(path.join(store, "out/boom/outputs.json"))).toBe(false);
  });

  it("reports a task the bundle does not define in error.json", () => {
    const r = execute(
      "--bundle",
      bundle.path,
      "--task",
      "nope",
      "--output-prefix",
      "out/nope",
      "--blob-root",
      blobRoot,
    );
    expect(r.status).toBe(1);
    expect(read("out/nope/error.json").message).toMatch(/does not define task "nope"/);
  });

  it("exits 2 with a short message on a wrong command line", () => {
    const missing = execute("--bundle", bundle.path, "--task", "add", "--output-prefix", "out/x");
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain("--blob-root is required");
    expect(missing.stderr).not.toMatch(/\n\s+at /);
    const unknown = execute("--bundle", bundle.path, "--tsk", "add");
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toContain("unknown option --tsk");
    const serve = execute("--serve");
    expect(serve.status).toBe(2);
    expect(serve.stderr).toContain("IPC");
  });
});
