import {
  type TaskSpec,
  TernError,
  validateTaskSpec,
  validateWorkflowSpec,
  type WorkflowSpec,
} from "@tern/core";
import { describe, expect, it } from "vitest";
import { diffSpecs, specDigest } from "../src/store/index.js";
import { BACKENDS, FakeClock, useStores } from "./helpers/store.js";

function taskSpec(version = "v1", patch: (t: TaskSpec) => void = () => {}): TaskSpec {
  const t: TaskSpec = {
    kind: "task",
    specVersion: 1,
    id: { project: "flows", domain: "development", name: "say_hello", version },
    type: "node",
    interface: {
      inputs: { name: { schema: { type: "string" }, optional: false } },
      output: { type: "string" },
    },
    metadata: {
      retries: { user: 3, system: 3, backoff: { baseMs: 1000, maxMs: 300_000, factor: 2, jitter: 0.2 } },
      interruptible: false,
      secrets: [],
      env: {},
    },
    code: { module: "flows.ts", export: "sayHello", hash: "abc" },
  };
  patch(t);
  return validateTaskSpec(t);
}

function workflowSpec(version: string): WorkflowSpec {
  return validateWorkflowSpec({
    kind: "workflow",
    specVersion: 1,
    id: { project: "flows", domain: "development", name: "hello", version },
    interface: { inputs: {}, output: { type: "string" } },
    nodes: [
      {
        id: "n0",
        kind: "task",
        task: "say_hello@v1",
        inputs: { name: { literal: "world" } },
        upstream: [],
      },
    ],
    output: { ref: { node: "n0", path: [] } },
    failurePolicy: "fail-fast",
  });
}

function reverseKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(reverseKeys);
  if (v && typeof v === "object") {
    return Object.fromEntries(
      Object.keys(v)
        .reverse()
        .map((k) => [k, reverseKeys((v as Record<string, unknown>)[k])]),
    );
  }
  return v;
}

describe("diffSpecs", () => {
  it("names the changed paths, stopping at depth 4", () => {
    const a = taskSpec();
    const b = taskSpec("v1", (t) => {
      t.interface.inputs.name.schema = { type: "number" };
      t.metadata.retries.user = 5;
    });
    expect(diffSpecs(a, b).paths).toEqual(["interface.inputs.name.schema", "metadata.retries.user"]);
  });

  it("reports added keys, array elements and caps the list", () => {
    expect(diffSpecs({ a: [1, 2] }, { a: [1, 3], b: 1 }).paths).toEqual(["a[1]", "b"]);
    expect(diffSpecs({ a: [1] }, { a: [1, 2] }).paths).toEqual(["a"]);
    const many = Object.fromEntries(Array.from({ length: 15 }, (_, i) => [`k${i}`, i]));
    const d = diffSpecs({}, many, { maxPaths: 10 });
    expect(d.paths).toHaveLength(10);
    expect(d.more).toBe(5);
  });

  it("sees no difference in key order", () => {
    expect(diffSpecs({ a: 1, b: { c: 2, d: 3 } }, { b: { d: 3, c: 2 }, a: 1 }).paths).toEqual([]);
    expect(specDigest({ a: 1, b: 2 })).toBe(specDigest({ b: 2, a: 1 }));
  });
});

