/**
 * Restart safety of the `process` backend, through the plugin contract: a second
 * backend (as a restarted engine would have) launching an attempt id that already ran
 * adopts its recorded result, or the live worker still running it, or reports it lost
 * when that worker died without a result; and the journals of dead workers are settled
 * into `<outputPrefix>/outputs.json` / `error.json`. Workers run the built core
 * (`dist/bin/tern-execute.js`).
 */
import * as fs from "node:fs";
import { createRequire } from "node:module";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import * as core from "@tern/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const { bundleEntry, compile, createEngine, importBundle } = core;

const CORE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const ZOD_DIR = path.dirname(createRequire(path.join(CORE_DIR, "package.json")).resolve("zod/package.json"));

const TASKS = `
import { task } from "@tern/core";
import { z } from "zod";
export const nap = task({ name: "dur_nap", inputs: { ms: z.number(), v: z.number() }, output: z.number() }, async ({ ms, v }) => {
  await new Promise((r) => setTimeout(r, ms));
  return v;
});
export const fail = task({ name: "dur_fail", inputs: {}, output: z.number(), retries: 0 }, async () => {
  throw new Error("recorded failure");
});
`;

type ProcessPlugin = core.BackendPlugin & { pids: number[] };
type State = { attempt: string; pid: number | null; adopted?: string };

let root: string;
let bundle: core.Bundle;
let mod: Record<string, unknown>;
const engines: core.LocalEngine[] = [];

async function engine(): Promise<{ local: core.LocalEngine; plugin: ProcessPlugin }> {
  const local = await createEngine({ backend: "process", workDir: root, workers: 1, durable: true });
  engines.push(local);
  return { local, plugin: local.registry.get("process") as ProcessPlugin };
}

function spec(name: string): core.TaskSpec {
  return Object.values(
    compile(mod[name] as core.AnyTask, { bundle: bundle.digest, projectRoot: root }).spec.tasks,
  )[0];
}

let seq = 0;
function context(
  local: core.LocalEngine,
  task: core.TaskSpec,
  inputs: Record<string, core.Json>,
  id = `dur-${seq++}`,
) {
  const prefix = `executions/default/development/xdur/${id}`;
  let notify = () => {};
  const notified = () => new Promise<void>((r) => (notify = r));
  const quiet = () => {};
  const ctx: core.TaskContext = {
    execution: { id: "xdur", project: "default", domain: "development" },
    node: { id },
    attempt: { id: `xdur-${id}-1`, number: 1, interruptible: false },
    task,
    inputs,
    inputsUri: () => Promise.reject(new Error("not used")),
    outputPrefix: `${prefix}/1`,
    checkpointPrefix: prefix,
    blobs: local.blobs,
    logger: { debug: quiet, info: quiet, warn: quiet, error: quiet },
    workDir: root,
    signal: new AbortController().signal,
    notify: () => notify(),
  };
  return { ctx, notified };
}

