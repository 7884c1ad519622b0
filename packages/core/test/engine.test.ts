import "reflect-metadata";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import {
  type AnyTask,
  after,
  BACKEND_PLUGIN,
  type BackendPlugin,
  BackendRegistry,
  backoffDelay,
  CONTRACT_VERSION,
  compile,
  createEngine,
  createToken,
  definePlugin,
  type ExecutionEvent,
  type LocalEngine,
  provide,
  type RetryOptions,
  type TaskContext,
  type TaskStatus,
  TernError,
  task,
  workflow,
} from "@tern/core";
import { inject, injectable } from "tsyringe";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { z } from "zod";
import {
  cleanupTempDirs,
  EventWatcher,
  executionPhases,
  FakePlugin,
  fakeEngine,
  nodePhases,
  type Step,
  tempDir,
} from "./helpers.js";

afterAll(cleanupTempDirs);

const engines: LocalEngine[] = [];
afterEach(async () => {
  await Promise.all(engines.splice(0).map((e) => e.close()));
});

async function inlineEngine(opts: Parameters<typeof createEngine>[0] = {}): Promise<LocalEngine> {
  const local = await createEngine({ workDir: tempDir(), catalog: false, random: () => 0.5, ...opts });
  engines.push(local);
  return local;
}

/** A task run by the fake plugin (its body never runs). */
function fakeTask(
  name: string,
  opts: {
    retries?: number | RetryOptions;
    interruptible?: boolean;
    timeout?: string;
    output?: z.ZodType;
  } = {},
) {
  return task(
    {
      name,
      type: "fake",
      inputs: { after: z.unknown().optional() },
      output: "output" in opts ? opts.output : z.unknown(),
      retries: opts.retries ?? { user: 0, system: 0 },
      ...(opts.interruptible !== undefined ? { interruptible: opts.interruptible } : {}),
      ...(opts.timeout ? { timeout: opts.timeout as never } : {}),
    },
    async () => {},
  ) as AnyTask;
}

/** A fake plugin driven by a per-node list of steps (one per attempt; the last one repeats). */
function scripted(steps: Record<string, Step[]>, limits?: FakePlugin["limits"]): FakePlugin {
  return new FakePlugin(
    (node, attempt) => {
      const list = steps[node] ?? [{ do: "succeed" }];
      return list[Math.min(attempt, list.length) - 1];
    },
    "fake",
    ["fake"],
    limits,
  );
}

const ok: Step = { do: "succeed" };
const fastBackoff = { base: 1, max: 1, factor: 1, jitter: 0 };

describe("engine: events", () => {
  it("numbers events from 1 without gaps and walks each node through queued → initializing → running → succeeded", async () => {
    const plugin = scripted({ a: [{ do: "succeed", outputs: 1 }], b: [{ do: "succeed", outputs: 2 }] });
    const engine = fakeEngine([plugin]);
    const A = fakeTask("ev_a");
    const B = fakeTask("ev_b");
    const wf = workflow({ name: "ev_wf", output: z.unknown() }, () => {
      const a = A({}, { id: "a" });
      return B({ after: a }, { id: "b" });
    });
    const seen: ExecutionEvent[] = [];
    const handle = engine.start(compile(wf), {}, { onEvent: (e) => seen.push(e) });
    const result = await handle.result;
    expect(result.phase).toBe("succeeded");
    expect(result.outputs).toBe(2);
    expect(seen).toEqual(handle.events);
    expect(seen.map((e) => e.seq)).toEqual(seen.map((_, i) => i + 1));
    for (let i = 1; i < seen.length; i++) expect(seen[i].at).toBeGreaterThanOrEqual(seen[i - 1].at);
    expect(new Set(seen.map((e) => e.execution))).toEqual(new Set([handle.id]));
    expect(executionPhases(seen)).toEqual(["running", "succeeded"]);
    for (const n of ["a", "b"])
      expect(nodePhases(seen, n)).toEqual(["queued", "initializing", "running", "succeeded"]);
    // b starts only after a succeeded.
    const idx = (node: string, phase: string) => seen.findIndex((e) => e.node === node && e.phase === phase);
    expect(idx("b", "queued")).toBeGreaterThan(idx("a", "succeeded"));
    // The launch event records the plugin and its state (to re-attach after a restart).
    const init = seen.find((e) => e.node === "a" && e.phase === "initializing")!;
    expect(init).toMatchObject({ plugin: "fake", attempt: 1, pluginState: { node: "a", n: 1 } });
    expect(seen.find((e) => e.node === "a" && e.phase === "succeeded")!.outputs).toBe(1);
    expect(seen.at(-1)).toMatchObject({ phase: "succeeded", outputs: 2 });
    expect("node" in seen.at(-1)!).toBe(false);
    expect(result.nodes.map((n) => [n.id, n.phase, n.attempts])).toEqual([
      ["a", "succeeded", 1],
      ["b", "succeeded", 1],
    ]);
  });

  it("a retried node goes through retrying and a second initializing", async () => {
    const plugin = scripted({ n: [{ do: "fail", kind: "user" }, ok] });
    const engine = fakeEngine([plugin]);
    const N = fakeTask("ev_retry", { retries: { user: 1, backoff: fastBackoff } });
    const r = await engine.run(compile(workflow({ name: "ev_retry_wf" }, () => N({}, { id: "n" }))));
    expect(r.phase).toBe("succeeded");
    const h = r.nodes[0];
    expect(h.attempts).toBe(2);
    expect(plugin.ops("launch").map((c) => c.attempt)).toEqual([1, 2]);
  });

  it("events of a retried node carry attempt numbers", async () => {
    const plugin = scripted({ n: [{ do: "fail", kind: "user" }, ok] });
    const engine = fakeEngine([plugin]);
    const N = fakeTask("ev_retry2", { retries: { user: 1, backoff: fastBackoff } });
    const h = engine.start(compile(workflow({ name: "ev_retry2_wf" }, () => N({}, { id: "n" }))), {});
    await h.result;
    const ev = h.events.filter((e) => e.node === "n").map((e) => `${e.phase}@${e.attempt ?? "-"}`);
    expect(ev).toEqual([
      "queued@-",
      "initializing@1",
      "retrying@1",
      "initializing@2",
      "running@2",
      "succeeded@2",
    ]);
  });

  it("emits exactly one terminal execution event, last", async () => {
    const plugin = scripted({ a: [{ do: "hang" }], b: [{ do: "hang" }] });
    const engine = fakeEngine([plugin]);
    const A = fakeTask("ev_term_a");
    const B = fakeTask("ev_term_b");
    const h = engine.start(
      compile(
        workflow({ name: "ev_term" }, () => {
          A({}, { id: "a" });
          B({}, { id: "b" });
        }),
      ),
      {},
    );
    await Promise.all([plugin.launched("a"), plugin.launched("b")]);
    await h.abort();
    await new Promise((r) => setTimeout(r, 20));
    expect(executionPhases(h.events)).toEqual(["running", "aborted"]);
    expect(h.events.at(-1)!.phase).toBe("aborted");
  });

  it("a recovered execution reuses outputs of succeeded nodes without launching them", async () => {
    const plugin = scripted({ b: [{ do: "succeed", outputs: "b" }] });
    const engine = fakeEngine([plugin]);
    const A = fakeTask("ev_rec_a");
    const B = fakeTask("ev_rec_b");
    const wf = workflow({ name: "ev_rec", output: z.unknown() }, () =>
      B({ after: A({}, { id: "a" }) }, { id: "b" }),
    );
    const h = engine.start(
      compile(wf),
      {},
      { reuse: (id) => (id === "a" ? { outputs: "from before" } : undefined) },
    );
    const r = await h.result;
    expect(r.phase).toBe("succeeded");
    expect(plugin.ops("launch").map((c) => c.node)).toEqual(["b"]);
    expect(r.nodes.find((n) => n.id === "a")).toMatchObject({
      phase: "succeeded",
      recovered: true,
      attempts: 0,
    });
    expect(h.events.find((e) => e.node === "a")).toMatchObject({
      phase: "succeeded",
      recovered: true,
      outputs: "from before",
    });
  });
});

