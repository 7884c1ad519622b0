/**
 * The examples, run for real in this process. The datasets are generated with a
 * fixed seed (examples/data/generate.mjs), so the figures below are exact; they
 * were cross-checked with an independent script (Python's csv module and Decimal).
 *
 * Needs the built packages: `pnpm build` first.
 */
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import {
  compile,
  createEngine,
  ErrorCodes,
  file,
  isTernError,
  type LocalEngine,
  nodeDependencies,
  run,
  workflow,
} from "@tern/core";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { type DataQualityReport, dataQuality, parse, revenueStats } from "../data-quality.js";
import { hello } from "../hello.js";
import { type TrainingReport, trainModel } from "../ml-training.js";

const DATA = resolve(import.meta.dirname, "../data");
const ORDERS = join(DATA, "orders.csv");
const IRIS = join(DATA, "iris.csv");

const tmpDirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "tern-examples-"));
  tmpDirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
});

/** The node of a result by task name. */
function node(result: { nodes: { task: string; cached: boolean; phase: string }[] }, task: string) {
  const n = result.nodes.find((x) => x.task === task);
  if (!n) throw new Error(`no node runs task "${task}"`);
  return n;
}

describe("hello", () => {
  it("greets by name", async () => {
    const r = await run(hello, { name: "Ada" }, { workDir: tempDir(), catalog: "memory" });
    expect(r.phase).toBe("succeeded");
    expect(r.outputs).toBe("Hello, Ada!");
  });

  it("uses the default name", async () => {
    const r = await run(hello, {}, { workDir: tempDir(), catalog: "memory" });
    expect(r.outputs).toBe("Hello, world!");
  });
});

