/**
 * The fake KubeRay operator: a RayJob brings up a RayCluster with head and worker pods, runs
 * the entrypoint in a submitter pod, moves `.status` as KubeRay does, and shuts the cluster
 * down when `shutdownAfterJobFinishes` is set.
 */
import { afterEach, describe, expect, it } from "vitest";
import { type FakeKubernetes, installKubeRay, startFakeKubernetes } from "../src/index.js";

const RAYJOBS = { group: "ray.io", version: "v1", plural: "rayjobs" };
const RAYCLUSTERS = { group: "ray.io", version: "v1", plural: "rayclusters" };
const open: FakeKubernetes[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((f) => f.close()));
});

async function start(): Promise<FakeKubernetes> {
  const f = await startFakeKubernetes({
    schedulingDelayMs: 2,
    containerStartDelayMs: 2,
    maxGracePeriodMs: 200,
  });
  installKubeRay(f, { pollMs: 10 });
  open.push(f);
  return f;
}

const rayJob = (name: string, entrypoint: string, extra: Record<string, unknown> = {}) => ({
  apiVersion: "ray.io/v1",
  kind: "RayJob",
  metadata: { name },
  spec: {
    entrypoint,
    runtimeEnvYAML: "env_vars:\n  GREETING: hello\n",
    shutdownAfterJobFinishes: true,
    rayClusterSpec: {
      rayVersion: "2.41.0",
      headGroupSpec: {
        rayStartParams: {},
        template: { spec: { containers: [{ name: "ray-head", image: "rayproject/ray:2.41.0" }] } },
      },
      workerGroupSpecs: [
        {
          groupName: "small",
          replicas: 2,
          rayStartParams: {},
          template: { spec: { containers: [{ name: "ray-worker", image: "rayproject/ray:2.41.0" }] } },
        },
      ],
    },
    ...extra,
  },
});

describe("fake KubeRay operator", () => {
  it("runs a RayJob to Complete/SUCCEEDED and then deletes its cluster", async () => {
    const f = await start();
    const seen: string[] = [];
    f.cluster.on(RAYJOBS, (_t, o) => {
      const s = `${o.status?.jobDeploymentStatus ?? ""}/${o.status?.jobStatus ?? ""}`;
      if (seen.at(-1) !== s) seen.push(s);
    });
    f.cluster.create(RAYJOBS, "default", rayJob("rj", 'sleep 0.2; echo "$GREETING from the driver"'));
    const done = await f.waitFor(() => {
      const j = f.cluster.get(RAYJOBS, "default", "rj");
      return j?.status?.jobDeploymentStatus === "Complete" && j;
    });
    expect(done.status).toMatchObject({
      jobStatus: "SUCCEEDED",
      rayClusterName: expect.stringMatching(/^rj-raycluster-[a-z0-9]{5}$/),
      dashboardURL: expect.stringMatching(/-head-svc\.default\.svc\.cluster\.local:8265$/),
      jobId: expect.stringMatching(/^rj-/),
      succeeded: 1,
    });
    expect(done.status.startTime).toBeTruthy();
    expect(done.status.endTime).toBeTruthy();
    expect(seen).toEqual(["/", "Initializing/", "Running/PENDING", "Running/RUNNING", "Complete/SUCCEEDED"]);
    await f.waitFor(() => f.cluster.list(RAYCLUSTERS, "default").length === 0);
    await f.waitFor(() => f.pods("default").every((p) => !p.metadata.labels?.["ray.io/cluster"]));
    expect(f.cluster.get(RAYJOBS, "default", "rj")?.status?.rayClusterStatus).toBeUndefined();
    const submitter = f
      .pods("default")
      .find((p) => p.metadata.labels?.["batch.kubernetes.io/job-name"] === "rj");
    expect(submitter?.status?.phase).toBe("Succeeded");
  });

  it("fails with AppFailed when the entrypoint fails, SubmissionFailed when the head dies, ValidationFailed for a bad spec", async () => {
    const f = await start();
    f.cluster.create(RAYJOBS, "default", rayJob("app", "exit 5"));
    const app = await f.waitFor(() => {
      const j = f.cluster.get(RAYJOBS, "default", "app");
      return j?.status?.jobDeploymentStatus === "Failed" && j;
    });
    expect(app.status).toMatchObject({
      jobStatus: "FAILED",
      reason: "AppFailed",
      message: expect.stringMatching(/exit code 5/),
    });

    f.cluster.create(RAYJOBS, "default", rayJob("headless", "sleep 30"));
    await f.waitFor(() => f.cluster.get(RAYJOBS, "default", "headless")?.status?.jobStatus === "RUNNING");
    const cluster = f.cluster.get(RAYJOBS, "default", "headless")!.status.rayClusterName;
    const head = f
      .pods("default")
      .find(
        (p) =>
          p.metadata.labels?.["ray.io/cluster"] === cluster &&
          p.metadata.labels?.["ray.io/node-type"] === "head",
      )!;
    expect(
      f
        .pods("default")
        .filter(
          (p) =>
            p.metadata.labels?.["ray.io/cluster"] === cluster &&
            p.metadata.labels?.["ray.io/group"] === "small",
        ),
    ).toHaveLength(2);
    f.evict("default", head.metadata.name!);
    const lost = await f.waitFor(() => {
      const j = f.cluster.get(RAYJOBS, "default", "headless");
      return j?.status?.jobDeploymentStatus === "Failed" && j;
    });
    expect(lost.status).toMatchObject({ reason: "SubmissionFailed", jobStatus: "RUNNING" });

    f.cluster.create(RAYJOBS, "default", {
      apiVersion: "ray.io/v1",
      kind: "RayJob",
      metadata: { name: "invalid" },
      spec: { entrypoint: "true" },
    });
    const invalid = await f.waitFor(() => {
      const j = f.cluster.get(RAYJOBS, "default", "invalid");
      return j?.status?.jobDeploymentStatus === "Failed" && j;
    });
    expect(invalid.status).toMatchObject({
      reason: "ValidationFailed",
      message: expect.stringMatching(/rayClusterSpec/),
    });
  });

  it("deleting a running RayJob garbage-collects its cluster and stops every process", async () => {
    const f = await start();
    f.cluster.create(RAYJOBS, "default", rayJob("gone", "sleep 30"));
    await f.waitFor(() => f.cluster.get(RAYJOBS, "default", "gone")?.status?.jobStatus === "RUNNING");
    expect(f.processes().length).toBe(4); // head, two workers, submitter
    f.cluster.delete(RAYJOBS, "default", "gone");
    await f.waitFor(() => f.processes().length === 0 && f.cluster.list(RAYCLUSTERS, "default").length === 0, {
      timeoutMs: 5000,
    });
    expect(f.pods("default")).toHaveLength(0);
  });
});
