import type { TernError } from "@tern/core";
import { describe, expect, it } from "vitest";
import type { EventInput, NewExecution, Store } from "../src/store/index.js";
import { BACKENDS, FakeClock, useStores } from "./helpers/store.js";

function execution(id: string, over: Partial<NewExecution> = {}): NewExecution {
  return {
    id,
    project: "flows",
    domain: "development",
    workflow: { name: "hello", version: "w1" },
    inputs: { name: "Ada" },
    spec: { specVersion: 1, id, note: "spec" },
    ...over,
  };
}

function events(from: number, to: number, node = "n0"): EventInput[] {
  const out: EventInput[] = [];
  for (let seq = from; seq <= to; seq++) {
    out.push({
      seq,
      at: 1000 + seq,
      node,
      phase: seq === to ? "succeeded" : "running",
      attempt: 1,
      message: `e${seq}`,
    });
  }
  return out;
}

async function allPages(
  store: Store,
  filter: Parameters<Store["executions"]["list"]>[0],
): Promise<string[][]> {
  const pages: string[][] = [];
  let cursor: string | undefined;
  do {
    const page = await store.executions.list({ ...filter, cursor });
    pages.push(page.items.map((e) => e.id));
    cursor = page.nextCursor;
  } while (cursor);
  return pages;
}

