/**
 * `ray-kuberay` through the testkit's conformance suite: real client-node against the fake
 * Kubernetes API with the fake KubeRay operator; the submitter pods really run.
 */
import {
  type FakeKubernetes,
  installKubeRay,
  resolveBackendPlugin,
  startFakeKubernetes,
  testBackendPlugin,
} from "@tern/testkit";
import { z } from "zod";
import ray, { type KubeRayPlugin, type KubeRayState, RAYJOBS } from "../src/index.js";
import { kuberayOptions, nodeEntrypoint, rayTask, specOf, tempDir, writeOutput } from "./helpers.js";

const LONG = "setInterval(() => {}, 1000)";
const rayJobs = (f: FakeKubernetes) => f.cluster.list(RAYJOBS, "default");
const rayJob = (f: FakeKubernetes, s: KubeRayState) => f.cluster.get(RAYJOBS, s.namespace, s.rayjob);
/** The head pod of the attempt's Ray cluster. */
const headPod = (f: FakeKubernetes, s: KubeRayState) => {
  const cluster = rayJob(f, s)?.status?.rayClusterName as string | undefined;
  return f
    .pods(s.namespace)
    .find(
      (p) =>
        p.metadata.labels?.["ray.io/cluster"] === cluster &&
        p.metadata.labels?.["ray.io/node-type"] === "head",
    );
};

testBackendPlugin<FakeKubernetes, KubeRayState>({
  name: "ray-kuberay",
  fake: {
    start: async () => {
      const f = await startFakeKubernetes({
        schedulingDelayMs: 2,
        containerStartDelayMs: 2,
        maxGracePeriodMs: 300,
      });
      installKubeRay(f, { pollMs: 10 });
      return f;
    },
    stop: (f) => f.close(),
    workDir: () => tempDir("tern-kuberay-conformance-"),
    writes: (f) =>
      f
        .requests()
        .filter((r) => r.method !== "GET")
        .map((r) => `${r.method} ${r.path}`),
    countExternal: (f, ctx) =>
      rayJobs(f).filter((j) => j.metadata.annotations?.["tern.dev/attempt-id"] === ctx.attempt.id).length,
    isActive: (f, _ctx, s) => rayJob(f, s)?.status?.jobStatus === "RUNNING",
  },
  create: (f) =>
    resolveBackendPlugin<KubeRayPlugin>(ray(kuberayOptions(f, { maxConcurrent: 2 })), "ray-kuberay"),
  scenarios: {
    success: {
      task: specOf(
        rayTask(
          "kr_double",
          {
            entrypoint: nodeEntrypoint(
              `setTimeout(() => { ${writeOutput("{ y: Number(process.argv[1]) * 2 }")} }, 250);`,
              "{{.inputs.x}}",
            ),
            cluster: { workers: [{ replicas: 1, cpu: 1, memory: "1Gi" }] },
          },
          { type: "kuberay", inputs: { x: z.number() }, output: z.object({ y: z.number() }) },
        ),
      ),
      inputs: { x: 21 },
      outputs: { y: 42 },
    },
    userFailure: {
      task: specOf(
        rayTask("kr_fail", { entrypoint: nodeEntrypoint(`process.exit(3)`) }, { type: "kuberay" }),
      ),
      message: "exit code 3",
    },
    systemFailure: {
      task: specOf(rayTask("kr_head_evicted", { entrypoint: nodeEntrypoint(LONG) }, { type: "kuberay" })),
      induce: (f, _ctx, s) => {
        const head = headPod(f, s);
        if (!head) throw new Error("no head pod");
        f.evict(s.namespace, head.metadata.name!);
      },
    },
    preemption: {
      task: specOf(
        rayTask(
          "kr_head_preempted",
          { entrypoint: nodeEntrypoint(LONG) },
          { type: "kuberay", extra: { interruptible: true } },
        ),
      ),
      induce: (f, _ctx, s) => {
        const head = headPod(f, s);
        if (!head) throw new Error("no head pod");
        f.preempt(s.namespace, head.metadata.name!);
      },
    },
    longRunning: {
      task: specOf(rayTask("kr_long", { entrypoint: nodeEntrypoint(LONG) }, { type: "kuberay" })),
    },
    logs: {
      task: specOf(
        rayTask(
          "kr_logs",
          {
            entrypoint: nodeEntrypoint(
              `console.log("first line"); console.error("second line on stderr"); console.log("third line");`,
            ),
          },
          { type: "kuberay" },
        ),
      ),
      lines: ["first line", "second line on stderr", "third line"],
    },
  },
});
