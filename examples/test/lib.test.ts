/**
 * Unit tests of the examples' domain logic (examples/lib): plain functions, no Tern.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { CsvError, parseCsv, readCsv } from "../lib/csv.js";
import { type FEATURES, parseIris } from "../lib/iris.js";
import {
  accuracy,
  confusionMatrix,
  fitSoftmax,
  fitStandardizer,
  lossAndGradient,
  mulberry32,
  predict,
  type SoftmaxModel,
  shuffle,
  softmax,
  standardize,
  stratifiedSplit,
  type TrainingState,
} from "../lib/ml.js";
import {
  checkOrder,
  dedupe,
  isIsoDate,
  type Order,
  parseOrders,
  type RawOrder,
  validateOrders,
} from "../lib/orders.js";
import { dateRange, quantile, quantityDistribution, revenueByCountry } from "../lib/stats.js";

const fields = (text: string) => parseCsv(text).map((r) => r.fields);

describe("csv", () => {
  it("splits plain records", () => {
    expect(fields("a,b,c\n1,2,3\n")).toEqual([
      ["a", "b", "c"],
      ["1", "2", "3"],
    ]);
  });

  it("keeps commas, doubled quotes and line breaks inside quoted fields", () => {
    expect(fields('name,note\n"Cable, USB-C","a ""quoted"" word"\n"two\nlines",x\n')).toEqual([
      ["name", "note"],
      ["Cable, USB-C", 'a "quoted" word'],
      ["two\nlines", "x"],
    ]);
  });

  it("reads CRLF and lone-CR line endings, and a last line without one", () => {
    expect(fields("a,b\r\n1,2\r\n3,4")).toEqual([
      ["a", "b"],
      ["1", "2"],
      ["3", "4"],
    ]);
    expect(fields("a\rb\r")).toEqual([["a"], ["b"]]);
    // A CRLF inside quotes is data.
    expect(fields('"x\r\ny",z\r\n')).toEqual([["x\r\ny", "z"]]);
  });

  it("keeps empty fields, skips blank lines and a byte-order mark", () => {
    expect(fields('\uFEFFa,,c\n\n,\n"",x\n\r\n')).toEqual([
      ["a", "", "c"],
      ["", ""],
      ["", "x"],
    ]);
  });

  it("numbers records by the line they start on", () => {
    const records = parseCsv('h\n"multi\nline"\n\nlast\n');
    expect(records.map((r) => r.line)).toEqual([1, 2, 5]);
  });

  it("rejects broken quoting, naming the line", () => {
    expect(() => parseCsv('a\n"never closed\n')).toThrow(new CsvError("a quoted field is never closed", 2));
    expect(() => parseCsv('a\nb\n"x"y,1\n')).toThrow(/^line 3: unexpected "y" after a closing quote$/);
    expect(() => parseCsv('ab"c\n')).toThrow(/line 1: a quote inside an unquoted field/);
  });

  it("maps rows to header names and insists on the shape", () => {
    expect(readCsv(" x ,y\n1,2\n").rows).toEqual([{ line: 2, values: { x: "1", y: "2" } }]);
    expect(() => readCsv("x,y\n1,2\n3\n")).toThrow(/^line 3: expected 2 fields, found 1$/);
    expect(() => readCsv("x,y\n1,2\n", ["x", "z"])).toThrow(/missing column\(s\): z/);
    expect(() => readCsv("")).toThrow(/empty/);
  });
});

// ---------------------------------------------------------------------------

const HEADER = "order_id,customer_id,order_date,country,product,quantity,unit_price";

const raw = (over: Partial<RawOrder> = {}): RawOrder => ({
  line: 2,
  order_id: "ORD-1",
  customer_id: "C0001",
  order_date: "2024-03-01",
  country: "DE",
  product: "Desk lamp",
  quantity: 2,
  unit_price: 39.9,
  ...over,
});

describe("orders", () => {
  it("parses rows: trims text, empty cells become null, only plain decimals are numbers", () => {
    const rows = parseOrders(
      `${HEADER}\n ORD-1 , C1 ,2024-01-02, DE ,"Cable, USB-C",3, 9.99 \nORD-2,,2024-01-03,FR,Mug,,0x1f\n`,
    );
    expect(rows).toEqual([
      {
        line: 2,
        order_id: "ORD-1",
        customer_id: "C1",
        order_date: "2024-01-02",
        country: "DE",
        product: "Cable, USB-C",
        quantity: 3,
        unit_price: 9.99,
      },
      {
        line: 3,
        order_id: "ORD-2",
        customer_id: null,
        order_date: "2024-01-03",
        country: "FR",
        product: "Mug",
        quantity: null,
        unit_price: null,
      },
    ]);
    expect(parseOrders(`${HEADER}\na,b,c,d,e,-2,.5\n`)[0]).toMatchObject({ quantity: -2, unit_price: 0.5 });
  });

  it("dedupes exact duplicates only, keeping the first, whatever their line", () => {
    const a = raw({ line: 2 });
    const aAgain = raw({ line: 9 });
    const b = raw({ line: 3, quantity: 3 });
    expect(dedupe([a, b, aAgain])).toEqual([a, b]);
    expect(dedupe([a, raw({ line: 4, country: null })])).toHaveLength(2);
  });

  it("knows real calendar dates", () => {
    expect(isIsoDate("2024-02-29")).toBe(true);
    expect(isIsoDate("2023-02-29")).toBe(false);
    expect(isIsoDate("2024-02-30")).toBe(false);
    expect(isIsoDate("2024-13-05")).toBe(false);
    expect(isIsoDate("2024-00-10")).toBe(false);
    expect(isIsoDate("05/03/2024")).toBe(false);
    expect(isIsoDate("2024-3-5")).toBe(false);
  });

  it("gives each bad row the reason of its first failed check", () => {
    expect(checkOrder(raw())).toEqual({
      ok: true,
      order: {
        order_id: "ORD-1",
        customer_id: "C0001",
        order_date: "2024-03-01",
        country: "DE",
        product: "Desk lamp",
        quantity: 2,
        unit_price: 39.9,
      },
    });
    const reason = (r: RawOrder) => {
      const c = checkOrder(r);
      return c.ok ? "ok" : `${c.reason}: ${c.detail}`;
    };
    expect(reason(raw({ customer_id: null, unit_price: null }))).toBe(
      "missing_value: empty: customer_id, unit_price",
    );
    // Missing wins over a malformed date; a date is checked before the country.
    expect(reason(raw({ order_date: "yesterday", quantity: null }))).toMatch(/^missing_value/);
    expect(reason(raw({ order_date: "31/12/2024", country: "XX" }))).toBe(
      'malformed_date: order_date "31/12/2024"',
    );
    expect(reason(raw({ country: "UK" }))).toBe('unknown_country: country "UK"');
    expect(reason(raw({ quantity: 0 }))).toBe("bad_quantity: quantity 0");
    expect(reason(raw({ quantity: 1.5 }))).toBe("bad_quantity: quantity 1.5");
    expect(reason(raw({ unit_price: 0 }))).toMatch(/^price_out_of_range/);
    expect(reason(raw({ unit_price: 5000 }))).toBe("ok");
    expect(reason(raw({ unit_price: 5000.01 }))).toMatch(/^price_out_of_range/);
  });

  it("reports drops per reason, with a few examples each", () => {
    const rows = [
      raw({ line: 2 }),
      ...[3, 4, 5, 6].map((line) => raw({ line, order_id: `Q${line}`, quantity: -1 })),
      raw({ line: 7, country: "ZZ" }),
    ];
    const { valid, dropped } = validateOrders(rows, 2);
    expect(valid).toHaveLength(1);
    expect(dropped.total).toBe(5);
    expect(dropped.byReason).toEqual({
      missing_value: 0,
      malformed_date: 0,
      unknown_country: 1,
      bad_quantity: 4,
      price_out_of_range: 0,
    });
    expect(dropped.examples.map((e) => [e.line, e.reason])).toEqual([
      [3, "bad_quantity"],
      [4, "bad_quantity"],
      [7, "unknown_country"],
    ]);
  });
});

// ---------------------------------------------------------------------------

const order = (over: Partial<Order>): Order => ({
  order_id: "O",
  customer_id: "C",
  order_date: "2024-01-01",
  country: "DE",
  product: "P",
  quantity: 1,
  unit_price: 1,
  ...over,
});

describe("stats", () => {
  it("interpolates quantiles between ranks", () => {
    expect(quantile([1, 2, 3, 4], 0.5)).toBe(2.5);
    expect(quantile([1, 2, 3, 4], 0)).toBe(1);
    expect(quantile([1, 2, 3, 4], 1)).toBe(4);
    expect(quantile([10, 20, 30, 40, 50], 0.9)).toBe(46);
    expect(() => quantile([], 0.5)).toThrow(RangeError);
  });

  it("sums revenue in cents, so totals are exact", () => {
    // 0.1 + 0.2 !== 0.3 in floating point; ten orders of 3 × 0.1 must still total 3.00.
    const orders = Array.from({ length: 10 }, () => order({ country: "FR", quantity: 3, unit_price: 0.1 }));
    orders.push(
      order({ country: "DE", quantity: 2, unit_price: 19.99 }),
      order({ country: "DE", unit_price: 0.01 }),
    );
    expect(revenueByCountry(orders)).toEqual({
      total: 42.99,
      byCountry: [
        { country: "DE", orders: 2, units: 3, revenue: 39.99 },
        { country: "FR", orders: 10, units: 30, revenue: 3 },
      ],
    });
  });

  it("describes quantities", () => {
    const q = quantityDistribution([1, 1, 2, 3, 4, 7, 12].map((quantity) => order({ quantity })));
    expect(q).toEqual({
      min: 1,
      max: 12,
      mean: 4.29,
      median: 3,
      p90: 9, // rank 5.4 of 0..6: 7 + 0.4 × (12 − 7)
      histogram: [
        { bucket: "1", count: 2 },
        { bucket: "2", count: 1 },
        { bucket: "3", count: 1 },
        { bucket: "4-5", count: 1 },
        { bucket: "6-10", count: 1 },
        { bucket: "11+", count: 1 },
      ],
    });
  });

  it("counts calendar days inclusively, across a leap day", () => {
    const d = dateRange(
      ["2024-03-01", "2024-02-28", "2024-02-29", "2024-03-01"].map((order_date) => order({ order_date })),
    );
    expect(d).toEqual({
      first: "2024-02-28",
      last: "2024-03-01",
      days: 3,
      byMonth: [
        { month: "2024-02", orders: 2 },
        { month: "2024-03", orders: 2 },
      ],
    });
    expect(() => dateRange([])).toThrow(RangeError);
  });
});

// ---------------------------------------------------------------------------

describe("iris", () => {
  it("reads the shipped dataset: 150 rows, 50 of each species", () => {
    const rows = parseIris(readFileSync(resolve(import.meta.dirname, "../data/iris.csv"), "utf8"));
    expect(rows).toHaveLength(150);
    expect(rows[0]).toEqual({
      sepal_length: 5.1,
      sepal_width: 3.5,
      petal_length: 1.4,
      petal_width: 0.2,
      species: "setosa",
    });
    expect(rows[149]).toEqual({
      sepal_length: 5.9,
      sepal_width: 3,
      petal_length: 5.1,
      petal_width: 1.8,
      species: "virginica",
    });
    for (const s of ["setosa", "versicolor", "virginica"])
      expect(rows.filter((r) => r.species === s)).toHaveLength(50);
    // Well-known column means of the UCI version (setosa sepal width 3.418 there; 3.428 in Fisher's paper).
    const mean = (f: (typeof FEATURES)[number], s: string) => {
      const xs = rows.filter((r) => r.species === s).map((r) => r[f]);
      return xs.reduce((a, b) => a + b, 0) / xs.length;
    };
    expect(mean("sepal_width", "setosa")).toBeCloseTo(3.418, 10);
    expect(mean("petal_length", "virginica")).toBeCloseTo(5.552, 10);
  });

  it("refuses a measurement that is not a number", () => {
    expect(() =>
      parseIris("sepal_length,sepal_width,petal_length,petal_width,species\n5.1,,1.4,0.2,setosa\n"),
    ).toThrow(/line 2: sepal_width is not a number/);
  });
});

// ---------------------------------------------------------------------------

describe("ml", () => {
  it("draws the same numbers from the same seed", () => {
    const a = mulberry32(42);
    const b = mulberry32(42);
    const xs = Array.from({ length: 1000 }, () => a());
    expect(Array.from({ length: 1000 }, () => b())).toEqual(xs);
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    expect(mulberry32(43)()).not.toBe(xs[0]);
  });

  it("shuffles into a permutation", () => {
    const items = Array.from({ length: 50 }, (_, i) => i);
    const s = shuffle(items, mulberry32(1));
    expect(s).not.toEqual(items);
    expect([...s].sort((x, y) => x - y)).toEqual(items);
  });

  it("splits by class, disjointly and reproducibly", () => {
    const items = [
      ...Array.from({ length: 30 }, (_, i) => `a${i}`),
      ...Array.from({ length: 10 }, (_, i) => `b${i}`),
    ];
    const label = (s: string) => s[0];
    const { train, test } = stratifiedSplit(items, label, 0.3, 7);
    expect(test.filter((s) => label(s) === "a")).toHaveLength(9);
    expect(test.filter((s) => label(s) === "b")).toHaveLength(3);
    expect(train).toHaveLength(28);
    expect(new Set([...train, ...test]).size).toBe(40);
    expect(stratifiedSplit(items, label, 0.3, 7)).toEqual({ train, test });
    expect(stratifiedSplit(items, label, 0.3, 8).test).not.toEqual(test);
    expect(() => stratifiedSplit(items, label, 1, 7)).toThrow(RangeError);
  });

  it("standardizes with the training statistics", () => {
    const x = [
      [1, 10, 5],
      [2, 20, 5],
      [3, 30, 5],
    ];
    const s = fitStandardizer(x);
    expect(s.mean).toEqual([2, 20, 5]);
    expect(s.std[0]).toBeCloseTo(Math.sqrt(2 / 3), 12);
    expect(s.std[2]).toBe(1); // constant feature: left as is, no division by zero
    const z = standardize(x, s);
    expect(z.map((r) => r[0]).reduce((a, b) => a + b, 0)).toBeCloseTo(0, 12);
    expect(z.map((r) => r[0] ** 2).reduce((a, b) => a + b, 0) / 3).toBeCloseTo(1, 12);
    expect(z.map((r) => r[2])).toEqual([0, 0, 0]);
    expect(standardize([[4, 20, 5]], s)[0][1]).toBe(0);
  });

  it("computes a softmax that sums to one, even for huge logits", () => {
    const p = softmax([1, 2, 3]);
    expect(p.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 15);
    expect(p[2] / p[1]).toBeCloseTo(Math.E, 12);
    expect(softmax([1000, 1000])).toEqual([0.5, 0.5]);
  });

  it("has the gradient of its loss (checked against finite differences)", () => {
    const m: SoftmaxModel = {
      weights: [
        [0.2, -0.1],
        [-0.3, 0.4],
        [0.05, 0.1],
      ],
      bias: [0.1, -0.2, 0],
    };
    const x = [
      [1, 2],
      [-1, 0.5],
      [0.3, -1.2],
    ];
    const y = [0, 2, 1];
    const l2 = 0.1;
    const { gradWeights, gradBias } = lossAndGradient(m, x, y, l2);
    const h = 1e-6;
    const lossAt = (mm: SoftmaxModel) => lossAndGradient(mm, x, y, l2).loss;
    for (let k = 0; k < 3; k++) {
      for (let j = 0; j < 2; j++) {
        const plus = structuredClone(m);
        const minus = structuredClone(m);
        plus.weights[k][j] += h;
        minus.weights[k][j] -= h;
        expect(gradWeights[k][j]).toBeCloseTo((lossAt(plus) - lossAt(minus)) / (2 * h), 7);
      }
      const plus = structuredClone(m);
      const minus = structuredClone(m);
      plus.bias[k] += h;
      minus.bias[k] -= h;
      expect(gradBias[k]).toBeCloseTo((lossAt(plus) - lossAt(minus)) / (2 * h), 7);
    }
    // At the zero model every class has probability 1/3: the loss is ln 3.
    expect(lossAndGradient({ weights: [[0], [0], [0]], bias: [0, 0, 0] }, [[1]], [0]).loss).toBeCloseTo(
      Math.log(3),
      12,
    );
  });

  // Two well-separated blobs: class 0 around (-2, -2), class 1 around (2, 2).
  const rng = mulberry32(3);
  const blobs = Array.from({ length: 40 }, (_, i) => {
    const c = i % 2;
    return { x: [(c ? 2 : -2) + rng() - 0.5, (c ? 2 : -2) + rng() - 0.5], y: c };
  });
  const X = blobs.map((b) => b.x);
  const Y = blobs.map((b) => b.y);

  it("learns: the loss falls every epoch and the blobs are told apart", async () => {
    const seen: number[] = [];
    const s = await fitSoftmax(X, Y, 2, {
      epochs: 50,
      learningRate: 0.5,
      onEpoch: (st) => void seen.push(st.epoch),
    });
    expect(seen).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    expect(s.epoch).toBe(50);
    expect(s.losses).toHaveLength(50);
    expect(s.losses[0]).toBeCloseTo(Math.log(2), 12);
    for (let i = 1; i < s.losses.length; i++) expect(s.losses[i]).toBeLessThan(s.losses[i - 1]);
    expect(
      accuracy(
        Y,
        X.map((x) => predict(s.model, x)),
      ),
    ).toBe(1);
  });

  it("resumes from a checkpoint to exactly the model it would have reached anyway", async () => {
    const opts = { epochs: 60, learningRate: 0.3, l2: 0.01 };
    const straight = await fitSoftmax(X, Y, 2, opts);

    // Interrupt after epoch 25, keeping the state as a checkpoint would: through JSON.
    let checkpoint = "";
    await expect(
      fitSoftmax(X, Y, 2, {
        ...opts,
        onEpoch: (st) => {
          if (st.epoch === 25) checkpoint = JSON.stringify(st);
          if (st.epoch === 30) throw new Error("node evicted");
        },
      }),
    ).rejects.toThrow("node evicted");
    const resumeFrom = JSON.parse(checkpoint) as TrainingState;
    expect(resumeFrom.epoch).toBe(25);

    const epochsRun: number[] = [];
    const resumed = await fitSoftmax(X, Y, 2, {
      ...opts,
      resumeFrom,
      onEpoch: (st) => void epochsRun.push(st.epoch),
    });
    expect(epochsRun[0]).toBe(26);
    expect(epochsRun).toHaveLength(35);
    expect(resumed).toEqual(straight);
  });

  it("scores predictions", () => {
    const actual = [0, 0, 1, 1, 2, 2];
    const predicted = [0, 1, 1, 1, 2, 0];
    expect(accuracy(actual, predicted)).toBeCloseTo(4 / 6, 15);
    expect(confusionMatrix(actual, predicted, 3)).toEqual([
      [1, 1, 0],
      [0, 2, 0],
      [1, 0, 1],
    ]);
  });
});
