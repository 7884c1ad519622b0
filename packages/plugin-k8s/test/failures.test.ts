/**
 * Failure mapping (PROTOCOLS §1.6) through a real engine: which failures spend user
 * retries, which spend system retries, and which are refused before any pod exists.
 */
import { type AnyTask, type ExecutionResult, TernError, workflow } from "@tern/core";
import { DEFAULT_NODE, type FakeKubernetes, type Pod } from "@tern/testkit";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { type K8sOptions, LABELS } from "../src/index.js";
import { clusterOf, fakeCluster, k8sEngine, nodeScriptTask, postedPods, writeOutput } from "./helpers.js";

const FOREVER = "setInterval(() => {}, 1000);";
const FAST_RETRY = { user: 0, system: 3, backoff: { base: "10ms" as const, max: "20ms" as const } };
const SPOT_TOLERATION = {
  key: "cloud.example.com/spot",
  operator: "Equal" as const,
  value: "true",
  effect: "NoSchedule" as const,
};

function engineFor(fake: FakeKubernetes, extra: Partial<K8sOptions> = {}) {
  return k8sEngine([clusterOf(fake)], extra);
}

/** The running pod of attempt `n` of a task (waits for it). */
function runningPod(fake: FakeKubernetes, taskName: string, n: number): Promise<Pod> {
  return fake.waitFor(
    () =>
      fake
        .pods("default")
        .find(
          (p) =>
            p.metadata.labels?.[LABELS.task] === taskName &&
            p.metadata.labels?.[LABELS.attempt] === String(n) &&
            p.status?.phase === "Running",
        ),
    { message: `attempt ${n} of ${taskName} running` },
  );
}

function expectFailed(r: ExecutionResult, kind: "user" | "system", attempts: number): void {
  expect(r.phase, JSON.stringify(r.error)).toBe("failed");
  expect(r.error?.kind, JSON.stringify(r.error)).toBe(kind);
  expect(r.nodes[0].attempts).toBe(attempts);
}

