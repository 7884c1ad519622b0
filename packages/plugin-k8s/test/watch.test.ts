/**
 * Status through one shared watch per cluster and namespace: the API calls a pod costs,
 * and the cache surviving closed and expired watches.
 */
import { type AnyTask, workflow } from "@tern/core";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { clusterOf, fakeCluster, k8sEngine, nodeScriptTask, podCalls } from "./helpers.js";

function wide(name: string, t: AnyTask, n: number) {
  return workflow({ name, inputs: {}, output: z.array(z.null()) }, () =>
    Array.from({ length: n }, (_, i) => t({}, { id: `p${i}` })),
  );
}

const trueTask = (name: string) =>
  nodeScriptTask(name, "0", { custom: { image: "busybox:1.36", command: ["/bin/true"] } });

describe("watch cache", () => {
  it("50 pods cost at most 3 API calls each on pod paths; one list and one watch serve them all", async () => {
    const fake = await fakeCluster();
    const te = await k8sEngine([clusterOf(fake)]);
    const r = await te.run(wide("fifty", trueTask("fifty_true"), 50));
    expect(r.phase, JSON.stringify(r.error)).toBe("succeeded");
    expect(r.nodes.every((n) => n.phase === "succeeded" && n.attempts === 1)).toBe(true);
    const calls = podCalls(fake);
    const byMethod = (m: string) => calls.filter((c) => c.method === m).length;
    expect(byMethod("POST")).toBe(50);
    expect(byMethod("DELETE")).toBe(50);
    expect(
      calls.length / 50,
      `pod calls: POST ${byMethod("POST")}, GET ${byMethod("GET")}, DELETE ${byMethod("DELETE")}`,
    ).toBeLessThanOrEqual(3);
    const lists = fake.requests({ method: "GET", path: "/api/v1/namespaces/default/pods", watch: false });
    const watches = fake.requests({ method: "GET", path: "/api/v1/namespaces/default/pods", watch: true });
    expect(lists).toHaveLength(1);
    expect(lists[0].query.labelSelector).toBe("app.kubernetes.io/managed-by=tern");
    expect(watches.length).toBeGreaterThanOrEqual(1);
    expect(watches.length).toBeLessThanOrEqual(2);
  });

  for (const mode of ["event", "http"] as const) {
    it(`re-lists after the watch is closed and its resume point expired (410 as ${mode === "event" ? "an ERROR event" : "an HTTP status"})`, async () => {
      const fake = await fakeCluster({ expiredWatch: mode });
      const te = await k8sEngine([clusterOf(fake)]);
      const slow = nodeScriptTask(`slow_${mode}`, `setTimeout(() => {}, 700);`);
      const run = te.run(wide(`expiry_${mode}`, slow, 4));
      await fake.waitFor(
        () => fake.pods("default").filter((p) => p.status?.phase === "Running").length === 4,
        { message: "4 pods running" },
      );
      fake.expireWatchHistory();
      fake.closeWatches();
      // The fake's compaction also marks the *current* resourceVersion too old until the next
      // write (a real API server serves watches from a fresh list's version): write once.
      fake.createConfigMap("default", "bump", { at: "now" });
      const r = await run;
      expect(r.phase, JSON.stringify(r.error)).toBe("succeeded");
      const lists = fake.requests({ method: "GET", path: "/api/v1/namespaces/default/pods", watch: false });
      expect(lists).toHaveLength(2);
      const watches = fake.requests({ method: "GET", path: "/api/v1/namespaces/default/pods", watch: true });
      expect(watches.some((w) => w.status === (mode === "http" ? 410 : 200) && w.query.resourceVersion)).toBe(
        true,
      );
    });
  }
});