describe("engine: concurrency", () => {
  it("runs independent nodes concurrently (both reach a shared barrier)", async () => {
    let arrived = 0;
    let open!: () => void;
    const barrier = new Promise<void>((r) => (open = r));
    const guard = () =>
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error("the other node never started: not concurrent")), 5000).unref(),
      );
    const meet = task({ name: "cc_meet", inputs: { i: z.number() }, output: z.number() }, async ({ i }) => {
      if (++arrived === 2) open();
      await Promise.race([barrier, guard()]);
      return i;
    });
    const local = await inlineEngine();
    const r = await local.run(
      workflow({ name: "cc_barrier", output: z.array(z.number()) }, () => [meet({ i: 1 }), meet({ i: 2 })]),
    );
    expect(r.phase).toBe("succeeded");
    expect(r.outputs).toEqual([1, 2]);
  });

  it.each([
    ["the workflow's maxParallelism", 2, undefined, 2],
    ["a start option overriding it", 2, 1, 1],
    ["no limit", undefined, undefined, 6],
  ])("honours %s", async (_what, wfLimit, startLimit, expected) => {
    let active = 0;
    let max = 0;
    const body = task({ name: "cc_count", inputs: { i: z.number() } }, async () => {
      active++;
      max = Math.max(max, active);
      await new Promise((r) => setTimeout(r, 5));
      active--;
    });
    const wf = workflow({ name: "cc_par", ...(wfLimit ? { maxParallelism: wfLimit } : {}) }, () => {
      for (let i = 0; i < 6; i++) body({ i });
    });
    const local = await inlineEngine();
    const r = await local.run(wf, {}, startLimit ? { maxParallelism: startLimit } : {});
    expect(r.phase).toBe("succeeded");
    expect(max).toBe(expected);
  });

  it("honours a plugin's limits.maxConcurrent and reports waiting-for-resources", async () => {
    const plugin = scripted(
      {
        a: [{ do: "succeed", runningChecks: 2 }],
        b: [{ do: "succeed", runningChecks: 2 }],
        c: [{ do: "succeed", runningChecks: 2 }],
      },
      { maxConcurrent: 1 },
    );
    const engine = fakeEngine([plugin]);
    const T = fakeTask("cc_limited");
    const h = engine.start(
      compile(
        workflow({ name: "cc_limits" }, () => {
          for (const id of ["a", "b", "c"]) T({}, { id });
        }),
      ),
      {},
    );
    const r = await h.result;
    expect(r.phase).toBe("succeeded");
    expect(plugin.maxInFlight).toBe(1);
    expect(plugin.ops("launch")).toHaveLength(3);
    expect(nodePhases(h.events, "a")).toEqual(["queued", "initializing", "running", "succeeded"]);
    for (const n of ["b", "c"]) {
      expect(nodePhases(h.events, n)).toEqual([
        "queued",
        "waiting-for-resources",
        "initializing",
        "running",
        "succeeded",
      ]);
    }
  });
});

