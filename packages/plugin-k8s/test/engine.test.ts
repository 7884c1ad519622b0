/**
 * End to end through `createEngine`: a workflow whose TypeScript `node` tasks run as pods
 * (`tern-execute` from the workspace's core, really executed by the fake kubelet), with a
 * GPU task placed on the fake's GPU node and an MPI task run by the fake mpi-operator.
 *
 * The temporary project links `@tern/core` and `zod` to the workspace's copies, so the
 * bundle, the pods' tern-execute and this test share one `@tern/core`.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import {
  type AnyWorkflow,
  type Bundle,
  bundleEntry,
  createEngine,
  type ExecutionEvent,
  importBundle,
  type LocalEngine,
} from "@tern/core";
import { type FakeKubernetes, installMpiOperator, type Pod } from "@tern/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import k8s, { MPIJOBS } from "../src/index.js";
import { CORE_DIR, clusterOf, fakeCluster, postedPods, tempDir, testOptions, ZOD_DIR } from "./helpers.js";

const TASKS = `
import { task, workflow } from "@tern/core";
import { z } from "zod";

export const stats = task(
  { name: "stats", inputs: { xs: z.array(z.number()) }, output: z.object({ sum: z.number(), mean: z.number(), pid: z.number() }) },
  async ({ xs }, ctx) => {
    ctx.logger.info("summing " + xs.length + " numbers");
    const sum = xs.reduce((a, b) => a + b, 0);
    return { sum, mean: sum / xs.length, pid: process.pid };
  },
);

export const train = task(
  {
    name: "train_gpu",
    inputs: { mean: z.number() },
    output: z.object({ score: z.number(), gpus: z.string() }),
    resources: { gpu: 1, accelerator: "a100", limits: { memory: "2Gi", cpu: "2" }, requests: { cpu: "500m", memory: "512Mi" } },
  },
  async ({ mean }) => ({ score: mean * 10, gpus: process.env.TERN_TASK ?? "" }),
);

const HOSTFILE_SCRIPT = [
  "const fs = require('fs');",
  "const hosts = fs.readFileSync(process.env.OMPI_MCA_orte_default_hostfile, 'utf8').trim().split('\\\\n');",
  "const score = Number(process.argv[1]);",
  "fs.writeFileSync(process.env.TERN_OUTPUTS_PATH, JSON.stringify({ ranks: hosts.length, role: process.env.K_MPI_JOB_ROLE, total: score * hosts.length }));",
].join(" ");

export const allreduce = task(
  {
    name: "allreduce",
    type: "mpi",
    inputs: { score: z.number() },
    output: z.object({ ranks: z.number(), role: z.string(), total: z.number() }),
    custom: {
      workers: 2,
      slotsPerWorker: 1,
      launcher: { image: "mpioperator/openmpi:0.6.0", command: [${JSON.stringify(process.execPath)}, "-e", HOSTFILE_SCRIPT], args: ["{{.inputs.score}}"] },
      worker: { image: "mpioperator/openmpi:0.6.0", resources: { gpu: 1, accelerator: "a100" } },
      cleanPodPolicy: "All",
    },
  },
  async () => { throw new Error("mpi tasks run on the cluster"); },
);

export const boom = task(
  { name: "boom", inputs: { why: z.string() }, output: z.number(), retries: { user: 0, system: 2 } },
  async ({ why }) => { throw new Error("the task gave up: " + why); },
);

export const pipeline = workflow(
  { name: "pipeline", inputs: { xs: z.array(z.number()) }, output: z.object({ sum: z.number(), score: z.number(), mpi: z.object({ ranks: z.number(), role: z.string(), total: z.number() }) }) },
  ({ xs }) => {
    const s = stats({ xs });
    const t = train({ mean: s.mean });
    const m = allreduce({ score: t.score });
    return { sum: s.sum, score: t.score, mpi: m };
  },
);

export const failing = workflow({ name: "failing", inputs: {}, output: z.number() }, () => boom({ why: "bad data" }));
`;

let root: string;
let bundle: Bundle;
let mod: Record<string, unknown>;
let fake: FakeKubernetes;
let local: LocalEngine;
/** Every pod the fake saw, last state by name (the plugin deletes them when done). */
const seen = new Map<string, Pod>();
/** Condition types MPIJobs went through. */
const mpiConditions: string[] = [];

beforeAll(async () => {
  root = tempDir("tern-k8s-e2e-");
  fs.writeFileSync(
    path.join(root, "package.json"),
    JSON.stringify({ name: "k8s-e2e", type: "module", private: true }),
  );
  fs.mkdirSync(path.join(root, "node_modules", "@tern"), { recursive: true });
  fs.symlinkSync(CORE_DIR, path.join(root, "node_modules", "@tern", "core"), "dir");
  fs.symlinkSync(ZOD_DIR, path.join(root, "node_modules", "zod"), "dir");
  fs.writeFileSync(path.join(root, "tasks.ts"), TASKS);
  bundle = await bundleEntry(path.join(root, "tasks.ts"));
  mod = await importBundle(bundle.path);
  fake = await fakeCluster({ gpuNodes: 1 });
  installMpiOperator(fake);
  fake.cluster.on({ group: "", plural: "pods" }, (_t, pod) => seen.set(pod.metadata.name!, pod as Pod));
  fake.cluster.on({ group: MPIJOBS.group, version: MPIJOBS.version, plural: MPIJOBS.plural }, (_t, job) => {
    for (const c of job.status?.conditions ?? [])
      if (c.status === "True" && !mpiConditions.includes(c.type)) mpiConditions.push(c.type);
  });
  local = await createEngine({
    workDir: root,
    catalog: false,
    plugins: [k8s(testOptions([clusterOf(fake)], { accelerators: { a100: "NVIDIA-A100-SXM4-80GB" } }))],
    backendConfig: { defaultForTaskTypes: { node: "k8s-pod" } },
  });
});

