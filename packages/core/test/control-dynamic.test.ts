/**
 * dynamic(): the body runs at execution time with real values, builds a sub-DAG that is
 * compiled and type-checked before any of it runs, and the sub-DAG's output becomes the
 * node's output. Children are named `<node>/<child>`.
 */
import { ErrorCodes } from "@tern/core";
import { describe, expect, it } from "vitest";
import {
  dynamicPipeline,
  fanOutFlow,
  mapsANumberFlow,
  wideFlow,
  wrongConstantFlow,
  wrongTypeFlow,
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

describe.each(BACKENDS)("dynamic (%s)", (name: BackendName) => {
  const backend = useBackend(name);

  it("runs a body with real values and binds the sub-DAG's output to the node", async () => {
    const { handle, result } = await backend.run(fanOutFlow, { n: 4 });
    expectSucceeded(result);
    // 2·(0+1+2+3) + 1
    expect(result.outputs).toBe(13);
    const body = callsOf(handle.id, "fan_out");
    expect(body).toHaveLength(1);
    expect(body[0].what).toEqual({ n: 4 });
    expect(callsOf(handle.id, "double")).toHaveLength(4);
    if (name === "process") expect(body[0].pid).not.toBe(process.pid);

    const dyn = nodeOf(result, "dyn");
    expect(dyn).toMatchObject({ kind: "dynamic", task: "fan_out", phase: "succeeded" });
    // Children are named under the dynamic node, in events and in the result.
    const children = result.nodes.filter((n) => n.id.startsWith("dyn/")).map((n) => n.id);
    expect(children.sort()).toEqual([
      "dyn/double",
      "dyn/double-2",
      "dyn/double-3",
      "dyn/double-4",
      "dyn/sum_all",
    ]);
    for (const id of children) expect(nodeOf(result, id).phase).toBe("succeeded");
    const evNodes = new Set(handle.events.map((e) => e.node).filter(Boolean));
    for (const id of children) expect(evNodes.has(id)).toBe(true);
    expect(handle.events.find((e) => e.node === "dyn" && e.expanded !== undefined)?.expanded).toBe(5);
    expect(handle.events.find((e) => e.node === "dyn" && e.phase === "succeeded")?.outputs).toBe(12);
    // The body ran before its children, and the node downstream after all of them.
    const seqOf = (node: string, phase: string) =>
      handle.events.find((e) => e.node === node && e.phase === phase)!.seq;
    expect(seqOf("dyn/sum_all", "succeeded")).toBeLessThan(seqOf("after_dyn", "queued"));
  });

  it("a body of zero nodes is fine (the output is computed from constants)", async () => {
    const { result } = await backend.run(fanOutFlow, { n: 0 });
    expectSucceeded(result);
    expect(result.outputs).toBe(1);
  });

  it("builds maps, branches and nested dynamics; their nodes are qualified by the path of dynamics", async () => {
    const { handle, result } = await backend.run(dynamicPipeline, { xs: [1, 2, 3], threshold: 5 });
    expectSucceeded(result);
    expect(result.outputs).toEqual({
      result: { doubled: [2, 4, 6], size: "big", nested: 6, count: 3 },
      plus: 1006,
    });
    const ids = result.nodes.map((n) => n.id);
    expect(ids).toEqual(
      expect.arrayContaining([
        "dyn",
        "dyn/map_double",
        "dyn/sum_all",
        "dyn/branch",
        "dyn/big",
        "dyn/small",
        "dyn/inner",
        "dyn/inner/double",
        "dyn/inner/double-3",
        "dyn/inner/sum_all",
        "plus",
      ]),
    );
    expect(nodeOf(result, "dyn/map_double").items).toMatchObject({ total: 3, succeeded: 3, failed: 0 });
    expect(nodeOf(result, "dyn/big").phase).toBe("succeeded");
    expect(nodeOf(result, "dyn/small").phase).toBe("skipped");
    expect(nodeOf(result, "dyn/inner").kind).toBe("dynamic");
    // Bodies ran once each, with real values.
    expect(callsOf(handle.id, "mixed").map((c) => c.what)).toEqual([{ xs: [1, 2, 3], threshold: 5 }]);
    expect(callsOf(handle.id, "fan_out").map((c) => c.what)).toEqual([{ n: 3 }]);
    // 3 map items + 3 inside the nested dynamic.
    expect(callsOf(handle.id, "double")).toHaveLength(6);

    const small = await backend.run(dynamicPipeline, { xs: [1], threshold: 5 });
    expectSucceeded(small.result);
    expect(small.result.outputs).toEqual({
      result: { doubled: [2], size: "small", nested: 0, count: 1 },
      plus: 1000,
    });
  });

  it("type-checks the sub-DAG before any of it runs: a body returning the wrong type fails the node", async () => {
    const { handle, result } = await backend.run(wrongTypeFlow, { n: 3 });
    expect(result.phase).toBe("failed");
    const dyn = nodeOf(result, "dyn");
    expect(dyn.phase).toBe("failed");
    expect(dyn.error?.code).toBe(ErrorCodes.TYPE_MISMATCH);
    expect(dyn.error?.message).toMatch(/dynamic "wrong_type"/);
    expect(dyn.error?.message).toMatch(/string/);
    expect(result.error?.code).toBe(ErrorCodes.TYPE_MISMATCH);
    expect(nodeOf(result, "after_dyn").phase).toBe("skipped");
    // The body ran; none of the nodes it built did.
    expect(calls(handle.id).map((c) => c.task)).toEqual(["wrong_type"]);
    expect(result.nodes.filter((n) => n.id.startsWith("dyn/"))).toEqual([]);
  });

  it("a constant of the wrong type fails the node too", async () => {
    const { handle, result } = await backend.run(wrongConstantFlow, {});
    expect(result.phase).toBe("failed");
    expect(nodeOf(result, "dyn").error).toMatchObject({ code: ErrorCodes.TYPE_MISMATCH });
    expect(nodeOf(result, "dyn").error?.message).toMatch(/"seven"/);
    expect(calls(handle.id).map((c) => c.task)).toEqual(["wrong_constant"]);
  });

  it("a map over a value that is not a list fails the check of the sub-DAG", async () => {
    const { handle, result } = await backend.run(mapsANumberFlow, { n: 4 });
    expect(result.phase).toBe("failed");
    const err = nodeOf(result, "dyn").error!;
    expect(err.code).toBe(ErrorCodes.TYPE_MISMATCH);
    expect(err.message).toMatch(/the constant 4 does not fit/);
    expect(callsOf(handle.id, "double")).toEqual([]);
  });
});

describe("dynamic (inline, wide)", () => {
  const backend = useBackend("inline", { catalog: false });

  it("expands into 100,000 nodes", { timeout: 180_000 }, async () => {
    const n = 100_000;
    const { handle, result } = await backend.run(wideFlow, { n });
    expectSucceeded(result);
    // Σ 2i for i < n
    expect(result.outputs).toBe(n * (n - 1));
    const children = result.nodes.filter((x) => x.id.startsWith("dyn/"));
    expect(children).toHaveLength(n + 1);
    expect(children.every((x) => x.phase === "succeeded")).toBe(true);
    expect(handle.events.find((e) => e.node === "dyn" && e.expanded !== undefined)?.expanded).toBe(n + 1);
  });
});
