/**
 * when(): branches on node outputs and workflow inputs. The first case that holds runs,
 * the nodes of the others end `skipped`; `.fail()` and `.end()` decide what happens when
 * nothing holds. The compiler checks conditions and the agreement of case outputs.
 */
import {
  compile,
  ErrorCodes,
  eq,
  gt,
  isTernError,
  isTrue,
  type NodeSummary,
  when,
  workflow,
} from "@tern/core";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { add, double, grade, label, logic, maybeBonus, measure, mustPass } from "./control-fixture.js";
import {
  BACKENDS,
  type BackendName,
  callsOf,
  expectSucceeded,
  nodeOf,
  useBackend,
} from "./control-harness.js";

const phases = (nodes: NodeSummary[], ids: string[]) =>
  Object.fromEntries(ids.map((id) => [id, nodes.find((n) => n.id === id)?.phase]));

describe.each(BACKENDS)("when (%s)", (name: BackendName) => {
  const backend = useBackend(name);

  it.each([
    [95, "A", "a"],
    [90, "A", "a"],
    [80, "B", "b"],
    [50, "C", "c"],
    [12, "F", "f"],
  ])("runs the first case that holds (score %d → %s) and skips the others", async (score, out, taken) => {
    const { handle, result } = await backend.run(grade, { score });
    expectSucceeded(result);
    expect(result.outputs).toBe(out);
    const ids = ["a", "b", "c", "f"];
    expect(phases(result.nodes, ids)).toEqual(
      Object.fromEntries(ids.map((id) => [id, id === taken ? "succeeded" : "skipped"])),
    );
    expect(nodeOf(result, "branch")).toMatchObject({ kind: "branch", phase: "succeeded" });
    expect(callsOf(handle.id, "label").map((c) => c.node)).toEqual([taken]);
    // A skipped node says why.
    const skipped = handle.events.find(
      (e) => e.node === ids.find((id) => id !== taken) && e.phase === "skipped",
    );
    expect(skipped?.message).toMatch(/^branch "branch" took (case \d|no case)$/);
  });

  it("tests node outputs, workflow inputs, and/or/not, isTrue/isFalse/isNull, and branches on a branch", async () => {
    const a = await backend.run(logic, { x: 20, strict: false, name: "" });
    expectSucceeded(a.result);
    expect(a.result.outputs).toEqual(["big-lenient", "normal", "positive", "anonymous", "r5=0"]);
    expect(
      phases(a.result.nodes, ["r1_yes", "r1_no", "r4_yes", "r4_no", "r5_twice", "r5_four", "r5_zero"]),
    ).toEqual({
      r1_yes: "succeeded",
      r1_no: "skipped",
      r4_yes: "succeeded",
      r4_no: "skipped",
      r5_twice: "skipped",
      r5_four: "skipped",
      r5_zero: "succeeded",
    });

    const b = await backend.run(logic, { x: -1, strict: true, name: "root" });
    expectSucceeded(b.result);
    expect(b.result.outputs).toEqual(["no", "special", "non-positive", "named", "r5=0"]);

    const c = await backend.run(logic, { x: 3, strict: true, name: "ada" });
    expectSucceeded(c.result);
    // strict: r5 = 4·(10·3) = 120 > 0
    expect(c.result.outputs).toEqual(["no", "normal", "positive", "named", "r5>0"]);
    expect(phases(c.result.nodes, ["r5_twice", "r5_four", "r5_zero", "r6_yes", "r6_no"])).toEqual({
      r5_twice: "succeeded",
      r5_four: "succeeded",
      r5_zero: "skipped",
      r6_yes: "succeeded",
      r6_no: "skipped",
    });
    expect(callsOf(c.handle.id, "double").map((x) => x.node)).toEqual(["r5_twice", "r5_four"]);
  });

  it(".fail(message) fails the branch with TERN_E_BRANCH_FAILED when no case holds", async () => {
    const { handle, result } = await backend.run(mustPass, { score: 10 });
    expect(result.phase).toBe("failed");
    const br = nodeOf(result, "branch");
    expect(br.phase).toBe("failed");
    expect(br.error).toMatchObject({
      code: ErrorCodes.BRANCH_FAILED,
      kind: "user",
      message: 'branch "branch": score below 50: not published',
    });
    expect(result.error).toMatchObject({ code: ErrorCodes.BRANCH_FAILED, node: "branch" });
    expect(nodeOf(result, "pass").phase).toBe("skipped");
    expect(callsOf(handle.id, "label")).toEqual([]);

    const ok = await backend.run(mustPass, { score: 70 });
    expect(ok.result.outputs).toBe("pass");
  });

  it(".end() gives null when no case holds", async () => {
    const none = await backend.run(maybeBonus, { score: 10 });
    expectSucceeded(none.result);
    expect(none.result.outputs).toBeNull();
    expect(nodeOf(none.result, "bonus").phase).toBe("skipped");
    expect(none.handle.events.find((e) => e.node === "branch" && e.phase === "succeeded")?.message).toBe(
      "no case held",
    );

    const some = await backend.run(maybeBonus, { score: 101 });
    expect(some.result.outputs).toBe("bonus");
  });
});

