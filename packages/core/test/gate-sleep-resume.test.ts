/**
 * A sleep gate of a resumed execution sleeps only what is left of its duration, counted
 * from when the gate first started (under the engine that stopped), not the whole of it again.
 */
import { after, compile, createEngine, gate, type LocalEngine, task, workflow } from "@tern/core";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { cleanupTempDirs, tempDir } from "./helpers.js";

afterAll(cleanupTempDirs);
const engines: LocalEngine[] = [];
afterEach(async () => {
  await Promise.all(engines.splice(0).map((e) => e.close()));
});

const bump = task(
  { name: "gsr_bump", inputs: { x: z.number() }, output: z.number() },
  async ({ x }) => x + 1,
);
const napping = workflow({ name: "gsr_napping", inputs: { x: z.number() }, output: z.number() }, ({ x }) => {
  const nap = gate.sleep("1h", { name: "nap" });
  const b = bump({ x }, { id: "after_nap" });
  after(nap, b);
  return b;
});

describe("sleep gates on resume", () => {
  it("sleeps the rest of the duration from the gate's first start", async () => {
    const local = await createEngine({ workDir: tempDir(), backend: "inline" });
    engines.push(local);
    const { spec } = compile(napping);
    const hourAgoAlmost = Date.now() - 3_600_000 + 150;
    const t0 = Date.now();
    const handle = local.engine.start(
      spec,
      { x: 1 },
      {
        resume: (node) =>
          node === "nap"
            ? { attempts: 0, userFailures: 0, systemFailures: 0, inFlight: false, startedAt: hourAgoAlmost }
            : undefined,
      },
    );
    const result = await handle.result;
    expect(result.phase).toBe("succeeded");
    expect(result.outputs).toBe(2);
    // Far less than the hour: about the 150 ms that were left (the test timeout is 30 s).
    expect(Date.now() - t0).toBeLessThan(20_000);
    expect(Date.now()).toBeGreaterThanOrEqual(hourAgoAlmost + 3_600_000);
  });

  it("a gate that started long enough ago ends at once", async () => {
    const local = await createEngine({ workDir: tempDir(), backend: "inline" });
    engines.push(local);
    const { spec } = compile(napping);
    const handle = local.engine.start(
      spec,
      { x: 5 },
      {
        resume: (node) =>
          node === "nap"
            ? {
                attempts: 0,
                userFailures: 0,
                systemFailures: 0,
                inFlight: false,
                startedAt: Date.now() - 7_200_000,
              }
            : undefined,
      },
    );
    const result = await handle.result;
    expect(result).toMatchObject({ phase: "succeeded", outputs: 6 });
  });
});