describe("data_quality", () => {
  it("cleans the shipped orders file and reports exact figures", async () => {
    const r = await run(dataQuality, { orders: file(ORDERS) }, { workDir: tempDir(), catalog: "memory" });
    expect(r.error).toBeUndefined();
    expect(r.phase).toBe("succeeded");
    const report = r.outputs as DataQualityReport;

    // Row counts after each step.
    expect(report.rows).toEqual({ read: 2000, afterDedupe: 1940, valid: 1772 });
    expect(report.duplicatesRemoved).toBe(60);

    // What was dropped, and why (each planted defect is counted under its own reason).
    expect(report.dropped.total).toBe(168);
    expect(report.dropped.byReason).toEqual({
      missing_value: 52,
      malformed_date: 26,
      unknown_country: 32,
      bad_quantity: 32,
      price_out_of_range: 26,
    });
    expect(report.invalidRatio).toBeCloseTo(168 / 1940, 12);
    // At most three examples per reason, each a real line of the file with that problem.
    const lines = readFileSync(ORDERS, "utf8").split("\n");
    for (const reason of Object.keys(report.dropped.byReason)) {
      expect(report.dropped.examples.filter((e) => e.reason === reason)).toHaveLength(3);
    }
    for (const e of report.dropped.examples) expect(lines[e.line - 1]).toContain(e.order_id ?? "");
    expect(report.dropped.examples[0]).toEqual({
      line: 8,
      order_id: "ORD-000007",
      reason: "missing_value",
      detail: "empty: country",
    });

    // Revenue: exact to the cent, highest first, and the parts add up to the total.
    expect(report.revenue.total).toBe(263268.6);
    expect(report.revenue.byCountry).toHaveLength(12);
    expect(report.revenue.byCountry[0]).toEqual({
      country: "US",
      orders: 392,
      units: 1006,
      revenue: 54608.27,
    });
    const cents = report.revenue.byCountry.reduce((s, c) => s + Math.round(c.revenue * 100), 0);
    expect(cents).toBe(26326860);
    expect(report.revenue.byCountry.reduce((s, c) => s + c.orders, 0)).toBe(1772);
    const revenues = report.revenue.byCountry.map((c) => c.revenue);
    expect(revenues).toEqual([...revenues].sort((a, b) => b - a));

    // Quantities.
    expect(report.quantity).toMatchObject({ min: 1, max: 25, mean: 2.63, median: 2, p90: 5 });
    expect(report.quantity.histogram).toEqual([
      { bucket: "1", count: 798 },
      { bucket: "2", count: 458 },
      { bucket: "3", count: 202 },
      { bucket: "4-5", count: 174 },
      { bucket: "6-10", count: 94 },
      { bucket: "11+", count: 46 },
    ]);

    // Dates: all of 2024 (a leap year).
    expect(report.dates).toMatchObject({ first: "2024-01-01", last: "2024-12-31", days: 366 });
    expect(report.dates.byMonth).toHaveLength(12);
    expect(report.dates.byMonth.reduce((s, m) => s + m.orders, 0)).toBe(1772);

    expect(r.nodes.map((n) => [n.task, n.phase])).toEqual([
      ["parse_orders", "succeeded"],
      ["dedupe_orders", "succeeded"],
      ["validate_orders", "succeeded"],
      ["quality_gate", "succeeded"],
      ["revenue_by_country", "succeeded"],
      ["quantity_stats", "succeeded"],
      ["date_stats", "succeeded"],
    ]);
  });

  it("accepts a file given as a plain literal, as the CLI passes it", async () => {
    const r = await run(
      dataQuality,
      { orders: { $tern: "file", path: ORDERS } },
      { workDir: tempDir(), catalog: "memory" },
    );
    expect(r.phase).toBe("succeeded");
    expect((r.outputs as DataQualityReport).rows.valid).toBe(1772);
  });

  it("refuses a value that is not a file", async () => {
    await expect(
      run(dataQuality, { orders: ORDERS }, { workDir: tempDir(), catalog: "memory" }),
    ).rejects.toMatchObject({
      code: ErrorCodes.INPUT_INVALID,
    });
  });

  describe("caching", () => {
    let local: LocalEngine;
    beforeEach(async () => {
      local = await createEngine({ workDir: tempDir(), catalog: "memory" });
    });
    afterEach(async () => {
      await local.close();
    });

    it("follows the data, not the file name", async () => {
      const first = await local.run(dataQuality, { orders: file(ORDERS) });
      expect(first.nodes.filter((n) => n.cached)).toEqual([]);

      // The same bytes under another name: every cached step is a hit.
      const copy = join(tempDir(), "orders-copy.csv");
      copyFileSync(ORDERS, copy);
      const second = await local.run(dataQuality, { orders: file(copy) });
      expect(second.outputs).toEqual(first.outputs);
      expect(node(second, "parse_orders").cached).toBe(false); // reads the file every time
      for (const t of [
        "dedupe_orders",
        "validate_orders",
        "revenue_by_country",
        "quantity_stats",
        "date_stats",
      ]) {
        expect(node(second, t).cached, t).toBe(true);
      }

      // Edit the file: drop its last 100 lines. Nothing downstream may come from the cache.
      const text = readFileSync(ORDERS, "utf8").trimEnd().split("\n");
      writeFileSync(copy, `${text.slice(0, -100).join("\n")}\n`);
      const third = await local.run(dataQuality, { orders: file(copy) });
      expect(third.phase).toBe("succeeded");
      expect(third.nodes.filter((n) => n.cached)).toEqual([]);
      expect((third.outputs as DataQualityReport).rows.read).toBe(1900);
    });
  });

  it("stops before the statistics when too many rows are invalid", async () => {
    const r = await run(
      dataQuality,
      { orders: file(ORDERS), maxInvalidRatio: 0.05 },
      { workDir: tempDir(), catalog: "memory" },
    );
    expect(r.phase).toBe("failed");
    expect(r.error?.node).toBe("quality_gate");
    expect(r.error?.message).toContain("168 of 1940 rows (8.7%) are invalid");
    // after(gate, …): the statistics never ran.
    for (const t of ["revenue_by_country", "quantity_stats", "date_stats"])
      expect(node(r, t).phase, t).toBe("skipped");
  });

  it("runs the three statistics independently of each other, after the gate", () => {
    const nodes = compile(dataQuality).spec.workflow.nodes;
    for (const id of ["revenue_by_country", "quantity_stats", "date_stats"]) {
      const n = nodes.find((x) => x.id === id)!;
      expect([...nodeDependencies(n)].sort(), id).toEqual(["quality_gate", "validate_orders"]);
    }
  });

  it("rejects raw rows where clean orders are expected, at compile time and at registration", () => {
    const miswired = workflow(
      { name: "miswired_quality", inputs: { orders: parse.inputSchemas.orders }, output: z.unknown() },
      ({ orders }) => {
        const parsed = parse({ orders });
        // Raw rows (nullable columns) are not orders: TypeScript refuses this line…
        // @ts-expect-error
        return revenueStats({ orders: parsed.rows });
      },
    );
    // …and so does Tern's compiler, from the serialized column types.
    let error: unknown;
    try {
      compile(miswired);
    } catch (e) {
      error = e;
    }
    expect(isTernError(error)).toBe(true);
    expect(error).toMatchObject({ code: ErrorCodes.TYPE_MISMATCH });
    // The message names the node, the input and the first column that does not fit.
    expect((error as Error).message).toContain('node "revenue_by_country", input "orders"');
    expect((error as Error).message).toContain(".order_id");
  });
});

