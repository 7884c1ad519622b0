/**
 * examples/control-flow.ts, run for real in this process with a signal provider standing
 * in for the person who reviews (the CLI's `--signal review=true`).
 *
 * Needs the built packages: `pnpm build` first.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createEngine, ErrorCodes, run, type SignalProvider, type SignalRequest } from "@tern/core";
import { afterAll, describe, expect, it } from "vitest";
import { type Outcome, tuneAndDeploy } from "../control-flow.js";

const IRIS = resolve(import.meta.dirname, "../data/iris.csv");

const tmpDirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "tern-control-flow-"));
  tmpDirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
});

/** A reviewer who answers every approval the same way, and remembers what was asked. */
function reviewer(approved: boolean) {
  const asked: SignalRequest[] = [];
  const signals: SignalProvider = async (req) => {
    asked.push(req);
    return approved ? { approved, by: "reviewer" } : { approved, by: "reviewer", reason: "not this week" };
  };
  return { asked, signals };
}

type Result = { candidates: { learningRate: number; epochs: number; accuracy: number }[]; outcome: Outcome };

describe("tune_and_deploy", () => {
  it("trains one model per distinct rate, scores them all, and deploys the best once approved", async () => {
    const dir = tempDir();
    const registry = join(dir, "models");
    const { asked, signals } = reviewer(true);
    const r = await run(
      tuneAndDeploy,
      { dataset: IRIS, rates: [0.5, 0.05, 1.5, 0.5], registry },
      { workDir: dir, catalog: "memory", signals },
    );
    expect(r.error).toBeUndefined();
    expect(r.phase).toBe("succeeded");
    const out = r.outputs as Result;

    // The dynamic sweep: duplicates dropped, one node per rate, smaller rates trained longer.
    expect(out.candidates.map((c) => [c.learningRate, c.epochs])).toEqual([
      [0.05, 600],
      [0.5, 150],
      [1.5, 150],
    ]);
    const sweepChildren = r.nodes.filter((n) => n.id.startsWith("sweep/")).map((n) => n.id);
    expect(sweepChildren.sort()).toEqual(["sweep/train_lr_0_05", "sweep/train_lr_0_5", "sweep/train_lr_1_5"]);
    expect(r.nodes.find((n) => n.id === "sweep")?.kind).toBe("dynamic");

    // The map scored every candidate.
    expect(r.nodes.find((n) => n.id === "score")?.items).toMatchObject({ total: 3, succeeded: 3, failed: 0 });
    // Seeded split, deterministic training: exact figures (of 45 test flowers).
    expect(out.candidates.map((c) => c.accuracy)).toEqual([42 / 45, 44 / 45, 44 / 45]);

    // The best one (the smaller rate on a tie) beat 0.9, was put up for review, approved and deployed.
    const best = out.candidates[1];
    expect(best.learningRate).toBe(0.5);
    expect(out.outcome).toMatchObject({
      action: "deployed",
      learningRate: best.learningRate,
      accuracy: best.accuracy,
    });
    expect(asked).toHaveLength(1);
    expect(asked[0]).toMatchObject({ node: "review", kind: "approve" });
    expect((asked[0].value as { learningRate: number }).learningRate).toBe(best.learningRate);
    const saved = JSON.parse(readFileSync(out.outcome.detail, "utf8"));
    expect(saved).toMatchObject({
      learningRate: best.learningRate,
      accuracy: best.accuracy,
      execution: r.id,
    });
    expect(readdirSync(registry)).toEqual([`iris-softmax-lr${best.learningRate}.json`]);

    const phase = (id: string) => r.nodes.find((n) => n.id === id)?.phase;
    expect([phase("review"), phase("deploy"), phase("keep_current")]).toEqual([
      "succeeded",
      "succeeded",
      "skipped",
    ]);
  });

  it("reports instead when the best model does not beat the threshold: nobody is asked", async () => {
    const dir = tempDir();
    const registry = join(dir, "models");
    const { asked, signals } = reviewer(true);
    const r = await run(
      tuneAndDeploy,
      { dataset: IRIS, rates: [0.05, 0.5], minAccuracy: 1, registry },
      { workDir: dir, catalog: "memory", signals },
    );
    expect(r.phase).toBe("succeeded");
    const out = r.outputs as Result;
    expect(out.outcome.action).toBe("kept-current");
    expect(out.outcome.detail).toMatch(/^best accuracy 0\.\d{3} does not beat 1: nothing deployed$/);
    expect(asked).toEqual([]);
    expect(existsSync(registry)).toBe(false);
    const phase = (id: string) => r.nodes.find((n) => n.id === id)?.phase;
    expect([phase("review"), phase("deploy"), phase("keep_current")]).toEqual([
      "skipped",
      "skipped",
      "succeeded",
    ]);
  });

  it("a rejected review fails the run and deploys nothing", async () => {
    const dir = tempDir();
    const registry = join(dir, "models");
    const { signals } = reviewer(false);
    const r = await run(
      tuneAndDeploy,
      { dataset: IRIS, rates: [0.5], registry },
      { workDir: dir, catalog: "memory", signals },
    );
    expect(r.phase).toBe("failed");
    expect(r.error).toMatchObject({ code: ErrorCodes.GATE_REJECTED, node: "review" });
    expect(r.error?.message).toBe('gate "review" was rejected by reviewer: not this week');
    expect(r.nodes.find((n) => n.id === "deploy")?.phase).toBe("skipped");
    expect(existsSync(registry)).toBe(false);
  });

  it("without anyone to ask, the gate says how to give the signal", async () => {
    const dir = tempDir();
    const r = await run(
      tuneAndDeploy,
      { dataset: IRIS, rates: [0.5], registry: join(dir, "models") },
      { workDir: dir, catalog: "memory" },
    );
    expect(r.phase).toBe("failed");
    expect(r.error).toMatchObject({ code: ErrorCodes.SIGNAL_MISSING, node: "review" });
    expect(r.nodes.find((n) => n.id === "review")?.error?.hint).toBe(
      "run again with --signal review=true (or =false to reject)",
    );
  });

  it("caches training: a second sweep with one more rate trains only that rate", async () => {
    const dir = tempDir();
    const local = await createEngine({ workDir: dir, catalog: "memory" });
    try {
      const inputs = { dataset: IRIS, minAccuracy: 1, registry: join(dir, "models") };
      const first = await local.run(tuneAndDeploy, { ...inputs, rates: [0.2, 0.5] });
      expect(first.phase).toBe("succeeded");
      const second = await local.run(tuneAndDeploy, { ...inputs, rates: [0.2, 0.5, 1] });
      expect(second.phase).toBe("succeeded");
      const trained = second.nodes.filter((n) => n.id.startsWith("sweep/train_lr_"));
      expect(trained.map((n) => [n.id, n.cached])).toEqual([
        ["sweep/train_lr_0_2", true],
        ["sweep/train_lr_0_5", true],
        ["sweep/train_lr_1", false],
      ]);
    } finally {
      await local.close();
    }
  });
});
