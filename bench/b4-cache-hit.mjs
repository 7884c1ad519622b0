/**
 * B4 — cache hit latency with ~1 KB of inputs.
 *
 * A one-task workflow with `cache: true` and a warm catalog. Reported:
 *  - hit: wall time of one execution that is a cache hit (engine.run, compile excluded);
 *  - baseline: one execution of the same no-op task without cache;
 *  - hitMinusBaseline: what serving from the cache costs over running the no-op
 *    (negative means a hit is cheaper than running the task at all);
 *  - raw: `cacheKey()` + `catalog.get()` alone.
 * For the in-memory catalog and the disk catalog (`.tern/cache`). Each figure is the median
 * over batches of sequential executions. Target: ≤ 50 µs.
 *
 *   pnpm build && node bench/b4-cache-hit.mjs [--n 2000] [--batches 7]
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { cacheKey, compile, createEngine, task, workflow } from "@tern/core";
import { z } from "zod";

const args = process.argv.slice(2);
const arg = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const N = arg("n", 2000);
const BATCHES = arg("batches", 7);
const TARGET_US = 50;

const Row = z.object({
  id: z.number().int(),
  name: z.string(),
  score: z.number(),
  tags: z.array(z.string()),
});
const inputs = {
  dataset: "orders-2026-11",
  rows: Array.from({ length: 12 }, (_, i) => ({
    id: i,
    name: `customer-${i}-${"x".repeat(8)}`,
    score: i * 1.25,
    tags: ["a", "bb", "ccc"],
  })),
};
const inputBytes = Buffer.byteLength(JSON.stringify(inputs));

const body = async ({ rows }) => rows.length;
const cached = task(
  { name: "b4_cached", inputs: { dataset: z.string(), rows: z.array(Row) }, output: z.number(), cache: true },
  body,
);
const uncached = task(
  { name: "b4_uncached", inputs: { dataset: z.string(), rows: z.array(Row) }, output: z.number() },
  body,
);
const wfOf = (t, name) =>
  workflow(
    { name, inputs: { dataset: z.string(), rows: z.array(Row) }, output: z.number() },
    ({ dataset, rows }) => t({ dataset, rows }),
  );

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const round = (x, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

/** Median µs per call of `fn` over batches of N sequential calls (after a warm-up batch). */
async function perCall(fn) {
  for (let i = 0; i < Math.min(N, 500); i++) await fn();
  const us = [];
  for (let b = 0; b < BATCHES; b++) {
    const s = performance.now();
    for (let i = 0; i < N; i++) await fn();
    us.push(((performance.now() - s) * 1000) / N);
  }
  return { median: round(median(us)), best: round(Math.min(...us)) };
}

async function measure(catalogKind) {
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), "tern-b4-"));
  const local = await createEngine({ workDir, catalog: catalogKind });
  const hitWf = compile(wfOf(cached, "b4_hit"), { projectRoot: workDir });
  const baseWf = compile(wfOf(uncached, "b4_base"), { projectRoot: workDir });
  local.definitions.add(hitWf);
  local.definitions.add(baseWf);
  const first = await local.engine.run(hitWf, inputs);
  if (first.phase !== "succeeded" || first.nodes[0].cached) throw new Error("warm-up run should compute");
  const check = await local.engine.run(hitWf, inputs);
  if (!check.nodes[0].cached) throw new Error("second run should be a cache hit");

  const hit = await perCall(async () => {
    const r = await local.engine.run(hitWf, inputs);
    if (!r.nodes[0].cached) throw new Error("not a hit");
  });
  const baseline = await perCall(async () => {
    const r = await local.engine.run(baseWf, inputs);
    if (r.phase !== "succeeded") throw new Error("baseline failed");
  });
  const taskSpec = Object.values(hitWf.spec.tasks)[0];
  const policy = taskSpec.metadata.cache;
  const raw = await perCall(async () => {
    const key = cacheKey(taskSpec, policy.version, policy.ignoreInputs, inputs);
    if (!(await local.catalog.get(key))) throw new Error("raw: miss");
  });
  await local.close();
  fs.rmSync(workDir, { recursive: true, force: true });
  return {
    catalog: catalogKind,
    hitUs: hit.median,
    hitBestUs: hit.best,
    baselineUs: baseline.median,
    baselineBestUs: baseline.best,
    hitMinusBaselineUs: round(hit.median - baseline.median),
    rawKeyAndGetUs: raw.median,
    rawKeyAndGetBestUs: raw.best,
  };
}

const results = [await measure("memory"), await measure("disk")];
const cpus = os.cpus();
const report = {
  benchmark: "b4-cache-hit",
  description: "cache hit latency of a one-task workflow with ~1 KB of inputs, warm catalog",
  inputBytes,
  executionsPerBatch: N,
  batches: BATCHES,
  targetUs: TARGET_US,
  pass: results.every((r) => r.hitMinusBaselineUs <= TARGET_US && r.rawKeyAndGetUs <= TARGET_US),
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
const out = path.join(path.dirname(fileURLToPath(import.meta.url)), "results", "b4-cache-hit.json");
fs.mkdirSync(path.dirname(out), { recursive: true });
fs.writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