describe("train_model", () => {
  it("trains a classifier that gets iris right", async () => {
    const r = await run(trainModel, { dataset: IRIS }, { workDir: tempDir(), catalog: "memory" });
    expect(r.error).toBeUndefined();
    const report = r.outputs as TrainingReport;
    expect(report.accuracy).toBeGreaterThan(0.9);
    expect(report.classes).toEqual(["setosa", "versicolor", "virginica"]);
    expect(report.epochs).toBe(300);
    expect(report.learningRate).toBe(0.5);
    expect(report.trainSize).toBe(105);
    expect(report.testSize).toBe(45);
    // 3×3, one row per actual class; the stratified split holds out 15 of each.
    expect(report.confusionMatrix).toHaveLength(3);
    expect(report.confusionMatrix.map((row) => row.reduce((a, b) => a + b, 0))).toEqual([15, 15, 15]);
    expect(report.confusionMatrix.flat().reduce((a, b) => a + b, 0)).toBe(report.testSize);
    // Accuracy is the diagonal over the total.
    const diagonal = report.confusionMatrix.reduce((s, row, i) => s + row[i], 0);
    expect(report.accuracy).toBeCloseTo(diagonal / report.testSize, 12);
    // setosa is linearly separable from the others: never confused.
    expect(report.confusionMatrix[0]).toEqual([15, 0, 0]);
    expect(report.finalLoss).toBeLessThan(0.3);
  });

  describe("caching", () => {
    let local: LocalEngine;
    beforeEach(async () => {
      local = await createEngine({ workDir: tempDir(), catalog: "memory" });
    });
    afterEach(async () => {
      await local.close();
    });

    it("reuses the trained model for the same inputs, and trains again when one changes", async () => {
      const first = await local.run(trainModel, { dataset: IRIS });
      expect(node(first, "train").cached).toBe(false);

      const again = await local.run(trainModel, { dataset: IRIS });
      expect(node(again, "train").cached).toBe(true);
      expect(again.outputs).toEqual(first.outputs);

      const slower = await local.run(trainModel, { dataset: IRIS, learningRate: 0.1 });
      expect(node(slower, "train").cached).toBe(false);
      const slowReport = slower.outputs as TrainingReport;
      expect(slowReport.learningRate).toBe(0.1);
      // A smaller step over the same epochs has not gone as far down.
      expect(slowReport.finalLoss).toBeGreaterThan((first.outputs as TrainingReport).finalLoss);

      // Another seed is another split: other training data, so no hit either.
      const reshuffled = await local.run(trainModel, { dataset: IRIS, seed: 7 });
      expect(node(reshuffled, "train").cached).toBe(false);
      expect((reshuffled.outputs as TrainingReport).accuracy).toBeGreaterThan(0.85);

      // The first configuration is still in the catalog.
      expect(node(await local.run(trainModel, { dataset: IRIS }), "train").cached).toBe(true);
    });
  });
});