afterAll(async () => {
  await local?.close();
});

function events(e: readonly ExecutionEvent[], node: string, phase: string): ExecutionEvent[] {
  return e.filter((x) => x.node === node && x.phase === phase);
}

describe("k8s plugins through the engine", () => {
  it("runs a CPU node task, a GPU node task and an MPI task as pods, with typed outputs", async () => {
    const handle = local.engine.start(
      (await import("@tern/core")).compile(mod.pipeline as AnyWorkflow, {
        bundle: bundle.digest,
        projectRoot: root,
      }),
      { xs: [1, 2, 3, 4] },
    );
    const result = await handle.result;
    expect(result.error, JSON.stringify(result.error)).toBeUndefined();
    expect(result.phase).toBe("succeeded");
    expect(result.outputs).toEqual({ sum: 10, score: 25, mpi: { ranks: 2, role: "launcher", total: 50 } });

    // Each node went through the pod (or MPIJob) plugin; its state names the object.
    const init = (n: string) => events(handle.events, n, "initializing")[0];
    expect(init("stats")).toMatchObject({
      plugin: "k8s-pod",
      pluginState: { cluster: "fake", namespace: "default" },
    });
    expect(init("train_gpu")).toMatchObject({ plugin: "k8s-pod" });
    expect(init("allreduce")).toMatchObject({ plugin: "k8s-mpi", pluginState: { cluster: "fake" } });

    // The CPU task's pod ran tern-execute on the bundle, in the default image.
    const posted = postedPods(fake);
    const cpu = posted.find((p) => p.metadata.labels["tern.dev/task"] === "stats");
    expect(cpu.spec.containers[0].command.slice(0, 4)).toEqual([
      process.execPath,
      path.join(CORE_DIR, "dist", "bin", "tern-execute.js"),
      "--bundle",
      bundle.path,
    ]);
    expect(cpu.spec.containers[0].image).toBe("tern/runtime:test");
    expect(cpu.spec.tolerations).toBeUndefined();

    // The GPU task: nvidia.com/gpu under limits, the GPU toleration, accelerator affinity; bound to the GPU node.
    const gpu = posted.find((p) => p.metadata.labels["tern.dev/task"] === "train_gpu");
    const c = gpu.spec.containers[0];
    expect(c.resources).toEqual({
      requests: { cpu: "500m", memory: "512Mi" },
      limits: { cpu: "2", memory: "2Gi", "nvidia.com/gpu": "1" },
    });
    expect(gpu.spec.tolerations).toContainEqual({
      key: "nvidia.com/gpu",
      operator: "Exists",
      effect: "NoSchedule",
    });
    expect(
      gpu.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms,
    ).toEqual([
      {
        matchExpressions: [
          { key: "nvidia.com/gpu.product", operator: "In", values: ["NVIDIA-A100-SXM4-80GB"] },
        ],
      },
    ]);
    expect(seen.get(gpu.metadata.name)?.spec.nodeName).toBe("fake-gpu-node-1");
    expect(seen.get(cpu.metadata.name)?.spec.nodeName).toBe("fake-node-1");

    // The MPI task: the operator made two GPU workers and a launcher; the job went Created → Running → Succeeded.
    const mpiName = (init("allreduce").pluginState as { mpijob: string }).mpijob;
    const workers = [...seen.values()].filter(
      (p) =>
        p.metadata.labels?.["training.kubeflow.org/job-name"] === mpiName &&
        p.metadata.labels?.["training.kubeflow.org/job-role"] === "worker",
    );
    expect(workers.map((w) => w.metadata.name).sort()).toEqual([
      `${mpiName}-worker-0`,
      `${mpiName}-worker-1`,
    ]);
    for (const w of workers) {
      expect(w.spec.containers[0].resources?.limits?.["nvidia.com/gpu"]).toBe("1");
      expect(w.spec.nodeName).toBe("fake-gpu-node-1");
    }
    expect(seen.get(`${mpiName}-launcher`)?.status?.phase).toBe("Succeeded");
    expect(mpiConditions).toEqual(expect.arrayContaining(["Created", "Running", "Succeeded"]));
    // Finished pods and the MPIJob are deleted by finalize.
    await fake.waitFor(() => fake.pods("default").length === 0, { message: "pods left after the run" });
    expect(fake.cluster.list(MPIJOBS, "default")).toEqual([]);
  });

  it("a TypeScript task that throws fails with its own error (from error.json), without system retries", async () => {
    const compiled = (await import("@tern/core")).compile(mod.failing as AnyWorkflow, {
      bundle: bundle.digest,
      projectRoot: root,
    });
    const handle = local.engine.start(compiled, {});
    const result = await handle.result;
    expect(result.phase).toBe("failed");
    expect(result.error).toMatchObject({ kind: "user", node: "boom" });
    expect(result.error?.message).toContain("the task gave up: bad data");
    expect(result.nodes[0].attempts).toBe(1);
  });
});