describe("engine: retries", () => {
  type Outcome = "user" | "system" | "preempt" | "launch-throws" | "ok";
  const step = (o: Outcome): Step =>
    o === "ok"
      ? ok
      : o === "preempt"
        ? { do: "preempt" }
        : o === "launch-throws"
          ? { do: "launch-throws" }
          : { do: "fail", kind: o };
  const cases: {
    name: string;
    retries: { user: number; system: number };
    script: Outcome[];
    phase: string;
    attempts: number;
    kind?: string;
  }[] = [
    {
      name: "user errors spend the user budget",
      retries: { user: 1, system: 5 },
      script: ["user", "user", "ok"],
      phase: "failed",
      attempts: 2,
      kind: "user",
    },
    {
      name: "system errors spend the system budget",
      retries: { user: 5, system: 2 },
      script: ["system", "system", "system", "ok"],
      phase: "failed",
      attempts: 3,
      kind: "system",
    },
    {
      name: "mixed errors within both budgets succeed",
      retries: { user: 1, system: 2 },
      script: ["system", "user", "system", "ok"],
      phase: "succeeded",
      attempts: 4,
    },
    {
      name: "mixed: the user budget runs out first",
      retries: { user: 1, system: 2 },
      script: ["user", "system", "user", "ok"],
      phase: "failed",
      attempts: 3,
      kind: "user",
    },
    {
      name: "mixed: the system budget runs out first",
      retries: { user: 1, system: 2 },
      script: ["system", "user", "system", "system", "ok"],
      phase: "failed",
      attempts: 4,
      kind: "system",
    },
    {
      name: "no budget: the first error fails",
      retries: { user: 0, system: 0 },
      script: ["system", "ok"],
      phase: "failed",
      attempts: 1,
      kind: "system",
    },
    {
      name: "preemption spends the system budget",
      retries: { user: 0, system: 1 },
      script: ["preempt", "preempt", "ok"],
      phase: "failed",
      attempts: 2,
      kind: "system",
    },
    {
      name: "preemption is retried like a system error",
      retries: { user: 0, system: 1 },
      script: ["preempt", "ok"],
      phase: "succeeded",
      attempts: 2,
    },
    {
      name: "a launch that throws is a system error",
      retries: { user: 0, system: 1 },
      script: ["launch-throws", "ok"],
      phase: "succeeded",
      attempts: 2,
    },
  ];

  it.each(cases)("$name", async ({ retries, script, phase, attempts, kind }) => {
    const plugin = scripted({ n: script.map(step) });
    const engine = fakeEngine([plugin]);
    const N = fakeTask("rt_node", { retries: { ...retries, backoff: fastBackoff } });
    const h = engine.start(compile(workflow({ name: "rt_wf" }, () => N({}, { id: "n" }))), {});
    const r = await h.result;
    expect(r.phase).toBe(phase);
    expect(r.nodes[0].attempts).toBe(attempts);
    expect(plugin.ops("launch")).toHaveLength(attempts);
    if (kind) {
      expect(r.error).toMatchObject({ kind, node: "n" });
      expect(r.nodes[0].error?.kind).toBe(kind);
    }
    // Every retry is announced with the error that caused it.
    const retrying = h.events.filter((e) => e.phase === "retrying");
    expect(retrying).toHaveLength(phase === "succeeded" ? attempts - 1 : attempts - 1);
    expect(retrying.map((e) => e.error?.kind)).toEqual(
      script.slice(0, retrying.length).map((o) => (o === "user" ? "user" : "system")),
    );
  });

  it("the last system attempt of an interruptible task runs non-interruptible", async () => {
    const plugin = scripted({ n: [{ do: "preempt" }, { do: "preempt" }, ok] });
    const engine = fakeEngine([plugin]);
    const N = fakeTask("rt_int", {
      interruptible: true,
      retries: { user: 0, system: 2, backoff: fastBackoff },
    });
    const r = await engine.run(compile(workflow({ name: "rt_int_wf" }, () => N({}, { id: "n" }))));
    expect(r.phase).toBe("succeeded");
    expect(plugin.ops("launch").map((c) => c.interruptible)).toEqual([true, true, false]);
  });

  it("user errors do not use up interruptible attempts", async () => {
    const plugin = scripted({ n: [{ do: "fail", kind: "user" }, { do: "preempt" }, ok] });
    const engine = fakeEngine([plugin]);
    const N = fakeTask("rt_int2", {
      interruptible: true,
      retries: { user: 1, system: 1, backoff: fastBackoff },
    });
    const r = await engine.run(compile(workflow({ name: "rt_int2_wf" }, () => N({}, { id: "n" }))));
    expect(r.phase).toBe("succeeded");
    expect(plugin.ops("launch").map((c) => c.interruptible)).toEqual([true, true, false]);
  });

  it("a task that is not interruptible never runs interruptible", async () => {
    const plugin = scripted({ n: [{ do: "preempt" }, ok] });
    const engine = fakeEngine([plugin]);
    const N = fakeTask("rt_noint", { retries: { user: 0, system: 2, backoff: fastBackoff } });
    await engine.run(compile(workflow({ name: "rt_noint_wf" }, () => N({}, { id: "n" }))));
    expect(plugin.ops("launch").map((c) => c.interruptible)).toEqual([false, false]);
  });

  it("backoff delays follow base, factor and max with jitter, read from retrying events", async () => {
    const randoms = [0, 0.5, 1, 0.25];
    let i = 0;
    const plugin = scripted({
      n: [
        { do: "fail", kind: "user" },
        { do: "fail", kind: "user" },
        { do: "fail", kind: "user" },
        { do: "fail", kind: "user" },
        ok,
      ],
    });
    const engine = fakeEngine([plugin], { random: () => randoms[i++ % randoms.length] });
    const N = fakeTask("rt_backoff", {
      retries: { user: 4, backoff: { base: 10, factor: 3, max: 50, jitter: 0.2 } },
    });
    const h = engine.start(compile(workflow({ name: "rt_backoff_wf" }, () => N({}, { id: "n" }))), {});
    expect((await h.result).phase).toBe("succeeded");
    // raw = min(max, base·factor^(n-1)) = 10, 30, 50, 50; scaled by 1 + 0.2·(2r − 1); never above max.
    expect(h.events.filter((e) => e.phase === "retrying").map((e) => e.retryInMs)).toEqual([8, 30, 50, 45]);
  });

  it("user and system retries count their backoff separately", async () => {
    const plugin = scripted({
      n: [
        { do: "fail", kind: "user" },
        { do: "fail", kind: "system" },
        { do: "fail", kind: "user" },
        { do: "fail", kind: "system" },
        ok,
      ],
    });
    const engine = fakeEngine([plugin], { random: () => 0.5 });
    const N = fakeTask("rt_sep", {
      retries: { user: 2, system: 2, backoff: { base: 2, factor: 2, max: 100, jitter: 0.5 } },
    });
    const h = engine.start(compile(workflow({ name: "rt_sep_wf" }, () => N({}, { id: "n" }))), {});
    expect((await h.result).phase).toBe("succeeded");
    expect(h.events.filter((e) => e.phase === "retrying").map((e) => [e.error?.kind, e.retryInMs])).toEqual([
      ["user", 2],
      ["system", 2],
      ["user", 4],
      ["system", 4],
    ]);
  });
});

