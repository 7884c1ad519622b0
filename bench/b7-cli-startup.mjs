#!/usr/bin/env node
/**
 * B7 — whole-process start-up of the CLI:
 *
 *   node packages/cli/dist/bin/tern.js run examples/hello.ts hello --json
 *
 * measured N times after warm-ups, with a warm `.tern` cache (say_hello is a cache
 * hit) and with the cache disabled (--no-cache: the task runs). Scenarios are run
 * round-robin so that load from other processes affects them alike. For context it also
 * times `node -e 0` (Node's own boot) and `tern --version` (the CLI without core).
 * Every measured run sets TERN_TIMING=1, so the CLI's own marks (boot+cli, import
 * core, bundle+load, compile, engine, execute, close) give the breakdown.
 *
 * Usage: pnpm build && node bench/b7-cli-startup.mjs [--runs 20]
 * Writes bench/results/b7-cli-startup.json and prints it.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const bin = path.join(root, "packages/cli/dist/bin/tern.js");
const runsArg = process.argv.indexOf("--runs");
const N = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 20;
const WARMUPS = 2;

if (!fs.existsSync(bin)) {
  console.error(`${bin} is missing: run \`pnpm build\` first`);
  process.exit(2);
}

/** Run a command once; wall time in ms, plus the CLI's timing marks when it printed them. */
function once(args, env = {}) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, args, {
    cwd: root,
    env: { ...process.env, NO_COLOR: "1", ...env },
    encoding: "utf8",
  });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${args.join(" ")} exited ${r.status}:\n${r.stderr}`);
  const marks = {};
  const line = r.stderr.split("\n").find((l) => l.startsWith("timing: "));
  for (const part of line ? line.slice(8).split(" | ") : []) {
    const m = /^(.+) (\d+)ms$/.exec(part);
    if (m) marks[m[1]] = Number(m[2]);
  }
  return { ms, stdout: r.stdout, marks };
}

function quantile(sorted, q) {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i];
}

function stats(values) {
  const s = [...values].sort((a, b) => a - b);
  const r = (x) => Math.round(x * 10) / 10;
  return { p50: r(quantile(s, 0.5)), p90: r(quantile(s, 0.9)), min: r(s[0]), max: r(s.at(-1)) };
}

/**
 * Measure scenarios round-robin (one run of each in turn), so a burst of load
 * from other processes hits all of them alike instead of skewing one.
 */
function measure(scenarios) {
  for (const sc of scenarios) for (let i = 0; i < WARMUPS; i++) once(sc.args, sc.env);
  const runs = scenarios.map(() => []);
  for (let i = 0; i < N; i++) {
    scenarios.forEach((sc, k) => {
      const r = once(sc.args, { ...sc.env, TERN_TIMING: "1" });
      sc.check?.(r);
      runs[k].push(r);
    });
  }
  return scenarios.map((sc, k) => {
    const rs = runs[k];
    const out = {
      name: sc.name,
      command: `node ${sc.args.map((a) => path.relative(root, a) || a).join(" ")}`,
      ...stats(rs.map((r) => r.ms)),
    };
    const breakdown = {};
    for (const m of Object.keys(rs[0].marks)) breakdown[m] = stats(rs.map((r) => r.marks[m] ?? 0)).p50;
    if (Object.keys(breakdown).length) out.breakdownP50Ms = breakdown;
    return out;
  });
}

const hello = [bin, "run", "examples/hello.ts", "hello", "--json"];
const checkHello = (cached) => (r) => {
  const doc = JSON.parse(r.stdout);
  if (doc.phase !== "succeeded" || doc.outputs !== "Hello, world!")
    throw new Error(`unexpected outcome: ${r.stdout}`);
  if (doc.nodes[0].cached !== cached) throw new Error(`expected cached=${cached}: ${r.stdout}`);
};

const started = new Date();
const load = os.loadavg();
const scenarios = measure([
  { name: "node -e 0 (Node boot only)", args: ["-e", "0"] },
  { name: "tern --version (CLI without core)", args: [bin, "--version"] },
  { name: "tern run hello --json, warm .tern cache", args: hello, check: checkHello(true) },
  { name: "tern run hello --json --no-cache", args: [...hello, "--no-cache"], check: checkHello(false) },
]);
const loadAtEnd = os.loadavg();

const result = {
  benchmark: "b7-cli-startup",
  date: started.toISOString(),
  runs: N,
  warmups: WARMUPS,
  machine: {
    cpu: os.cpus()[0]?.model ?? "unknown",
    cores: os.cpus().length,
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    // 1/5/15-minute load averages: other processes on a small machine inflate the figures.
    loadAverageAtStart: load.map((x) => Math.round(x * 100) / 100),
    loadAverageAtEnd: loadAtEnd.map((x) => Math.round(x * 100) / 100),
  },
  targetMs: 500,
  scenarios,
};

fs.mkdirSync(path.join(root, "bench/results"), { recursive: true });
fs.writeFileSync(
  path.join(root, "bench/results/b7-cli-startup.json"),
  `${JSON.stringify(result, null, 2)}\n`,
);
console.log(JSON.stringify(result, null, 2));
