/**
 * map(): fan a task or a subworkflow out over lists, with bound inputs, bounded
 * concurrency, a minimum success ratio, per-item cache and retries, and clear errors
 * for what cannot be mapped.
 */
import { compile, ErrorCodes, isTernError, map, workflow } from "@tern/core";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import {
  double,
  mapBound,
  mapBusy,
  mapCached,
  mapIntolerant,
  mapPairs,
  mapShaky,
  mapSubworkflow,
  mapSubworkflowDefault,
  mapTolerant,
} from "./control-fixture.js";
import {
  BACKENDS,
  type BackendName,
  calls,
  callsOf,
  expectSucceeded,
  nodeOf,
  useBackend,
} from "./control-harness.js";

describe.each(BACKENDS)("map (%s)", (name: BackendName) => {
  const backend = useBackend(name);

  it("fans out over a list with bound inputs, keeping the order", async () => {
    const { handle, result } = await backend.run(mapBound, { xs: [1, 2, 3, 4, 5], factor: 3 });
    expectSucceeded(result);
    expect(result.outputs).toEqual([3, 6, 9, 12, 15]);
    expect(nodeOf(result, "scaled")).toMatchObject({
      kind: "map",
      task: "map(scale)",
      phase: "succeeded",
      items: { total: 5, succeeded: 5, failed: 0, cached: 0 },
    });
    expect(callsOf(handle.id, "scale")).toHaveLength(5);
    // Items are quiet: the map node has events, its items none of their own.
    expect(handle.events.filter((e) => e.node?.startsWith("scaled[")).length).toBe(0);
    const last = handle.events.filter((e) => e.node === "scaled").at(-1)!;
    expect(last).toMatchObject({ phase: "succeeded", items: { total: 5, succeeded: 5 } });
  });

  it("zips several lists item by item", async () => {
    const { result } = await backend.run(mapPairs, { as: ["a", "b", "c"], bs: [1, 2, 3] });
    expectSucceeded(result);
    expect(result.outputs).toEqual(["a1", "b2", "c3"]);
  });

  it("an empty list gives an empty list, and runs nothing", async () => {
    const { handle, result } = await backend.run(mapBound, { xs: [], factor: 3 });
    expectSucceeded(result);
    expect(result.outputs).toEqual([]);
    expect(nodeOf(result, "scaled").items).toMatchObject({ total: 0, succeeded: 0 });
    expect(calls(handle.id)).toEqual([]);
  });

  it("lists of different lengths fail the node with a clear error", async () => {
    const { handle, result } = await backend.run(mapPairs, { as: ["a", "b"], bs: [1, 2, 3] });
    expect(result.phase).toBe("failed");
    const err = nodeOf(result, "pairs").error!;
    expect(err.code).toBe(ErrorCodes.INPUT_INVALID);
    expect(err.message).toBe('map "pairs": the mapped lists differ in length (a: 2, b: 3)');
    expect(calls(handle.id)).toEqual([]);
  });

  it("a value that is not a list fails the node with a clear error", async () => {
    // What a hand-written (or JavaScript-built) spec can do: the compiler would refuse it.
    const compiled = backend.compile(mapBound);
    const spec = structuredClone(compiled.spec);
    const node = spec.workflow.nodes.find((n) => n.id === "scaled")!;
    if (node.kind !== "map") throw new Error("expected the map node");
    node.inputs.x = { literal: 42 };
    const { handle, result } = await backend.run({ ...compiled, spec }, { xs: [1], factor: 2 });
    expect(result.phase).toBe("failed");
    const err = nodeOf(result, "scaled").error!;
    expect(err.code).toBe(ErrorCodes.INPUT_INVALID);
    expect(err.message).toBe('map "scaled": input "x" is not a list (got number)');
    expect(err.hint).toMatch(/bound/);
    expect(calls(handle.id)).toEqual([]);
  });

  it("honours concurrency", async () => {
    const is = [...Array(9).keys()];
    const { result } = await backend.run(mapBusy, { is, want: 4 });
    expectSucceeded(result);
    const peaks = result.outputs as number[];
    expect(peaks).toHaveLength(9);
    // Never more than 3 bodies at once; and items did overlap.
    expect(Math.max(...peaks)).toBeLessThanOrEqual(3);
    expect(Math.max(...peaks)).toBeGreaterThanOrEqual(2);
  });

  it("with minSuccessRatio, failed items become null and the node succeeds while enough items do", async () => {
    const xs = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    const { handle, result } = await backend.run(mapTolerant, { xs });
    expectSucceeded(result);
    expect(result.outputs).toEqual([1, 2, null, 4, 5, null, 7, 8, null, 10]);
    const items = nodeOf(result, "picky").items!;
    expect(items).toMatchObject({ total: 10, succeeded: 7, failed: 3, cached: 0 });
    expect(items.failures?.map((f) => f.index)).toEqual([2, 5, 8]);
    expect(items.failures?.[0].error).toMatchObject({ code: ErrorCodes.TASK_FAILED, kind: "user" });
    expect(items.failures?.[0].error.message).toContain("no multiples of 3, got 3");
    expect(callsOf(handle.id, "picky")).toHaveLength(10);
  });

  it("fails the node when more items fail than the ratio allows", async () => {
    const { result } = await backend.run(mapIntolerant, { xs: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] });
    expect(result.phase).toBe("failed");
    const n = nodeOf(result, "picky");
    expect(n.phase).toBe("failed");
    expect(n.error?.message).toMatch(/^map "picky": 3 of 10 items failed \(at most 2 may\); item \d: /);
    expect(n.items?.failed).toBe(3);
    expect(result.error?.node).toBe("picky");
  });

  it("retries each item on its own", async () => {
    const { handle, result } = await backend.run(mapShaky, { xs: [1, 2, 3] });
    expectSucceeded(result);
    // Each item succeeded on its second attempt.
    expect(result.outputs).toEqual([12, 22, 32]);
    const attempts = callsOf(handle.id, "shaky").map((c) => `${c.node}#${c.attempt}`);
    expect(attempts.sort()).toEqual([
      "shaky[0]#1",
      "shaky[0]#2",
      "shaky[1]#1",
      "shaky[1]#2",
      "shaky[2]#1",
      "shaky[2]#2",
    ]);
    expect(nodeOf(result, "shaky").items).toMatchObject({ total: 3, succeeded: 3, failed: 0 });
  });

  it("caches each item: a second run is all hits, a longer list only runs the new items", async () => {
    const xs = [11, 12, 13, 14];
    const first = await backend.run(mapCached, { xs });
    expectSucceeded(first.result);
    expect(first.result.outputs).toEqual([121, 144, 169, 196]);
    expect(nodeOf(first.result, "squares").items).toMatchObject({ total: 4, succeeded: 4, cached: 0 });

    const second = await backend.run(mapCached, { xs });
    expectSucceeded(second.result);
    expect(second.result.outputs).toEqual([121, 144, 169, 196]);
    expect(nodeOf(second.result, "squares").items).toMatchObject({ total: 4, succeeded: 4, cached: 4 });
    expect(calls(second.handle.id)).toEqual([]);

    const third = await backend.run(mapCached, { xs: [...xs, 15] });
    expect(third.result.outputs).toEqual([121, 144, 169, 196, 225]);
    expect(nodeOf(third.result, "squares").items).toMatchObject({ total: 5, succeeded: 5, cached: 4 });
    expect(callsOf(third.handle.id, "cached_square").map((c) => c.node)).toEqual(["squares[4]"]);
  });

  it("maps a subworkflow: each item runs the subworkflow's nodes", async () => {
    const { handle, result } = await backend.run(mapSubworkflow, { xs: [1, 2, 3], plus: 7 });
    expectSucceeded(result);
    expect(result.outputs).toEqual([9, 11, 13]);
    expect(nodeOf(result, "each")).toMatchObject({
      task: "map(double_plus)",
      items: { total: 3, succeeded: 3 },
    });
    for (const i of [0, 1, 2]) {
      expect(nodeOf(result, `each[${i}]/double`).phase).toBe("succeeded");
      expect(nodeOf(result, `each[${i}]/add`).phase).toBe("succeeded");
    }
    expect(callsOf(handle.id, "double")).toHaveLength(3);
    expect(
      callsOf(handle.id, "add")
        .map((c) => c.node)
        .sort(),
    ).toEqual(["each[0]/add", "each[1]/add", "each[2]/add"]);
    // Defaults of the subworkflow's inputs apply to each item.
    const dflt = await backend.run(mapSubworkflowDefault, { xs: [5] });
    expect(dflt.result.outputs).toEqual([11]);
  });
});

