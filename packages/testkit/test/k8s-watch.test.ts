/**
 * Watch semantics against client-node's real Watch and informer: event types, resumption from a
 * resourceVersion, both forms of 410, bookmarks/heartbeats, timeoutSeconds and re-listing.
 */
import { type KubernetesObject, makeInformer, type V1Pod, Watch } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { collect, harness, nodePod } from "./helpers.js";

interface Seen {
  type: string;
  name?: string;
  phase?: string;
  rv?: string;
  object: any;
}

/** Starts a client-node watch that records every event; resolves once the stream is open. */
async function watchInto(
  watch: Watch,
  path: string,
  query: Record<string, string | number | boolean | undefined>,
): Promise<{ events: Seen[]; done: { called: boolean; err: any }; abort: () => void }> {
  const events: Seen[] = [];
  const done = { called: false, err: undefined as any };
  const controller = await watch.watch(
    path,
    query,
    (type, obj: any) =>
      events.push({
        type,
        name: obj?.metadata?.name,
        phase: obj?.status?.phase,
        rv: obj?.metadata?.resourceVersion,
        object: obj,
      }),
    (err) => {
      done.called = true;
      done.err = err;
    },
  );
  return { events, done, abort: () => controller.abort() };
}

describe("watch", () => {
  it("streams ADDED, MODIFIED as the kubelet runs the pod, and DELETED", async () => {
    const { fake, kc, core } = await harness();
    const list = await core.listNamespacedPod({ namespace: "default" });
    const w = await watchInto(new Watch(kc), "/api/v1/namespaces/default/pods", {
      resourceVersion: list.metadata?.resourceVersion,
    });
    await core.createNamespacedPod({
      namespace: "default",
      body: nodePod("w1", "setTimeout(() => {}, 200)"),
    });
    await collect(w.events, (e) => e.some((x) => x.phase === "Succeeded"), 10_000, "the pod to succeed");
    await core.deleteNamespacedPod({ name: "w1", namespace: "default" });
    await collect(w.events, (e) => e.some((x) => x.type === "DELETED"), 10_000, "DELETED");
    w.abort();

    expect(w.events[0]).toMatchObject({ type: "ADDED", name: "w1", phase: "Pending" });
    const types = w.events.map((e) => e.type);
    expect(types.slice(1, -1).every((t) => t === "MODIFIED")).toBe(true);
    expect(types.at(-1)).toBe("DELETED");
    const phases = w.events.map((e) => e.phase);
    expect(phases.indexOf("Running")).toBeGreaterThan(0);
    expect(phases.indexOf("Succeeded")).toBeGreaterThan(phases.indexOf("Running"));
    // Scheduling shows up as a MODIFIED with spec.nodeName and PodScheduled=True.
    expect(w.events.some((e) => e.object.spec?.nodeName === "fake-node-1")).toBe(true);
    // Resource versions only grow.
    const rvs = w.events.map((e) => Number(e.rv));
    expect([...rvs].sort((a, b) => a - b)).toEqual(rvs);
    expect(fake.requests({ watch: true })[0].query).toMatchObject({
      watch: "true",
      resourceVersion: list.metadata?.resourceVersion,
    });
  });

  it("without a resourceVersion, starts with ADDED for existing objects", async () => {
    const { kc, core } = await harness();
    for (const name of ["x1", "x2"]) {
      await core.createNamespacedPod({
        namespace: "init",
        body: { metadata: { name }, spec: { nodeName: "parked", containers: [{ name: "c", image: "i" }] } },
      });
    }
    const w = await watchInto(new Watch(kc), "/api/v1/namespaces/init/pods", {});
    await collect(w.events, (e) => e.length >= 2);
    w.abort();
    expect(w.events.map((e) => `${e.type} ${e.name}`)).toEqual(["ADDED x1", "ADDED x2"]);
  });

  it("resumes from a resourceVersion with exactly the events after it", async () => {
    const { fake, kc, core } = await harness();
    const start = (await core.listNamespacedPod({ namespace: "default" })).metadata!.resourceVersion!;
    const first = await watchInto(new Watch(kc), "/api/v1/namespaces/default/pods", {
      resourceVersion: start,
    });
    await core.createNamespacedPod({ namespace: "default", body: nodePod("r1", "") });
    await collect(first.events, (e) => e.some((x) => x.phase === "Succeeded"));
    first.abort();
    // Pick a point in the middle: resuming there must replay the rest, in order, and nothing before.
    const mid = first.events[1].rv!;
    const resumed = await watchInto(new Watch(kc), "/api/v1/namespaces/default/pods", {
      resourceVersion: mid,
    });
    const expected = first.events.filter((e) => Number(e.rv) > Number(mid)).map((e) => `${e.type}@${e.rv}`);
    await collect(resumed.events, (e) => e.length >= expected.length);
    resumed.abort();
    expect(resumed.events.map((e) => `${e.type}@${e.rv}`)).toEqual(expected);
    expect(fake.openWatches()).toBeLessThanOrEqual(1);
  });

  it("a too-old resourceVersion gets HTTP 410 in 'http' mode", async () => {
    const { fake, kc, core } = await harness({ expiredWatch: "http" });
    const rv = (await core.listNamespacedPod({ namespace: "default" })).metadata!.resourceVersion!;
    await core.createNamespacedPod({ namespace: "default", body: nodePod("old", "") });
    fake.expireWatchHistory();
    const w = await watchInto(new Watch(kc), "/api/v1/namespaces/default/pods", { resourceVersion: rv });
    await collect([w.done], (d) => d[0].called, 5000, "the watch to end");
    expect(w.done.err?.statusCode).toBe(410);
    expect(w.events).toEqual([]);
  });

  it("a too-old resourceVersion gets 200 + one ERROR event (410 Expired) in 'event' mode", async () => {
    const { fake, kc, core } = await harness();
    const rv = (await core.listNamespacedPod({ namespace: "default" })).metadata!.resourceVersion!;
    await core.createNamespacedPod({ namespace: "default", body: nodePod("old", "") });
    fake.expireWatchHistory();
    const w = await watchInto(new Watch(kc), "/api/v1/namespaces/default/pods", { resourceVersion: rv });
    await collect([w.done], (d) => d[0].called, 5000, "the watch to end");
    expect(w.done.err).toBeNull();
    expect(w.events).toHaveLength(1);
    expect(w.events[0].type).toBe("ERROR");
    expect(w.events[0].object).toMatchObject({
      kind: "Status",
      status: "Failure",
      reason: "Expired",
      code: 410,
    });
    expect(w.events[0].object.message).toMatch(/^too old resource version: \d+ \(\d+\)$/);
  });

  it("old history is also dropped past historyLimit", async () => {
    const { kc, core } = await harness({ historyLimit: 3, expiredWatch: "http" });
    const rv = (await core.listNamespacedPod({ namespace: "default" })).metadata!.resourceVersion!;
    for (let i = 0; i < 5; i++) {
      await core.createNamespacedPod({
        namespace: "default",
        body: {
          metadata: { name: `h${i}` },
          spec: { nodeName: "parked", containers: [{ name: "c", image: "i" }] },
        },
      });
    }
    const w = await watchInto(new Watch(kc), "/api/v1/namespaces/default/pods", { resourceVersion: rv });
    await collect([w.done], (d) => d[0].called, 5000, "the watch to end");
    expect(w.done.err?.statusCode).toBe(410);
  });

  it("sends BOOKMARKs on idle watches that allow them, newlines otherwise, so client-node never times out", async () => {
    const { kc, core } = await harness({ watchHeartbeatMs: 100 });
    const rv = (await core.listNamespacedPod({ namespace: "default" })).metadata!.resourceVersion!;
    const watch = new Watch(kc);
    // Shrink client-node's 30 s inactivity timeout (a private field) so the test needs well under a second of idleness.
    (watch as unknown as { requestTimeoutMs: number }).requestTimeoutMs = 400;
    const withBookmarks = await watchInto(watch, "/api/v1/namespaces/default/pods", {
      resourceVersion: rv,
      allowWatchBookmarks: true,
    });
    const plain = await watchInto(watch, "/api/v1/namespaces/default/pods", { resourceVersion: rv });
    await new Promise((r) => setTimeout(r, 1500));
    expect(withBookmarks.done.called).toBe(false);
    expect(plain.done.called).toBe(false);
    const bookmarks = withBookmarks.events.filter((e) => e.type === "BOOKMARK");
    expect(bookmarks.length).toBeGreaterThanOrEqual(3);
    expect(bookmarks[0].object).toEqual({ kind: "Pod", apiVersion: "v1", metadata: { resourceVersion: rv } });
    expect(plain.events).toEqual([]);
    withBookmarks.abort();
    plain.abort();
  });

  it("timeoutSeconds ends the stream cleanly; closeWatches() cuts open streams", async () => {
    const { fake, kc } = await harness();
    const timed = await watchInto(new Watch(kc), "/api/v1/namespaces/default/pods", { timeoutSeconds: 1 });
    const open = await watchInto(new Watch(kc), "/api/v1/namespaces/default/pods", {});
    await collect([timed.done], (d) => d[0].called, 5000, "timeoutSeconds to close the watch");
    expect(timed.done.err).toBeNull();
    expect(open.done.called).toBe(false);
    fake.closeWatches();
    await collect([open.done], (d) => d[0].called, 5000, "closeWatches to close the watch");
    expect(fake.openWatches()).toBe(0);
  });

  it("a label-filtered watch sees an object leaving its selection as DELETED", async () => {
    const { fake, kc, core } = await harness();
    await core.createNamespacedPod({
      namespace: "default",
      body: {
        metadata: { name: "lab", labels: { team: "a" } },
        spec: { nodeName: "parked", containers: [{ name: "c", image: "i" }] },
      },
    });
    const w = await watchInto(new Watch(kc), "/api/v1/namespaces/default/pods", { labelSelector: "team=a" });
    await collect(w.events, (e) => e.length >= 1);
    fake.cluster.patch({ group: "", plural: "pods" }, "default", "lab", {
      metadata: { labels: { team: "b" } },
    });
    await collect(w.events, (e) => e.length >= 2);
    w.abort();
    expect(w.events.map((e) => e.type)).toEqual(["ADDED", "DELETED"]);
  });
});

