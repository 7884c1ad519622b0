/**
 * 1,000 pods through the engine and `k8s-pod`, on the fake Kubernetes API.
 *
 * The fake runs in a child process (10 nodes × 110 pods, each pod's container is `/bin/true`,
 * really spawned by the fake kubelet), so the engine process's CPU time is the engine's and the
 * plugin's alone: client-node requests, the shared watch, status mapping, events.
 *
 * Figures:
 *  - engine CPU per pod (process.cpuUsage of this process over the run / pods)
 *  - wall time per pod (the whole run / pods; pods run concurrently)
 *  - the same run on an in-memory K8sApi (no HTTP, no client-node): the engine and plugin alone
 *  - the fake's CPU time (its scheduler, kubelet and process spawning; for comparison)
 *  - API calls per pod on pod paths (POST/GET/DELETE of single pods, counted by the fake;
 *    the one list and the watch streams are reported separately). Target: ≤ 3.
 *
 *   pnpm build && node packages/plugin-k8s/bench/k8s-1000-pods.mjs [--pods 1000] [--warmup 100]
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { performance } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { compile, createEngine, task, workflow } from "@tern/core";
import { z } from "zod";
import k8s from "../dist/index.js";

const args = process.argv.slice(2);
const arg = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const PODS = arg("pods", 1000);
const WARMUP = arg("warmup", 100);
const TARGET_CALLS_PER_POD = 3;

const here = path.dirname(fileURLToPath(import.meta.url));
const testkit = path.resolve(here, "../../testkit/dist/index.js");
const work = fs.mkdtempSync(path.join(os.tmpdir(), "tern-k8s-bench-"));
const kubeconfig = path.join(work, "kubeconfig.yaml");

// ---------------------------------------------------------------- the fake, in a child process
const FAKE = `
import { writeFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { startFakeKubernetes, DEFAULT_NODE } from ${JSON.stringify(testkit)};
const nodes = Array.from({ length: 10 }, (_, i) => ({ ...DEFAULT_NODE, name: "bench-node-" + i }));
const fake = await startFakeKubernetes({ nodes, schedulingDelayMs: 1, containerStartDelayMs: 1, maxRecordedRequests: 100000 });
writeFileSync(${JSON.stringify(kubeconfig)}, fake.kubeconfig());
process.stdout.write(JSON.stringify({ ready: true }) + "\\n");
for await (const line of createInterface({ input: process.stdin })) {
  if (line === "reset") { fake.resetRequests(); process.stdout.write("{}\\n"); }
  if (line === "stats") {
    const reqs = fake.requests();
    const single = reqs.filter((r) => r.query.watch !== "true" && /^\\/api\\/v1\\/namespaces\\/[^/]+\\/pods\\/[^/]+$/.test(r.path));
    const posts = reqs.filter((r) => r.method === "POST" && /\\/pods$/.test(r.path));
    const count = (m) => [...single, ...posts].filter((r) => r.method === m).length;
    process.stdout.write(JSON.stringify({
      total: reqs.length,
      podPath: { POST: count("POST"), GET: count("GET"), DELETE: count("DELETE") },
      lists: reqs.filter((r) => r.method === "GET" && /\\/pods$/.test(r.path) && r.query.watch !== "true").length,
      watches: reqs.filter((r) => r.query.watch === "true").length,
      health: reqs.filter((r) => r.path === "/version").length,
      pods: fake.pods().length,
      cpuMs: Math.round((process.cpuUsage().user + process.cpuUsage().system) / 1000),
    }) + "\\n");
  }
  if (line === "quit") break;
}
// stdin closed (or "quit"): the parent is done or gone.
await fake.close();
process.exit(0);
`;
const child = spawn(process.execPath, ["--input-type=module", "-e", FAKE], {
  stdio: ["pipe", "pipe", "inherit"],
});
process.on("exit", () => child.kill());
const replies = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
const ask = async (cmd) => {
  if (cmd) child.stdin.write(`${cmd}\n`);
  const { value } = await replies.next();
  return JSON.parse(value);
};
await ask(); // ready

// ---------------------------------------------------------------- the engine
const local = await createEngine({
  workDir: work,
  catalog: false,
  plugins: [
    k8s({
      clusters: [{ name: "bench", kubeconfig, namespace: "default" }],
      defaultImage: "busybox:1.36",
      healthCheckIntervalMs: 60_000,
    }),
  ],
  backendConfig: { defaultForTaskTypes: { node: "k8s-pod" } },
});
const noop = task(
  {
    name: "bench_true",
    type: "container",
    output: z.null(),
    custom: { image: "busybox:1.36", command: ["/bin/true"] },
  },
  async () => {},
);
const wide = (n, name) =>
  compile(
    workflow({ name, inputs: {}, output: z.array(z.null()) }, () =>
      Array.from({ length: n }, (_, i) => noop({}, { id: `p${i}` })),
    ),
    { projectRoot: work },
  );

async function measure(n, name) {
  const compiled = wide(n, name);
  await ask("reset");
  const fake0 = (await ask("stats")).cpuMs;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const result = await local.engine.run(compiled, {});
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  if (result.phase !== "succeeded") throw new Error(`${name} failed: ${JSON.stringify(result.error)}`);
  const attempts = result.nodes.reduce((a, x) => a + x.attempts, 0);
  const stats = await ask("stats");
  const podCalls = stats.podPath.POST + stats.podPath.GET + stats.podPath.DELETE;
  return {
    pods: n,
    attempts,
    wallMs: Math.round(wallMs),
    wallMsPerPod: +(wallMs / n).toFixed(3),
    engineCpuMs: Math.round((cpu.user + cpu.system) / 1000),
    engineCpuUsPerPod: Math.round((cpu.user + cpu.system) / n),
    engineCpuSplitMs: { user: Math.round(cpu.user / 1000), system: Math.round(cpu.system / 1000) },
    apiCallsPerPod: +(podCalls / n).toFixed(3),
    podPathCalls: stats.podPath,
    lists: stats.lists,
    watches: stats.watches,
    healthChecks: stats.health,
    totalRequests: stats.total,
    podsLeft: stats.pods,
    fakeCpuMs: stats.cpuMs - fake0,
  };
}

const loadBefore = os.loadavg()[0];
const warmup = await measure(WARMUP, "bench_warmup");
const run = await measure(PODS, "bench_main");
await local.close();

// ---------------------------------------------------------------- the same, on an in-memory K8sApi
// No HTTP and no client-node: what the engine and the plugin cost by themselves.
function memoryApi() {
  const pods = new Map();
  const watchers = new Set();
  let rv = 1;
  const emit = (type, pod) => {
    pod.metadata.resourceVersion = String(++rv);
    for (const w of watchers) w(type, structuredClone(pod));
  };
  const advance = (name, phase) =>
    setImmediate(() => {
      const p = pods.get(name);
      if (!p) return;
      p.status = {
        phase,
        containerStatuses: [
          {
            name: "main",
            state:
              phase === "Running" ? { running: {} } : { terminated: { exitCode: 0, reason: "Completed" } },
          },
        ],
      };
      emit("MODIFIED", p);
      if (phase === "Running") advance(name, "Succeeded");
    });
  return {
    async create(_res, ns, body) {
      const pod = structuredClone(body);
      pod.metadata = {
        ...pod.metadata,
        namespace: ns,
        uid: `uid-${rv}`,
        creationTimestamp: new Date().toISOString(),
      };
      pod.status = { phase: "Pending" };
      pods.set(pod.metadata.name, pod);
      emit("ADDED", pod);
      advance(pod.metadata.name, "Running");
      return structuredClone(pod);
    },
    async get(_res, _ns, name) {
      const p = pods.get(name);
      if (!p) throw Object.assign(new Error("not found"), { status: 404 });
      return structuredClone(p);
    },
    async list() {
      return { items: [...pods.values()].map((p) => structuredClone(p)), resourceVersion: String(rv) };
    },
    async delete(_res, _ns, name) {
      const p = pods.get(name);
      if (p) {
        pods.delete(name);
        emit("DELETED", p);
      }
    },
    async watch(_res, _ns, _opts, onEvent) {
      watchers.add(onEvent);
      return { stop: () => watchers.delete(onEvent) };
    },
    logs: () => ({ async *[Symbol.asyncIterator]() {} }),
    async version() {
      return { gitVersion: "memory" };
    },
  };
}
const mem = await createEngine({
  workDir: work,
  catalog: false,
  plugins: [
    k8s({
      clusters: [{ name: "mem", kubeconfig: "unused", namespace: "default" }],
      defaultImage: "x",
      api: memoryApi,
    }),
  ],
  backendConfig: { defaultForTaskTypes: { node: "k8s-pod" } },
});
async function measureMemory(n, name) {
  const compiled = wide(n, name);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const result = await mem.engine.run(compiled, {});
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  if (result.phase !== "succeeded") throw new Error(`${name} failed: ${JSON.stringify(result.error)}`);
  return { pods: n, wallMs: Math.round(wallMs), engineCpuUsPerPod: Math.round((cpu.user + cpu.system) / n) };
}
await measureMemory(WARMUP, "mem_warmup");
const memoryRun = await measureMemory(PODS, "mem_main");
await mem.close();
await ask("quit").catch(() => undefined);
fs.rmSync(work, { recursive: true, force: true });

const cpus = os.cpus();
const out = {
  benchmark: "k8s-1000-pods",
  description:
    "engine + k8s-pod plugin running /bin/true container tasks as pods on the fake Kubernetes API (child process, 10 nodes); real @kubernetes/client-node 2.0.1",
  targetApiCallsPerPod: TARGET_CALLS_PER_POD,
  pass: run.apiCallsPerPod <= TARGET_CALLS_PER_POD && run.podsLeft === 0,
  warmup,
  run,
  inMemoryApi: {
    description: "the same workflow on an in-memory K8sApi (no HTTP, no client-node): engine + plugin alone",
    ...memoryRun,
  },
  machine: {
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    cpu: cpus[0]?.model,
    cores: cpus.length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    // Other work on the machine shows here: wall times are only comparable at similar load.
    loadAverage1m: { before: +loadBefore.toFixed(2), after: +os.loadavg()[0].toFixed(2) },
  },
  date: new Date().toISOString(),
};
fs.mkdirSync(path.join(here, "results"), { recursive: true });
fs.writeFileSync(path.join(here, "results", "k8s-1000-pods.json"), `${JSON.stringify(out, null, 2)}\n`);
console.log(JSON.stringify(out, null, 2));
process.exit(out.pass ? 0 : 1);
