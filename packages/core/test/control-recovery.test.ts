/**
 * Recovery and failure handlers.
 *
 * - Recovery: a second run given `reuse` (built from the first run's events: succeeded nodes
 *   carry their outputs, ids are fully qualified) marks those nodes `recovered` without
 *   running them, and runs the rest — including inside subworkflows and dynamics.
 * - onFailure: the workflow's handler task gets the error and the execution's ids, and runs
 *   even after fail-fast stopped everything else.
 */
import * as fs from "node:fs";
import { ErrorCodes, type ExecutionEvent, type StartOptions } from "@tern/core";
import { describe, expect, it } from "vitest";
import { recoverable, withHandler } from "./control-fixture.js";
import {
  BACKENDS,
  type BackendName,
  calls,
  callsOf,
  expectSucceeded,
  nodeOf,
  stateFile,
  useBackend,
} from "./control-harness.js";

/** What a recovery gives the engine: the outputs of every node that succeeded. */
function reuseFrom(events: readonly ExecutionEvent[]): StartOptions["reuse"] {
  const done = new Map<string, { outputs: unknown }>();
  for (const e of events) if (e.node && e.phase === "succeeded") done.set(e.node, { outputs: e.outputs });
  return (id) => done.get(id);
}

describe.each(BACKENDS)("recovery (%s)", (name: BackendName) => {
  const backend = useBackend(name);

  it("reuses the nodes that succeeded and runs the rest", async () => {
    const token = `${name}-${Date.now()}`;
    const first = await backend.run(recoverable, { x: 1, token });
    expect(first.result.phase).toBe("failed");
    expect(first.result.error).toMatchObject({ code: ErrorCodes.TASK_FAILED, node: "dyn/last" });
    expect(first.result.error?.message).toContain("not fixed yet");
    const phase = (id: string) => nodeOf(first.result, id).phase;
    for (const id of ["a", "sub", "sub/double", "sub/add", "m", "sum", "dyn/first", "dyn/second"])
      expect(phase(id)).toBe("succeeded");
    expect(phase("dyn/last")).toBe("failed");
    expect(phase("dyn")).toBe("failed");
    expect(phase("end")).toBe("skipped");

    // Fix what made it fail, and recover.
    fs.writeFileSync(stateFile(`fixed-${token}`), "");
    const second = await backend.run(recoverable, { x: 1, token }, { reuse: reuseFrom(first.handle.events) });
    expectSucceeded(second.result);
    // a = 2, sub = 5, m = [4, 10], sum = 14; dyn: 28 → 56 → 57; end = 57 + 14
    expect(second.result.outputs).toBe(71);

    const recovered = second.result.nodes.filter((n) => n.recovered).map((n) => n.id);
    expect(recovered.sort()).toEqual(["a", "dyn/first", "dyn/second", "m", "sub", "sum"]);
    for (const id of recovered) expect(nodeOf(second.result, id).phase).toBe("succeeded");
    const recEvents = second.handle.events.filter((e) => e.recovered);
    expect(recEvents.map((e) => e.node).sort()).toEqual(recovered.sort());
    // A recovered subworkflow is not entered again.
    expect(second.result.nodes.some((n) => n.id.startsWith("sub/"))).toBe(false);
    for (const id of ["dyn", "dyn/last", "end"]) {
      expect(nodeOf(second.result, id)).toMatchObject({ phase: "succeeded", recovered: false });
    }

    // What ran the second time: the dynamic's body (its node had failed), its last node, and end.
    const ran = calls(second.handle.id).map((c) => `${c.task}@${c.node}`);
    expect(ran.sort()).toEqual(["add@end", "gatekeeper@dyn/last", "steps@dyn"]);
    // The first run: everything up to the failure.
    expect(callsOf(first.handle.id, "double")).toHaveLength(6);
  });
});

describe.each(BACKENDS)("onFailure (%s)", (name: BackendName) => {
  const backend = useBackend(name);

  it("runs the handler with the error and the execution, after fail-fast stopped the rest", async () => {
    const { handle, result } = await backend.run(withHandler, { x: 7 });
    expect(result.phase).toBe("failed");
    expect(result.error).toMatchObject({ code: ErrorCodes.TASK_FAILED, kind: "user", node: "bad" });
    // fail-fast: the endless task was stopped, the node after both skipped.
    expect(nodeOf(result, "slow").phase).toBe("aborted");
    expect(nodeOf(result, "sum").phase).toBe("skipped");
    expect(nodeOf(result, "on-failure")).toMatchObject({ task: "on_fail", phase: "succeeded" });

    const got = JSON.parse(fs.readFileSync(stateFile(`${handle.id}.failure.json`), "utf8"));
    expect(got.error).toEqual({
      code: ErrorCodes.TASK_FAILED,
      kind: "user",
      message: "broken on purpose",
      node: "bad",
    });
    expect(got.execution).toEqual({
      id: handle.id,
      project: "default",
      domain: "development",
      workflow: "with_handler",
    });
    // Inputs of the workflow reach the handler by name.
    expect(got.x).toBe(7);
    expect(callsOf(handle.id, "on_fail")).toHaveLength(1);
    // The handler ran after the failure was recorded.
    const seq = (node: string, phase: string) =>
      handle.events.find((e) => e.node === node && e.phase === phase)!.seq;
    expect(seq("bad", "failed")).toBeLessThan(seq("on-failure", "queued"));
    expect(handle.events.at(-1)).toMatchObject({ phase: "failed" });
  });
});
