/**
 * Ray tasks through a real engine and directly through the plugins: typed inputs reach the
 * entrypoint and typed outputs come back, launches are idempotent across plugin instances,
 * failures are classified, and abort stops the job.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { makeTaskContext, resolveBackendPlugin } from "@tern/testkit";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import ray, { type KubeRayPlugin, RAYJOBS, type RayJobPlugin } from "../src/index.js";
import {
  fakeKubeRay,
  fakeRay,
  jobsOptions,
  kuberayOptions,
  nodeEntrypoint,
  rayEngine,
  rayTask,
  specOf,
  tempDir,
  writeOutput,
} from "./helpers.js";

/** A project directory with `stats.mjs`: reads the inputs, writes `{ sum, mean, label }`. */
function statsProject(): string {
  const dir = tempDir("tern-ray-project-");
  fs.writeFileSync(
    path.join(dir, "stats.mjs"),
    [
      'import { readFileSync, writeFileSync } from "node:fs";',
      'const { values, label } = JSON.parse(readFileSync(process.env.TERN_INPUTS_PATH, "utf8"));',
      "const sum = values.reduce((a, b) => a + b, 0);",
      'console.log("summing " + values.length + " values for " + label + " (" + process.env.GREETING + ", mode " + process.argv[2] + ")");',
      'writeFileSync(process.env.TERN_OUTPUTS_PATH, JSON.stringify({ sum, mean: sum / values.length, label: label + ":" + process.argv[2] }));',
    ].join("\n"),
  );
  return dir;
}

const statsTask = (dir: string, type: string) =>
  rayTask(
    `stats_${type}`,
    {
      entrypoint: `${JSON.stringify(process.execPath)} stats.mjs {{.inputs.mode}}`,
      runtimeEnv: { working_dir: dir, env_vars: { GREETING: "hello from runtime_env" } },
      numCpus: 1,
      memory: "256Mi",
    },
    {
      type,
      inputs: { values: z.array(z.number()), label: z.string(), mode: z.string() },
      output: z.object({ sum: z.number(), mean: z.number(), label: z.string() }),
    },
  );

describe("ray-job through the engine", () => {
  it("runs a typed task: inputs in, typed outputs back, runtime_env and resources submitted", async () => {
    const fake = await fakeRay();
    const te = await rayEngine(jobsOptions(fake, { env: { FROM_CONFIG: "1" } }));
    const result = await te.run(statsTask(statsProject(), "ray"), {
      values: [1, 2, 3, 6],
      label: "xs",
      mode: "fast",
    });
    expect(result.error).toBeUndefined();
    expect(result.outputs).toEqual({ sum: 12, mean: 3, label: "xs:fast" });
    const [submit] = fake.requests({ route: "submit" });
    const body = submit.body as any;
    expect(body.entrypoint).toMatch(/stats\.mjs fast$/);
    expect(body.entrypoint_num_cpus).toBe(1);
    expect(body.entrypoint_memory).toBe(256 * 2 ** 20);
    expect(body.runtime_env.env_vars).toMatchObject({ GREETING: "hello from runtime_env", FROM_CONFIG: "1" });
    expect(body.runtime_env.env_vars.TERN_OUTPUTS_URI).toMatch(/outputs\.json$/);
    expect(body.metadata["tern.task"]).toBe("stats_ray");
    expect(fake.logs(body.submission_id)).toContain(
      "summing 4 values for xs (hello from runtime_env, mode fast)",
    );
  });

  it("fails with a user error when the entrypoint exits non-zero, preferring the job's error document", async () => {
    const fake = await fakeRay();
    const te = await rayEngine(jobsOptions(fake));
    const plain = await te.run(rayTask("exits", { entrypoint: nodeEntrypoint("process.exit(7)") }));
    expect(plain.phase).toBe("failed");
    expect(plain.error?.kind).toBe("user");
    expect(plain.error?.message).toMatch(/exit code 7/);
    const doc = await te.run(
      rayTask("explains", {
        entrypoint: nodeEntrypoint(
          `require("fs").writeFileSync(process.env.TERN_ERROR_PATH, JSON.stringify({ code: "TERN_E_TASK_FAILED", kind: "user", message: "the model did not converge" })); process.exit(1);`,
        ),
      }),
    );
    expect(doc.error?.message).toBe("the model did not converge");
  });

  it("retries a dashboard that answers 503 and submits once", async () => {
    const fake = await fakeRay();
    fake.failNext({ route: "submit" }, { status: 503, count: 2 });
    const te = await rayEngine(jobsOptions(fake));
    const result = await te.run(rayTask("retried", { entrypoint: nodeEntrypoint(writeOutput("null")) }));
    expect(result.phase).toBe("succeeded");
    expect(fake.requests({ route: "submit" }).map((r) => r.status)).toEqual([503, 503, 200]);
    expect(fake.jobs()).toHaveLength(1);
  });
});