describe("informer", () => {
  for (const mode of ["event", "http"] as const) {
    it(`lists, then watches, and re-lists after a 410 (${mode} form)`, async () => {
      const { fake, kc, core } = await harness({ expiredWatch: mode });
      await core.createNamespacedPod({
        namespace: "inf",
        body: nodePod("before", "setTimeout(() => {}, 100)"),
      });
      const informer = makeInformer<V1Pod>(kc, "/api/v1/namespaces/inf/pods", () =>
        core.listNamespacedPod({ namespace: "inf" }),
      );
      const added: string[] = [];
      const errors: unknown[] = [];
      informer.on("add", (p: KubernetesObject) => added.push(p.metadata!.name!));
      informer.on("error", (err) => errors.push(err));
      await informer.start();
      await collect(added, (a) => a.includes("before"), 5000, "the initial list");

      await core.createNamespacedPod({ namespace: "inf", body: nodePod("live", "") });
      await collect(added, (a) => a.includes("live"), 5000, "a watched ADDED");
      await fake.waitFor(() => informer.get("live", "inf")?.status?.phase === "Succeeded", {
        message: "informer cache to see the pod succeed",
      });

      const lists = () =>
        fake.requests({ method: "GET", path: "/api/v1/namespaces/inf/pods", watch: false }).length;
      expect(lists()).toBe(1);
      // Expire history and cut the watch: the informer re-watches from its old RV, gets 410, re-lists.
      fake.expireWatchHistory();
      fake.closeWatches();
      await core.createNamespacedPod({ namespace: "inf", body: nodePod("late", "") });
      await fake.waitFor(() => lists() >= 2, { timeoutMs: 15_000, message: "the informer never re-listed" });
      await collect(added, (a) => a.includes("late"), 15_000, "the re-list to deliver the pod");
      const watches = fake.requests({ watch: true });
      expect(watches.some((r) => r.status === (mode === "http" ? 410 : 200))).toBe(true);
      expect(errors).toEqual([]);
      // After the re-list it watches again and keeps the cache current.
      await core.deleteNamespacedPod({ name: "before", namespace: "inf" });
      await fake.waitFor(() => !informer.get("before", "inf"), {
        timeoutMs: 15_000,
        message: "informer cache to drop the deleted pod",
      });
      await informer.stop();
    });
  }
});
