/**
 * Checkpoints: what one attempt of a node saves, the next attempt loads, so a long task
 * that fails part-way resumes from its last save instead of starting over.
 */
import { describe, expect, it } from "vitest";
import { loopFlow } from "./control-fixture.js";
import {
  BACKENDS,
  type BackendName,
  callsOf,
  expectSucceeded,
  nodeOf,
  useBackend,
} from "./control-harness.js";

describe.each(BACKENDS)("checkpoints (%s)", (name: BackendName) => {
  const backend = useBackend(name);

  it("a retried attempt resumes from the last checkpoint", async () => {
    const total = 100;
    const { handle, result } = await backend.run(loopFlow, { total, every: 10, failAt: 57 });
    expectSucceeded(result);
    // Attempt 1 did iterations 0..57 and saved at 10, 20, …, 50; attempt 2 started at 50.
    expect(result.outputs).toEqual({ resumedFrom: 50, work: 50, attempt: 2, sum: (total * (total - 1)) / 2 });
    const loop = nodeOf(result, "loop");
    expect(loop.attempts).toBe(2);
    const attempts = callsOf(handle.id, "long_loop");
    expect(attempts.map((c) => [c.attempt, c.what])).toEqual([
      [1, { resumedFrom: 0, work: 58 }],
      [2, { resumedFrom: 50, work: 50 }],
    ]);
    // 108 iterations in all instead of 158 had attempt 2 started over.
    expect(attempts.reduce((s, c) => s + (c.what as { work: number }).work, 0)).toBe(108);
    expect(handle.events.filter((e) => e.node === "loop").map((e) => e.phase)).toContain("retrying");
  });

  it("a checkpoint belongs to its node in its execution: a new execution starts from scratch", async () => {
    const { result } = await backend.run(loopFlow, { total: 30, every: 10, failAt: 1_000 });
    expectSucceeded(result);
    expect(result.outputs).toMatchObject({ resumedFrom: 0, work: 30, attempt: 1 });
  });
});