describe.each(BACKENDS)("store on %s", (backend) => {
  const stores = useStores(backend);

  describe("execution specs", () => {
    it("stores a spec document once for every execution that runs it, and reads each back whole", async () => {
      const url = await stores.freshUrl();
      const store = await stores.open({ url });
      const spec = { compiled: { workflow: "big", nodes: Array.from({ length: 50 }, (_, i) => `n${i}`) } };
      for (const id of ["s1", "s2", "s3"]) await store.executions.create(execution(id, { spec }));
      await store.executions.create(execution("s4", { spec: { other: true } }));
      const docs = await store.ctx.db.selectFrom("execution_specs").select("digest").execute();
      expect(docs).toHaveLength(2);
      const row = await store.ctx.db
        .selectFrom("executions")
        .select(["spec", "spec_digest"])
        .where("id", "=", "s2")
        .executeTakeFirstOrThrow();
      expect(row.spec).toBe("null");
      expect(row.spec_digest).toMatch(/^sha256:[0-9a-f]{64}$/);
      // A second store over the same database has nothing cached: it reads the documents.
      const fresh = await stores.open({ url });
      expect((await fresh.executions.get("s2"))?.spec).toEqual(spec);
      expect((await fresh.executions.get("s4"))?.spec).toEqual({ other: true });
      expect((await fresh.executions.get("s2", { spec: false }))?.spec).toBeNull();
      const page = await fresh.executions.list({ project: "flows" });
      expect(page.items.map((r) => r.spec)).toEqual([{ other: true }, spec, spec, spec]);
    });

    it("reads the inline spec of rows written before specs were stored apart", async () => {
      const store = await stores.open();
      await store.executions.create(execution("old1"));
      // As a row of the 0001 schema: the document inline, no digest.
      await store.ctx.db
        .updateTable("executions")
        .set({ spec: JSON.stringify({ inline: 1 }), spec_digest: null })
        .where("id", "=", "old1")
        .execute();
      expect((await store.executions.get("old1"))?.spec).toEqual({ inline: 1 });
      expect((await store.executions.list({ project: "flows" })).items[0].spec).toEqual({ inline: 1 });
    });
  });

  describe("group writes", () => {
    it("creates executions, appends their events and records an end in one transaction, each item with its own outcome", async () => {
      const store = await stores.open();
      await store.executions.create(
        execution("g0", { phase: "running", owner: "me", leaseExpiresAt: Date.now() + 60_000 }),
      );
      await store.events.append("g0", events(1, 1), { owner: "me" });
      const out = await store.events.writeGroup({
        creates: [
          execution("g1"),
          execution("g0"),
          execution("g2", { launchPlan: { name: "lp", version: "1" } }),
        ],
        appends: [
          {
            execution: "g0",
            owner: "me",
            events: events(2, 3),
            finish: { phase: "succeeded", outputs: 7, endedAt: 5 },
          },
          { execution: "g1", owner: "me", events: events(1, 1) },
        ],
      });
      expect(out.created.map((r) => (r instanceof Error ? (r as TernError).code : r.id))).toEqual([
        "g1",
        "TERN_E_CONFLICT",
        "g2",
      ]);
      // g1 was created unowned in this very write: "me" does not hold it.
      expect(out.appended.map((e) => e?.code)).toEqual([undefined, "TERN_E_CONFLICT"]);
      const g0 = await store.executions.get("g0");
      expect(g0).toMatchObject({ phase: "succeeded", outputs: 7, endedAt: 5 });
      expect(g0?.owner).toBeUndefined();
      expect(await store.events.lastSeq("g0")).toBe(3);
      expect(await store.events.lastSeq("g1")).toBe(0);
      expect((await store.executions.get("g1"))?.phase).toBe("queued");
      const owed = await store.ctx.db.selectFrom("notification_outbox").select("execution").execute();
      expect(owed.map((o) => o.execution)).toEqual(["g2"]);
    });

    it("stores a batch of any size whole: 300 events and their 300 node rows (statements of 256, 32, 8 and 4 rows)", async () => {
      const store = await stores.open();
      await store.executions.create(
        execution("big", { phase: "running", owner: "me", leaseExpiresAt: Date.now() + 60_000 }),
      );
      const batch = Array.from({ length: 300 }, (_, i) => ({
        seq: i + 1,
        at: i,
        node: `n${i}`,
        phase: "queued",
      }));
      const nodes = batch.map((e) => ({ execution: "big", nodeId: e.node, phase: "queued" }));
      const out = await store.events.writeGroup({
        appends: [{ execution: "big", owner: "me", events: batch, nodes }],
      });
      expect(out.appended).toEqual([undefined]);
      expect((await store.events.list("big")).map((e) => e.seq)).toEqual(batch.map((e) => e.seq));
      expect(await store.nodes.list("big")).toHaveLength(300);
    });

    it("records no end when the batch that carries it is refused", async () => {
      const store = await stores.open();
      await store.executions.create(
        execution("h0", { phase: "running", owner: "other", leaseExpiresAt: Date.now() + 60_000 }),
      );
      const out = await store.events.writeGroup({
        appends: [{ execution: "h0", owner: "me", events: [], finish: { phase: "failed", endedAt: 9 } }],
      });
      expect(out.appended[0]).toMatchObject({ code: "TERN_E_CONFLICT", details: { reason: "lease" } });
      expect(await store.executions.get("h0")).toMatchObject({ phase: "running", owner: "other" });
    });
  });

  describe("executions", () => {
    it("creates, reads back every field and refuses a duplicate id", async () => {
      const clock = new FakeClock();
      const store = await stores.open({ now: clock.now });
      const created = await store.executions.create(
        execution("x1", {
          launchPlan: { name: "nightly", version: "3" },
          parent: { execution: "x0", node: "n4" },
          recoverFrom: "x0",
          inputs: { name: "Ada", list: [1, 2, { deep: null }] },
        }),
      );
      expect(created.phase).toBe("queued");
      const got = await store.executions.get("x1");
      expect(got).toEqual(created);
      expect(got).toMatchObject({
        workflow: { name: "hello", version: "w1" },
        launchPlan: { name: "nightly", version: "3" },
        parent: { execution: "x0", node: "n4" },
        recoverFrom: "x0",
        inputs: { name: "Ada", list: [1, 2, { deep: null }] },
        createdAt: clock.t,
      });
      expect(got?.outputs).toBeUndefined();
      expect(got?.owner).toBeUndefined();
      const dup = await store.executions.create(execution("x1")).catch((e: unknown) => e);
      expect((dup as TernError).code).toBe("TERN_E_CONFLICT");
      expect(await store.executions.get("nope")).toBeUndefined();
    });

    it("updates phase, outputs and error; null clears; an owner guard fences writes", async () => {
      const clock = new FakeClock();
      const store = await stores.open({ now: clock.now });
      await store.executions.create(execution("x1"));
      clock.advance(5);
      expect(await store.executions.update("x1", { phase: "running", startedAt: clock.t })).toBe(true);
      expect(
        await store.executions.update("x1", {
          phase: "failed",
          error: { code: "E", kind: "user", message: "m" },
        }),
      ).toBe(true);
      let x = await store.executions.get("x1");
      expect(x).toMatchObject({ phase: "failed", startedAt: clock.t, error: { code: "E", message: "m" } });
      await store.executions.update("x1", {
        phase: "succeeded",
        error: null,
        outputs: { greeting: "hi" },
        endedAt: clock.t + 1,
      });
      x = await store.executions.get("x1");
      expect(x?.error).toBeUndefined();
      expect(x?.outputs).toEqual({ greeting: "hi" });
      expect(x?.endedAt).toBe(clock.t + 1);
      expect(x?.updatedAt).toBe(clock.t);
      // Owner-fenced write: nobody owns x1, so a replica's write is refused.
      expect(await store.executions.update("x1", { phase: "aborted" }, { owner: "replica-a" })).toBe(false);
      expect((await store.executions.get("x1"))?.phase).toBe("succeeded");
      expect(await store.executions.update("missing", { phase: "running" })).toBe(false);
    });

    it("lists newest first with filters and stable cursor pagination", async () => {
      const clock = new FakeClock();
      const store = await stores.open({ now: clock.now });
      const phases = ["running", "succeeded", "failed"];
      for (let i = 0; i < 25; i++) {
        // Pairs share a timestamp so the id tie-break is exercised.
        const createdAt = clock.t + Math.floor(i / 2) * 1000;
        await store.executions.create(
          execution(`x${String(i).padStart(2, "0")}`, {
            createdAt,
            phase: phases[i % 3],
            domain: i % 5 === 0 ? "production" : "development",
            workflow: { name: i % 2 ? "odd" : "even", version: "1" },
          }),
        );
      }
      const pages = await allPages(store, { limit: 7 });
      expect(pages.map((p) => p.length)).toEqual([7, 7, 7, 4]);
      const flat = pages.flat();
      expect(new Set(flat).size).toBe(25);
      const expected = Array.from({ length: 25 }, (_, i) => `x${String(24 - i).padStart(2, "0")}`);
      expect(flat).toEqual(expected);

      const dev = (await store.executions.list({ project: "flows", domain: "development", limit: 100 }))
        .items;
      expect(dev).toHaveLength(20);
      expect(dev.every((e) => e.domain === "development")).toBe(true);

      const failed = (await store.executions.list({ phase: "failed", limit: 100 })).items.map((e) => e.id);
      expect(failed).toEqual(expected.filter((id) => Number(id.slice(1)) % 3 === 2));
      const doneOrFailed = (await store.executions.list({ phase: ["succeeded", "failed"], limit: 100 }))
        .items;
      expect(doneOrFailed).toHaveLength(16);
      expect((await store.executions.list({ phase: [] })).items).toEqual([]);

      const odd = (await store.executions.list({ workflowName: "odd", limit: 100 })).items;
      expect(odd).toHaveLength(12);

      // createdAfter is inclusive, createdBefore exclusive: i = 4..9 (timestamps 2..4).
      const window = await allPages(store, {
        createdAfter: clock.t + 2000,
        createdBefore: clock.t + 5000,
        limit: 4,
      });
      expect(window.flat()).toEqual(["x09", "x08", "x07", "x06", "x05", "x04"]);
      expect(window.map((p) => p.length)).toEqual([4, 2]);

      await expect(store.executions.list({ cursor: "garbage" })).rejects.toMatchObject({
        code: "TERN_E_USAGE",
      });
    });

    it("lists child executions of a parent", async () => {
      const store = await stores.open();
      await store.executions.create(execution("p"));
      await store.executions.create(execution("c1", { parent: { execution: "p", node: "n1" } }));
      await store.executions.create(execution("c2", { parent: { execution: "p", node: "n2" } }));
      const kids = (await store.executions.list({ parentExecution: "p" })).items.map((e) => e.id).sort();
      expect(kids).toEqual(["c1", "c2"]);
    });
  });

  describe("node executions", () => {
    it("upserts: inserts with defaults, updates only given fields, null clears", async () => {
      const clock = new FakeClock();
      const store = await stores.open({ now: clock.now });
      await store.executions.create(execution("x1"));
      const first = await store.nodes.upsert({ execution: "x1", nodeId: "n0", phase: "queued" });
      expect(first).toEqual({
        execution: "x1",
        nodeId: "n0",
        phase: "queued",
        attempts: 0,
        userFailures: 0,
        systemFailures: 0,
        cached: false,
        recovered: false,
        updatedAt: clock.t,
      });
      clock.advance(10);
      await store.nodes.upsert({
        execution: "x1",
        nodeId: "n0",
        phase: "running",
        attempts: 1,
        plugin: "k8s-pod",
        pluginState: { pod: "x1-n0-1", uid: "abc" },
        startedAt: clock.t,
      });
      await store.nodes.upsert({
        execution: "x1",
        nodeId: "n0",
        phase: "retrying",
        userFailures: 1,
        error: { code: "TERN_E_TASK_FAILED", kind: "user", message: "boom" },
      });
      let n = await store.nodes.get("x1", "n0");
      expect(n).toMatchObject({
        phase: "retrying",
        attempts: 1,
        userFailures: 1,
        plugin: "k8s-pod",
        pluginState: { pod: "x1-n0-1", uid: "abc" },
        error: { message: "boom" },
        startedAt: clock.t,
        updatedAt: clock.t,
      });
      await store.nodes.upsert({
        execution: "x1",
        nodeId: "n0",
        phase: "succeeded",
        attempts: 2,
        error: null,
        pluginState: null,
        cached: true,
        outputs: { o: [1, 2] },
        endedAt: clock.t + 5,
      });
      n = await store.nodes.get("x1", "n0");
      expect(n?.error).toBeUndefined();
      expect(n?.pluginState).toBeUndefined();
      expect(n).toMatchObject({
        phase: "succeeded",
        attempts: 2,
        cached: true,
        recovered: false,
        outputs: { o: [1, 2] },
      });

      await store.nodes.upsert({ execution: "x1", nodeId: "a-first", phase: "skipped", recovered: true });
      expect((await store.nodes.list("x1")).map((x) => [x.nodeId, x.phase, x.recovered])).toEqual([
        ["a-first", "skipped", true],
        ["n0", "succeeded", false],
      ]);
      await expect(
        store.nodes.upsert({ execution: "ghost", nodeId: "n0", phase: "queued" }),
      ).rejects.toMatchObject({
        code: "TERN_E_NOT_FOUND",
      });
    });
  });

  describe("events", () => {
    it("appends in order and lists after a seq", async () => {
      const store = await stores.open();
      await store.executions.create(execution("x1"));
      await store.appendEvents("x1", events(1, 3));
      await store.appendEvents("x1", events(4, 1200)); // more rows than one INSERT carries
      expect(await store.events.lastSeq("x1")).toBe(1200);
      const all = await store.listEvents("x1", 0, 5000);
      expect(all.map((e) => e.seq)).toEqual(Array.from({ length: 1200 }, (_, i) => i + 1));
      expect(all[0]).toEqual({
        seq: 1,
        at: 1001,
        execution: "x1",
        node: "n0",
        phase: "running",
        attempt: 1,
        message: "e1",
      });
      const tail = await store.listEvents("x1", 1195);
      expect(tail.map((e) => e.seq)).toEqual([1196, 1197, 1198, 1199, 1200]);
      expect((await store.listEvents("x1", 10, 3)).map((e) => e.seq)).toEqual([11, 12, 13]);
      await store.appendEvents("x1", []);
      expect(await store.events.lastSeq("nobody")).toBe(0);
    });

    it("refuses a duplicate seq, a gap or an unordered batch, writing none of it", async () => {
      const store = await stores.open();
      await store.executions.create(execution("x1"));
      await store.appendEvents("x1", events(1, 5));
      const dup = await store.appendEvents("x1", events(5, 8)).catch((e: unknown) => e);
      expect((dup as TernError).code).toBe("TERN_E_CONFLICT");
      expect((dup as TernError).message).toContain("seq 5 is already stored");
      const gap = await store.appendEvents("x1", events(7, 8)).catch((e: unknown) => e);
      expect((gap as TernError).message).toContain("gap");
      const unordered = [...events(6, 6), ...events(8, 8)];
      await expect(store.appendEvents("x1", unordered)).rejects.toMatchObject({ code: "TERN_E_CONFLICT" });
      expect(await store.events.lastSeq("x1")).toBe(5);
      await expect(store.appendEvents("ghost", events(1, 1))).rejects.toMatchObject({
        code: "TERN_E_NOT_FOUND",
      });
    });

    it("lets exactly one of two racing writers append the same seqs", async () => {
      const url = await stores.freshUrl();
      const a = await stores.open({ url });
      const b = await stores.open({ url });
      await a.executions.create(execution("x1"));
      await a.appendEvents("x1", events(1, 2));
      const results = await Promise.allSettled([
        a.appendEvents("x1", events(3, 6, "a")),
        b.appendEvents("x1", events(3, 6, "b")),
      ]);
      expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
      const rejected = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
      expect((rejected.reason as TernError).code).toBe("TERN_E_CONFLICT");
      const stored = await b.listEvents("x1");
      expect(stored.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6]);
      // All four new events come from one writer: batches never interleave.
      expect(new Set(stored.slice(2).map((e) => e.node)).size).toBe(1);
    });
  });

  describe("signals", () => {
    it("are set once, then read and listed", async () => {
      const clock = new FakeClock();
      const store = await stores.open({ now: clock.now });
      await store.executions.create(execution("x1"));
      const s = await store.signals.set("x1", "approve", "approved", true, { setBy: "alice" });
      expect(s).toEqual({
        execution: "x1",
        nodeId: "approve",
        name: "approved",
        value: true,
        setBy: "alice",
        createdAt: clock.t,
      });
      const again = await store.signals.set("x1", "approve", "approved", false).catch((e: unknown) => e);
      expect((again as TernError).code).toBe("TERN_E_CONFLICT");
      expect((again as TernError).details).toMatchObject({ setBy: "alice" });
      expect((await store.signals.get("x1", "approve", "approved"))?.value).toBe(true);
      clock.advance(1);
      await store.signals.set("x1", "input", "threshold", { value: 0.5 });
      expect((await store.signals.list("x1")).map((x) => [x.nodeId, x.value])).toEqual([
        ["approve", true],
        ["input", { value: 0.5 }],
      ]);
      expect(await store.signals.get("x1", "approve", "other")).toBeUndefined();
      await expect(store.signals.set("ghost", "n", "s", 1)).rejects.toMatchObject({
        code: "TERN_E_NOT_FOUND",
      });
    });

    it("let only one of many concurrent setters win", async () => {
      const url = await stores.freshUrl();
      const a = await stores.open({ url });
      const b = await stores.open({ url });
      await a.executions.create(execution("x1"));
      const results = await Promise.allSettled(
        Array.from({ length: 8 }, (_, i) => (i % 2 ? a : b).signals.set("x1", "gate", "approved", i)),
      );
      const won = results.filter((r) => r.status === "fulfilled") as PromiseFulfilledResult<{
        value: unknown;
      }>[];
      expect(won).toHaveLength(1);
      expect((await a.signals.get("x1", "gate", "approved"))?.value).toBe(won[0].value.value);
    });
  });
});