describe("when: compile-time checks", () => {
  const compileError = (wf: Parameters<typeof compile>[0]) => {
    try {
      compile(wf);
    } catch (e) {
      if (isTernError(e)) return e;
      throw e;
    }
    throw new Error("compile() did not throw");
  };

  it("refuses cases whose outputs differ in type", () => {
    const wf = workflow({ name: "w_mismatch", inputs: { x: z.number() }, output: z.unknown() }, ({ x }) =>
      when(gt(x, 0))
        .then(() => label({ s: "positive" }))
        .else(() => double({ x }) as never),
    );
    const e = compileError(wf);
    expect(e.code).toBe(ErrorCodes.TYPE_MISMATCH);
    expect(e.message).toBe(
      'workflow "w_mismatch", branch "branch": the else case gives number, but the first case gives string',
    );
    expect(e.hint).toBe("every case of a branch must give the same type");
  });

  it("refuses an elseIf case of another type too", () => {
    const wf = workflow({ name: "w_mismatch2", inputs: { x: z.number() }, output: z.unknown() }, ({ x }) =>
      when(gt(x, 0))
        .then(() => double({ x }))
        .elseIf(gt(x, -5), () => label({ s: "small" }) as never)
        .end(),
    );
    expect(compileError(wf).message).toMatch(/case 2 gives string, but the first case gives number/);
  });

  it("refuses isTrue on a value that is not a boolean", () => {
    const wf = workflow(
      { name: "w_not_bool", inputs: { x: z.number() }, output: z.string().nullable() },
      ({ x }) =>
        when(isTrue(measure({ x }) as never))
          .then(() => label({ s: "yes" }))
          .end(),
    );
    const e = compileError(wf);
    expect(e.code).toBe(ErrorCodes.TYPE_MISMATCH);
    expect(e.message).toBe(
      'workflow "w_not_bool", branch "branch": the condition tests number for true, which is not a boolean',
    );
  });

  it("refuses a number handle used as a condition", () => {
    const wf = workflow(
      { name: "w_not_bool2", inputs: { x: z.number() }, output: z.string().nullable() },
      ({ x }) =>
        when(measure({ x }) as never)
          .then(() => label({ s: "yes" }))
          .end(),
    );
    expect(compileError(wf).message).toMatch(/which is not a boolean/);
  });

  it("refuses to compare a string with a number", () => {
    const wf = workflow(
      { name: "w_cmp", inputs: { name: z.string() }, output: z.string().nullable() },
      ({ name }) =>
        when(eq(name as never, 5))
          .then(() => label({ s: "five" }))
          .end(),
    );
    const e = compileError(wf);
    expect(e.code).toBe(ErrorCodes.TYPE_MISMATCH);
    expect(e.message).toBe('workflow "w_cmp", branch "branch": cannot compare string with integer using eq');
  });

  it("refuses ordering booleans", () => {
    const wf = workflow(
      { name: "w_cmp_bool", inputs: { b: z.boolean() }, output: z.string().nullable() },
      ({ b }) =>
        when(gt(b as never, true as never))
          .then(() => label({ s: "x" }))
          .end(),
    );
    expect(compileError(wf).message).toMatch(/cannot compare boolean with boolean using gt/);
  });

  it("refuses a node from inside a case used outside the branch", () => {
    const wf = workflow({ name: "w_scope", inputs: { x: z.number() }, output: z.number() }, ({ x }) => {
      let inside: ReturnType<typeof double> | undefined;
      when(gt(x, 0))
        .then(() => {
          inside = double({ x }, { id: "inside" });
          return inside;
        })
        .else(() => double({ x: 0 }));
      return add({ a: inside!, b: 1 }, { id: "outside" });
    });
    const e = compileError(wf);
    expect(e.code).toBe(ErrorCodes.COMPILE);
    expect(e.message).toBe(
      'workflow "w_scope", node "outside": node "inside" is inside a branch case (or later in the graph) and cannot be used here',
    );
    expect(e.hint).toMatch(/branch's output/);
  });

  it("refuses a node of one case used in another", () => {
    const wf = workflow({ name: "w_scope2", inputs: { x: z.number() }, output: z.number() }, ({ x }) => {
      let first: ReturnType<typeof double> | undefined;
      return when(gt(x, 0))
        .then(() => (first = double({ x }, { id: "first" })))
        .else(() => add({ a: first!, b: 1 }, { id: "second" }));
    });
    expect(compileError(wf).message).toMatch(/node "second": node "first" is inside a branch case/);
  });
});