describe("backoffDelay()", () => {
  const b = (baseMs: number, factor: number, maxMs: number, jitter = 0) => ({
    baseMs,
    factor,
    maxMs,
    jitter,
  });
  it.each([
    ["first retry is the base", b(1000, 2, 300_000), 1, 0.5, 1000],
    ["grows by the factor", b(1000, 2, 300_000), 2, 0.5, 2000],
    ["fifth retry", b(1000, 2, 300_000), 5, 0.5, 16_000],
    ["capped at max", b(1000, 2, 300_000), 20, 0.5, 300_000],
    ["factor 1 is constant", b(250, 1, 10_000), 7, 0.5, 250],
    ["base 0 is no delay", b(0, 2, 1000, 0.2), 3, 1, 0],
    ["jitter, random 0: the low end", b(1000, 2, 300_000, 0.2), 1, 0, 800],
    ["jitter, random 1: the high end", b(1000, 2, 300_000, 0.2), 1, 1, 1200],
    ["jitter, random 0.5: the middle", b(1000, 2, 300_000, 0.2), 3, 0.5, 4000],
    ["jitter 1, random 0: zero", b(1000, 2, 300_000, 1), 2, 0, 0],
    ["jitter never exceeds max", b(1000, 2, 5000, 0.2), 10, 1, 5000],
    ["jitter below max stays below it", b(1000, 2, 5000, 0.2), 10, 0, 4000],
    ["rounded to whole ms", b(3, 1.5, 1000, 0), 2, 0.5, 5],
  ])("%s", (_what, backoff, n, r, expected) => {
    expect(backoffDelay(backoff, n, () => r)).toBe(expected);
  });
});

describe("engine: timeouts", () => {
  it("a per-attempt timeout aborts ctx.signal, fails with TERN_E_TIMEOUT and spends a user retry", async () => {
    let attempts = 0;
    let aborted = 0;
    const hang = task(
      { name: "to_hang", timeout: "50ms", retries: { user: 1, system: 0, backoff: fastBackoff } },
      async (_i, ctx) => {
        attempts++;
        ctx.signal.addEventListener("abort", () => aborted++);
        await new Promise(() => {});
      },
    );
    const local = await inlineEngine();
    const seen: ExecutionEvent[] = [];
    const r = await local.run(hang, {}, { onEvent: (e) => seen.push(e) });
    expect(r.phase).toBe("failed");
    expect(attempts).toBe(2);
    expect(aborted).toBe(2);
    expect(r.error).toMatchObject({ code: "TERN_E_TIMEOUT", kind: "user", node: "to_hang" });
    expect(r.error!.message).toContain('task "to_hang" (node "to_hang") timed out after 50 ms (attempt 2)');
    expect(seen.filter((e) => e.phase === "retrying").map((e) => e.error?.code)).toEqual(["TERN_E_TIMEOUT"]);
  });

  it("a timed-out attempt of a plugin task is aborted through the plugin, once", async () => {
    const plugin = scripted({ n: [{ do: "hang" }, ok] });
    const engine = fakeEngine([plugin]);
    const N = fakeTask("to_plugin", {
      timeout: "30ms",
      retries: { user: 1, system: 0, backoff: fastBackoff },
    });
    const r = await engine.run(compile(workflow({ name: "to_plugin_wf" }, () => N({}, { id: "n" }))));
    expect(r.phase).toBe("succeeded");
    expect(plugin.ops("abort").map((c) => c.attempt)).toEqual([1]);
  });

  it("the execution deadline fails the execution, aborts running nodes and skips the rest", async () => {
    const plugin = scripted({ a: [{ do: "hang" }] });
    const engine = fakeEngine([plugin]);
    const A = fakeTask("dl_a");
    const B = fakeTask("dl_b");
    const wf = workflow({ name: "dl_wf", timeout: "60ms" }, () => {
      B({ after: A({}, { id: "a" }) }, { id: "b" });
    });
    const r = await engine.run(compile(wf));
    expect(r.phase).toBe("failed");
    expect(r.error).toMatchObject({
      code: "TERN_E_EXECUTION_DEADLINE",
      message: "execution exceeded its deadline of 60 ms",
    });
    expect(r.nodes.map((n) => [n.id, n.phase])).toEqual([
      ["a", "aborted"],
      ["b", "skipped"],
    ]);
    expect(plugin.ops("abort").map((c) => c.node)).toEqual(["a"]);
  });

  it("the deadline also stops a node waiting out a retry backoff", { timeout: 10_000 }, async () => {
    const plugin = scripted({ n: [{ do: "fail", kind: "user" }, ok] });
    const engine = fakeEngine([plugin]);
    const N = fakeTask("dl_backoff", {
      retries: { user: 3, system: 0, backoff: { base: "20s", max: "20s", factor: 1, jitter: 0 } },
    });
    const r = await engine.run(
      compile(workflow({ name: "dl_backoff_wf", timeout: "50ms" }, () => N({}, { id: "n" }))),
    );
    expect(r.phase).toBe("failed");
    expect(r.error?.code).toBe("TERN_E_EXECUTION_DEADLINE");
    expect(r.nodes[0]).toMatchObject({ phase: "aborted", attempts: 1 });
    expect(plugin.ops("launch")).toHaveLength(1);
  });

  it("timers keep a standalone process alive until the execution ends", () => {
    const dir = tempDir();
    const core = path.resolve("packages/core/dist/index.js");
    const zod = fs.realpathSync("packages/core/node_modules/zod");
    const script = path.join(dir, "main.mjs");
    fs.writeFileSync(
      script,
      `import { task, workflow, createEngine, BackendRegistry, Engine, LocalBlobStore, compile } from ${JSON.stringify(core)};
import { z } from ${JSON.stringify(path.join(zod, "index.js"))};
// A plugin polled without notify(): between checks, only the engine's timers are pending.
let checks = 0;
const plugin = {
  id: "slow", taskTypes: ["slow"],
  async launch() { return {}; },
  async check() { return ++checks < 4 ? { phase: "running" } : { phase: "succeeded", outputs: checks }; },
  async abort() {},
};
const engine = new Engine({ registry: new BackendRegistry([plugin]), blobs: new LocalBlobStore(${JSON.stringify(dir)}), workDir: ${JSON.stringify(dir)}, pollMinMs: 30 });
const polled = task({ name: "polled", type: "slow", output: z.number() }, async () => 0);
const r1 = await engine.run(compile(polled));
// An inline body that never settles: only the timeout timer can end it.
const local = await createEngine({ workDir: ${JSON.stringify(dir)}, catalog: false });
const stuck = task({ name: "stuck", timeout: "50ms" }, () => new Promise(() => {}));
const r2 = await local.run(stuck);
console.log(JSON.stringify([r1.phase, r1.outputs, r2.phase, r2.error.code]));
`,
    );
    const res = spawnSync(process.execPath, [script], { encoding: "utf8", timeout: 20_000 });
    expect(res.stderr).toBe("");
    expect(res.status).toBe(0);
    expect(JSON.parse(res.stdout.trim())).toEqual(["succeeded", 4, "failed", "TERN_E_TIMEOUT"]);
  });
});

