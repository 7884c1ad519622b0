/**
 * B3 — durable one-task workflows through the HTTP API, closed loop.
 *
 * A `tern serve`-equivalent server runs in its own process (SQLite in WAL mode,
 * local blobs, the worker-process backend); this process is the load: C clients in a
 * closed loop, each creating work and waiting for it to end before the next, in one of
 * these shapes (`--shapes`, each run in turn):
 *  - `watch`: `POST …/executions`, then its watch stream (server-sent events) to `end`;
 *  - `poll`: `POST …/executions`, then `GET …/executions/:id` until it is over;
 *  - `prefer`: one `POST …/executions` with `Prefer: wait=60`, answered at the end;
 *  - `batch:K`: one `POST …/executions/batch` of K executions with `Prefer: wait=60`.
 * Every execution is durable: its record, events and node states are written to
 * SQLite before the client hears it ended.
 *
 * Reported per concurrency: executions per second, and p50/p99 latency from
 * the create request to the end. Target ≥ 2,000/s on SQLite on 2 cores
 * (goal 5,000). With --profile the server's CPU profile is summarized
 * (self time by function) to show where the time goes. CPU time per execution is
 * reported for the server and for this load generator, which share the 2 cores.
 *
 * The load generator speaks HTTP/1.1 over node:http with keep-alive (`--client http`,
 * the default): it costs a third of the CPU of `fetch` (`--client fetch`, undici with
 * WHATWG streams), which leaves that much more of the machine to the server.
 *
 *   pnpm build && node bench/b3-api-throughput.mjs [--seconds 15] [--shapes watch,prefer,batch:16]
 *       [--concurrency 8,32,128] [--backend process|inline] [--workers 4] [--client http|fetch] [--profile]
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import { createRequire } from "node:module";
import * as os from "node:os";
import * as path from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { bundleEntry, compile, importBundle } from "@tern/core";

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const SECONDS = Number(opt("seconds", 15));
const WARMUP_S = Number(opt("warmup", 3));
/**
 * Shapes of the closed loop, each its own series of runs:
 *  - `watch`: POST the execution, then follow its SSE watch stream to `end` (two requests);
 *  - `poll`: POST, then GET the record until it is over;
 *  - `prefer`: one POST with `Prefer: wait=60`, answered once the execution is over;
 *  - `batch:K`: one POST …/executions/batch of K executions with `Prefer: wait=60`.
 */
const SHAPES = String(opt("shapes", "watch,prefer,batch:16")).split(",");
for (const sh of SHAPES)
  if (!/^(watch|poll|prefer|batch:\d+)$/.test(sh))
    throw new Error(`--shapes takes watch, poll, prefer and batch:<K>, not ${sh}`);
/** Clients per shape (a batch client has K executions in flight). */
const DEFAULT_CONCURRENCY = { watch: "32,64,128", poll: "32,64", prefer: "64,128,256", batch: "4,8,16" };
const concurrencyOf = (shape) =>
  String(opt("concurrency", DEFAULT_CONCURRENCY[shape.split(":")[0]]))
    .split(",")
    .map(Number);
const BACKEND = opt("backend", "process");
const WORKERS = Number(opt("workers", 4));
const PROFILE = args.includes("--profile");
const CLIENT = opt("client", "http");
if (CLIENT !== "http" && CLIENT !== "fetch") throw new Error(`--client must be http or fetch, not ${CLIENT}`);
const TARGET = 2000;
const GOAL = 5000;

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "..");
const coreDir = path.join(repo, "packages/core");
const zodDir = path.dirname(createRequire(path.join(coreDir, "package.json")).resolve("zod/package.json"));

// A throwaway project the worker processes load the bundle from.
const root = fs.mkdtempSync(path.join(os.tmpdir(), "tern-b3-"));
fs.writeFileSync(
  path.join(root, "package.json"),
  JSON.stringify({ name: "b3", type: "module", private: true }),
);
fs.mkdirSync(path.join(root, "node_modules", "@tern"), { recursive: true });
fs.symlinkSync(coreDir, path.join(root, "node_modules", "@tern", "core"), "dir");
fs.symlinkSync(zodDir, path.join(root, "node_modules", "zod"), "dir");
fs.writeFileSync(
  path.join(root, "flow.ts"),
  `import { task, workflow } from "@tern/core";
import { z } from "zod";
export const inc = task({ name: "b3_inc", inputs: { i: z.number() }, output: z.number() }, async ({ i }) => i + 1);
export const one = workflow({ name: "b3_one", inputs: { i: z.number() }, output: z.number() }, ({ i }) => inc({ i }));
`,
);

