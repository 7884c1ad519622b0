/**
 * Several clusters: routing by label, failover of not-yet-started work when a cluster
 * refuses a launch, health checks keeping new pods off a failing cluster, running work
 * that is not moved (it is retried), and API trouble retried inside launch.
 */
import { type AnyTask, type ExecutionEvent, resolve, workflow } from "@tern/core";
import type { FakeKubernetes } from "@tern/testkit";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { type ClusterPool, K8S_CLUSTERS, LABELS, type PodState } from "../src/index.js";
import { clusterOf, fakeCluster, k8sEngine, nodeScriptTask, writeOutput } from "./helpers.js";

const GPU_ROUTING = { routing: { byLabel: { gpu: { gpu: "a100" } } } };
const FAST_RETRY = { user: 0, system: 2, backoff: { base: "10ms" as const, max: "20ms" as const } };

function gpuTask(name: string, script = writeOutput("process.env.HOSTNAME")): AnyTask {
  return nodeScriptTask(name, script, {
    output: z.string(),
    custom: { clusterLabel: "gpu" },
    extra: { retries: FAST_RETRY },
  });
}

function wrap(t: AnyTask, n = 1) {
  return workflow({ name: `${t.taskName}_x${n}`, inputs: {}, output: z.array(z.string()) }, () =>
    Array.from({ length: n }, (_, i) => t({}, { id: `t${i}` })),
  );
}

function initStates(events: readonly ExecutionEvent[]): PodState[] {
  return events.filter((e) => e.phase === "initializing").map((e) => e.pluginState as PodState);
}

const posts = (f: FakeKubernetes) => f.requests({ method: "POST", path: /\/pods$/ });

describe("several clusters", () => {
  it("routes by label; a cluster that refuses a launch fails over to the next, recorded in state and logs", async () => {
    const a = await fakeCluster();
    const b = await fakeCluster();
    const other = await fakeCluster();
    const te = await k8sEngine(
      [clusterOf(other, "cpu-only"), clusterOf(a, "a", { gpu: "a100" }), clusterOf(b, "b", { gpu: "a100" })],
      {
        ...GPU_ROUTING,
        healthCheckIntervalMs: 60_000,
      },
    );
    const t = gpuTask("route_me");
    const first = te.engine.engine.start((await import("@tern/core")).compile(wrap(t)), {});
    expect((await first.result).phase).toBe("succeeded");
    expect(initStates(first.events)).toEqual([expect.objectContaining({ cluster: "a" })]);
    expect(posts(other)).toEqual([]);

    // a goes away between health checks: the next launch is refused and moves to b.
    await a.down("refuse");
    const second = te.engine.engine.start((await import("@tern/core")).compile(wrap(t)), {});
    const r = await second.result;
    expect(r.phase, JSON.stringify(r.error)).toBe("succeeded");
    const [state] = initStates(second.events);
    expect(state.cluster).toBe("b");
    expect(state.failover).toEqual([{ from: "a", to: "b", reason: expect.stringContaining("ECONNREFUSED") }]);
    expect(second.logs("t0").some((l) => l.includes("WARN failover: cluster a → b:"))).toBe(true);
    expect(posts(b)).toHaveLength(1);
    expect(posts(other)).toEqual([]);
    await a.up();
  });

  it("a cluster failing its health check gets no new pods until it recovers", async () => {
    const a = await fakeCluster();
    const b = await fakeCluster();
    const te = await k8sEngine([clusterOf(a, "a", { gpu: "a100" }), clusterOf(b, "b", { gpu: "a100" })], {
      ...GPU_ROUTING,
      healthCheckIntervalMs: 100,
    });
    const pool = resolve(te.engine.container, K8S_CLUSTERS) as ClusterPool;
    const t = gpuTask("healthy_only");
    expect((await te.run(wrap(t))).phase).toBe("succeeded");
    expect(posts(a)).toHaveLength(1);

    await a.down("503");
    await a.waitFor(() => pool.health().a.healthy === false, { message: "cluster a marked unhealthy" });
    expect(pool.health().a.reason).toContain("health check failed");
    const during = te.engine.engine.start((await import("@tern/core")).compile(wrap(t, 3)), {});
    expect((await during.result).phase).toBe("succeeded");
    expect(initStates(during.events).map((s) => s.cluster)).toEqual(["b", "b", "b"]);
    expect(initStates(during.events).every((s) => s.failover === undefined)).toBe(true);
    expect(posts(a)).toHaveLength(1);
    expect(posts(b)).toHaveLength(3);

    await a.up();
    await a.waitFor(() => pool.health().a.healthy, { message: "cluster a healthy again" });
    const after = te.engine.engine.start((await import("@tern/core")).compile(wrap(t)), {});
    expect((await after.result).phase).toBe("succeeded");
    expect(initStates(after.events)[0].cluster).toBe("a");
  });

  it("work running on a cluster that goes down is not moved: check errors fail it as a system error, and the retry runs elsewhere", async () => {
    const a = await fakeCluster();
    const b = await fakeCluster();
    const te = await k8sEngine(
      [clusterOf(a, "a", { gpu: "a100" }), clusterOf(b, "b", { gpu: "a100" })],
      {
        ...GPU_ROUTING,
        healthCheckIntervalMs: 100,
        watchStaleMs: 200,
        apiRetry: { attempts: 2, baseMs: 10, maxMs: 50 },
      },
      { pollMaxMs: 50, maxCheckErrors: 3 },
    );
    const t = gpuTask(
      "stranded",
      `if (process.env.TERN_ATTEMPT === "1") setInterval(() => {}, 1000); else { ${writeOutput('"attempt " + process.env.TERN_ATTEMPT')} }`,
    );
    const handle = te.engine.engine.start((await import("@tern/core")).compile(wrap(t)), {});
    await a.waitFor(
      () =>
        a
          .pods("default")
          .some((p) => p.status?.phase === "Running" && p.metadata.labels?.[LABELS.attempt] === "1"),
      { message: "attempt 1 running on a" },
    );
    await a.down("refuse");
    const r = await handle.result;
    expect(r.phase, JSON.stringify(r.error)).toBe("succeeded");
    expect(r.outputs).toEqual(["attempt 2"]);
    expect(initStates(handle.events).map((s) => s.cluster)).toEqual(["a", "b"]);
    const retry = handle.events.find((e) => e.phase === "retrying");
    expect(retry?.error?.kind).toBe("system");
    expect(retry?.error?.message).toContain('lost contact with cluster "a"');
    // The first attempt's pod is still on a: nothing moved it.
    expect(a.pods("default").filter((p) => p.metadata.labels?.[LABELS.attempt] === "1")).toHaveLength(1);
    await a.up();
  });
});

