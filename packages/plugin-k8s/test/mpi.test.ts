/**
 * `k8s-mpi` against the fake cluster with the testkit's fake mpi-operator: the MPIJob it
 * sends, the job's lifecycle, failures, abort, logs — and the conformance suite.
 */
import { type AnyTask, type Json, type TaskSpec, TernError, task } from "@tern/core";
import {
  type FakeKubernetes,
  installMpiOperator,
  type KubeObject,
  makeTaskContext,
  resolveBackendPlugin,
  startFakeKubernetes,
  testBackendPlugin,
} from "@tern/testkit";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import k8s, { ANNOTATIONS, MPIJOBS, type MpiPlugin, type MpiState } from "../src/index.js";
import { clusterOf, fakeCluster, specOf, tempDir, testOptions, writeOutput } from "./helpers.js";

const NODE = process.execPath;
const FOREVER = "setInterval(() => {}, 1000)";

function mpiTask(
  name: string,
  launcherScript: string,
  custom: Record<string, Json> = {},
  output: z.ZodType = z.null(),
): TaskSpec {
  const def = task(
    {
      name,
      type: "mpi",
      inputs: { n: z.number() },
      output,
      custom: {
        workers: 2,
        launcher: {
          image: "mpioperator/openmpi:0.6.0",
          command: [NODE, "-e", launcherScript],
          args: ["{{.inputs.n}}"],
        },
        ...custom,
      },
    },
    async () => {
      throw new Error("mpi tasks run on the cluster");
    },
  );
  return specOf(def as AnyTask);
}

/** Drives a plugin like the engine until a terminal phase. */
async function drive(p: MpiPlugin, ctx: ReturnType<typeof makeTaskContext>, state: MpiState) {
  for (;;) {
    const s = await p.check(ctx, state);
    if (s.phase === "succeeded" || s.phase === "failed" || s.phase === "aborted") return s;
    await ctx.waitForNotify(200);
  }
}

async function setUp(extra = {}) {
  const fake = await fakeCluster({ gpuNodes: 1 });
  installMpiOperator(fake);
  const plugin = await resolveBackendPlugin<MpiPlugin>(k8s(testOptions([clusterOf(fake)], extra)), "k8s-mpi");
  return { fake, plugin, workDir: tempDir("tern-mpi-") };
}

const mpiJobs = (fake: FakeKubernetes): KubeObject[] => fake.cluster.list(MPIJOBS, "default");