describe("ray-job directly", () => {
  const ctxOf = (spec: ReturnType<typeof specOf>, attemptId?: string) =>
    makeTaskContext(spec, {}, { workDir: tempDir(), ...(attemptId ? { attemptId } : {}) });

  it("re-attaches: a second instance launching the same attempt adopts the job (one job, a 500 'already exists')", async () => {
    const fake = await fakeRay();
    const spec = specOf(
      rayTask("adopt", { entrypoint: nodeEntrypoint(`setTimeout(() => {${writeOutput("null")}}, 200)`) }),
    );
    const a = await resolveBackendPlugin<RayJobPlugin>(ray(jobsOptions(fake)), "ray-job");
    const b = await resolveBackendPlugin<RayJobPlugin>(ray(jobsOptions(fake)), "ray-job");
    const ctx = ctxOf(spec);
    const s1 = await a.launch(ctx);
    await a.close();
    const s2 = await b.launch(ctx);
    expect(s2).toEqual(s1);
    expect(fake.jobs()).toHaveLength(1);
    const statuses = fake.requests({ route: "submit" }).map((r) => r.status);
    expect(statuses).toEqual([200, 500]);
    await fake.waitFor(() => fake.job(s1.submissionId)?.status === "SUCCEEDED");
    expect((await b.check(ctx, s2)).phase).toBe("succeeded");
    await b.close();
  });

  it("refuses to adopt a job of the same id made for another attempt", async () => {
    const fake = await fakeRay();
    const spec = specOf(rayTask("squatted", { entrypoint: "true" }));
    const ctx = ctxOf(spec);
    await fetch(`${fake.url}/api/jobs/`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        entrypoint: "true",
        submission_id: `tern-${ctx.attempt.id}`,
        metadata: { "tern.attempt_id": "someone-else" },
      }),
    });
    const p = await resolveBackendPlugin<RayJobPlugin>(ray(jobsOptions(fake)), "ray-job");
    await expect(p.launch(ctx)).rejects.toMatchObject({ code: "TERN_E_CONFLICT" });
    await p.close();
  });

  it("classifies infrastructure trouble as system errors: dashboard unreachable, job lost, supervisor died", async () => {
    const fake = await fakeRay();
    const p = await resolveBackendPlugin<RayJobPlugin>(ray(jobsOptions(fake)), "ray-job");
    const long = specOf(rayTask("sys", { entrypoint: nodeEntrypoint("setInterval(() => {}, 1000)") }));

    await fake.down("refuse");
    const refused = await p.launch(ctxOf(long)).catch((e) => e);
    expect(refused).toMatchObject({ code: "TERN_E_SYSTEM", kind: "system" });
    expect(refused.message).toMatch(/ECONNREFUSED/);
    await fake.up();

    const lostCtx = ctxOf(long);
    const lost = await p.launch(lostCtx);
    await fake.waitFor(() => fake.isRunning(lost.submissionId));
    fake.lose(lost.submissionId);
    const lostStatus = await p.check(lostCtx, lost);
    expect(lostStatus.phase).toBe("failed");
    expect(lostStatus.error?.kind).toBe("system");
    expect(lostStatus.message).toMatch(/lost/);

    const diedCtx = ctxOf(long);
    const died = await p.launch(diedCtx);
    await fake.waitFor(() => fake.isRunning(died.submissionId));
    fake.failJob(died.submissionId, {
      errorType: "JOB_SUPERVISOR_ACTOR_DIED",
      message: "Job supervisor actor died",
    });
    await fake.waitFor(() => fake.job(died.submissionId)?.status === "FAILED");
    const diedStatus = await p.check(diedCtx, died);
    expect(diedStatus.error?.kind).toBe("system");

    // A check that cannot reach the dashboard throws (the engine counts it), it does not fail the task.
    await fake.down("503");
    await expect(p.check(diedCtx, died)).rejects.toMatchObject({ kind: "system" });
    await fake.up();
    await p.close();
  });

  it("abort stops the job: its process group is killed and the job is STOPPED", async () => {
    const fake = await fakeRay();
    const p = await resolveBackendPlugin<RayJobPlugin>(ray(jobsOptions(fake)), "ray-job");
    const ctx = ctxOf(
      specOf(
        rayTask("stopme", {
          entrypoint: `sh -c 'sleep 30' & ${nodeEntrypoint("setInterval(() => {}, 1000)")}`,
        }),
      ),
    );
    const s = await p.launch(ctx);
    await fake.waitFor(() => fake.isRunning(s.submissionId));
    await p.abort(ctx, s);
    await fake.waitFor(() => fake.job(s.submissionId)?.status === "STOPPED", { timeoutMs: 5000 });
    expect(fake.isRunning(s.submissionId)).toBe(false);
    expect(fake.requests({ route: "stop" })).toHaveLength(1);
    expect((await p.check(ctx, s)).phase).toBe("aborted");
    await p.close();
  });
});