describe("engine: failure policy", () => {
  it("fail-fast aborts running siblings and skips everything downstream", async () => {
    let plugin!: FakePlugin;
    plugin = scripted({
      bad: [
        {
          do: "fail",
          kind: "user",
          message: "bad input",
          until: () => plugin.ops("launch", "slow").length > 0,
        },
      ],
      slow: [{ do: "hang" }],
    });
    const engine = fakeEngine([plugin]);
    const T = fakeTask("ff_t");
    const wf = workflow({ name: "ff_wf" }, () => {
      const bad = T({}, { id: "bad" });
      const slow = T({}, { id: "slow" });
      T({ after: slow }, { id: "after_slow" });
      T({ after: bad }, { id: "after_bad" });
    });
    const r = await engine.run(compile(wf));
    expect(r.phase).toBe("failed");
    expect(r.error).toMatchObject({ node: "bad", kind: "user", message: "bad input" });
    expect(Object.fromEntries(r.nodes.map((n) => [n.id, n.phase]))).toEqual({
      bad: "failed",
      slow: "aborted",
      after_slow: "skipped",
      after_bad: "skipped",
    });
    expect(plugin.ops("abort").map((c) => c.node)).toEqual(["slow"]);
    expect(
      plugin
        .ops("finalize")
        .map((c) => c.node)
        .sort(),
    ).toEqual(["bad", "slow"]);
    expect(
      plugin
        .ops("launch")
        .map((c) => c.node)
        .sort(),
    ).toEqual(["bad", "slow"]);
  });

  it('"continue" runs independent branches to the end and skips only what is downstream of the failure', async () => {
    let badFailed = false;
    const plugin = scripted({
      bad: [{ do: "fail", kind: "user" }],
      slow: [{ do: "succeed", outputs: "s", until: () => badFailed }],
    });
    const engine = fakeEngine([plugin]);
    const T = fakeTask("cont_t");
    const wf = workflow({ name: "cont_wf", failurePolicy: "continue" }, () => {
      const bad = T({}, { id: "bad" });
      const slow = T({}, { id: "slow" });
      const afterSlow = T({ after: slow }, { id: "after_slow" });
      const afterBad = T({ after: bad }, { id: "after_bad" });
      T({ after: [afterSlow, afterBad] }, { id: "join" });
      T({ after: afterBad }, { id: "below_skipped" });
    });
    const h = engine.start(
      compile(wf),
      {},
      {
        onEvent: (e) => {
          if (e.node === "bad" && e.phase === "failed") badFailed = true;
        },
      },
    );
    const r = await h.result;
    expect(r.phase).toBe("failed");
    expect(r.error?.node).toBe("bad");
    expect(Object.fromEntries(r.nodes.map((n) => [n.id, n.phase]))).toEqual({
      bad: "failed",
      slow: "succeeded",
      after_slow: "succeeded",
      after_bad: "skipped",
      join: "skipped",
      below_skipped: "skipped",
    });
    expect(plugin.ops("abort")).toEqual([]);
    expect(h.events.find((e) => e.node === "after_bad" && e.phase === "skipped")?.message).toBe(
      'upstream node "bad" failed',
    );
  });
});

describe("engine: abort", () => {
  it("handle.abort() stops running work through the plugin, once per running attempt, and is idempotent", async () => {
    const plugin = scripted({ a: [{ do: "hang" }], b: [{ do: "hang" }] });
    plugin.abortDelayMs = 15;
    const engine = fakeEngine([plugin]);
    const T = fakeTask("ab_t");
    const h = engine.start(
      compile(
        workflow({ name: "ab_wf" }, () => {
          const a = T({}, { id: "a" });
          T({}, { id: "b" });
          T({ after: a }, { id: "c" });
        }),
      ),
      {},
    );
    await Promise.all([plugin.launched("a"), plugin.launched("b")]);
    await Promise.all([h.abort("user pressed stop"), h.abort("again")]);
    await h.abort("and again");
    const r = await h.result;
    expect(r.phase).toBe("aborted");
    expect(r.error).toMatchObject({ code: "TERN_E_ABORTED", message: "user pressed stop" });
    expect(Object.fromEntries(r.nodes.map((n) => [n.id, n.phase]))).toEqual({
      a: "aborted",
      b: "aborted",
      c: "skipped",
    });
    expect(
      plugin
        .ops("abort")
        .map((c) => c.node)
        .sort(),
    ).toEqual(["a", "b"]);
    // Abort completes before finalize releases the attempt.
    for (const n of ["a", "b"]) {
      const ops = plugin.calls
        .filter((c) => c.node === n)
        .map((c) => c.op)
        .filter((o) => o !== "check");
      expect(ops).toEqual(["launch", "abort", "finalize"]);
    }
    expect(executionPhases(h.events)).toEqual(["running", "aborted"]);
  });

  it("abort does not wait for a plugin slot held by another execution", { timeout: 10_000 }, async () => {
    const plugin = scripted({ hog: [{ do: "hang" }], waiter: [ok] }, { maxConcurrent: 1 });
    const engine = fakeEngine([plugin]);
    const T = fakeTask("ab_slot");
    const hog = engine.start(compile(workflow({ name: "ab_hog" }, () => T({}, { id: "hog" }))), {});
    await plugin.launched("hog");
    const w = new EventWatcher();
    const waiter = engine.start(
      compile(workflow({ name: "ab_waiter" }, () => T({}, { id: "waiter" }))),
      {},
      { onEvent: w.onEvent },
    );
    await w.when((e) => e.phase === "waiting-for-resources");
    await waiter.abort();
    expect((await waiter.result).phase).toBe("aborted");
    expect(plugin.ops("launch", "waiter")).toEqual([]);
    await hog.abort();
  });

  it("an aborted attempt that was still launching is aborted once", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const aborts: number[] = [];
    const plugin: BackendPlugin<{ n: number }> = {
      id: "gated",
      taskTypes: ["gated"],
      async launch(ctx) {
        await gate;
        return { n: ctx.attempt.number };
      },
      async check() {
        return { phase: "running" };
      },
      async abort(_ctx, s) {
        aborts.push(s.n);
      },
    };
    const engine = fakeEngine([plugin]);
    const G = task({ name: "ab_gated", type: "gated" }, async () => {});
    const w = new EventWatcher();
    const h = engine.start(compile(G), {}, { onEvent: w.onEvent });
    await w.when((e) => e.phase === "queued");
    const stopping = h.abort();
    release();
    await stopping;
    expect((await h.result).phase).toBe("aborted");
    expect(aborts).toEqual([1]);
  });

  it("engine.close() aborts running executions", async () => {
    const plugin = scripted({ n: [{ do: "hang" }] });
    const engine = fakeEngine([plugin]);
    const h = engine.start(
      compile(workflow({ name: "ab_close" }, () => fakeTask("ab_close_t")({}, { id: "n" }))),
      {},
    );
    await plugin.launched("n");
    await engine.close();
    expect((await h.result).phase).toBe("aborted");
    expect(plugin.ops("abort")).toHaveLength(1);
  });
});

