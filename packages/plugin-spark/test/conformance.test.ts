/**
 * `spark` through the testkit's conformance suite: SparkApplications on the fake cluster,
 * run by the fake spark-operator (real client-node over a loopback socket, real driver
 * processes), sharing the cluster pool of a `k8s()` plugin.
 */

import { ANNOTATIONS } from "@tern/plugin-k8s";
import { type FakeKubernetes, type RecordedRequest, testBackendPlugin } from "@tern/testkit";
import { z } from "zod";
import { SPARK_APPLICATIONS, type SparkState } from "../src/index.js";
import { sharedPlugin, sparkCluster, sparkTask, tempDir } from "./helpers.js";

const driverOf = (s: SparkState) => `${s.application}-driver`;

testBackendPlugin<FakeKubernetes, SparkState>({
  name: "spark",
  fake: {
    start: () => sparkCluster(),
    workDir: () => tempDir("tern-spark-conformance-"),
    writes: (f) =>
      f
        .requests()
        .filter((r: RecordedRequest) => r.method !== "GET")
        .map((r) => `${r.method} ${r.path}`),
    countExternal: (f, ctx) =>
      f.cluster
        .list(SPARK_APPLICATIONS, "default")
        .filter((a) => a.metadata.annotations?.[ANNOTATIONS.attemptId] === ctx.attempt.id).length,
    isActive: (f, _ctx, s) => f.processes().some((p) => p.pod === driverOf(s)),
  },
  create: (f) => sharedPlugin(f, { maxConcurrent: 2 }),
  scenarios: {
    success: {
      task: sparkTask("spark_conf_double", ["double", "{{.inputs.x}}"], {
        inputs: { x: z.number() },
        output: z.object({ y: z.number() }),
      }),
      inputs: { x: 21 },
      outputs: { y: 42 },
    },
    userFailure: {
      task: sparkTask("spark_conf_fail", ["fail", "3"]),
      message: "driver container failed with ExitCode: 3",
    },
    systemFailure: {
      task: sparkTask("spark_conf_evicted", ["forever"]),
      induce: (f, _ctx, s) => f.evict(s.namespace, driverOf(s)),
    },
    preemption: {
      task: sparkTask("spark_conf_preempted", ["forever"], { extra: { interruptible: true } }),
      induce: (f, _ctx, s) => f.preempt(s.namespace, driverOf(s)),
    },
    longRunning: { task: sparkTask("spark_conf_long", ["forever"]) },
    logs: {
      task: sparkTask("spark_conf_logs", ["log"]),
      lines: ["stage 0: reading input", "stage 1: shuffling on stderr", "stage 2: done"],
    },
  },
});