describe("ray-kuberay through the engine", () => {
  it("runs a typed task as a RayJob and KubeRay shuts its cluster down afterwards", async () => {
    const fake = await fakeKubeRay();
    const te = await rayEngine(
      kuberayOptions(fake, { kuberay: { ...kuberayOptions(fake).kuberay!, keepRayJobs: true } }),
    );
    const dir = statsProject();
    const def = rayTask(
      "kr_stats",
      {
        entrypoint: `${JSON.stringify(process.execPath)} stats.mjs {{.inputs.mode}}`,
        runtimeEnv: { working_dir: dir, env_vars: { GREETING: "hi" } },
        cluster: {
          head: { cpu: 1, memory: "1Gi" },
          workers: [{ groupName: "cpu", replicas: 2, cpu: "500m", memory: "512Mi" }],
        },
      },
      {
        type: "kuberay",
        inputs: { values: z.array(z.number()), label: z.string(), mode: z.string() },
        output: z.object({ sum: z.number(), mean: z.number(), label: z.string() }),
      },
    );
    const result = await te.run(def, { values: [2, 4], label: "k", mode: "slow" });
    expect(result.error).toBeUndefined();
    expect(result.outputs).toEqual({ sum: 6, mean: 3, label: "k:slow" });
    const [job] = fake.cluster.list(RAYJOBS, "default");
    expect(job.spec.shutdownAfterJobFinishes).toBe(true);
    expect(job.spec.rayClusterSpec.workerGroupSpecs[0]).toMatchObject({ groupName: "cpu", replicas: 2 });
    expect(JSON.parse(job.spec.runtimeEnvYAML).env_vars.GREETING).toBe("hi");
    expect(job.status).toMatchObject({ jobDeploymentStatus: "Complete", jobStatus: "SUCCEEDED" });
    // The cluster and its pods go; the submitter pod (the job's log) stays with the RayJob.
    await fake.waitFor(
      () => fake.cluster.list({ group: "ray.io", plural: "rayclusters" }, "default").length === 0,
    );
    await fake.waitFor(() => fake.pods("default").every((p) => !p.metadata.labels?.["ray.io/cluster"]));
    expect(
      fake
        .pods("default")
        .filter((p) => p.metadata.labels?.["batch.kubernetes.io/job-name"] === job.metadata.name),
    ).toHaveLength(1);
  });

  it("abort deletes the RayJob, which takes its cluster and processes with it", async () => {
    const fake = await fakeKubeRay();
    const p = await resolveBackendPlugin<KubeRayPlugin>(ray(kuberayOptions(fake)), "ray-kuberay");
    const ctx = makeTaskContext(
      specOf(
        rayTask(
          "kr_abort",
          { entrypoint: nodeEntrypoint("setInterval(() => {}, 1000)") },
          { type: "kuberay" },
        ),
      ),
      {},
      { workDir: tempDir() },
    );
    const s = await p.launch(ctx);
    await fake.waitFor(() => fake.cluster.get(RAYJOBS, "default", s.rayjob)?.status?.jobStatus === "RUNNING");
    expect(fake.processes().length).toBeGreaterThan(0);
    await p.abort(ctx, s);
    await fake.waitFor(
      () => !fake.cluster.get(RAYJOBS, "default", s.rayjob) && fake.processes().length === 0,
      { timeoutMs: 5000 },
    );
    expect((await p.check(ctx, s)).phase).toBe("aborted");
    await p.close();
  });
});