describe("engine: plugin outcomes", () => {
  it("a check that throws a few times recovers", async () => {
    const plugin = scripted({ n: [{ do: "check-throws", times: 2, outputs: 7 }] });
    const engine = fakeEngine([plugin]);
    const r = await engine.run(
      compile(
        workflow({ name: "po_flaky", output: z.unknown() }, () => fakeTask("po_flaky_t")({}, { id: "n" })),
      ),
    );
    expect(r.phase).toBe("succeeded");
    expect(r.outputs).toBe(7);
    expect(plugin.ops("check")).toHaveLength(3);
  });

  it.each([
    ["the default of 5", undefined, 5],
    ["maxCheckErrors: 2", 2, 2],
  ])(
    "a check that keeps throwing fails the attempt as a system error after %s",
    async (_what, maxCheckErrors, checks) => {
      const plugin = scripted({ n: [{ do: "check-throws" }] });
      const engine = fakeEngine([plugin], maxCheckErrors ? { maxCheckErrors } : {});
      const r = await engine.run(
        compile(workflow({ name: "po_broken" }, () => fakeTask("po_broken_t")({}, { id: "n" }))),
      );
      expect(r.phase).toBe("failed");
      expect(r.error).toMatchObject({ kind: "system", node: "n" });
      expect(r.error!.message).toContain(`plugin "fake" check failed: check failed (${checks})`);
      expect(plugin.ops("check")).toHaveLength(checks);
    },
  );

  it("success without outputs makes the engine read outputs.json under ctx.outputPrefix", async () => {
    const plugin = scripted({ n: [{ do: "succeed-via-blob", outputs: { rows: 3, name: "x" } }] });
    const engine = fakeEngine([plugin]);
    const r = await engine.run(
      compile(
        workflow({ name: "po_blob", output: z.unknown() }, () => fakeTask("po_blob_t")({}, { id: "n" })),
      ),
    );
    expect(r.phase).toBe("succeeded");
    expect(r.outputs).toEqual({ rows: 3, name: "x" });
  });

  it("success with an error.json under ctx.outputPrefix is that error", async () => {
    const plugin = scripted({
      n: [
        {
          do: "error-via-blob",
          error: { code: "TERN_E_TASK_FAILED", kind: "user", message: "written by the worker" },
        },
      ],
    });
    const engine = fakeEngine([plugin]);
    const r = await engine.run(
      compile(workflow({ name: "po_err" }, () => fakeTask("po_err_t")({}, { id: "n" }))),
    );
    expect(r.phase).toBe("failed");
    expect(r.error).toMatchObject({
      code: "TERN_E_TASK_FAILED",
      kind: "user",
      message: "written by the worker",
    });
  });

  it("success with neither outputs nor outputs.json is a system error, unless the task returns nothing", async () => {
    const plugin = scripted({ n: [{ do: "succeed-empty" }] });
    const engine = fakeEngine([plugin]);
    const r = await engine.run(
      compile(workflow({ name: "po_empty" }, () => fakeTask("po_empty_t")({}, { id: "n" }))),
    );
    expect(r.phase).toBe("failed");
    expect(r.error).toMatchObject({ kind: "system" });
    expect(r.error!.message).toMatch(
      /reported success but wrote no outputs\.json under executions\/default\/development\/.+\/n\/1/,
    );
    const r2 = await engine.run(
      compile(
        workflow({ name: "po_void" }, () => fakeTask("po_void_t", { output: undefined })({}, { id: "n" })),
      ),
    );
    expect(r2.phase).toBe("succeeded");
    expect(r2.nodes[0].phase).toBe("succeeded");
  });

  it("the plugin sees the attempt context: ids, inputs, prefixes", async () => {
    const seen: TaskContext[] = [];
    const plugin: BackendPlugin<{}> = {
      id: "ctx",
      taskTypes: ["ctx"],
      async launch(ctx) {
        seen.push(ctx);
        return {};
      },
      async check() {
        return { phase: "succeeded", outputs: null };
      },
      async abort() {},
    };
    const engine = fakeEngine([plugin]);
    const C = task(
      { name: "po_ctx", type: "ctx", inputs: { a: z.number(), b: z.string().default("d") } },
      async () => {},
    );
    const h = engine.start(compile(C, { project: "proj", domain: "prod" }), { a: 1 }, { id: "x123" });
    expect((await h.result).phase).toBe("succeeded");
    const ctx = seen[0];
    expect(ctx.execution).toEqual({ id: "x123", project: "proj", domain: "prod" });
    expect(ctx.node).toEqual({ id: "po_ctx" });
    expect(ctx.attempt).toEqual({ id: "x123-po_ctx-1", number: 1, interruptible: false });
    expect(ctx.inputs).toEqual({ a: 1, b: "d" });
    expect(ctx.outputPrefix).toBe("executions/proj/prod/x123/po_ctx/1");
    expect(ctx.checkpointPrefix).toBe("executions/proj/prod/x123/po_ctx");
    const uri = await ctx.inputsUri();
    expect(JSON.parse(Buffer.from(await ctx.blobs.get(uri)).toString("utf8"))).toEqual({ a: 1, b: "d" });
  });

  it("an unknown task type is TERN_E_PLUGIN_UNKNOWN_TASK_TYPE, naming the type and task", async () => {
    const engine = fakeEngine([scripted({})]);
    const X = task({ name: "po_unknown", type: "quantum" }, async () => {});
    let p: Promise<unknown> | undefined;
    expect(() => {
      p = engine.run(compile(X));
    }).not.toThrow();
    const e = await p!.then(
      () => undefined,
      (err: unknown) => err as TernError,
    );
    expect(e).toBeInstanceOf(TernError);
    expect(e!.code).toBe("TERN_E_PLUGIN_UNKNOWN_TASK_TYPE");
    expect(e!.message).toBe('no backend plugin runs task type "quantum" (task "po_unknown")');
    expect(e!.hint).toContain("known task types: fake");
  });
});

