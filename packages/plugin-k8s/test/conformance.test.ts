/**
 * `k8s-pod` through the testkit's conformance suite: `container` tasks running `node -e …`
 * on the fake cluster (real client-node, real processes).
 */
import type { FakeKubernetes, RecordedRequest } from "@tern/testkit";
import { resolveBackendPlugin, startFakeKubernetes, testBackendPlugin } from "@tern/testkit";
import { z } from "zod";
import k8s, { ANNOTATIONS, type PodPlugin, type PodState } from "../src/index.js";
import { clusterOf, nodeScriptTask, specOf, tempDir, testOptions, writeOutput } from "./helpers.js";

const LONG = "setInterval(() => {}, 1000)";
const forAttempt = (fake: FakeKubernetes, id: string) =>
  fake.pods().filter((p) => p.metadata.annotations?.[ANNOTATIONS.attemptId] === id);
const writes = (fake: FakeKubernetes) =>
  fake
    .requests()
    .filter((r: RecordedRequest) => r.method !== "GET")
    .map((r) => `${r.method} ${r.path}`);

testBackendPlugin<FakeKubernetes, PodState>({
  name: "k8s-pod",
  fake: {
    start: () =>
      startFakeKubernetes({ schedulingDelayMs: 2, containerStartDelayMs: 2, maxGracePeriodMs: 500 }),
    stop: (f) => f.close(),
    workDir: () => tempDir("tern-k8s-conformance-"),
    writes,
    countExternal: (f, ctx) => forAttempt(f, ctx.attempt.id).length,
    isActive: (f, _ctx, s) => f.processes().some((p) => p.pod === s.pod),
  },
  create: (f) =>
    resolveBackendPlugin<PodPlugin>(k8s(testOptions([clusterOf(f)], { maxConcurrent: 2 })), "k8s-pod"),
  scenarios: {
    success: {
      task: specOf(
        nodeScriptTask(
          "conf_double",
          `console.log("doubling", process.argv[1]); setTimeout(() => { ${writeOutput("{ y: Number(process.argv[1]) * 2 }")} }, 250);`,
          {
            inputs: { x: z.number() },
            output: z.object({ y: z.number() }),
            args: ["{{.inputs.x}}"],
          },
        ),
      ),
      inputs: { x: 21 },
      outputs: { y: 42 },
    },
    userFailure: {
      task: specOf(nodeScriptTask("conf_fail", `console.error("conformance: bad input"); process.exit(3);`)),
      message: "exited with code 3",
    },
    systemFailure: {
      task: specOf(nodeScriptTask("conf_evicted", LONG)),
      induce: (f, _ctx, s) => f.evict(s.namespace, s.pod),
    },
    preemption: {
      task: specOf(nodeScriptTask("conf_preempted", LONG, { extra: { interruptible: true } })),
      induce: (f, _ctx, s) => f.preempt(s.namespace, s.pod),
    },
    longRunning: { task: specOf(nodeScriptTask("conf_long", LONG)) },
    logs: {
      task: specOf(
        nodeScriptTask(
          "conf_logs",
          `console.log("first line"); console.error("second line on stderr"); console.log("third line");`,
        ),
      ),
      lines: ["first line", "second line on stderr", "third line"],
    },
  },
});