describe("map: compile-time checks", () => {
  it("refuses to map over a value that is not a list", () => {
    const wf = workflow(
      { name: "map_not_a_list", inputs: { n: z.number() }, output: z.array(z.number()) },
      ({ n }) => map(double, { x: n as never }),
    );
    const e = catchError(() => compile(wf));
    expect(e.code).toBe(ErrorCodes.TYPE_MISMATCH);
    expect(e.message).toBe(
      'workflow "map_not_a_list", node "map_double", input "x": expects list<number> (map over task "double"), but workflow input .n gives number — number is not compatible with list<number>',
    );
  });

  it("refuses a list of the wrong element type", () => {
    const wf = workflow(
      { name: "map_wrong_items", inputs: { xs: z.array(z.string()) }, output: z.array(z.number()) },
      ({ xs }) => map(double, { x: xs as never }),
    );
    const e = catchError(() => compile(wf));
    expect(e.code).toBe(ErrorCodes.TYPE_MISMATCH);
    expect(e.message).toMatch(/input "x"/);
  });

  it("refuses a required input that is neither mapped nor bound, and one that is both", () => {
    const none = workflow({ name: "map_missing", inputs: {}, output: z.array(z.number()) }, () =>
      map(double, {} as never),
    );
    expect(catchError(() => compile(none)).message).toMatch(/maps over no input/);
    const both = workflow(
      { name: "map_both", inputs: { xs: z.array(z.number()) }, output: z.array(z.number()) },
      ({ xs }) => map(double, { x: xs }, { bound: { x: 1 } }),
    );
    expect(catchError(() => compile(both)).message).toMatch(/input "x" is both mapped and bound/);
  });

  it("types the output as a list of nullable items when minSuccessRatio < 1", () => {
    const wf = workflow(
      { name: "map_nullable", inputs: { xs: z.array(z.number()) }, output: z.array(z.number()) },
      ({ xs }) => map(double, { x: xs }, { minSuccessRatio: 0.5 }) as never,
    );
    const e = catchError(() => compile(wf));
    expect(e.code).toBe(ErrorCodes.TYPE_MISMATCH);
    expect(e.message).toMatch(/null/);
  });
});

function catchError(fn: () => unknown): { code: string; message: string } {
  try {
    fn();
  } catch (e) {
    if (isTernError(e)) return e;
    throw e;
  }
  throw new Error("expected an error");
}