describe("API trouble during launch", () => {
  it("a burst of 503s on pod creation is retried and the task succeeds", async () => {
    const f = await fakeCluster();
    const te = await k8sEngine([clusterOf(f)]);
    f.failNext(
      { method: "POST", path: "/api/v1/namespaces/default/pods" },
      { status: 503, count: 3, retryAfterSeconds: 0 },
    );
    const r = await te.run(nodeScriptTask("flaky_api", writeOutput("7"), { output: z.number() }), {});
    expect(r.phase, JSON.stringify(r.error)).toBe("succeeded");
    expect(r.outputs).toBe(7);
    expect(r.nodes[0].attempts).toBe(1);
    expect(posts(f).map((p) => p.status)).toEqual([503, 503, 503, 201]);
  });

  it("429 with Retry-After is honoured: the retry waits what the server asked", async () => {
    const f = await fakeCluster();
    const te = await k8sEngine([clusterOf(f)]);
    f.failNext(
      { method: "POST", path: "/api/v1/namespaces/default/pods" },
      { status: 429, retryAfterSeconds: 1 },
    );
    const t = nodeScriptTask("throttled", writeOutput("8"), { output: z.number() });
    const handle = te.engine.engine.start(
      (await import("@tern/core")).compile(
        workflow({ name: "throttled_wf", inputs: {}, output: z.number() }, () => t({})),
      ),
      {},
    );
    const r = await handle.result;
    expect(r.phase, JSON.stringify(r.error)).toBe("succeeded");
    expect(posts(f).map((p) => p.status)).toEqual([429, 201]);
    expect(handle.logs("throttled").some((l) => /Too many requests.*retrying in 1000 ms/.test(l))).toBe(true);
  });

  it("an API server that keeps failing fails the attempt as a system error naming the cluster", async () => {
    const f = await fakeCluster();
    const te = await k8sEngine([clusterOf(f)], { apiRetry: { attempts: 3, baseMs: 5, maxMs: 20 } });
    f.failNext({ method: "POST", path: "/api/v1/namespaces/default/pods" }, { status: 500, count: 100 });
    const t = nodeScriptTask("broken_api", "0", {
      extra: { retries: { user: 0, system: 1, backoff: { base: "10ms", max: "10ms" } } },
    });
    const r = await te.run(t, {});
    expect(r.phase).toBe("failed");
    expect(r.error?.kind).toBe("system");
    expect(r.error?.message).toContain('could not create the pod of task "broken_api" on cluster "fake"');
    expect(r.nodes[0].attempts).toBe(2);
    expect(posts(f)).toHaveLength(6);
  });
});