// The server, in its own process.
const profDir = path.join(root, "prof");
const serverScript = `
import { startServer } from ${JSON.stringify(path.join(repo, "packages/server/dist/index.js"))};
const s = await startServer({ port: 0, workDir: ${JSON.stringify(root)}, logger: false, backend: ${JSON.stringify(BACKEND)}, workers: ${WORKERS}, executor: { claimIntervalMs: 200 } });
process.stdout.write(s.url + "\\n");
process.on("SIGTERM", async () => { await s.close(); process.exit(0); });
// The bench asks for the server's CPU time between runs (SIGUSR2 → one line on stdout).
process.on("SIGUSR2", () => { const u = process.cpuUsage(); process.stdout.write("cpu " + (u.user + u.system) + "\\n"); });
`;
const server = spawn(
  process.execPath,
  [
    ...(PROFILE ? ["--cpu-prof", `--cpu-prof-dir=${profDir}`] : []),
    "--input-type=module",
    "-e",
    serverScript,
  ],
  {
    cwd: root,
    stdio: ["ignore", "pipe", "inherit"],
  },
);
let serverOut = "";
let cpuWaiter;
const url = await new Promise((resolve, reject) => {
  server.stdout.on("data", (d) => {
    serverOut += d;
    const m = /^(http:\/\/\S+)\n/m.exec(serverOut);
    if (m) resolve(m[1]);
    const c = /^cpu (\d+)\n/m.exec(serverOut);
    if (c && cpuWaiter) {
      serverOut = serverOut.replace(c[0], "");
      cpuWaiter(Number(c[1]));
      cpuWaiter = undefined;
    }
  });
  server.on("exit", (c) => reject(new Error(`server exited (${c})`)));
});
/** The server process's CPU time so far, in µs. */
function serverCpu() {
  return new Promise((resolve) => {
    cpuWaiter = resolve;
    server.kill("SIGUSR2");
  });
}

const bundle = await bundleEntry(path.join(root, "flow.ts"));
const mod = await importBundle(bundle.path);
const compiled = compile(mod.one, { bundle: bundle.digest, projectRoot: root }).spec;
const S = `${url}/api/v1/projects/default/domains/development`;
const reg = await fetch(`${url}/api/v1/register`, {
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify({
    workflows: [compiled],
    bundles: [{ digest: bundle.digest, contentBase64: fs.readFileSync(bundle.path).toString("base64") }],
  }),
});
if (!reg.ok) throw new Error(`register failed: ${reg.status} ${await reg.text()}`);
const version = compiled.workflow.id.version;

const agent = new http.Agent({ keepAlive: true, maxSockets: 1024 });