async function until(
  plugin: ProcessPlugin,
  ctx: core.TaskContext,
  state: State,
  timeoutMs = 20_000,
): Promise<core.TaskStatus> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await plugin.check(ctx, state as unknown as core.Json);
    if (s.phase === "succeeded" || s.phase === "failed" || s.phase === "aborted") return s;
    if (Date.now() > deadline) throw new Error(`attempt ${state.attempt} did not end in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Wait until a worker has recorded the attempt in its journal. */
async function recorded(attempt: string): Promise<void> {
  const dir = path.join(root, ".tern", "blobs", ".tern-journal");
  for (let i = 0; i < 500; i++) {
    const names = fs.existsSync(dir) ? fs.readdirSync(dir) : [];
    if (names.some((f) => fs.readFileSync(path.join(dir, f), "utf8").includes(`{"s":"${attempt}"`))) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`attempt ${attempt} was never recorded`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "tern-pdur-"));
  fs.writeFileSync(
    path.join(root, "package.json"),
    JSON.stringify({ name: "pdur", type: "module", private: true }),
  );
  fs.mkdirSync(path.join(root, "node_modules", "@tern"), { recursive: true });
  fs.symlinkSync(CORE_DIR, path.join(root, "node_modules", "@tern", "core"), "dir");
  fs.symlinkSync(ZOD_DIR, path.join(root, "node_modules", "zod"), "dir");
  fs.writeFileSync(path.join(root, "tasks.ts"), TASKS);
  bundle = await bundleEntry(path.join(root, "tasks.ts"));
  mod = await importBundle(bundle.path);
});

afterAll(async () => {
  await Promise.all(engines.map((e) => e.close()));
  fs.rmSync(root, { recursive: true, force: true });
});

describe("process backend: adopting attempts after a restart", () => {
  it("completes an attempt that already ran from its recorded result, without running it", async () => {
    const a = await engine();
    const first = context(a.local, spec("nap"), { ms: 0, v: 41 });
    const s1 = (await a.plugin.launch(first.ctx)) as State;
    expect(await until(a.plugin, first.ctx, s1)).toMatchObject({ phase: "succeeded", outputs: 41 });

    const b = await engine();
    const again = context(b.local, spec("nap"), { ms: 0, v: 999 }, first.ctx.node.id);
    const s2 = (await b.plugin.launch(again.ctx)) as State;
    expect(s2).toEqual({ attempt: first.ctx.attempt.id, pid: null, adopted: "result" });
    // The recorded outputs, not a new run with the new inputs; and no worker was started.
    expect(await b.plugin.check(again.ctx, s2 as unknown as core.Json)).toMatchObject({
      phase: "succeeded",
      outputs: 41,
    });
    expect(b.plugin.pids).toEqual([]);

    const failed = context(a.local, spec("fail"), {});
    const s3 = (await a.plugin.launch(failed.ctx)) as State;
    expect((await until(a.plugin, failed.ctx, s3)).phase).toBe("failed");
    const s4 = (await b.plugin.launch(context(b.local, spec("fail"), {}, failed.ctx.node.id).ctx)) as State;
    expect(s4.adopted).toBe("result");
    const st = await b.plugin.check(failed.ctx, s4 as unknown as core.Json);
    expect(st.phase).toBe("failed");
    expect(st.error).toMatchObject({ kind: "user", message: "recorded failure" });
  });

  it("does not look for earlier work of an attempt marked firstLaunch: it runs it", async () => {
    const a = await engine();
    const first = context(a.local, spec("nap"), { ms: 0, v: 41 });
    const s1 = (await a.plugin.launch(first.ctx)) as State;
    expect(await until(a.plugin, first.ctx, s1)).toMatchObject({ phase: "succeeded", outputs: 41 });
    // The same attempt id, said to be launched for the first time (a new execution): the
    // recorded result is not looked for, the attempt runs with its own inputs.
    const b = await engine();
    const again = context(b.local, spec("nap"), { ms: 0, v: 7 }, first.ctx.node.id);
    const fresh = { ...again.ctx, attempt: { ...again.ctx.attempt, firstLaunch: true } };
    const s2 = (await b.plugin.launch(fresh)) as State;
    expect(s2.adopted).toBeUndefined();
    expect(await until(b.plugin, fresh, s2)).toMatchObject({ phase: "succeeded", outputs: 7 });
    expect(b.plugin.pids).toHaveLength(1);
  });

  it("re-attaches to an attempt still running in another engine's worker, and completes with its result", async () => {
    const a = await engine();
    const first = context(a.local, spec("nap"), { ms: 1500, v: 7 });
    const s1 = (await a.plugin.launch(first.ctx)) as State;
    expect(s1.pid).toBeGreaterThan(0);
    await recorded(first.ctx.attempt.id);

    const b = await engine();
    const again = context(b.local, spec("nap"), { ms: 1500, v: 7 }, first.ctx.node.id);
    const wake = again.notified();
    const s2 = (await b.plugin.launch(again.ctx)) as State;
    expect(s2).toMatchObject({ attempt: first.ctx.attempt.id, pid: s1.pid, adopted: "running" });
    expect((await b.plugin.check(again.ctx, s2 as unknown as core.Json)).phase).toBe("running");
    await wake; // the backend tells the engine when the adopted attempt ends
    expect(await b.plugin.check(again.ctx, s2 as unknown as core.Json)).toMatchObject({
      phase: "succeeded",
      outputs: 7,
    });
    expect(b.plugin.pids).toEqual([]);
  });

  it("reports an attempt lost when the worker that took it died without a result", async () => {
    const a = await engine();
    const first = context(a.local, spec("nap"), { ms: 60_000, v: 1 });
    const s1 = (await a.plugin.launch(first.ctx)) as State;
    // Once the worker recorded the attempt, kill it (as kill -9 of the whole process group would).
    await recorded(first.ctx.attempt.id);
    process.kill(s1.pid!, "SIGKILL");
    for (let i = 0; i < 200 && isAlive(s1.pid!); i++) await new Promise((r) => setTimeout(r, 20));

    const b = await engine();
    const again = context(b.local, spec("nap"), { ms: 60_000, v: 1 }, first.ctx.node.id);
    const s2 = (await b.plugin.launch(again.ctx)) as State;
    // Found through the dead worker's journal, or through the error.json that settling it wrote.
    expect(s2.adopted).toBeDefined();
    const st = await b.plugin.check(again.ctx, s2 as unknown as core.Json);
    expect(st.phase).toBe("failed");
    expect(st.error).toMatchObject({ kind: "system", code: "TERN_E_SYSTEM" });
    expect(st.error?.message).toMatch(/was lost/);
    expect(b.plugin.pids).toEqual([]);
  });

  it("settles the journals of workers that are gone into outputs.json and error.json", async () => {
    const a = await engine();
    const ok = context(a.local, spec("nap"), { ms: 0, v: 5 });
    const bad = context(a.local, spec("fail"), {});
    for (const c of [ok, bad]) await until(a.plugin, c.ctx, (await a.plugin.launch(c.ctx)) as State);
    const pid = a.plugin.pids[0];
    // The worker dies (as with its engine, under kill -9 of the process group).
    process.kill(pid, "SIGKILL");
    for (let i = 0; i < 200 && isAlive(pid); i++) await new Promise((r) => setTimeout(r, 20));
    expect(isAlive(pid)).toBe(false);

    // The next backend on this blob root settles what the dead worker recorded.
    const b = await engine();
    await b.plugin.launch(context(b.local, spec("nap"), { ms: 0, v: 0 }).ctx);
    const blobs = path.join(root, ".tern", "blobs");
    const out = path.join(blobs, ok.ctx.outputPrefix, "outputs.json");
    const err = path.join(blobs, bad.ctx.outputPrefix, "error.json");
    for (let i = 0; i < 250 && !(fs.existsSync(out) && fs.existsSync(err)); i++)
      await new Promise((r) => setTimeout(r, 20));
    expect(JSON.parse(fs.readFileSync(out, "utf8"))).toBe(5);
    expect(JSON.parse(fs.readFileSync(err, "utf8"))).toMatchObject({ message: "recorded failure" });
    for (
      let i = 0;
      i < 250 && fs.readdirSync(path.join(blobs, ".tern-journal")).some((f) => f.startsWith(`${pid}-`));
      i++
    )
      await new Promise((r) => setTimeout(r, 20));
    expect(fs.readdirSync(path.join(blobs, ".tern-journal")).some((f) => f.startsWith(`${pid}-`))).toBe(
      false,
    );
  });

  it("removes its workers' journals on close: the engine is done with those attempts", async () => {
    const a = await engine();
    const c = context(a.local, spec("nap"), { ms: 0, v: 3 });
    await until(a.plugin, c.ctx, (await a.plugin.launch(c.ctx)) as State);
    const pid = a.plugin.pids[0];
    const journals = path.join(root, ".tern", "blobs", ".tern-journal");
    expect(fs.readdirSync(journals).some((f) => f.startsWith(`${pid}-`))).toBe(true);
    await a.local.close();
    engines.splice(engines.indexOf(a.local), 1);
    expect(fs.readdirSync(journals).some((f) => f.startsWith(`${pid}-`))).toBe(false);
    expect(fs.existsSync(path.join(root, ".tern", "blobs", c.ctx.outputPrefix, "outputs.json"))).toBe(false);
  });
});
