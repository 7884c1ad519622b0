/**
 * Generic custom resources through client-node's CustomObjectsApi, and the controller hook that
 * later fake operators (Spark, Ray, MPI) build on.
 */
import { PatchStrategy, setHeaderOptions, Watch } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import type { ControllerContext, CustomResourceController, KubeObject } from "../src/index.js";
import { collect, harness, rejection, statusOf } from "./helpers.js";

const WIDGETS = { group: "example.com", version: "v1", plural: "widgets" };

function widget(name: string, spec: Record<string, unknown> = {}, labels?: Record<string, string>) {
  return {
    apiVersion: "example.com/v1",
    kind: "Widget",
    metadata: { name, ...(labels ? { labels } : {}) },
    spec,
  };
}

describe("custom resources", () => {
  it("create, get, list with labelSelector, delete — for any group and plural", async () => {
    const { fake, custom } = await harness();
    const created = await custom.createNamespacedCustomObject({
      ...WIDGETS,
      namespace: "default",
      body: widget("w1", { size: 3 }, { tier: "gold" }),
    });
    expect(created.metadata).toMatchObject({ name: "w1", namespace: "default", generation: 1 });
    expect(created.metadata.uid).toBeTruthy();
    await custom.createNamespacedCustomObject({
      ...WIDGETS,
      namespace: "default",
      body: widget("w2", {}, { tier: "silver" }),
    });
    const got = await custom.getNamespacedCustomObject({ ...WIDGETS, namespace: "default", name: "w1" });
    expect(got.spec).toEqual({ size: 3 });
    const list = await custom.listNamespacedCustomObject({
      ...WIDGETS,
      namespace: "default",
      labelSelector: "tier=gold",
    });
    expect(list.kind).toBe("WidgetList");
    expect(list.items.map((i: KubeObject) => i.metadata.name)).toEqual(["w1"]);
    expect(Number(list.metadata.resourceVersion)).toBeGreaterThan(0);

    const deleted = await custom.deleteNamespacedCustomObject({
      ...WIDGETS,
      namespace: "default",
      name: "w1",
      propagationPolicy: "Background",
    });
    expect(deleted).toMatchObject({
      kind: "Status",
      status: "Success",
      details: { name: "w1", group: "example.com", kind: "widgets" },
    });
    const err = await rejection(
      custom.getNamespacedCustomObject({ ...WIDGETS, namespace: "default", name: "w1" }),
    );
    expect(err.code).toBe(404);
    expect(statusOf(err)).toMatchObject({
      reason: "NotFound",
      message: 'widgets.example.com "w1" not found',
      details: { name: "w1", group: "example.com", kind: "widgets" },
    });
    expect(fake.requests({ method: "DELETE" })[0].query.propagationPolicy).toBe("Background");
  });

  it("Status errors: 409 AlreadyExists and 422 Invalid name", async () => {
    const { custom } = await harness();
    await custom.createNamespacedCustomObject({ ...WIDGETS, namespace: "default", body: widget("dup") });
    const dup = await rejection(
      custom.createNamespacedCustomObject({ ...WIDGETS, namespace: "default", body: widget("dup") }),
    );
    expect(dup.code).toBe(409);
    expect(statusOf(dup)).toMatchObject({
      reason: "AlreadyExists",
      message: 'widgets.example.com "dup" already exists',
    });
    const bad = await rejection(
      custom.createNamespacedCustomObject({ ...WIDGETS, namespace: "default", body: widget("No Spaces") }),
    );
    expect(bad.code).toBe(422);
    expect(statusOf(bad)).toMatchObject({
      reason: "Invalid",
      details: { kind: "Widget", group: "example.com" },
    });
  });

  it("status subresource: status is dropped on create and changed only through /status", async () => {
    const { custom } = await harness();
    await custom.createNamespacedCustomObject({
      ...WIDGETS,
      namespace: "default",
      body: { ...widget("s"), status: { phase: "Forged" } },
    });
    expect(
      (await custom.getNamespacedCustomObject({ ...WIDGETS, namespace: "default", name: "s" })).status,
    ).toBeUndefined();
    await custom.patchNamespacedCustomObjectStatus(
      { ...WIDGETS, namespace: "default", name: "s", body: { status: { phase: "Ready" } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    const st = await custom.getNamespacedCustomObjectStatus({ ...WIDGETS, namespace: "default", name: "s" });
    expect(st.status).toEqual({ phase: "Ready" });
    // A spec change through the main resource bumps generation and keeps status.
    const patched = await custom.patchNamespacedCustomObject(
      {
        ...WIDGETS,
        namespace: "default",
        name: "s",
        body: { spec: { size: 9 }, status: { phase: "Ignored" } },
      },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    expect(patched.metadata.generation).toBe(2);
    expect(patched.status).toEqual({ phase: "Ready" });
  });

  it("watch streams custom resource events; finalizers hold deletion until removed", async () => {
    const { kc, custom } = await harness();
    const events: { type: string; obj: any }[] = [];
    const watch = await new Watch(kc).watch(
      "/apis/example.com/v1/namespaces/default/widgets",
      {},
      (type, obj) => events.push({ type, obj }),
      () => {},
    );
    const body = widget("held");
    (body.metadata as any).finalizers = ["example.com/cleanup"];
    await custom.createNamespacedCustomObject({ ...WIDGETS, namespace: "default", body });
    const pending = await custom.deleteNamespacedCustomObject({
      ...WIDGETS,
      namespace: "default",
      name: "held",
    });
    expect(pending.metadata.deletionTimestamp).toBeTruthy();
    expect(
      (await custom.getNamespacedCustomObject({ ...WIDGETS, namespace: "default", name: "held" })).metadata
        .deletionTimestamp,
    ).toBeTruthy();
    await custom.patchNamespacedCustomObject(
      { ...WIDGETS, namespace: "default", name: "held", body: { metadata: { finalizers: null } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    await collect(events, (e) => e.some((x) => x.type === "DELETED"));
    watch.abort();
    expect(events.map((e) => e.type)).toEqual(["ADDED", "MODIFIED", "MODIFIED", "DELETED"]);
  });

  it("a registered controller reacts to creation, runs a pod it owns, moves status, and the pod is garbage-collected", async () => {
    const { fake, kc, custom } = await harness();
    // A toy operator, shaped like the Spark/Ray/MPI fakes to come: one driver pod per object.
    const seen: string[] = [];
    const controller: CustomResourceController = {
      async created(obj: KubeObject, ctx: ControllerContext) {
        seen.push(`created ${obj.metadata.name}`);
        ctx.patchStatus({ state: "SUBMITTED" });
        ctx.cluster.create({ group: "", plural: "pods" }, obj.metadata.namespace, {
          metadata: {
            name: `${obj.metadata.name}-driver`,
            labels: { widget: obj.metadata.name! },
            ownerReferences: [
              {
                apiVersion: obj.apiVersion!,
                kind: obj.kind!,
                name: obj.metadata.name!,
                uid: obj.metadata.uid!,
                controller: true,
              },
            ],
          },
          spec: {
            restartPolicy: "Never",
            containers: [
              {
                name: "driver",
                image: "widget-driver:1",
                command: [process.execPath, "-e", String(obj.spec.script)],
              },
            ],
          },
        });
        // Mirror the driver pod's phase into the widget's status until it finishes.
        const stop = ctx.cluster.on({ group: "", plural: "pods" }, (type, pod) => {
          if (pod.metadata.labels?.widget !== obj.metadata.name || type === "DELETED") return;
          const phase = pod.status?.phase;
          const state =
            phase === "Running"
              ? "RUNNING"
              : phase === "Succeeded"
                ? "COMPLETED"
                : phase === "Failed"
                  ? "FAILED"
                  : undefined;
          if (state && ctx.current()?.status?.state !== state)
            ctx.patchStatus({ state, driverPod: pod.metadata.name });
          if (phase === "Succeeded" || phase === "Failed") stop();
        });
        ctx.signal.addEventListener("abort", stop);
      },
      deleted(obj) {
        seen.push(`deleted ${obj.metadata.name}`);
      },
    };
    fake.registerController("example.com", "widgets", controller);

    const states: string[] = [];
    const watch = await new Watch(kc).watch(
      "/apis/example.com/v1/namespaces/default/widgets",
      {},
      (_t, obj: any) => {
        if (obj.status?.state && states.at(-1) !== obj.status.state) states.push(obj.status.state);
      },
      () => {},
    );
    await custom.createNamespacedCustomObject({
      ...WIDGETS,
      namespace: "default",
      body: widget("job1", { script: "console.log('widget work')" }),
    });
    await collect(states, (s) => s.includes("COMPLETED"), 10_000, "the widget to complete");
    expect(states).toEqual(["SUBMITTED", "RUNNING", "COMPLETED"]);
    expect(fake.pod("default", "job1-driver")?.status?.phase).toBe("Succeeded");

    await custom.deleteNamespacedCustomObject({ ...WIDGETS, namespace: "default", name: "job1" });
    await fake.waitFor(() => !fake.pod("default", "job1-driver"), {
      message: "owned pod was not garbage-collected",
    });
    await fake.waitFor(() => seen.includes("deleted job1"), { message: "deleted hook never ran" });
    watch.abort();
    expect(seen).toEqual(["created job1", "deleted job1"]);
  });

  it("propagationPolicy=Orphan keeps dependents and strips their ownerReference", async () => {
    const { fake, custom } = await harness();
    const owner = await custom.createNamespacedCustomObject({
      ...WIDGETS,
      namespace: "default",
      body: widget("parent"),
    });
    fake.cluster.create({ group: "", plural: "pods" }, "default", {
      metadata: {
        name: "child",
        ownerReferences: [
          { apiVersion: "example.com/v1", kind: "Widget", name: "parent", uid: owner.metadata.uid },
        ],
      },
      spec: { nodeName: "parked", containers: [{ name: "c", image: "i" }] },
    });
    await custom.deleteNamespacedCustomObject({
      ...WIDGETS,
      namespace: "default",
      name: "parent",
      propagationPolicy: "Orphan",
    });
    expect(fake.pod("default", "child")?.metadata.ownerReferences).toEqual([]);
  });
});