describe.each(BACKENDS)("store on %s", (backend) => {
  const stores = useStores(backend);

  describe("registry", () => {
    it("registers a version once; the same content again is a no-op", async () => {
      const store = await stores.open();
      const first = await store.registry.register("task", taskSpec());
      expect(first.status).toBe("created");
      expect(first.record.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
      // Same content with every object's keys in reverse order: same digest, nothing written.
      const again = await store.registry.register("task", reverseKeys(taskSpec()) as TaskSpec);
      expect(again.status).toBe("exists");
      expect(again.record.createdAt).toBe(first.record.createdAt);
      expect(await store.registry.list("task", { project: "flows", domain: "development" })).toHaveLength(1);
    });

    it("refuses the same id with other content, naming what differs", async () => {
      const store = await stores.open();
      await store.registry.register("task", taskSpec());
      const changed = taskSpec("v1", (t) => {
        t.interface.inputs.name.schema = { type: "integer" };
        t.metadata.retries.user = 0;
      });
      const err = await store.registry.register("task", changed).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TernError);
      const te = err as TernError;
      expect(te.code).toBe("TERN_E_VERSION_CONFLICT");
      expect(te.message).toContain("flows/development/say_hello@v1");
      expect(te.message).toContain("interface.inputs.name.schema, metadata.retries.user");
      expect(te.details.changed).toEqual(["interface.inputs.name.schema", "metadata.retries.user"]);
      expect(te.hint).toMatch(/new version/);
      // The stored version is untouched.
      const stored = await store.registry.get("task", taskSpec().id);
      expect(stored?.spec.metadata.retries.user).toBe(3);
    });

    it("serializes concurrent identical registrations: one creates, the rest see it", async () => {
      const url = await stores.freshUrl();
      const replicas = [await stores.open({ url }), await stores.open({ url })];
      const results = await Promise.all(
        Array.from({ length: 6 }, (_, i) =>
          replicas[i % 2].registry.register("workflow", workflowSpec("w1")),
        ),
      );
      expect(results.filter((r) => r.status === "created")).toHaveLength(1);
      expect(results.filter((r) => r.status === "exists")).toHaveLength(5);
    });

    it("gets by version, lists newest first and finds the latest", async () => {
      const clock = new FakeClock();
      const store = await stores.open({ now: clock.now });
      for (const v of ["v1", "v2", "v3"]) {
        await store.registry.register("task", taskSpec(v));
        clock.advance(1000);
      }
      await store.registry.register("task", {
        ...taskSpec("v1"),
        id: { ...taskSpec("v1").id, name: "other" },
      });
      const key = { project: "flows", domain: "development", name: "say_hello" };
      expect((await store.registry.get("task", { ...key, version: "v2" }))?.id.version).toBe("v2");
      expect(await store.registry.get("task", { ...key, version: "v9" })).toBeUndefined();
      expect((await store.registry.latest("task", key))?.id.version).toBe("v3");
      expect((await store.registry.list("task", key)).map((r) => r.id.version)).toEqual(["v3", "v2", "v1"]);
      expect(await store.registry.list("task", { project: "flows", domain: "development" })).toHaveLength(4);
      expect(await store.registry.list("task", { project: "flows", domain: "production" })).toEqual([]);
      // Kinds live in separate tables.
      expect(await store.registry.latest("workflow", key)).toBeUndefined();
    });

    it("keeps one active launch plan version per name", async () => {
      const store = await stores.open();
      const lp = (version: string, cron?: string) => ({
        id: { project: "flows", domain: "development", name: "nightly", version },
        workflow: { name: "hello", version: "w1" },
        ...(cron ? { schedule: { cron } } : {}),
      });
      await store.registry.register("launch_plan", lp("1", "0 0 * * *"));
      await store.registry.register("launch_plan", lp("2", "0 1 * * *"));
      await store.registry.register("launch_plan", lp("3"));
      const key = { project: "flows", domain: "development", name: "nightly" };
      expect(await store.registry.activeLaunchPlan(key)).toBeUndefined();

      await store.registry.activate({ ...key, version: "1" });
      expect((await store.registry.activeLaunchPlan(key))?.id.version).toBe("1");
      await store.registry.activate({ ...key, version: "2" });
      const active = await store.registry.activeLaunchPlan(key);
      expect(active?.id.version).toBe("2");
      expect(active?.active).toBe(true);
      expect(active?.schedule).toEqual({ cron: "0 1 * * *" });
      expect((await store.registry.get("launch_plan", { ...key, version: "1" }))?.active).toBe(false);
      expect((await store.registry.scheduledLaunchPlans()).map((r) => r.id.version)).toEqual(["2"]);

      // Racing activations of different versions still leave exactly one active.
      await Promise.all(
        ["1", "2", "3", "1", "3"].map((version) => store.registry.activate({ ...key, version })),
      );
      const all = await store.registry.list("launch_plan", key);
      expect(all.filter((r) => r.active)).toHaveLength(1);

      const missing = await store.registry.activate({ ...key, version: "9" }).catch((e: unknown) => e);
      expect((missing as TernError).code).toBe("TERN_E_NOT_FOUND");
      expect(await store.registry.deactivate(key)).toBe(true);
      expect(await store.registry.deactivate(key)).toBe(false);
      expect(await store.registry.activeLaunchPlan(key)).toBeUndefined();
    });

    it("refuses a spec without a complete id", async () => {
      const store = await stores.open();
      const bad = { ...taskSpec(), id: { project: "flows", domain: "development", name: "x", version: "" } };
      await expect(store.registry.register("task", bad)).rejects.toMatchObject({
        code: "TERN_E_SPEC_INVALID",
      });
    });
  });

  describe("projects", () => {
    it("creates, ensures and lists projects; lists domains", async () => {
      const store = await stores.open();
      const p = await store.projects.create("flows", "the team's flows");
      expect(p).toMatchObject({ name: "flows", description: "the team's flows" });
      await expect(store.projects.create("flows")).rejects.toMatchObject({ code: "TERN_E_CONFLICT" });
      expect((await store.projects.ensure("flows")).created).toBe(false);
      const ensured = await store.projects.ensure("ads");
      expect(ensured.created).toBe(true);
      expect(ensured.project.description).toBeUndefined();
      expect((await store.projects.list()).map((x) => x.name)).toEqual(["ads", "flows"]);
      expect(await store.projects.get("nope")).toBeUndefined();
      await store.projects.addDomain("qa");
      await store.projects.addDomain("qa");
      expect(await store.projects.domains()).toEqual(["development", "staging", "production", "qa"]);
    });
  });
});