describe("k8s-mpi", () => {
  it("sends a kubeflow.org/v2beta1 MPIJob: launcher, GPU workers, slots and run policy; succeeds with the launcher's output", async () => {
    const { fake, plugin, workDir } = await setUp({ accelerators: { a100: "NVIDIA-A100-SXM4-80GB" } });
    const spec = mpiTask(
      "mpi_ok",
      `const fs = require("fs"); const hosts = fs.readFileSync(process.env.OMPI_MCA_orte_default_hostfile, "utf8").trim().split("\\n"); ${writeOutput("{ n: Number(process.argv[1]), hosts }")}`,
      {
        workers: 3,
        slotsPerWorker: 2,
        worker: { resources: { gpu: 1, accelerator: "a100", limits: { memory: "1Gi" } } },
        cleanPodPolicy: "Running",
      },
      z.object({ n: z.number(), hosts: z.array(z.string()) }),
    );
    const ctx = makeTaskContext(spec, { n: 5 }, { workDir });
    const state = await plugin.launch(ctx);
    try {
      expect(state).toMatchObject({
        cluster: "fake",
        namespace: "default",
        mpijob: `${ctx.execution.id}-n0-1`,
      });
      const sent = fake.requests({
        method: "POST",
        path: "/apis/kubeflow.org/v2beta1/namespaces/default/mpijobs",
      })[0].body as any;
      expect(sent).toMatchObject({
        apiVersion: "kubeflow.org/v2beta1",
        kind: "MPIJob",
        spec: {
          slotsPerWorker: 2,
          mpiImplementation: "OpenMPI",
          runPolicy: { cleanPodPolicy: "Running", backoffLimit: 0 },
        },
      });
      expect(sent.metadata.annotations[ANNOTATIONS.attemptId]).toBe(ctx.attempt.id);
      const { Launcher, Worker } = sent.spec.mpiReplicaSpecs;
      expect(Launcher.replicas).toBe(1);
      expect(Launcher.template.spec.containers[0].args).toEqual(["5"]);
      expect(Launcher.template.spec.containers[0].env).toContainEqual({
        name: "TERN_ATTEMPT_ID",
        value: ctx.attempt.id,
      });
      expect(Worker.replicas).toBe(3);
      expect(Worker.template.spec.containers[0].resources).toEqual({
        limits: { memory: "1Gi", "nvidia.com/gpu": "1" },
      });
      expect(Worker.template.spec.tolerations).toContainEqual({
        key: "nvidia.com/gpu",
        operator: "Exists",
        effect: "NoSchedule",
      });
      expect(
        Worker.template.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution
          .nodeSelectorTerms[0].matchExpressions[0].values,
      ).toEqual(["NVIDIA-A100-SXM4-80GB"]);
      expect(Launcher.template.spec.tolerations).toBeUndefined();

      const status = await drive(plugin, ctx, state);
      expect(status.phase, JSON.stringify(status)).toBe("succeeded");
      const out = JSON.parse(
        Buffer.from(await ctx.blobs.get(ctx.blobs.uri(`${ctx.outputPrefix}/outputs.json`))).toString(),
      );
      expect(out).toEqual({
        n: 5,
        hosts: [0, 1, 2].map((i) => `${state.mpijob}-worker-${i}.${state.mpijob}.default.svc slots=2`),
      });
      const job = mpiJobs(fake)[0];
      expect(
        job.status.conditions
          .filter((c: { status: string }) => c.status === "True")
          .map((c: { type: string }) => c.type),
      ).toEqual(["Created", "Succeeded"]);
      // cleanPodPolicy Running: the workers were deleted, the launcher kept.
      await fake.waitFor(() => fake.pods("default").every((p) => !p.metadata.name!.includes("-worker-")), {
        message: "workers cleaned up",
      });
      expect(fake.pod("default", `${state.mpijob}-launcher`)?.status?.phase).toBe("Succeeded");
    } finally {
      await plugin.finalize(ctx, state);
      await plugin.close();
    }
    await fake.waitFor(() => mpiJobs(fake).length === 0 && fake.pods("default").length === 0, {
      message: "MPIJob and pods deleted by finalize",
    });
  });

  it("a failing launcher restarts within backoffLimit, then fails the task as a user error", async () => {
    const { fake, plugin, workDir } = await setUp();
    const seen: string[] = [];
    fake.cluster.on(MPIJOBS, (_t, job) => {
      for (const c of job.status?.conditions ?? [])
        if (c.status === "True" && !seen.includes(c.type)) seen.push(c.type);
    });
    const ctx = makeTaskContext(
      mpiTask("mpi_fail", `console.error("rank 0: diverged"); process.exit(4);`, { backoffLimit: 1 }),
      { n: 1 },
      { workDir },
    );
    const state = await plugin.launch(ctx);
    try {
      const status = await drive(plugin, ctx, state);
      expect(status.phase).toBe("failed");
      expect(status.error?.kind).toBe("user");
      expect(status.error?.message).toContain(
        `launcher pod ${state.mpijob}-launcher-1 failed: container exited with code 4`,
      );
      expect(seen).toEqual(["Created", "Running", "Restarting", "Failed"]);
    } finally {
      await plugin.finalize(ctx, state);
      await plugin.close();
    }
  });

  it("abort deletes the MPIJob; its pods go with it", async () => {
    const { fake, plugin, workDir } = await setUp();
    const ctx = makeTaskContext(mpiTask("mpi_long", FOREVER), { n: 1 }, { workDir });
    const state = await plugin.launch(ctx);
    try {
      await fake.waitFor(() => fake.processes().some((p) => p.pod === `${state.mpijob}-launcher`), {
        message: "launcher running",
      });
      await plugin.abort(ctx, state);
      await plugin.abort(ctx, state);
      await fake.waitFor(() => fake.pods("default").length === 0 && fake.processes().length === 0, {
        message: "pods gone",
      });
      expect(mpiJobs(fake)).toEqual([]);
      expect((await drive(plugin, ctx, state)).phase).toBe("aborted");
    } finally {
      await plugin.finalize(ctx, state);
      await plugin.close();
    }
  });

  it("logs() follows the launcher's log", async () => {
    const { plugin, workDir } = await setUp();
    const ctx = makeTaskContext(
      mpiTask("mpi_logs", `console.log("step 1 loss 0.9"); console.log("step 2 loss 0.4");`),
      { n: 1 },
      { workDir },
    );
    const state = await plugin.launch(ctx);
    try {
      const lines: string[] = [];
      for await (const l of plugin.logs(ctx, state)) lines.push(l);
      expect(lines).toEqual(["step 1 loss 0.9", "step 2 loss 0.4"]);
    } finally {
      await plugin.finalize(ctx, state);
      await plugin.close();
    }
  });

  it("refuses a malformed custom before anything is sent", async () => {
    const { fake, plugin } = await setUp();
    const bad = mpiTask("mpi_bad", "0", { workers: 0 });
    expect(() => plugin.validate(bad)).toThrow(TernError);
    expect(() => plugin.validate(bad)).toThrow(
      'task "mpi_bad": custom.workers must be a whole number ≥ 1, not 0',
    );
    const noCommand = mpiTask("mpi_nocmd", "0", { launcher: { image: "x" } });
    expect(() => plugin.validate(noCommand)).toThrow(
      "custom.launcher.command must be a non-empty list of strings",
    );
    await expect(plugin.launch(makeTaskContext(bad, { n: 1 }))).rejects.toMatchObject({
      code: "TERN_E_SPEC_INVALID",
    });
    expect(fake.requests({ method: "POST" })).toEqual([]);
    await plugin.close();
  });
});

