/**
 * B1 — in-process engine overhead per task.
 *
 * 10 000 no-op tasks run by the inline backend, once as a chain (each node waits for the
 * previous one's output) and once as a wide fan (10 000 independent nodes), each as one
 * workflow. Only `engine.run` is timed (compile is reported separately); every shape runs
 * 5 times after a warm-up and the median and best µs/task are reported (wall time, and the
 * process's CPU time as a steadier figure on a shared machine). Target: ≤ 20 µs/task.
 *
 *   pnpm build && node bench/b1-overhead.mjs [--tasks 10000] [--runs 5] [--shape chain|fan]
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { compile, createEngine, task, workflow } from "@tern/core";
import { z } from "zod";

const args = process.argv.slice(2);
const arg = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const N = arg("tasks", 10_000);
const RUNS = arg("runs", 5);
const TARGET_US = 20;

const noop = task({ name: "b1_noop", inputs: { i: z.number() }, output: z.number() }, ({ i }) => i);

function chain(n) {
  return workflow({ name: `b1_chain_${n}`, output: z.number() }, () => {
    let h = noop({ i: 0 }, { id: "n0" });
    for (let k = 1; k < n; k++) h = noop({ i: h }, { id: `n${k}` });
    return h;
  });
}

function fan(n) {
  return workflow({ name: `b1_fan_${n}` }, () => {
    for (let k = 0; k < n; k++) noop({ i: k }, { id: `n${k}` });
  });
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const round = (x, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

const workDir = fs.mkdtempSync(path.join(os.tmpdir(), "tern-b1-"));
const local = await createEngine({ workDir, catalog: false });

async function measure(shape, def) {
  const t0 = performance.now();
  const compiled = compile(def, { projectRoot: workDir });
  const compileMs = performance.now() - t0;
  const compileRuns = [compileMs];
  for (let i = 0; i < 2; i++) {
    const c0 = performance.now();
    compile(def, { projectRoot: workDir });
    compileRuns.push(performance.now() - c0);
  }
  local.definitions.add(compiled);
  // Warm-up (JIT, first-use allocations).
  const warm = await local.engine.run(compiled);
  if (warm.phase !== "succeeded") throw new Error(`${shape}: ${warm.phase} ${JSON.stringify(warm.error)}`);
  const runsMs = [];
  const cpuMs = [];
  for (let r = 0; r < RUNS; r++) {
    globalThis.gc?.();
    const c = process.cpuUsage();
    const s = performance.now();
    const res = await local.engine.run(compiled);
    runsMs.push(performance.now() - s);
    const cu = process.cpuUsage(c);
    cpuMs.push((cu.user + cu.system) / 1000);
    if (res.phase !== "succeeded") throw new Error(`${shape}: ${res.phase}`);
    if (shape === "chain" && res.outputs !== 0) throw new Error("chain: wrong output");
  }
  const perTask = runsMs.map((ms) => (ms * 1000) / N);
  return {
    shape,
    tasks: N,
    runs: RUNS,
    medianUsPerTask: round(median(perTask)),
    bestUsPerTask: round(Math.min(...perTask)),
    medianRunMs: round(median(runsMs), 1),
    runsMs: runsMs.map((x) => round(x, 1)),
    // CPU time of the process (all threads, GC included) during the run: steadier than wall
    // time on a shared machine.
    medianCpuUsPerTask: round((median(cpuMs) * 1000) / N),
    compileMsFirst: round(compileRuns[0], 1),
    compileMsMedian: round(median(compileRuns), 1),
    compileUsPerTask: round((median(compileRuns) * 1000) / N),
  };
}

const shapeArg = args.includes("--shape") ? args[args.indexOf("--shape") + 1] : "all";
const results = [];
if (shapeArg !== "fan") results.push(await measure("chain", chain(N)));
if (shapeArg !== "chain") results.push(await measure("fan", fan(N)));
await local.close();
fs.rmSync(workDir, { recursive: true, force: true });

const cpus = os.cpus();
const report = {
  benchmark: "b1-overhead",
  description: "in-process engine overhead per no-op task (inline backend), engine.run wall time only",
  targetUsPerTask: TARGET_US,
  pass: results.every((r) => r.medianUsPerTask <= TARGET_US),
  results,
  machine: {
    cpu: cpus[0]?.model ?? "unknown",
    cores: cpus.length,
    node: process.version,
    platform: `${os.platform()} ${os.arch()}`,
    // A busy machine inflates wall times: the 1-minute load average when the run ended.
    loadAverage1m: Math.round(os.loadavg()[0] * 100) / 100,
  },
  at: new Date().toISOString(),
};
console.log(JSON.stringify(report));
const out = path.join(path.dirname(fileURLToPath(import.meta.url)), "results", "b1-overhead.json");
fs.mkdirSync(path.dirname(out), { recursive: true });
fs.writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
