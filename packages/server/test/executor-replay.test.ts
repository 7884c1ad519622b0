/**
 * `replay()`: what a stored event log says about where an execution stopped, and the
 * node projection folded from the same events.
 */
import type { ExecutionEvent } from "@tern/core";
import { describe, expect, it } from "vitest";
import { NodeProjection, replay } from "../src/executor/index.js";

let seq = 0;
function ev(e: Partial<ExecutionEvent> & Pick<ExecutionEvent, "phase">): ExecutionEvent {
  seq++;
  return { seq, at: 1000 + seq, execution: "x1", ...e } as ExecutionEvent;
}
const userError = { code: "TERN_E_TASK_FAILED", kind: "user" as const, message: "boom" };
const systemError = { code: "TERN_E_SYSTEM", kind: "system" as const, message: "worker lost" };

describe("replay", () => {
  it("finds the last seq, succeeded nodes, attempts in flight and spent retry budgets", () => {
    seq = 0;
    const events = [
      ev({ phase: "running" }),
      ev({ node: "a", phase: "queued" }),
      ev({
        node: "a",
        phase: "initializing",
        attempt: 1,
        plugin: "process",
        pluginState: { attempt: "x1-a-1", pid: 7 },
      }),
      ev({ node: "a", phase: "running", attempt: 1 }),
      ev({ node: "a", phase: "succeeded", attempt: 1, outputs: { v: 1 } }),
      ev({ node: "b", phase: "queued" }),
      ev({ node: "b", phase: "initializing", attempt: 1 }),
      ev({ node: "b", phase: "retrying", attempt: 1, error: userError }),
      ev({ node: "b", phase: "initializing", attempt: 2 }),
      ev({ node: "b", phase: "retrying", attempt: 2, error: systemError }),
      ev({ node: "b", phase: "waiting-for-resources", attempt: 3 }),
      ev({ node: "c", phase: "queued" }),
      ev({ node: "d", phase: "queued" }),
      ev({ node: "d", phase: "initializing", attempt: 1 }),
      ev({ node: "d", phase: "retrying", attempt: 1, error: userError }),
      ev({ node: "e", phase: "queued" }),
      ev({ node: "e", phase: "initializing", attempt: 1 }),
      ev({ node: "e", phase: "failed", attempt: 1, error: userError }),
    ];
    const r = replay(events);
    expect(r.lastSeq).toBe(18);
    expect(r.terminal).toBeUndefined();
    expect([...r.succeeded]).toEqual([["a", { outputs: { v: 1 } }]]);
    expect(r.nodes.get("a")).toBeUndefined();
    expect(r.nodes.get("b")).toEqual({ attempts: 3, userFailures: 1, systemFailures: 1, inFlight: true });
    expect(r.nodes.get("c")).toEqual({ attempts: 0, userFailures: 0, systemFailures: 0, inFlight: false });
    // Between attempts (backing off): the next attempt is a new one.
    expect(r.nodes.get("d")).toEqual({ attempts: 1, userFailures: 1, systemFailures: 0, inFlight: false });
    expect(r.nodes.get("e")).toEqual({
      attempts: 1,
      userFailures: 1,
      systemFailures: 0,
      inFlight: false,
      failed: userError,
    });
  });

  it("keeps when a node first started running, across owners (a resumed sleep gate sleeps what is left)", () => {
    seq = 0;
    const events = [
      ev({ node: "nap", phase: "queued" }),
      { ...ev({ node: "nap", phase: "running" }), at: 5_000 },
      // Resumed by the next owner: the gate runs again, its first start stands.
      { ...ev({ node: "nap", phase: "running" }), at: 9_000 },
    ];
    expect(replay(events).nodes.get("nap")).toMatchObject({ attempts: 0, inFlight: false, startedAt: 5_000 });
  });

  it("reports an execution whose log already ends with its outcome", () => {
    seq = 0;
    const r = replay([
      ev({ phase: "running" }),
      ev({ node: "a", phase: "succeeded", outputs: 3 }),
      ev({ phase: "succeeded", outputs: 3 }),
    ]);
    expect(r.terminal).toEqual({ phase: "succeeded", outputs: 3, error: undefined });
    expect(replay([]).lastSeq).toBe(0);
  });
});

describe("NodeProjection", () => {
  it("folds a batch seen again (a retried append) only once", () => {
    seq = 0;
    const p = new NodeProjection("x1");
    const batch = [
      ev({ node: "a", phase: "initializing", attempt: 1 }),
      ev({ node: "a", phase: "retrying", attempt: 1, error: userError }),
    ];
    for (const e of batch) p.apply(e);
    for (const e of batch) p.apply(e);
    expect(p.take()).toMatchObject([{ nodeId: "a", phase: "retrying", userFailures: 1 }]);
  });

  it("folds events into one row per node and hands out only the changed rows", () => {
    seq = 0;
    const p = new NodeProjection("x1");
    for (const e of [
      ev({ node: "a", phase: "queued" }),
      ev({ node: "a", phase: "initializing", attempt: 1, plugin: "process", pluginState: { pid: 9 } }),
      ev({ node: "a", phase: "retrying", attempt: 1, error: systemError }),
      ev({ node: "a", phase: "initializing", attempt: 2, plugin: "process", pluginState: { pid: 10 } }),
    ])
      p.apply(e, false);
    expect(p.take()).toEqual([]);
    p.apply(ev({ node: "a", phase: "succeeded", attempt: 2, outputs: null }));
    p.apply(ev({ node: "b", phase: "queued" }));
    const rows = p.take();
    expect(rows).toEqual([
      {
        execution: "x1",
        nodeId: "a",
        phase: "succeeded",
        attempts: 2,
        userFailures: 0,
        systemFailures: 1,
        startedAt: 1001,
        endedAt: 1005,
        error: null,
        plugin: "process",
        pluginState: { pid: 10 },
        outputs: null,
      },
      {
        execution: "x1",
        nodeId: "b",
        phase: "queued",
        attempts: 0,
        userFailures: 0,
        systemFailures: 0,
        startedAt: 1006,
      },
    ]);
    expect(p.take()).toEqual([]);
    p.restore(rows);
    expect(p.take().map((r) => r.nodeId)).toEqual(["a", "b"]);
  });
});
