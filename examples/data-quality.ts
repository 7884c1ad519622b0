/**
 * Data quality: clean a messy CSV export of orders and report what was removed and why.
 *
 *   pnpm tern run examples/data-quality.ts data_quality --orders examples/data/orders.csv
 *
 * What it shows:
 * - a file input (`t.file({ format: "csv" })`) and typed dataframes (`t.dataframe({ columns })`)
 *   passed between tasks by reference, through blob storage;
 * - object outputs used field by field: `validated.valid`, `validated.dropped.total`;
 * - independent statistics (revenue, quantities, dates) that run in parallel, because
 *   nothing in the graph orders them;
 * - `cache: true` on the steps worth caching; their inputs are content-addressed
 *   dataframes, so an unchanged file gives cache hits and an edited one does not;
 * - `after()` for an ordering-only dependency: statistics wait for the quality gate.
 *
 * The cleaning rules themselves are plain functions in lib/orders.ts and lib/stats.ts.
 */
import { readFile } from "node:fs/promises";
import { after, dataframe, readDataFrame, t, task, workflow } from "@tern/core";
import { z } from "zod";
import {
  DropReportSchema,
  dedupe,
  OrderSchema,
  parseOrders,
  RawOrderSchema,
  validateOrders,
} from "./lib/orders.js";
import {
  DateStatsSchema,
  dateRange,
  QuantityStatsSchema,
  quantityDistribution,
  RevenueReportSchema,
  revenueByCountry,
} from "./lib/stats.js";

/** Rows as read from the file: nothing checked yet, so every column may be null. */
const RawOrders = t.dataframe({ columns: RawOrderSchema.shape });
/** Rows that passed every check. A different type: TypeScript won't let raw rows reach the statistics. */
const Orders = t.dataframe({ columns: OrderSchema.shape });

const RowCount = z.number().int().nonnegative();

// ---------------------------------------------------------------------------
// Tasks: thin wrappers that read inputs, call the domain functions and return typed outputs.

/**
 * Not cached, on purpose: a file given to a workflow is known by its path, so a cached
 * parse could miss an edit to the file. Every step after this one takes a dataframe,
 * stored under a digest of its rows, so their cache keys follow the data itself.
 */
export const parse = task(
  {
    name: "parse_orders",
    description: "Read the CSV into typed rows (text trimmed, empty cells null).",
    inputs: { orders: t.file({ format: "csv" }) },
    output: z.object({ rows: RawOrders, count: RowCount }),
  },
  async ({ orders }, ctx) => {
    // Inside a task, a file input always has a local `path` (downloaded first if remote).
    const rows = parseOrders(await readFile(orders.path!, "utf8"));
    ctx.logger.info(`parsed ${rows.length} rows`);
    return { rows: dataframe(rows), count: rows.length };
  },
);

export const removeDuplicates = task(
  {
    name: "dedupe_orders",
    description: "Drop exact duplicate rows, keeping the first.",
    inputs: { rows: RawOrders },
    output: z.object({ rows: RawOrders, count: RowCount, removed: RowCount }),
    cache: true,
  },
  async ({ rows }) => {
    const all = await readDataFrame(rows);
    const unique = dedupe(all);
    return { rows: dataframe(unique), count: unique.length, removed: all.length - unique.length };
  },
);

export const validate = task(
  {
    name: "validate_orders",
    description: "Keep rows that pass every check; report the others with a reason.",
    inputs: { rows: RawOrders },
    output: z.object({ valid: Orders, count: RowCount, dropped: DropReportSchema }),
    cache: true,
  },
  async ({ rows }) => {
    const { valid, dropped } = validateOrders(await readDataFrame(rows));
    return { valid: dataframe(valid), count: valid.length, dropped };
  },
);

/**
 * Stop here if too much of the file is bad: statistics over a badly broken export
 * would look plausible and be wrong. It fails the task (and so the execution)
 * rather than returning `false`, so nothing downstream can run by mistake.
 */
export const qualityGate = task(
  {
    name: "quality_gate",
    inputs: { checked: RowCount, dropped: RowCount, maxInvalidRatio: z.number().min(0).max(1) },
    output: z.object({ invalidRatio: z.number() }),
  },
  ({ checked, dropped, maxInvalidRatio }) => {
    const invalidRatio = checked === 0 ? 1 : dropped / checked;
    if (invalidRatio > maxInvalidRatio) {
      throw new Error(
        `${dropped} of ${checked} rows (${(invalidRatio * 100).toFixed(1)}%) are invalid, ` +
          `more than the ${(maxInvalidRatio * 100).toFixed(1)}% allowed`,
      );
    }
    return { invalidRatio };
  },
);

export const revenueStats = task(
  { name: "revenue_by_country", inputs: { orders: Orders }, output: RevenueReportSchema, cache: true },
  async ({ orders }) => revenueByCountry(await readDataFrame(orders)),
);

export const quantityStats = task(
  { name: "quantity_stats", inputs: { orders: Orders }, output: QuantityStatsSchema, cache: true },
  async ({ orders }) => quantityDistribution(await readDataFrame(orders)),
);

export const dateStats = task(
  { name: "date_stats", inputs: { orders: Orders }, output: DateStatsSchema, cache: true },
  async ({ orders }) => dateRange(await readDataFrame(orders)),
);

// ---------------------------------------------------------------------------
// The workflow

export const DataQualityReportSchema = z.object({
  /** Row counts after each step. */
  rows: z.object({ read: RowCount, afterDedupe: RowCount, valid: RowCount }),
  duplicatesRemoved: RowCount,
  dropped: DropReportSchema,
  /** Dropped rows / rows checked (after dedupe). */
  invalidRatio: z.number(),
  revenue: RevenueReportSchema,
  quantity: QuantityStatsSchema,
  dates: DateStatsSchema,
});
export type DataQualityReport = z.infer<typeof DataQualityReportSchema>;

export const dataQuality = workflow(
  {
    name: "data_quality",
    description: "Clean an orders CSV and report on it.",
    inputs: {
      orders: t.file({ format: "csv" }).describe("the orders export to check"),
      maxInvalidRatio: z
        .number()
        .min(0)
        .max(1)
        .default(0.2)
        .describe("fail when more than this share of the deduplicated rows is invalid"),
    },
    output: DataQualityReportSchema,
  },
  // This body runs once, to build the graph: `parsed`, `deduped`… are handles to
  // future outputs, not values. Tern runs each task as soon as its inputs exist.
  ({ orders, maxInvalidRatio }) => {
    const parsed = parse({ orders });
    const deduped = removeDuplicates({ rows: parsed.rows });
    const validated = validate({ rows: deduped.rows });
    const gate = qualityGate({ checked: deduped.count, dropped: validated.dropped.total, maxInvalidRatio });

    // Three independent reads of the clean rows: no edges between them, so they run in parallel.
    const revenue = revenueStats({ orders: validated.valid });
    const quantity = quantityStats({ orders: validated.valid });
    const dates = dateStats({ orders: validated.valid });
    // They need no data from the gate, only its verdict: wait for it to pass.
    after(gate, revenue, quantity, dates);

    // The output is assembled from fields of several nodes' outputs.
    return {
      rows: { read: parsed.count, afterDedupe: deduped.count, valid: validated.count },
      duplicatesRemoved: deduped.removed,
      dropped: validated.dropped,
      invalidRatio: gate.invalidRatio,
      revenue,
      quantity,
      dates,
    };
  },
);
