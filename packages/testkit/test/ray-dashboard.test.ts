/**
 * The fake Ray dashboard over a real socket (fetch): the Jobs API wire protocol (PROTOCOLS §2),
 * entrypoints as real processes, stop, logs, duplicate ids, and the control API.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { type FakeRay, startFakeRay } from "../src/index.js";

const open: FakeRay[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((f) => f.close()));
});

async function start(opts: Parameters<typeof startFakeRay>[0] = {}): Promise<FakeRay> {
  const f = await startFakeRay({ pendingMs: 5, stopGraceMs: 200, ...opts });
  open.push(f);
  return f;
}

const post = (f: FakeRay, p: string, body?: unknown, headers: Record<string, string> = {}) =>
  fetch(`${f.url}${p}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });

describe("fake Ray dashboard", () => {
  it("runs an entrypoint with env_vars and working_dir, and reports it as Ray does", async () => {
    const f = await start();
    const dir = mkdtempSync(path.join(os.tmpdir(), "tern-ray-wd-"));
    try {
      writeFileSync(path.join(dir, "hello.txt"), "from the working dir");
      const res = await post(f, "/api/jobs/", {
        entrypoint: 'cat hello.txt; echo " $GREETING"; echo oops >&2',
        submission_id: "job-1",
        runtime_env: { working_dir: dir, env_vars: { GREETING: "hi" } },
        metadata: { owner: "test" },
        entrypoint_num_cpus: 1,
      });
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ job_id: "job-1", submission_id: "job-1" });
      await f.waitFor(() => f.job("job-1")?.status === "SUCCEEDED");
      const job = await (await fetch(`${f.url}/api/jobs/job-1`)).json();
      expect(job).toMatchObject({
        type: "SUBMISSION",
        submission_id: "job-1",
        status: "SUCCEEDED",
        message: "Job finished successfully.",
        driver_exit_code: 0,
        metadata: { owner: "test" },
        entrypoint_num_cpus: 1,
      });
      expect(job.end_time).toBeGreaterThanOrEqual(job.start_time);
      const logs = await (await fetch(`${f.url}/api/jobs/job-1/logs`)).json();
      expect(logs.logs).toContain("from the working dir hi");
      expect(logs.logs).toContain("oops");
      const list = await (await fetch(`${f.url}/api/jobs/`)).json();
      expect(Array.isArray(list) && list.map((j: { submission_id: string }) => j.submission_id)).toEqual([
        "job-1",
      ]);
      expect((await (await fetch(`${f.url}/api/version`)).json()).ray_version).toMatch(/^2\./);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("reports a failing entrypoint with its exit code, error type and log tail", async () => {
    const f = await start();
    const { submission_id } = await (
      await post(f, "/api/jobs", { entrypoint: "echo about to fail; exit 4" })
    ).json();
    expect(submission_id).toMatch(/^raysubmit_/);
    await f.waitFor(() => f.job(submission_id)?.status === "FAILED");
    expect(f.job(submission_id)).toMatchObject({
      driver_exit_code: 4,
      error_type: "JOB_ENTRYPOINT_COMMAND_ERROR",
      message: expect.stringMatching(/exit code 4.*\n.*about to fail/s),
    });
  });

  it("refuses a duplicate submission_id with a 500 whose text carries the nested 400 'already exists'", async () => {
    const f = await start();
    expect((await post(f, "/api/jobs/", { entrypoint: "true", submission_id: "dup" })).status).toBe(200);
    const again = await post(f, "/api/jobs/", { entrypoint: "true", submission_id: "dup" });
    expect(again.status).toBe(500);
    const text = await again.text();
    expect(text).toMatch(/400 Bad Request/);
    expect(text).toMatch(/Job with submission_id dup already exists/);
    expect(f.jobs()).toHaveLength(1);
    const old = await start({ duplicateStatus: 400 });
    await post(old, "/api/jobs/", { entrypoint: "true", submission_id: "dup" });
    expect((await post(old, "/api/jobs/", { entrypoint: "true", submission_id: "dup" })).status).toBe(400);
  });

  it("answers bad requests and unknown jobs in plain text", async () => {
    const f = await start();
    const bad = await post(f, "/api/jobs/", { entrypoint: "true", metadata: { n: 1 } });
    expect(bad.status).toBe(400);
    expect(await bad.text()).toMatch(/metadata values must be strings/);
    const missing = await fetch(`${f.url}/api/jobs/nope`);
    expect(missing.status).toBe(404);
    expect(await missing.text()).toBe("Job nope does not exist");
    const remote = await post(f, "/api/jobs/", {
      entrypoint: "true",
      submission_id: "remote",
      runtime_env: { working_dir: "s3://b/c.zip" },
    });
    expect(remote.status).toBe(200);
    await f.waitFor(() => f.job("remote")?.status === "FAILED");
    expect(f.job("remote")?.error_type).toBe("RUNTIME_ENV_SETUP_FAILURE");
  });

  it("stops a job: the process group gets SIGTERM, the job ends STOPPED; delete only after", async () => {
    const f = await start();
    await post(f, "/api/jobs/", { entrypoint: "sleep 30 & sleep 30; wait", submission_id: "long" });
    await f.waitFor(() => f.isRunning("long"));
    const del = await fetch(`${f.url}/api/jobs/long`, { method: "DELETE" });
    expect(del.status).toBe(400);
    expect(await (await post(f, "/api/jobs/long/stop")).json()).toEqual({ stopped: true });
    await f.waitFor(() => f.job("long")?.status === "STOPPED");
    expect(f.isRunning("long")).toBe(false);
    expect(f.job("long")?.message).toBe("Job was intentionally stopped.");
    expect(await (await post(f, "/api/jobs/long/stop")).json()).toEqual({ stopped: false });
    expect(await (await fetch(`${f.url}/api/jobs/long`, { method: "DELETE" })).json()).toEqual({
      deleted: true,
    });
    expect((await fetch(`${f.url}/api/jobs/long`)).status).toBe(404);
  });

  it("injects failures, latency, outages, preemption and lost jobs, and records requests", async () => {
    const f = await start({ token: "s3cret" });
    const auth = { authorization: "Bearer s3cret" };
    expect((await post(f, "/api/jobs/", { entrypoint: "true" })).status).toBe(401);
    f.failNext({ route: "submit" }, { status: 503, count: 2 });
    expect((await post(f, "/api/jobs/", { entrypoint: "true" }, auth)).status).toBe(503);
    expect((await post(f, "/api/jobs/", { entrypoint: "true" }, auth)).status).toBe(503);
    expect((await post(f, "/api/jobs/", { entrypoint: "sleep 30", submission_id: "p" }, auth)).status).toBe(
      200,
    );
    await f.waitFor(() => f.isRunning("p"));
    f.preempt("p");
    await f.waitFor(() => f.job("p")?.status === "FAILED");
    expect(f.job("p")?.error_type).toBe("JOB_SUPERVISOR_ACTOR_DIED");
    expect(f.isRunning("p")).toBe(false);
    f.lose("p");
    expect((await fetch(`${f.url}/api/jobs/p`, { headers: auth })).status).toBe(404);
    f.delay({ route: "version" }, 150, 1);
    const t0 = Date.now();
    await fetch(`${f.url}/api/version`, { headers: auth });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
    await f.down("refuse");
    await expect(fetch(`${f.url}/api/version`, { headers: auth })).rejects.toThrow();
    await f.up();
    await f.down("503");
    expect((await fetch(`${f.url}/api/version`, { headers: auth })).status).toBe(503);
    await f.up();
    expect((await fetch(`${f.url}/api/version`, { headers: auth })).status).toBe(200);
    expect(f.requests({ route: "submit" }).map((r) => r.status)).toEqual([401, 503, 503, 200]);
  });
});