describe("BackendRegistry", () => {
  const plugin = (id: string, taskTypes: string[], contractVersion?: string): BackendPlugin<any> => ({
    id,
    taskTypes,
    ...(contractVersion ? { contractVersion } : {}),
    launch: async () => ({}),
    check: async (): Promise<TaskStatus> => ({ phase: "running" }),
    abort: async () => {},
  });

  it("maps task types to plugins", () => {
    const a = plugin("a", ["x", "y"]);
    const b = plugin("b", ["z"]);
    const r = new BackendRegistry([a, b]);
    expect(r.forType("x")).toBe(a);
    expect(r.forType("y")).toBe(a);
    expect(r.forType("z")).toBe(b);
    expect(r.get("b")).toBe(b);
    expect(r.plugins).toEqual([a, b]);
  });

  it.each<[string, () => unknown, string, RegExp]>([
    [
      "two plugins for one type without a mapping",
      () => new BackendRegistry([plugin("a", ["x"]), plugin("b", ["x"])]),
      "TERN_E_PLUGIN_AMBIGUOUS",
      /task type "x" can run on several plugins: a, b/,
    ],
    [
      "two plugins with one id",
      () => new BackendRegistry([plugin("a", ["x"]), plugin("a", ["y"])]),
      "TERN_E_PLUGIN_AMBIGUOUS",
      /two backend plugins share the id "a"/,
    ],
    [
      "a mapping to a plugin that is not loaded",
      () => new BackendRegistry([plugin("a", ["x"])], { defaultForTaskTypes: { x: "zz" } }),
      "TERN_E_PLUGIN_UNKNOWN",
      /mapped to plugin "zz", which is not loaded/,
    ],
    [
      "enabling a plugin that is not registered",
      () => new BackendRegistry([plugin("a", ["x"])], { enabled: ["b"] }),
      "TERN_E_PLUGIN_UNKNOWN",
      /enabled plugin "b" is not registered/,
    ],
    [
      "a plugin of another contract major",
      () => new BackendRegistry([plugin("a", ["x"], "2.0")]),
      "TERN_E_PLUGIN_VERSION_MISMATCH",
      /plugin "a" implements backend contract 2\.0, but this @tern\/core implements 1\.0/,
    ],
    [
      "an unknown type",
      () => new BackendRegistry([plugin("a", ["x"])]).forType("w"),
      "TERN_E_PLUGIN_UNKNOWN_TASK_TYPE",
      /no backend plugin runs task type "w"/,
    ],
  ])("refuses %s", (_what, fn, code, message) => {
    let err: unknown;
    try {
      fn();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TernError);
    expect((err as TernError).code).toBe(code);
    expect((err as TernError).message).toMatch(message);
  });

  it("the ambiguity error suggests a mapping", () => {
    try {
      new BackendRegistry([plugin("a", ["x"]), plugin("b", ["x"])]);
    } catch (e) {
      expect((e as TernError).hint).toBe('choose one in tern.config.ts: defaultForTaskTypes: { "x": "a" }');
    }
  });

  it("defaultForTaskTypes resolves an ambiguity; enabled narrows the candidates", () => {
    const a = plugin("a", ["x", "y"]);
    const b = plugin("b", ["x"]);
    expect(new BackendRegistry([a, b], { defaultForTaskTypes: { x: "b" } }).forType("x")).toBe(b);
    expect(new BackendRegistry([a, b], { defaultForTaskTypes: { x: "b" } }).forType("y")).toBe(a);
    const only = new BackendRegistry([a, b], { enabled: ["b"] });
    expect(only.forType("x")).toBe(b);
    expect(() => only.forType("y")).toThrow(/no backend plugin runs task type "y"/);
    expect(only.plugins).toEqual([b]);
  });

  it("accepts a plugin of the same contract major, or one that does not say", () => {
    expect(() => new BackendRegistry([plugin("a", ["x"], "1.9"), plugin("b", ["y"])])).not.toThrow();
  });
});