describe("failure mapping through the engine", () => {
  it("a non-zero exit is a user failure: no system retries are spent", async () => {
    const fake = await fakeCluster();
    const t = nodeScriptTask("exit_one", `console.error("cannot parse row 7"); process.exit(1);`, {
      extra: { retries: FAST_RETRY },
    });
    const r = await (await engineFor(fake)).run(t, {});
    expectFailed(r, "user", 1);
    expect(r.error?.message).toContain("exited with code 1");
    expect(postedPods(fake)).toHaveLength(1);
  });

  it("a container's own error.json is the failure it reports", async () => {
    const fake = await fakeCluster();
    const doc = { code: "TERN_E_TASK_FAILED", kind: "user", message: "column 'price' is missing" };
    const t = nodeScriptTask(
      "own_error",
      `require("fs").writeFileSync(process.env.TERN_ERROR_PATH, ${JSON.stringify(JSON.stringify(doc))}); process.exit(2);`,
      {
        extra: { retries: FAST_RETRY },
      },
    );
    const r = await (await engineFor(fake)).run(t, {});
    expectFailed(r, "user", 1);
    expect(r.error?.message).toBe("column 'price' is missing");
  });

  it("OOMKilled is a user error saying out of memory, with the limit", async () => {
    const fake = await fakeCluster();
    const t = nodeScriptTask("hungry", FOREVER, {
      extra: { retries: FAST_RETRY, resources: { limits: { memory: "256Mi" } } },
    });
    const engine = await engineFor(fake);
    const run = engine.run(t, {});
    const pod = await runningPod(fake, "hungry", 1);
    fake.oomKill("default", pod.metadata.name!);
    const r = await run;
    expectFailed(r, "user", 1);
    expect(r.error?.message).toContain("ran out of memory (limit 256Mi)");
    expect(r.error?.details).toMatchObject({ reason: "OOMKilled", exitCode: 137 });
  });

  it("an evicted pod is a system failure: retried, then the task succeeds", async () => {
    const fake = await fakeCluster();
    const t = nodeScriptTask(
      "evictable",
      `if (process.env.TERN_ATTEMPT === "1") { ${FOREVER} } else { ${writeOutput('"done on attempt " + process.env.TERN_ATTEMPT')} }`,
      {
        output: z.string(),
        extra: { retries: FAST_RETRY },
      },
    );
    const engine = await engineFor(fake);
    const run = engine.run(t, {});
    const pod = await runningPod(fake, "evictable", 1);
    fake.evict("default", pod.metadata.name!);
    const r = await run;
    expect(r.phase, JSON.stringify(r.error)).toBe("succeeded");
    expect(r.outputs).toBe("done on attempt 2");
    expect(r.nodes[0].attempts).toBe(2);
  });

  it("preemption is retried; the last system attempt runs without interruptible tolerations", async () => {
    const spot = {
      name: "spot-1",
      labels: { "cloud.example.com/spot": "true" },
      taints: [{ key: "cloud.example.com/spot", value: "true", effect: "NoSchedule" as const }],
    };
    const fake = await fakeCluster({ nodes: [DEFAULT_NODE, spot] });
    const t = nodeScriptTask(
      "spotty",
      `if (process.env.TERN_ATTEMPT !== "3") { ${FOREVER} } else { ${writeOutput("process.env.TERN_ATTEMPT")} }`,
      {
        output: z.string(),
        extra: {
          interruptible: true,
          retries: { user: 0, system: 2, backoff: { base: "10ms", max: "20ms" } },
        },
      },
    );
    const engine = await engineFor(fake, {
      interruptibleTolerations: [SPOT_TOLERATION],
      interruptibleNodeSelector: { "cloud.example.com/spot": "true" },
    });
    const seen = new Map<string, Pod>();
    fake.cluster.on({ group: "", plural: "pods" }, (_t, p) => seen.set(p.metadata.name!, p as Pod));
    const run = engine.run(t, {});
    for (const n of [1, 2]) fake.preempt("default", (await runningPod(fake, "spotty", n)).metadata.name!);
    const r = await run;
    expect(r.phase, JSON.stringify(r.error)).toBe("succeeded");
    expect(r.outputs).toBe("3");
    expect(r.nodes[0].attempts).toBe(3);
    const [a1, a2, a3] = postedPods(fake);
    for (const p of [a1, a2]) {
      expect(p.spec.tolerations).toContainEqual(SPOT_TOLERATION);
      expect(p.spec.nodeSelector).toEqual({ "cloud.example.com/spot": "true" });
      expect(p.metadata.labels[LABELS.interruptible]).toBe("true");
      expect(seen.get(p.metadata.name)?.spec.nodeName).toBe("spot-1");
    }
    expect(a3.metadata.labels[LABELS.attempt]).toBe("3");
    expect(a3.spec.tolerations ?? []).not.toContainEqual(SPOT_TOLERATION);
    expect(a3.spec.nodeSelector).toBeUndefined();
    expect(a3.metadata.labels[LABELS.interruptible]).toBeUndefined();
    expect(seen.get(a3.metadata.name)?.spec.nodeName).toBe("fake-node-1");
  });

  it("an image that cannot be pulled fails as a user error after the grace period, not retried endlessly", async () => {
    const fake = await fakeCluster({ imagePullBackoffMs: 50 });
    fake.markImageUnpullable("registry.example.com/nope:1");
    const t = nodeScriptTask("bad_image", "0", {
      custom: { image: "registry.example.com/nope:1" },
      extra: { retries: FAST_RETRY },
    });
    const r = await (await engineFor(fake, { imagePullGraceMs: 300 })).run(t, {});
    expectFailed(r, "user", 1);
    expect(r.error?.message).toMatch(
      /image of task "bad_image" cannot be pulled \((ErrImagePull|ImagePullBackOff)/,
    );
    expect(postedPods(fake)).toHaveLength(1);
  });

  it("a missing secret is a clear user error naming it; with the secret the task reads it", async () => {
    const fake = await fakeCluster();
    const t = nodeScriptTask("needs_secret", writeOutput("process.env.DB_PASSWORD"), {
      output: z.string(),
      extra: { retries: FAST_RETRY, secrets: [{ group: "db-creds", key: "password", env: "DB_PASSWORD" }] },
    });
    const engine = await engineFor(fake);
    const missing = await engine.run(t, {});
    expectFailed(missing, "user", 1);
    expect(missing.error?.message).toContain('secret "db-creds" not found');
    expect(missing.error?.message).toContain("CreateContainerConfigError");

    fake.createSecret("default", "db-creds", { password: "s3cret" });
    const ok = await engine.run(t, {});
    expect(ok.phase, JSON.stringify(ok.error)).toBe("succeeded");
    expect(ok.outputs).toBe("s3cret");
    expect(postedPods(fake)[1].spec.containers[0].env).toContainEqual({
      name: "DB_PASSWORD",
      valueFrom: { secretKeyRef: { name: "db-creds", key: "password" } },
    });
  });

  it("an invalid resource quantity is refused before any pod is created", async () => {
    const fake = await fakeCluster();
    const t = nodeScriptTask("bad_quantity", "0", { extra: { resources: { limits: { memory: "1GB" } } } });
    const engine = await engineFor(fake);
    const err = await engine.run(t, {}).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TernError);
    expect((err as TernError).code).toBe("TERN_E_SPEC_INVALID");
    expect((err as TernError).message).toBe(
      'task "bad_quantity": resources.limits.memory "1GB" is not a Kubernetes quantity',
    );
    expect((err as TernError).hint).toContain("512Mi");
    expect(fake.requests({ method: "POST" })).toEqual([]);
  });

  it("an unknown accelerator is refused before any pod is created", async () => {
    const fake = await fakeCluster({ gpuNodes: 1 });
    const t = nodeScriptTask("bad_gpu", "0", { extra: { resources: { gpu: 1, accelerator: "tpu-v5" } } });
    const engine = await engineFor(fake, {
      accelerators: ["NVIDIA-A100-SXM4-80GB", "NVIDIA-H100-80GB-HBM3"],
    });
    const err = (await engine.run(t, {}).catch((e: unknown) => e)) as TernError;
    expect(err.code).toBe("TERN_E_SPEC_INVALID");
    expect(err.message).toContain(
      'resources.accelerator "tpu-v5" is not an accelerator this deployment offers',
    );
    expect(err.hint).toBe("use one of: NVIDIA-A100-SXM4-80GB, NVIDIA-H100-80GB-HBM3");
    expect(fake.requests({ method: "POST" })).toEqual([]);
  });

  it("a pod that cannot be scheduled waits for resources, then fails after unschedulableTimeoutMs", async () => {
    const fake = await fakeCluster({ gpuNodes: 1 });
    const t = nodeScriptTask("too_big", "0", { extra: { retries: FAST_RETRY, resources: { gpu: 16 } } });
    const engine = await engineFor(fake, { unschedulableTimeoutMs: 1500 });
    const handle = engine.engine.engine.start((await import("@tern/core")).compile(wrap(t)), {});
    const r = await handle.result;
    expectFailed(r, "user", 1);
    expect(r.error?.message).toMatch(/could not be scheduled for \d+ s: 0\/2 nodes are available/);
    const waiting = handle.events.find((e) => e.phase === "waiting-for-resources");
    expect(waiting?.message).toContain("Insufficient nvidia.com/gpu");
  });

  it("a pod deleted by someone else while it runs is a system failure, retried", async () => {
    const fake = await fakeCluster();
    const t = nodeScriptTask(
      "deleted_pod",
      `if (process.env.TERN_ATTEMPT === "1") { ${FOREVER} } else { ${writeOutput("2")} }`,
      {
        output: z.number(),
        extra: { retries: FAST_RETRY },
      },
    );
    const engine = await engineFor(fake);
    const handle = engine.engine.engine.start((await import("@tern/core")).compile(wrap(t)), {});
    const pod = await runningPod(fake, "deleted_pod", 1);
    fake.cluster.delete({ group: "", plural: "pods" }, "default", pod.metadata.name!, {
      gracePeriodSeconds: 1,
    });
    const r = await handle.result;
    expect(r.phase, JSON.stringify(r.error)).toBe("succeeded");
    expect(r.outputs).toBe(2);
    const retry = handle.events.find((e) => e.phase === "retrying");
    expect(retry?.error).toMatchObject({ kind: "system" });
    expect(retry?.error?.message).toMatch(/was deleted (while it ran|before it finished)/);
  });

  it("a pod lost from under the plugin is a system failure, retried", async () => {
    const fake = await fakeCluster();
    const t = nodeScriptTask(
      "lost_pod",
      `if (process.env.TERN_ATTEMPT === "1") { ${FOREVER} } else { ${writeOutput("1")} }`,
      { output: z.number(), extra: { retries: FAST_RETRY } },
    );
    const engine = await engineFor(fake);
    const handle = engine.engine.engine.start((await import("@tern/core")).compile(wrap(t)), {});
    fake.lose("default", (await runningPod(fake, "lost_pod", 1)).metadata.name!);
    const r = await handle.result;
    expect(r.phase, JSON.stringify(r.error)).toBe("succeeded");
    const retry = handle.events.find((e) => e.phase === "retrying");
    expect(retry?.error).toMatchObject({ kind: "system" });
    expect(retry?.error?.message).toContain("was deleted before it finished (lost");
  });
});

/** A one-node workflow around a task (to keep the handle and its events). */
function wrap(t: AnyTask) {
  return workflow({ name: `${t.taskName}_wf`, inputs: {}, output: t.outputSchema }, () => t({}));
}
