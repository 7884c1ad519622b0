/**
 * `ray-job` through the testkit's conformance suite: the real axios client against the fake
 * Ray dashboard, whose entrypoints really run.
 */
import { type FakeRay, resolveBackendPlugin, startFakeRay, testBackendPlugin } from "@tern/testkit";
import { z } from "zod";
import ray, { RAY_METADATA, type RayJobPlugin, type RayJobState } from "../src/index.js";
import { jobsOptions, nodeEntrypoint, rayTask, specOf, tempDir, writeOutput } from "./helpers.js";

const LONG = "setInterval(() => {}, 1000)";

testBackendPlugin<FakeRay, RayJobState>({
  name: "ray-job",
  fake: {
    start: () => startFakeRay({ pendingMs: 5, stopGraceMs: 300 }),
    stop: (f) => f.close(),
    workDir: () => tempDir("tern-ray-conformance-"),
    writes: (f) =>
      f
        .requests()
        .filter((r) => r.method !== "GET")
        .map((r) => `${r.method} ${r.path} ${r.status}`),
    countExternal: (f, ctx) =>
      f.jobs().filter((j) => j.metadata?.[RAY_METADATA.attemptId] === ctx.attempt.id).length,
    isActive: (f, _ctx, s) => f.isRunning(s.submissionId),
  },
  create: (f) => resolveBackendPlugin<RayJobPlugin>(ray(jobsOptions(f, { maxConcurrent: 2 })), "ray-job"),
  scenarios: {
    success: {
      task: specOf(
        rayTask(
          "conf_double",
          {
            entrypoint: nodeEntrypoint(
              `console.log("doubling", process.argv[1]); setTimeout(() => { ${writeOutput("{ y: Number(process.argv[1]) * 2 }")} }, 250);`,
              "{{.inputs.x}}",
            ),
          },
          { inputs: { x: z.number() }, output: z.object({ y: z.number() }) },
        ),
      ),
      inputs: { x: 21 },
      outputs: { y: 42 },
    },
    userFailure: {
      task: specOf(
        rayTask("conf_fail", { entrypoint: nodeEntrypoint(`console.error("bad input"); process.exit(3);`) }),
      ),
      message: "exit code 3",
    },
    systemFailure: {
      task: specOf(rayTask("conf_supervisor_died", { entrypoint: nodeEntrypoint(LONG) })),
      induce: (f, _ctx, s) =>
        f.failJob(s.submissionId, {
          errorType: "JOB_SUPERVISOR_ACTOR_DIED",
          message: "Job supervisor actor died: node lost",
        }),
    },
    preemption: {
      task: specOf(
        rayTask("conf_preempted", { entrypoint: nodeEntrypoint(LONG) }, { extra: { interruptible: true } }),
      ),
      induce: (f, _ctx, s) => f.preempt(s.submissionId),
    },
    longRunning: { task: specOf(rayTask("conf_long", { entrypoint: nodeEntrypoint(LONG) })) },
    logs: {
      task: specOf(
        rayTask("conf_logs", {
          entrypoint: nodeEntrypoint(
            `console.log("first line"); console.error("second line on stderr"); console.log("third line");`,
          ),
        }),
      ),
      lines: ["first line", "second line on stderr", "third line"],
    },
  },
});