const withOperator = async () => {
  const f = await startFakeKubernetes({
    schedulingDelayMs: 2,
    containerStartDelayMs: 2,
    maxGracePeriodMs: 500,
  });
  installMpiOperator(f);
  return f;
};
const launcherOf = (s: MpiState) => `${s.mpijob}-launcher`;

testBackendPlugin<FakeKubernetes, MpiState>({
  name: "k8s-mpi",
  fake: {
    start: withOperator,
    stop: (f) => f.close(),
    workDir: () => tempDir("tern-mpi-conformance-"),
    writes: (f) =>
      f
        .requests()
        .filter((r) => r.method !== "GET")
        .map((r) => `${r.method} ${r.path}`),
    countExternal: (f, ctx) =>
      f.cluster
        .list(MPIJOBS, "default")
        .filter((j) => j.metadata.annotations?.[ANNOTATIONS.attemptId] === ctx.attempt.id).length,
    isActive: (f, _ctx, s) => f.processes().some((p) => p.pod === launcherOf(s)),
  },
  create: (f) => resolveBackendPlugin<MpiPlugin>(k8s(testOptions([clusterOf(f)])), "k8s-mpi"),
  scenarios: {
    success: {
      task: mpiTask(
        "mpi_conf_ok",
        `setTimeout(() => { ${writeOutput("{ twice: Number(process.argv[1]) * 2 }")} }, 250);`,
        {},
        z.object({ twice: z.number() }),
      ),
      inputs: { n: 4 },
      outputs: { twice: 8 },
    },
    userFailure: {
      task: mpiTask("mpi_conf_fail", "process.exit(3)"),
      inputs: { n: 1 },
      message: "exited with code 3",
    },
    systemFailure: {
      task: mpiTask("mpi_conf_evict", FOREVER),
      inputs: { n: 1 },
      induce: (f, _ctx, s) => f.evict(s.namespace, launcherOf(s)),
    },
    preemption: {
      task: mpiTask("mpi_conf_preempt", FOREVER),
      inputs: { n: 1 },
      induce: (f, _ctx, s) => f.preempt(s.namespace, launcherOf(s)),
    },
    longRunning: { task: mpiTask("mpi_conf_long", FOREVER), inputs: { n: 1 } },
    logs: {
      task: mpiTask("mpi_conf_logs", `console.log("allreduce done")`),
      inputs: { n: 1 },
      lines: ["allreduce done"],
    },
  },
});
