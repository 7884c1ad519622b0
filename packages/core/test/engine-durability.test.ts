/**
 * The engine's hooks for a durable executor: resuming a stored execution
 * (`startSeq`, `resume`, `reuse` with `resumed`), handing one over (`detach`), and
 * child execution ids that survive a restart of the parent.
 */
import {
  type AnyTask,
  compile,
  type ExecutionEvent,
  launchPlan,
  type RetryOptions,
  task,
  workflow,
} from "@tern/core";
import { afterAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { cleanupTempDirs, FakePlugin, fakeEngine, type Step } from "./helpers.js";

afterAll(cleanupTempDirs);

function fakeTask(name: string, retries: number | RetryOptions = { user: 0, system: 0 }): AnyTask {
  return task(
    { name, type: "fake", inputs: { after: z.unknown().optional() }, output: z.unknown(), retries },
    async () => {},
  ) as AnyTask;
}

function scripted(steps: Record<string, Step[]>): FakePlugin {
  return new FakePlugin((node, attempt) => {
    const list = steps[node] ?? [{ do: "succeed", outputs: `${node}-out` }];
    return list[Math.min(attempt, list.length) - 1];
  });
}

const A = fakeTask("dur_a");
const B = fakeTask("dur_b", { user: 3, system: 3, backoff: { base: 1, max: 1, factor: 1, jitter: 0 } });
const C = fakeTask("dur_c");
const chain = workflow({ name: "dur_chain", output: z.unknown() }, () => {
  const a = A({}, { id: "a" });
  const b = B({ after: a }, { id: "b" });
  return C({ after: b }, { id: "c" });
});

describe("engine: resuming a stored execution", () => {
  it("continues the event sequence, skips resumed nodes silently and reruns the in-flight attempt under its own id", async () => {
    const plugin = scripted({});
    const engine = fakeEngine([plugin]);
    const ids: string[] = [];
    const launch = plugin.launch.bind(plugin);
    plugin.launch = async (ctx) => {
      ids.push(ctx.attempt.id);
      return launch(ctx);
    };
    const seen: ExecutionEvent[] = [];
    const handle = engine.start(
      compile(chain),
      {},
      {
        id: "xresume",
        startSeq: 40,
        reuse: (node) => (node === "a" ? { outputs: "a-out", resumed: true } : undefined),
        // b's 2nd attempt was in flight (the 1st had failed, a user failure).
        resume: (node) =>
          node === "b" ? { attempts: 2, userFailures: 1, systemFailures: 0, inFlight: true } : undefined,
        onEvent: (e) => seen.push(e),
      },
    );
    const result = await handle.result;
    expect(result.phase).toBe("succeeded");
    expect(seen.map((e) => e.seq)).toEqual(seen.map((_, i) => 41 + i));
    expect(seen.filter((e) => e.node === "a")).toEqual([]);
    expect(plugin.ops("launch", "a")).toEqual([]);
    expect(ids).toEqual(["xresume-b-2", "xresume-c-1"]);
    expect(result.nodes.find((n) => n.id === "b")?.attempts).toBe(2);
  });

  it("keeps a node that had failed for good failed, without another attempt", async () => {
    const plugin = scripted({});
    const engine = fakeEngine([plugin]);
    const error = {
      code: "TERN_E_TASK_FAILED",
      kind: "user" as const,
      message: "it broke before the restart",
    };
    const result = await engine.run(
      compile(chain),
      {},
      {
        resume: (node) =>
          node === "b"
            ? { attempts: 4, userFailures: 4, systemFailures: 0, inFlight: false, failed: error }
            : undefined,
      },
    );
    expect(result.phase).toBe("failed");
    expect(result.error).toMatchObject({ message: "it broke before the restart", node: "b" });
    expect(plugin.ops("launch", "b")).toEqual([]);
    expect(plugin.ops("launch", "c")).toEqual([]);
  });
});

describe("engine: detach", () => {
  it("stops following an execution without aborting or finalizing its work, and emits nothing more", async () => {
    const plugin = scripted({ b: [{ do: "hang" }] });
    const engine = fakeEngine([plugin]);
    const seen: ExecutionEvent[] = [];
    const handle = engine.start(compile(chain), {}, { onEvent: (e) => seen.push(e) });
    await plugin.launched("b");
    const before = seen.length;
    handle.detach("lease lost");
    const result = await handle.result;
    expect(result.phase).toBe("aborted");
    expect(result.error).toMatchObject({
      code: "TERN_E_ABORTED",
      message: "lease lost",
      details: { detached: true },
    });
    expect(seen.length).toBe(before);
    expect(plugin.ops("abort")).toEqual([]);
    expect(plugin.ops("finalize", "b")).toEqual([]);
    expect(plugin.ops("launch", "c")).toEqual([]);
    // abort after detach is a no-op.
    await handle.abort("too late");
    expect(plugin.ops("abort")).toEqual([]);
  });

  it("detaches a launch plan node's child execution too, under an id derived from the parent", async () => {
    const plugin = scripted({ b: [{ do: "hang" }] });
    const engine = fakeEngine([plugin]);
    const inner = workflow({ name: "dur_inner", output: z.unknown() }, () => B({}, { id: "b" }));
    const lp = launchPlan(inner, { name: "dur_inner_lp" });
    const outer = workflow({ name: "dur_outer", output: z.unknown() }, () => lp({}, { id: "child" }));
    const ids: string[] = [];
    const launch = plugin.launch.bind(plugin);
    plugin.launch = async (ctx) => {
      ids.push(ctx.attempt.id);
      return launch(ctx);
    };
    const handle = engine.start(compile(outer), {}, { id: "xparent" });
    await plugin.launched("b");
    handle.detach("handing over");
    expect((await handle.result).phase).toBe("aborted");
    expect(plugin.ops("abort")).toEqual([]);
    // The same parent id gives the same child id, so its attempts' ids are stable too.
    const again = fakeEngine([scripted({})]).start(compile(outer), {}, { id: "xparent" });
    await again.result;
    const child = again.events.find((e) => e.childExecution)?.childExecution;
    expect(child).toMatch(/^xparent-c[0-9a-f]{10}$/);
    expect(ids).toEqual([`${child}-b-1`]);
  });
});