describe("plugins through the container", () => {
  const GREETING = createToken<string>("test.engine.greeting");
  const LAUNCHED = createToken<string[]>("test.engine.launched");

  @injectable()
  class GreeterPlugin implements BackendPlugin<{ name: string }> {
    readonly id = "greeter";
    readonly taskTypes = ["greet"];
    readonly contractVersion = CONTRACT_VERSION;
    constructor(
      @inject(GREETING) private readonly greeting: string,
      @inject(LAUNCHED) private readonly launched: string[],
    ) {}
    async launch(ctx: TaskContext) {
      this.launched.push(ctx.node.id);
      return { name: String(ctx.inputs.name) };
    }
    async check(_ctx: TaskContext, s: { name: string }): Promise<TaskStatus> {
      return { phase: "succeeded", outputs: `${this.greeting}, ${s.name}` };
    }
    async abort() {}
  }

  const greet = task(
    { name: "pc_greet", type: "greet", inputs: { name: z.string() }, output: z.string() },
    async () => "never runs",
  );
  const exclaim = task(
    { name: "pc_exclaim", inputs: { s: z.string() }, output: z.string() },
    async ({ s }) => `${s}!`,
  );

  it("definePlugin registering a class with @inject on every constructor parameter works through createEngine", async () => {
    const launched: string[] = [];
    const greeter = definePlugin({
      name: "greeter",
      contractVersion: CONTRACT_VERSION,
      register(c) {
        provide(c, GREETING, "Hello");
        provide(c, LAUNCHED, launched);
        c.register(BACKEND_PLUGIN, { useClass: GreeterPlugin });
      },
    });
    const local = await inlineEngine({ plugins: [greeter] });
    expect(local.registry.plugins.map((p) => p.id).sort()).toEqual(["greeter", "inline"]);
    const r = await local.run(
      workflow({ name: "pc_wf", inputs: { who: z.string() }, output: z.string() }, ({ who }) =>
        exclaim({ s: greet({ name: who }) }),
      ),
      { who: "Ada" },
    );
    expect(r.phase).toBe("succeeded");
    expect(r.outputs).toBe("Hello, Ada!");
    expect(launched).toEqual(["pc_greet"]);
  });

  it("a plugin of another contract major is refused by createEngine", async () => {
    const future = definePlugin({ name: "future", contractVersion: "2.1", register() {} });
    await expect(createEngine({ workDir: tempDir(), plugins: [future] })).rejects.toMatchObject({
      code: "TERN_E_PLUGIN_VERSION_MISMATCH",
      message: 'plugin "future" implements backend contract 2.1, but this @tern/core implements 1.0',
    });
  });

  it("something that is not a plugin is refused", async () => {
    await expect(
      createEngine({ workDir: tempDir(), plugins: [{ name: "x" } as never] }),
    ).rejects.toMatchObject({ code: "TERN_E_CONFIG" });
  });

  it("a plugin registered for an existing type is ambiguous at start-up until mapped", async () => {
    const second = definePlugin({
      name: "second-node",
      contractVersion: CONTRACT_VERSION,
      register(c) {
        c.register(BACKEND_PLUGIN, {
          useValue: {
            id: "second",
            taskTypes: ["node"],
            launch: async () => ({}),
            check: async () => ({ phase: "running" }),
            abort: async () => {},
          },
        });
      },
    });
    await expect(createEngine({ workDir: tempDir(), plugins: [second] })).rejects.toMatchObject({
      code: "TERN_E_PLUGIN_AMBIGUOUS",
    });
    const local = await inlineEngine({
      plugins: [second],
      backendConfig: { defaultForTaskTypes: { node: "inline" } },
    });
    expect(local.registry.forType("node").id).toBe("inline");
  });
});

describe("engine: after() ordering at run time", () => {
  it("a node ordered with after() starts only when its upstream succeeded", async () => {
    const order: string[] = [];
    const step = task({ name: "ord_step", inputs: { n: z.string() } }, async ({ n }) => {
      order.push(`start ${n}`);
      await new Promise((r) => setTimeout(r, 5));
      order.push(`end ${n}`);
    });
    const local = await inlineEngine();
    const r = await local.run(
      workflow({ name: "ord_wf" }, () => {
        const a = step({ n: "a" }, { id: "a" });
        const b = step({ n: "b" }, { id: "b" });
        after(a, b);
      }),
    );
    expect(r.phase).toBe("succeeded");
    expect(order).toEqual(["start a", "end a", "start b", "end b"]);
  });
});

describe("inline backend", () => {
  function ctxFor(def: AnyTask, signal: AbortSignal, notify: () => void): TaskContext {
    const spec = Object.values(compile(def).spec.tasks)[0];
    const dir = tempDir();
    return {
      execution: { id: "xinline", project: "default", domain: "development" },
      node: { id: "n" },
      attempt: { id: `xinline-n-${Math.random()}`, number: 1, interruptible: false },
      task: spec,
      inputs: {},
      inputsUri: async () => "",
      outputPrefix: "executions/x/n/1",
      checkpointPrefix: "executions/x/n",
      blobs: new (class {})() as never,
      logger: { debug() {}, info() {}, warn() {}, error() {} },
      workDir: dir,
      signal,
      notify,
    };
  }

  it.each([
    ["through the plugin's abort()", "plugin"],
    ["through the engine's signal", "engine"],
  ])("a body's ctx.signal is aborted %s", async (_how, via) => {
    let seen: AbortSignal | undefined;
    const body = task({ name: `il_wait_${via}` }, async (_i, ctx) => {
      seen = ctx.signal;
      await new Promise<void>((resolve) =>
        ctx.signal.addEventListener("abort", () => resolve(), { once: true }),
      );
      throw new Error("stopped");
    });
    const { InlineBackend } = await import("@tern/core");
    const backend = new InlineBackend(() => body);
    const outer = new AbortController();
    let notified!: () => void;
    const done = new Promise<void>((r) => (notified = r));
    const ctx = ctxFor(body, outer.signal, () => notified());
    const state = await backend.launch(ctx);
    await new Promise((r) => setImmediate(r));
    expect(seen?.aborted).toBe(false);
    expect((await backend.check(ctx, state)).phase).toBe("running");
    if (via === "plugin") await backend.abort(ctx, state);
    else outer.abort("timeout");
    await done;
    expect(seen?.aborted).toBe(true);
    expect(await backend.check(ctx, state)).toMatchObject({ phase: "failed", error: { message: "stopped" } });
    await backend.finalize(ctx, state);
    expect((await backend.check(ctx, state)).error?.message).toMatch(/inline attempt was lost/);
  });

  it("a body that reads ctx.signal only after an abort sees it aborted", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let aborted: boolean | undefined;
    const body = task({ name: "il_late" }, async (_i, ctx) => {
      await gate;
      aborted = ctx.signal.aborted;
    });
    const { InlineBackend } = await import("@tern/core");
    const backend = new InlineBackend(() => body);
    let notified!: () => void;
    const done = new Promise<void>((r) => (notified = r));
    const ctx = ctxFor(body, new AbortController().signal, () => notified());
    const state = await backend.launch(ctx);
    await backend.abort(ctx, state);
    release();
    await done;
    expect(aborted).toBe(true);
  });
});
