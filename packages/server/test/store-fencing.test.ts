/**
 * Store support for the durable executor, on SQLite and PostgreSQL: event appends
 * fenced by the executor lease, the bulk node projection write, and phase-conditional
 * execution updates.
 */
import { TernError } from "@tern/core";
import { describe, expect, it } from "vitest";
import type { Store } from "../src/store/index.js";
import { BACKENDS, FakeClock, useStores } from "./helpers/store.js";

async function execution(store: Store, id: string): Promise<void> {
  await store.executions.create({
    id,
    project: "default",
    domain: "development",
    workflow: { name: "wf", version: "v1" },
    inputs: {},
    spec: {},
  });
}

describe.each(BACKENDS)("store fencing and projection (%s)", (backend) => {
  const stores = useStores(backend);

  it("appends many executions' batches in one transaction, refusing each bad one on its own", async () => {
    const store = await stores.open();
    for (const id of ["g1", "g2", "g3"]) await execution(store, id);
    await store.executions.claim("replica-a", 10_000, 3);
    // g2 belongs to another replica now.
    await store.executions.release("g2", "replica-a");
    await store.executions.claim("replica-b", 10_000, 1);
    const row = (execution: string) => ({ execution, nodeId: "n", phase: "running", attempts: 1 });
    const errors = await store.events.appendMany([
      {
        execution: "g1",
        owner: "replica-a",
        events: [{ seq: 1, at: 1, phase: "running" }],
        nodes: [row("g1")],
      },
      {
        execution: "g2",
        owner: "replica-a",
        events: [{ seq: 1, at: 1, phase: "running" }],
        nodes: [row("g2")],
      },
      { execution: "nope", owner: "replica-a", events: [{ seq: 1, at: 1, phase: "running" }] },
      { execution: "g3", owner: "replica-a", events: [{ seq: 2, at: 1, phase: "running" }] },
      // A second batch of g1 in the same write continues the first.
      { execution: "g1", owner: "replica-a", events: [{ seq: 2, at: 2, node: "n", phase: "running" }] },
      {
        execution: "g3",
        owner: "replica-a",
        events: [
          { seq: 1, at: 1, phase: "running" },
          { seq: 3, at: 1, phase: "x" },
        ],
      },
    ]);
    expect(errors.map((e) => (e ? [e.code, e.details?.reason ?? null] : null))).toEqual([
      null,
      ["TERN_E_CONFLICT", "lease"],
      ["TERN_E_NOT_FOUND", null],
      ["TERN_E_CONFLICT", null],
      null,
      ["TERN_E_CONFLICT", null],
    ]);
    expect((await store.events.list("g1")).map((e) => e.seq)).toEqual([1, 2]);
    expect(await store.events.list("g2")).toEqual([]);
    expect(await store.events.list("g3")).toEqual([]);
    expect(await store.nodes.get("g1", "n")).toMatchObject({ phase: "running" });
    expect(await store.nodes.get("g2", "n")).toBeUndefined();
  });

  it("writes the node rows of an append in its transaction: both or neither", async () => {
    const store = await stores.open();
    await execution(store, "e9");
    await store.executions.claim("replica-a", 10_000, 1);
    const row = (phase: string) => ({ execution: "e9", nodeId: "n1", phase, attempts: 1 });
    await store.events.append(
      "e9",
      [
        { seq: 1, at: 1, phase: "running" },
        { seq: 2, at: 2, node: "n1", phase: "running", attempt: 1 },
      ],
      { owner: "replica-a", nodes: [row("running")] },
    );
    expect(await store.nodes.get("e9", "n1")).toMatchObject({ phase: "running", attempts: 1 });
    // Refused (seq 2 is taken): the row's new phase is not written either.
    await expect(
      store.events.append("e9", [{ seq: 2, at: 3, node: "n1", phase: "succeeded" }], {
        owner: "replica-a",
        nodes: [row("succeeded")],
      }),
    ).rejects.toMatchObject({ code: "TERN_E_CONFLICT" });
    // Refused by the fence: the same.
    await expect(
      store.events.append("e9", [{ seq: 3, at: 3, node: "n1", phase: "succeeded" }], {
        owner: "replica-b",
        nodes: [row("succeeded")],
      }),
    ).rejects.toMatchObject({ code: "TERN_E_CONFLICT", details: { reason: "lease" } });
    expect((await store.nodes.get("e9", "n1"))?.phase).toBe("running");
    expect(await store.events.lastSeq("e9")).toBe(2);
  });

  it("appends events only for the replica that holds the execution", async () => {
    const clock = new FakeClock();
    const store = await stores.open({ now: clock.now });
    await execution(store, "e1");
    const [claimed] = await store.executions.claim("replica-a", 10_000, 1);
    expect(claimed.id).toBe("e1");
    await store.events.append("e1", [{ seq: 1, at: 1, phase: "running" }], { owner: "replica-a" });

    let err: unknown;
    try {
      await store.events.append("e1", [{ seq: 2, at: 2, phase: "running" }], { owner: "replica-b" });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TernError);
    expect(err).toMatchObject({
      code: "TERN_E_CONFLICT",
      details: { reason: "lease", owner: "replica-b", holder: "replica-a" },
    });
    expect((err as Error).message).toMatch(/replica-b no longer holds it \(held by replica-a\)/);

    // The lease lapses and B claims it: now A is the one refused.
    clock.advance(10_001);
    expect((await store.executions.claim("replica-b", 10_000, 1)).map((r) => r.id)).toEqual(["e1"]);
    await expect(
      store.events.append("e1", [{ seq: 2, at: 2, phase: "running" }], { owner: "replica-a" }),
    ).rejects.toMatchObject({
      code: "TERN_E_CONFLICT",
      details: { reason: "lease" },
    });
    await store.events.append("e1", [{ seq: 2, at: 2, phase: "running", message: "b" }], {
      owner: "replica-b",
    });
    expect((await store.events.list("e1")).map((e) => [e.seq, e.message])).toEqual([
      [1, undefined],
      [2, "b"],
    ]);
    await expect(
      store.events.append("nope", [{ seq: 1, at: 1, phase: "running" }], { owner: "replica-b" }),
    ).rejects.toMatchObject({
      code: "TERN_E_NOT_FOUND",
    });
  });

  it("writes whole node rows in bulk, replacing what was stored", async () => {
    const store = await stores.open();
    await execution(store, "e2");
    const rows = Array.from({ length: 1200 }, (_, i) => ({
      execution: "e2",
      nodeId: `n${i}`,
      phase: "queued",
      attempts: 0,
      startedAt: 5,
    }));
    await store.nodes.putMany(rows);
    await store.nodes.putMany([
      {
        execution: "e2",
        nodeId: "n7",
        phase: "succeeded",
        attempts: 2,
        userFailures: 1,
        outputs: null,
        plugin: "process",
        pluginState: { pid: 3 },
        startedAt: 5,
        endedAt: 9,
      },
      {
        execution: "e2",
        nodeId: "n8",
        phase: "failed",
        attempts: 1,
        error: { code: "X", kind: "user", message: "m" },
      },
    ]);
    const all = await store.nodes.list("e2");
    expect(all).toHaveLength(1200);
    expect(await store.nodes.get("e2", "n7")).toMatchObject({
      phase: "succeeded",
      attempts: 2,
      userFailures: 1,
      systemFailures: 0,
      outputs: null,
      plugin: "process",
      pluginState: { pid: 3 },
      endedAt: 9,
    });
    const n8 = await store.nodes.get("e2", "n8");
    expect(n8).toMatchObject({ phase: "failed", error: { message: "m" } });
    expect(n8?.startedAt).toBeUndefined();
    await expect(
      store.nodes.putMany([{ execution: "missing", nodeId: "n", phase: "queued" }]),
    ).rejects.toMatchObject({ code: "TERN_E_NOT_FOUND" });
  });

  it("lists the owners of active executions and transfers a dead owner's executions, compare-and-set", async () => {
    const clock = new FakeClock();
    const store = await stores.open({ now: clock.now });
    for (const id of ["t1", "t2", "t3"]) await execution(store, id);
    expect(await store.executions.claim("dead", 60_000, 2)).toHaveLength(2);
    expect(await store.executions.claim("alive", 60_000, 1)).toHaveLength(1);
    await store.executions.update("t1", { phase: "succeeded" });
    expect(await store.executions.activeOwners()).toEqual(["alive", "dead"]);
    const moved = await store.executions.transfer("dead", "heir", 5000, 10);
    expect(moved.map((r) => [r.id, r.owner, r.leaseExpiresAt])).toEqual([["t2", "heir", clock.t + 5000]]);
    expect(await store.executions.transfer("dead", "other", 5000, 10)).toEqual([]);
    expect(await store.executions.activeOwners()).toEqual(["alive", "heir"]);
    expect((await store.executions.get("t1"))?.owner).toBe("dead");
  });

  it("updates an execution only from the given phases", async () => {
    const store = await stores.open();
    await execution(store, "e3");
    await store.executions.update("e3", { phase: "aborting" });
    expect(
      await store.executions.update("e3", { phase: "running", startedAt: 1 }, { phases: ["queued"] }),
    ).toBe(false);
    expect((await store.executions.get("e3"))?.phase).toBe("aborting");
    expect(
      await store.executions.update("e3", { phase: "aborted" }, { phases: ["queued", "aborting"] }),
    ).toBe(true);
    expect(await store.executions.update("e3", { phase: "x" }, { phases: [] })).toBe(false);
  });
});