/** One request over the keep-alive agent; resolves with the status and the whole body as text. */
function request(method, target, body, extra = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      target,
      {
        method,
        agent,
        headers: {
          ...(body ? { "content-type": "application/json", "content-length": Buffer.byteLength(body) } : {}),
          ...extra,
        },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c) => (text += c));
        res.on("end", () => resolve({ status: res.statusCode, text }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

/** The end of an execution through its watch stream, read with node:http. */
function waitWatchHttp(id) {
  return new Promise((resolve, reject) => {
    const req = http.get(`${S}/executions/${id}/watch`, { agent }, (res) => {
      let buf = "";
      let done = false;
      res.setEncoding("utf8");
      res.on("data", (c) => {
        buf += c;
        const i = buf.indexOf("event: end\n");
        if (i < 0) return;
        const data = /data: (.*)\n/.exec(buf.slice(i))?.[1];
        if (!data) return;
        // The server ends the response right after `end`: the socket goes back to the pool.
        done = true;
        res.removeAllListeners("data");
        res.resume();
        resolve(JSON.parse(data).phase);
      });
      res.on("end", () => {
        if (!done) reject(new Error(`watch of ${id} closed without its end`));
      });
    });
    req.on("error", reject);
  });
}

/** Wait for the end of an execution through its watch stream. */
async function waitWatch(id) {
  if (CLIENT === "http") return waitWatchHttp(id);
  const res = await fetch(`${S}/executions/${id}/watch`);
  const decoder = new TextDecoder();
  let buf = "";
  for await (const chunk of res.body) {
    buf += decoder.decode(chunk, { stream: true });
    const i = buf.indexOf("event: end\n");
    if (i >= 0) {
      const data = /data: (.*)\n/.exec(buf.slice(i))?.[1];
      if (data) {
        return JSON.parse(data).phase;
      }
    }
  }
  throw new Error(`watch of ${id} closed without its end`);
}

/** Wait for the end of an execution by polling its record. */
async function waitPoll(id) {
  for (let delay = 2; ; delay = Math.min(50, delay * 2)) {
    const r = await (await fetch(`${S}/executions/${id}`)).json();
    if (r.phase === "succeeded" || r.phase === "failed" || r.phase === "aborted") return r.phase;
    await new Promise((res) => setTimeout(res, delay));
  }
}

async function launch(i) {
  const payload = JSON.stringify({ workflow: { name: "b3_one", version }, inputs: { i } });
  if (CLIENT === "http") {
    const r = await request("POST", `${S}/executions`, payload);
    return { status: r.status, body: JSON.parse(r.text) };
  }
  const r = await fetch(`${S}/executions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: payload,
  });
  return { status: r.status, body: await r.json() };
}

/** A launch answered when the execution is over: one request (`Prefer: wait`). */
async function launchWaited(i) {
  const payload = JSON.stringify({ workflow: { name: "b3_one", version }, inputs: { i } });
  const r = await request("POST", `${S}/executions`, payload, { prefer: "wait=60" });
  if (r.status !== 201) throw new Error(`launch failed: ${r.status} ${r.text}`);
  return JSON.parse(r.text).phase;
}

/** `k` executions created in one request and answered when all are over. */
async function batch(i, k) {
  const t0 = performance.now();
  const executions = Array.from({ length: k }, (_, j) => ({
    workflow: { name: "b3_one", version },
    inputs: { i: i + j },
  }));
  const r = await request("POST", `${S}/executions/batch`, JSON.stringify({ executions }), {
    prefer: "wait=60",
  });
  if (r.status !== 201) throw new Error(`batch launch failed: ${r.status} ${r.text.slice(0, 300)}`);
  for (const e of JSON.parse(r.text).executions)
    if (e.phase !== "succeeded") throw new Error(`execution ${e.id} ended ${e.phase}`);
  return performance.now() - t0;
}

/** One turn of a client in `shape`: its latency in ms (a batch's, for each of its executions). */
async function one(i, shape) {
  if (shape.startsWith("batch:")) return batch(i, Number(shape.slice(6)));
  const t0 = performance.now();
  if (shape === "prefer") {
    const phase = await launchWaited(i);
    if (phase !== "succeeded") throw new Error(`an execution ended ${phase}`);
    return performance.now() - t0;
  }
  const { status, body } = await launch(i);
  if (status !== 201) throw new Error(`launch failed: ${status} ${JSON.stringify(body)}`);
  const phase = shape === "poll" ? await waitPoll(body.id) : await waitWatch(body.id);
  if (phase !== "succeeded") throw new Error(`execution ${body.id} ended ${phase}`);
  return performance.now() - t0;
}

/** C clients in a closed loop for `seconds`; latencies of executions that started after the warm-up. */
async function closedLoop(shape, c, seconds, warmup) {
  const per = shape.startsWith("batch:") ? Number(shape.slice(6)) : 1;
  const lat = [];
  let n = 0;
  const start = performance.now();
  const measureFrom = start + warmup * 1000;
  const end = measureFrom + seconds * 1000;
  let measuredDone = 0;
  let firstMeasured = Number.POSITIVE_INFINITY;
  let lastDone = 0;
  const serverCpu0 = await serverCpu();
  const clientCpu0 = process.cpuUsage();
  let total = 0;
  await Promise.all(
    Array.from({ length: c }, async () => {
      while (performance.now() < end) {
        const began = performance.now();
        const i = n;
        n += per;
        const ms = await one(i, shape);
        total += per;
        if (began >= measureFrom) {
          for (let k = 0; k < per; k++) lat.push(ms);
          measuredDone += per;
          firstMeasured = Math.min(firstMeasured, began);
          lastDone = Math.max(lastDone, performance.now());
        }
      }
    }),
  );
  const serverCpuUs = (await serverCpu()) - serverCpu0;
  const cc = process.cpuUsage(clientCpu0);
  lat.sort((a, b) => a - b);
  const q = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))];
  const wall = (lastDone - firstMeasured) / 1000;
  return {
    shape,
    concurrency: c,
    ...(per > 1 ? { inFlight: c * per } : {}),
    executions: measuredDone,
    seconds: Math.round(wall * 100) / 100,
    perSecond: Math.round(measuredDone / wall),
    p50Ms: Math.round(q(0.5) * 10) / 10,
    p99Ms: Math.round(q(0.99) * 10) / 10,
    maxMs: Math.round(lat[lat.length - 1] * 10) / 10,
    // CPU per execution over the whole run (warm-up included), by process: where the 2 cores go.
    serverCpuUsPerExecution: Math.round(serverCpuUs / total),
    clientCpuUsPerExecution: Math.round((cc.user + cc.system) / total),
  };
}

const runs = [];
for (const shape of SHAPES) {
  for (const c of concurrencyOf(shape)) {
    const r = await closedLoop(shape, c, SECONDS, WARMUP_S);
    runs.push(r);
    console.log(
      `${shape.padEnd(8)} C=${String(c).padStart(4)}  ${String(r.perSecond).padStart(6)} executions/s  p50 ${r.p50Ms} ms  p99 ${r.p99Ms} ms  (${r.executions} in ${r.seconds} s)  CPU/execution: server ${r.serverCpuUsPerExecution} µs, client ${r.clientCpuUsPerExecution} µs`,
    );
  }
}

server.kill("SIGTERM");
await new Promise((r) => server.on("exit", r));

let profile;
if (PROFILE) {
  const file = fs.readdirSync(profDir).find((f) => f.endsWith(".cpuprofile"));
  const prof = JSON.parse(fs.readFileSync(path.join(profDir, file), "utf8"));
  if (process.env.B3_KEEP_PROFILE) fs.copyFileSync(path.join(profDir, file), process.env.B3_KEEP_PROFILE);
  const self = new Map();
  const dt = prof.timeDeltas;
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const counts = new Map();
  for (let i = 0; i < prof.samples.length; i++)
    counts.set(prof.samples[i], (counts.get(prof.samples[i]) ?? 0) + (dt[i] ?? 0));
  let total = 0;
  for (const [id, us] of counts) {
    const n = byId.get(id);
    const f = n.callFrame;
    const where = f.url
      ? `${f.functionName || "(anonymous)"} ${f.url.replace(/^.*node_modules\/\.pnpm\/([^/]+)\/.*$/, "$1").replace(/^.*\/packages\//, "")}:${f.lineNumber + 1}`
      : f.functionName;
    self.set(where, (self.get(where) ?? 0) + us);
    total += us;
  }
  const byPackage = new Map();
  for (const [where, us] of self) {
    const pkg = /(\S+?)(?:\/[^/\s]*)?:\d+$/.exec(where)?.[1]?.split("/").slice(0, 2).join("/") ?? where;
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + us);
  }
  const top = (m, k) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, k)
      .map(([w, us]) => ({ where: w, pct: Math.round((us / total) * 1000) / 10 }));
  // Each sample charged to the nearest frame (leaf upwards) of a known layer.
  const parent = new Map();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const LAYERS = [
    ["store (kysely, SQLite)", /\/server\/dist\/store\/|kysely|better-sqlite3/],
    [
      "API (routes, fastify, JSON)",
      /\/server\/dist\/api\/|\/server\/dist\/auth\/|fastify|fast-json-stringify|ajv|find-my-way|light-my-request|avvio|secure-json-parse/,
    ],
    ["metrics", /\/server\/dist\/metrics|prom-client/],
    ["executor", /\/server\/dist\/executor\//],
    ["engine + process backend (core)", /\/core\/dist\/|zod/],
  ];
  const layers = new Map();
  for (let i = 0; i < prof.samples.length; i++) {
    let id = prof.samples[i];
    const leaf = byId.get(id).callFrame.functionName;
    let layer = leaf === "(idle)" ? "idle" : leaf === "(garbage collector)" ? "garbage collector" : undefined;
    while (!layer && id !== undefined) {
      const url = byId.get(id).callFrame.url;
      layer = LAYERS.find(([, re]) => re.test(url))?.[0];
      id = parent.get(id);
    }
    layer ??= "other (node internals, timers)";
    layers.set(layer, (layers.get(layer) ?? 0) + (dt[i] ?? 0));
  }
  profile = { byLayer: top(layers, 10), topFunctions: top(self, 25), topSources: top(byPackage, 15) };
  console.log("server CPU by layer:");
  for (const t of profile.byLayer) console.log(`  ${String(t.pct).padStart(5)}%  ${t.where}`);
  console.log("server CPU, self time:");
  for (const t of profile.topSources) console.log(`  ${String(t.pct).padStart(5)}%  ${t.where}`);
  console.log("top functions:");
  for (const t of profile.topFunctions.slice(0, 15))
    console.log(`  ${String(t.pct).padStart(5)}%  ${t.where}`);
}

const bestOf = (rs) => rs.reduce((a, b) => (b.perSecond > a.perSecond ? b : a));
const best = bestOf(runs);
/** The best run of each shape: what one request per execution gives, and what batches give. */
const byShape = Object.fromEntries(
  SHAPES.map((sh) => {
    const b = bestOf(runs.filter((r) => r.shape === sh));
    return [
      sh,
      {
        perSecond: b.perSecond,
        concurrency: b.concurrency,
        p50Ms: b.p50Ms,
        p99Ms: b.p99Ms,
        pass: b.perSecond >= TARGET,
      },
    ];
  }),
);
const result = {
  benchmark: "b3-api-throughput",
  description:
    "durable one-task workflows through the HTTP API, closed loop, server in its own process on SQLite (WAL) " +
    `with the ${BACKEND} backend (${WORKERS} worker${WORKERS === 1 ? "" : "s"}); shapes: watch = POST then the SSE ` +
    "watch stream to its end; poll = POST then GET until over; prefer = one POST with Prefer: wait; batch:K = one " +
    "POST …/executions/batch of K with Prefer: wait. Every execution's record, events and node rows are stored " +
    "before the client hears it ended.",
  targetPerSecond: TARGET,
  goalPerSecond: GOAL,
  pass: best.perSecond >= TARGET,
  shapes: SHAPES,
  byShape,
  client: CLIENT === "http" ? "node:http with keep-alive" : "fetch (undici)",
  backend: BACKEND,
  workers: WORKERS,
  runs,
  best,
  ...(profile ? { serverProfile: profile } : {}),
  machine: {
    cpu: os.cpus()[0]?.model.trim() ?? "unknown",
    cores: os.cpus().length,
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    loadAverage1m: os.loadavg()[0],
  },
  at: new Date().toISOString(),
};
if (!args.includes("--no-record")) {
  fs.mkdirSync(path.join(here, "results"), { recursive: true });
  fs.writeFileSync(path.join(here, "results/b3-api-throughput.json"), `${JSON.stringify(result, null, 2)}\n`);
}
fs.rmSync(root, { recursive: true, force: true });
for (const [sh, b] of Object.entries(byShape))
  console.log(
    `best ${sh.padEnd(8)} ${b.perSecond}/s at C=${b.concurrency} (p50 ${b.p50Ms} ms, p99 ${b.p99Ms} ms)`,
  );
console.log(
  `best: ${best.perSecond}/s (${best.shape}, C=${best.concurrency}; target ${TARGET}/s: ${result.pass ? "met" : "NOT met"})`,
);
