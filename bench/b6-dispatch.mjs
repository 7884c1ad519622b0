/**
 * B6 — dispatch latency to a warm worker of the `process` backend.
 *
 * A no-op task from an esbuild bundle, run by a pool that has already imported the
 * bundle. Three figures:
 *  - dispatch: the plugin driven directly, one attempt at a time: time from `launch()`
 *    to the result (`notify()` fired and `check()` says succeeded). p50/p90/p99 over
 *    ≥ 2000 sequential attempts after a warm-up. Target: p50 < 200 µs.
 *  - throughput: the same plugin with 2 workers kept busy (2 attempts in flight).
 *  - engine: a wide workflow of no-op nodes through `createEngine({ backend: "process",
 *    workers: 2 })`, engine.run wall time per task (engine bookkeeping included).
 *
 *   pnpm build && node bench/b6-dispatch.mjs [--tasks 5000] [--warmup 500] [--wide 2000]
 */
import * as fs from "node:fs";
import { createRequire } from "node:module";
import * as os from "node:os";
import * as path from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { bundleEntry, compile, createEngine, importBundle } from "@tern/core";

const args = process.argv.slice(2);
const arg = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const N = arg("tasks", 5000);
const WARMUP = arg("warmup", 500);
const WIDE = arg("wide", 2000);
const TARGET_P50_US = 200;

const here = path.dirname(fileURLToPath(import.meta.url));
const coreDir = path.resolve(here, "../packages/core");
const zodDir = path.dirname(createRequire(path.join(coreDir, "package.json")).resolve("zod/package.json"));

// A throwaway project whose bundle resolves @tern/core and zod to the workspace's copies.
const root = fs.mkdtempSync(path.join(os.tmpdir(), "tern-b6-"));
fs.writeFileSync(
  path.join(root, "package.json"),
  JSON.stringify({ name: "b6", type: "module", private: true }),
);
fs.mkdirSync(path.join(root, "node_modules", "@tern"), { recursive: true });
fs.symlinkSync(coreDir, path.join(root, "node_modules", "@tern", "core"), "dir");
fs.symlinkSync(zodDir, path.join(root, "node_modules", "zod"), "dir");
fs.writeFileSync(
  path.join(root, "tasks.ts"),
  `import { task, workflow } from "@tern/core";
import { z } from "zod";
export const noop = task({ name: "b6_noop", inputs: { i: z.number() }, output: z.number() }, async ({ i }) => i);
export const wide = workflow({ name: "b6_wide", inputs: {} }, () => {
  for (let k = 0; k < ${WIDE}; k++) noop({ i: k }, { id: \`n\${k}\` });
});
`,
);

const bundle = await bundleEntry(path.join(root, "tasks.ts"));
const mod = await importBundle(bundle.path);
const local = await createEngine({ backend: "process", workDir: root, workers: 2, catalog: false });
const plugin = local.registry.get("process");
const spec = Object.values(compile(mod.noop, { bundle: bundle.digest, projectRoot: root }).spec.tasks)[0];

const quiet = () => {};
const logger = { debug: quiet, info: quiet, warn: quiet, error: quiet };
const signal = new AbortController().signal;
let seq = 0;

/** One attempt through the plugin: launch → notify → check → finalize. Returns µs from launch to result. */
async function attempt() {
  const n = seq++;
  const id = `b6-${n}`;
  let done;
  const notified = new Promise((r) => (done = r));
  const ctx = {
    execution: { id: "b6", project: "default", domain: "development" },
    node: { id },
    attempt: { id, number: 1, interruptible: false },
    task: spec,
    inputs: { i: n },
    inputsUri: () => Promise.reject(new Error("not used")),
    outputPrefix: `executions/default/development/b6/${id}/1`,
    checkpointPrefix: `executions/default/development/b6/${id}`,
    blobs: local.blobs,
    logger,
    workDir: root,
    signal,
    notify: done,
  };
  const t0 = performance.now();
  const state = await plugin.launch(ctx);
  let status = await plugin.check(ctx, state);
  if (status.phase !== "succeeded") {
    await notified;
    status = await plugin.check(ctx, state);
  }
  const us = (performance.now() - t0) * 1000;
  if (status.phase !== "succeeded" || status.outputs !== n)
    throw new Error(`attempt ${id}: ${JSON.stringify(status)}`);
  await plugin.finalize(ctx, state);
  return us;
}

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
const round = (x, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

// Start both workers and let them import the bundle, then warm up the JIT on both sides.
await Promise.all([attempt(), attempt()]);
for (let i = 0; i < WARMUP; i++) await attempt();

// 1. Sequential dispatch latency.
const lat = [];
const cpu0 = process.cpuUsage();
for (let i = 0; i < N; i++) lat.push(await attempt());
const cpu = process.cpuUsage(cpu0);
lat.sort((a, b) => a - b);
const dispatch = {
  attempts: N,
  p50Us: round(pct(lat, 50)),
  p90Us: round(pct(lat, 90)),
  p99Us: round(pct(lat, 99)),
  minUs: round(lat[0]),
  meanUs: round(lat.reduce((a, b) => a + b, 0) / N),
  parentCpuUsPerAttempt: round((cpu.user + cpu.system) / N),
};

// 2. Throughput with 2 workers kept busy.
const t0 = performance.now();
let next = 0;
const lane = async () => {
  while (next < N) {
    next++;
    await attempt();
  }
};
await Promise.all([lane(), lane()]);
const ms = performance.now() - t0;
const throughput = {
  workers: 2,
  attempts: N,
  tasksPerSecond: Math.round((N * 1000) / ms),
  usPerTask: round((ms * 1000) / N),
};

// 3. Through the engine: one wide workflow.
const wide = compile(mod.wide, { bundle: bundle.digest, projectRoot: root });
await local.engine.run(wide, {}); // warm-up
const runs = [];
for (let r = 0; r < 3; r++) {
  const s = performance.now();
  const res = await local.engine.run(wide, {});
  runs.push(performance.now() - s);
  if (res.phase !== "succeeded") throw new Error(`wide: ${res.phase} ${JSON.stringify(res.error)}`);
}
runs.sort((a, b) => a - b);
const engine = {
  workers: 2,
  tasks: WIDE,
  runsMs: runs.map((x) => round(x)),
  medianUsPerTask: round((runs[1] * 1000) / WIDE),
};

await local.close();
fs.rmSync(root, { recursive: true, force: true });

const cpus = os.cpus();
const report = {
  benchmark: "b6-dispatch",
  description:
    "process backend: launch→result latency of a no-op task on a warm worker, and throughput with 2 workers",
  targetP50Us: TARGET_P50_US,
  pass: dispatch.p50Us < TARGET_P50_US,
  dispatch,
  throughput,
  engine,
  machine: {
    cpu: cpus[0]?.model ?? "unknown",
    cores: cpus.length,
    node: process.version,
    platform: `${os.platform()} ${os.arch()}`,
    // The machine may be shared: its load when the run ended puts the figures in context.
    loadAverage1m: round(os.loadavg()[0], 2),
  },
  at: new Date().toISOString(),
};
console.log(JSON.stringify(report));
const out = path.join(here, "results", "b6-dispatch.json");
fs.mkdirSync(path.dirname(out), { recursive: true });
fs.writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
