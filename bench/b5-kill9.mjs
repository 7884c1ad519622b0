/**
 * B5 — kill -9 with 10k nodes in flight, on the process backend.
 *
 * One execution of a wide workflow of N short tasks (each body appends its node id to a
 * shared file, then sleeps a few ms) runs in a control plane process (`startServer`, as `tern serve`: SQLite store, local
 * blob directory, `workers` worker processes). When 40 % of the bodies have run, that
 * process gets SIGKILL: the rest of the 10k nodes are in flight (queued for a worker, or
 * running in one). A new executor process is started on the same database and
 * directories, with default replica names (as `tern serve` restarting would) and the
 * default 15 s lease: it takes the dead process's execution over at once.
 *
 * Measured:
 *  - restart → resumed: from spawning the new process to the first event it appends
 *    (its "resumed by" marker), and to the first node event after it (work resumes);
 *  - restart → ready: until the new control plane listens (its API loads while the
 *    executor already resumes stored work, so it comes after the first events);
 *  - duplicated node runs: nodes whose body ran more than once (must be 0);
 *  - attempts adopted (their stored result, or the worker still running them);
 *  - total time to finish after the restart.
 *
 * The whole cycle runs `--runs` times (each on a fresh directory): one restart's timing
 * varies by ±15 % here, so the record gives every run, and the target is judged on the median.
 *
 *   pnpm build && node bench/b5-kill9.mjs [--runs 5] [--nodes 10000] [--workers 4] [--ms 2] [--at 0.4]
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import { createRequire } from "node:module";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const serveDist = path.resolve(here, "../packages/server/dist/serve.js");
const serverDist = path.resolve(here, "../packages/server/dist/index.js");
const coreDir = path.resolve(here, "../packages/core");

// ---------------------------------------------------------------------------
// Child mode: one executor process.
if (process.argv[2] === "--child") {
  const cfg = JSON.parse(process.argv[3]);
  // As `tern serve` restarting: the control plane's own start-up (store, executor, then the
  // API, which loads while the executor already resumes stored work).
  const { startServer } = await import(serveDist);
  const server = await startServer({
    port: 0,
    db: cfg.db,
    storage: cfg.blobDir,
    workDir: cfg.workDir,
    workers: cfg.workers,
    backend: "process",
    logger: process.env.B5_VERBOSE ? { level: "debug", destination: process.stderr } : false,
  });
  const { store, executor } = server;
  if (cfg.launch && !(await store.executions.get(cfg.launch.id))) {
    const compiled = JSON.parse(fs.readFileSync(cfg.launch.compiledFile, "utf8"));
    await executor.launch({
      id: cfg.launch.id,
      project: "default",
      domain: "development",
      compiled,
      inputs: cfg.launch.inputs,
    });
  }
  process.stdout.write(`ready ${Date.now()}\n`);
  process.on("SIGTERM", async () => {
    await server.close();
    process.exit(0);
  });
} else {
  await main();
}

async function main() {
  const args = process.argv.slice(2);
  const arg = (name, dflt) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? Number(args[i + 1]) : dflt;
  };
  const cfg = { N: arg("nodes", 10_000), WORKERS: arg("workers", 4), MS: arg("ms", 2), AT: arg("at", 0.4) };
  const RUNS = arg("runs", 5);
  const runs = [];
  for (let r = 0; r < RUNS; r++) {
    const one = await once(cfg);
    console.error(
      `run ${r + 1}/${RUNS}: restart → first event ${one.resume.restartToFirstEventMs} ms, → first node event ${one.resume.restartToFirstNodeEventMs} ms, ${one.duplicatedNodeRuns} duplicated, ${one.outcome}`,
    );
    runs.push(one);
  }
  const firstNode = runs.map((x) => x.resume.restartToFirstNodeEventMs ?? Number.POSITIVE_INFINITY);
  const sorted = [...firstNode].sort((a, b) => a - b);
  const median = sorted[Math.floor((sorted.length - 1) / 2)];
  const correct = runs.every((x) => x.correct);
  const cpus = os.cpus();
  const report = {
    benchmark: "b5-kill9",
    description: `kill -9 of an executor process (SQLite, process backend with ${cfg.WORKERS} workers) running one execution of ${cfg.N} tasks (${cfg.MS} ms each) after ${Math.round(cfg.AT * 100)}% of the bodies ran; a new executor process on the same database and directories resumes it. Repeated ${RUNS} times, each on a fresh directory.`,
    backend: "process",
    nodes: cfg.N,
    workers: cfg.WORKERS,
    taskMs: cfg.MS,
    targetResumeMs: 1000,
    // Every run finished every node exactly once, and the median restart → first node event is under the target.
    pass: correct && median < 1000,
    summary: {
      runs: RUNS,
      restartToFirstNodeEventMs: { min: sorted[0], median, max: sorted[sorted.length - 1] },
      runsOverTarget: firstNode.filter((v) => v >= 1000).length,
      duplicatedNodeRuns: runs.reduce((a, x) => a + x.duplicatedNodeRuns, 0),
      nodesNeverRun: runs.reduce((a, x) => a + x.nodesNeverRun, 0),
    },
    runs: runs.map(({ correct: _, ...x }) => x),
    machine: {
      cpu: cpus[0]?.model ?? "unknown",
      cores: cpus.length,
      node: process.version,
      platform: `${os.platform()} ${os.arch()}`,
      loadAverage1m: Math.round(os.loadavg()[0] * 100) / 100,
    },
    at: new Date().toISOString(),
  };
  console.log(JSON.stringify(report, null, 2));
  const out = path.join(here, "results", "b5-kill9.json");
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
}

/** One kill -9 and restart, on a fresh directory. */
async function once({ N, WORKERS, MS, AT }) {
  const { bundleEntry, compile, importBundle } = await import("@tern/core");
  const { Store } = await import(serverDist);
  const zodDir = path.dirname(createRequire(path.join(coreDir, "package.json")).resolve("zod/package.json"));
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "tern-b5-"));
  fs.writeFileSync(
    path.join(root, "package.json"),
    JSON.stringify({ name: "b5", type: "module", private: true }),
  );
  fs.mkdirSync(path.join(root, "node_modules", "@tern"), { recursive: true });
  fs.symlinkSync(coreDir, path.join(root, "node_modules", "@tern", "core"), "dir");
  fs.symlinkSync(zodDir, path.join(root, "node_modules", "zod"), "dir");
  fs.writeFileSync(
    path.join(root, "tasks.ts"),
    `import * as fs from "node:fs";
import { task, workflow } from "@tern/core";
import { z } from "zod";
export const work = task({ name: "b5_work", inputs: { log: z.string(), ms: z.number() }, output: z.number() }, async ({ log, ms }, ctx) => {
  fs.appendFileSync(log, ctx.node.id + "\\n");
  await new Promise((r) => setTimeout(r, ms));
  return 1;
});
export const wide = workflow({ name: "b5_wide", inputs: { log: z.string(), ms: z.number() } }, ({ log, ms }) => {
  for (let k = 0; k < ${N}; k++) work({ log, ms }, { id: \`n\${k}\` });
});
`,
  );
  const bundle = await bundleEntry(path.join(root, "tasks.ts"));
  const mod = await importBundle(bundle.path);
  const compiled = compile(mod.wide, { bundle: bundle.digest, projectRoot: root }).spec;
  fs.writeFileSync(path.join(root, "wide.json"), JSON.stringify(compiled));

  const bodyLog = path.join(root, "bodies.log");
  const db = `sqlite:${path.join(root, "tern.db")}`;
  const base = { db, workDir: root, blobDir: path.join(root, ".tern", "blobs"), workers: WORKERS };
  const id = "xb5kill9";
  const lines = () =>
    fs.existsSync(bodyLog) ? fs.readFileSync(bodyLog, "utf8").split("\n").filter(Boolean) : [];
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  const startChild = (cfg, nodeArgs = []) => {
    const child = spawn(
      process.execPath,
      [...nodeArgs, fileURLToPath(import.meta.url), "--child", JSON.stringify(cfg)],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    const ready = new Promise((resolve) => {
      let out = "";
      child.stdout.on("data", (d) => {
        out += d;
        const m = /ready (\d+)/.exec(out);
        if (m) resolve(Number(m[1]));
      });
    });
    return { child, ready };
  };

  const t0 = Date.now();
  const first = startChild({
    ...base,
    launch: { id, compiledFile: path.join(root, "wide.json"), inputs: { log: bodyLog, ms: MS } },
  });
  await first.ready;
  while (lines().length < N * AT) await sleep(20);
  first.child.kill("SIGKILL");
  await new Promise((r) => first.child.once("exit", r));
  const killedAt = Date.now();
  const ranBeforeKill = lines().length;

  const store = await Store.open(db);
  const lastSeqAtKill = await store.events.lastSeq(id);
  const nodesAtKill = await store.nodes.list(id);
  const succeededAtKill = nodesAtKill.filter((n) => n.phase === "succeeded").length;
  const inFlightAtKill = N - succeededAtKill;

  const restartAt = Date.now();
  const second = startChild(
    base,
    process.env.B5_CPUPROF ? ["--cpu-prof", `--cpu-prof-dir=${process.env.B5_CPUPROF}`] : [],
  );
  const readyAt = await second.ready;
  let rec;
  for (;;) {
    rec = await store.executions.get(id);
    if (rec && ["succeeded", "failed", "aborted"].includes(rec.phase)) break;
    await sleep(50);
  }
  const finishedAt = Date.now();
  second.child.kill("SIGTERM");
  await new Promise((r) => second.child.once("exit", r));

  const after = await store.events.list(id, lastSeqAtKill, 10_000);
  const marker = after.find((e) => !e.node && /^(resumed|claimed) by/.test(e.message ?? ""));
  const firstNodeEvent = after.find((e) => e.node && e.seq > (marker?.seq ?? 0));
  let adoptedResult = 0;
  let adoptedRunning = 0;
  for (let afterSeq = lastSeqAtKill; ; ) {
    const page = await store.events.list(id, afterSeq, 10_000);
    for (const e of page) {
      if (e.phase !== "initializing" || !e.pluginState?.adopted) continue;
      if (e.pluginState.adopted === "result") adoptedResult++;
      else adoptedRunning++;
    }
    if (page.length < 10_000) break;
    afterSeq = page[page.length - 1].seq;
  }
  await store.close();

  const counts = new Map();
  for (const l of lines()) counts.set(l, (counts.get(l) ?? 0) + 1);
  const duplicated = [...counts.values()].filter((c) => c > 1).length;
  const missing = N - counts.size;

  fs.rmSync(root, { recursive: true, force: true });
  return {
    correct: duplicated === 0 && missing === 0 && rec.phase === "succeeded" && firstNodeEvent !== undefined,
    outcome: rec.phase,
    atKill: {
      bodiesRun: ranBeforeKill,
      nodesSucceededInStore: succeededAtKill,
      nodesInFlight: inFlightAtKill,
      eventsStored: lastSeqAtKill,
    },
    resume: {
      restartToReadyMs: readyAt - restartAt,
      restartToFirstEventMs: marker ? marker.at - restartAt : null,
      restartToFirstNodeEventMs: firstNodeEvent ? firstNodeEvent.at - restartAt : null,
      killToRestartMs: restartAt - killedAt,
    },
    duplicatedNodeRuns: duplicated,
    nodesNeverRun: missing,
    adopted: { result: adoptedResult, running: adoptedRunning },
    timesMs: { beforeKill: killedAt - t0, restartToFinish: finishedAt - restartAt },
  };
}
