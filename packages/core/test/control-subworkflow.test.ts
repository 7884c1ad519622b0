/**
 * Workflows as nodes: a subworkflow runs its nodes in the parent execution (named
 * `<node>/<child>`); a launch plan runs as a child execution with the plan's defaults and
 * fixed inputs.
 */
import { compile, ErrorCodes, isTernError, workflow } from "@tern/core";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { nightly, outer, withPlan, withPlanN } from "./control-fixture.js";
import {
  BACKENDS,
  type BackendName,
  calls,
  callsOf,
  expectSucceeded,
  nodeOf,
  useBackend,
} from "./control-harness.js";

describe.each(BACKENDS)("subworkflows and launch plans (%s)", (name: BackendName) => {
  const backend = useBackend(name);

  it("runs nested subworkflows in the parent execution and passes their outputs on", async () => {
    const { handle, result } = await backend.run(outer, { x: 5 });
    expectSucceeded(result);
    // v = 2·5+1, w = 4·5+1
    expect(result.outputs).toBe(32);
    expect(nodeOf(result, "mid")).toMatchObject({
      kind: "workflow",
      task: "workflow(middle)",
      phase: "succeeded",
    });
    expect(nodeOf(result, "mid/inner")).toMatchObject({ kind: "workflow", task: "workflow(inner)" });
    for (const id of [
      "mid/inner/double",
      "mid/inner/add",
      "mid/double",
      "mid/inner-2/double",
      "mid/inner-2/add",
      "total",
    ]) {
      expect(nodeOf(result, id).phase).toBe("succeeded");
    }
    expect(handle.events.find((e) => e.node === "mid" && e.phase === "succeeded")?.outputs).toEqual({
      v: 11,
      w: 21,
    });
    // One execution: every body logged under it.
    expect(
      callsOf(handle.id, "double")
        .map((c) => c.node)
        .sort(),
    ).toEqual(["mid/double", "mid/inner-2/double", "mid/inner/double"]);
    expect(new Set(handle.events.map((e) => e.execution))).toEqual(new Set([handle.id]));
  });

  it("runs a launch plan as a child execution with its defaults and fixed inputs", async () => {
    const { handle, result } = await backend.run(withPlan, { suffix: "q3" });
    expectSucceeded(result);
    // region fixed to "eu", n from the plan's default
    expect(result.outputs).toBe("eu:3:q3");
    const plan = nodeOf(result, "plan");
    expect(plan).toMatchObject({
      kind: "launchplan",
      task: "launchplan(nightly_report)",
      phase: "succeeded",
    });
    const running = handle.events.find((e) => e.node === "plan" && e.phase === "running");
    const child = running?.childExecution;
    expect(typeof child).toBe("string");
    expect(child).not.toBe(handle.id);
    expect(handle.events.find((e) => e.node === "plan" && e.phase === "succeeded")).toMatchObject({
      childExecution: child,
      outputs: "eu:3:q3",
    });
    // The plan's task ran under the child execution, not the parent's.
    expect(callsOf(child!, "report").map((c) => c.what)).toEqual([{ region: "eu", n: 3, suffix: "q3" }]);
    expect(callsOf(handle.id, "report")).toEqual([]);
    expect(calls(handle.id).map((c) => c.task)).toEqual(["label"]);
  });

  it("a caller's input replaces the plan's default", async () => {
    const { handle, result } = await backend.run(withPlanN, { suffix: "x", n: 9 });
    expectSucceeded(result);
    expect(result.outputs).toBe("eu:9:x");
    const child = handle.events.find((e) => e.node === "plan" && e.childExecution)?.childExecution;
    expect(callsOf(child!, "report")).toHaveLength(1);
  });
});

describe("launch plans: compile-time checks", () => {
  it("refuses a fixed input given by the caller", () => {
    const wf = workflow(
      { name: "lp_override", inputs: { suffix: z.string() }, output: z.string() },
      ({ suffix }) => nightly({ suffix, region: "us" }, { id: "plan" }),
    );
    let err: unknown;
    try {
      compile(wf);
    } catch (e) {
      err = e;
    }
    expect(isTernError(err)).toBe(true);
    expect(err).toMatchObject({
      code: ErrorCodes.COMPILE,
      message: 'workflow "lp_override", node "plan": input "region" is fixed by launch plan "nightly_report"',
      hint: "leave it out; the plan sets it",
    });
  });

  it("the plan's interface leaves out fixed inputs and carries its defaults", () => {
    const wf = workflow(
      { name: "lp_iface", inputs: { suffix: z.string() }, output: z.string() },
      ({ suffix }) => nightly({ suffix }),
    );
    const lp = Object.values(compile(wf).spec.launchPlans ?? {})[0];
    expect(lp.fixed).toEqual({ region: "eu" });
    expect(lp.defaults).toEqual({ n: 3 });
    expect(Object.keys(lp.interface.inputs).sort()).toEqual(["n", "suffix"]);
    expect(lp.interface.inputs.n).toMatchObject({ optional: true, default: 3 });
  });
});
