/**
 * Domain logic of the data-quality example: what an order is, how a CSV line
 * becomes one, and why a row is rejected. Plain functions over plain data, so
 * they are tested without Tern; the tasks in `../data-quality.ts` only call them.
 */
import { z } from "zod";
import { readCsv } from "./csv.js";

export const COLUMNS = [
  "order_id",
  "customer_id",
  "order_date",
  "country",
  "product",
  "quantity",
  "unit_price",
] as const;

/** ISO 3166 codes of the countries the shop sells to. */
export const COUNTRIES = ["AU", "CA", "DE", "ES", "FR", "GB", "IT", "JP", "NL", "PL", "SE", "US"] as const;
export type Country = (typeof COUNTRIES)[number];

/** Highest believable unit price; anything above is a typo (a missing decimal point, say). */
export const MAX_UNIT_PRICE = 5000;

/**
 * A row as read: text trimmed, empty cells are `null`, numbers parsed where they
 * look like numbers (anything else is `null` too). Nothing is judged yet.
 */
export const RawOrderSchema = z.object({
  /** Line of the CSV file, for reports a person can check. */
  line: z.number().int(),
  order_id: z.string().nullable(),
  customer_id: z.string().nullable(),
  order_date: z.string().nullable(),
  country: z.string().nullable(),
  product: z.string().nullable(),
  quantity: z.number().nullable(),
  unit_price: z.number().nullable(),
});
export type RawOrder = z.infer<typeof RawOrderSchema>;

/** A row that passed every check. */
export const OrderSchema = z.object({
  order_id: z.string(),
  customer_id: z.string(),
  /** Calendar date, `YYYY-MM-DD`. */
  order_date: z.string().regex(/^\d{4}-\d{2}-\d{2}$/),
  country: z.enum(COUNTRIES),
  product: z.string(),
  quantity: z.number().int().positive(),
  unit_price: z.number().positive().max(MAX_UNIT_PRICE),
});
export type Order = z.infer<typeof OrderSchema>;

/** Why a row was dropped. Checks run in this order and a row is counted under the first one it fails. */
export const DROP_REASONS = [
  "missing_value",
  "malformed_date",
  "unknown_country",
  "bad_quantity",
  "price_out_of_range",
] as const;
export type DropReason = (typeof DROP_REASONS)[number];

export const DroppedRowSchema = z.object({
  line: z.number().int(),
  order_id: z.string().nullable(),
  reason: z.enum(DROP_REASONS),
  detail: z.string(),
});
export type DroppedRow = z.infer<typeof DroppedRowSchema>;

export const DropReportSchema = z.object({
  total: z.number().int(),
  /** Rows dropped per reason; sums to `total`. */
  byReason: z.record(z.enum(DROP_REASONS), z.number().int()),
  /** The first few rows of each reason, to eyeball. */
  examples: z.array(DroppedRowSchema),
});
export type DropReport = z.infer<typeof DropReportSchema>;

// ---------------------------------------------------------------------------
// Parsing

function text(v: string): string | null {
  const s = v.trim();
  return s === "" ? null : s;
}

function num(v: string): number | null {
  const s = v.trim();
  // Number("") is 0 and Number("0x1f") is 31: accept plain decimals only.
  if (!/^[+-]?(\d+\.?\d*|\.\d+)$/.test(s)) return null;
  return Number(s);
}

/** Parse orders CSV text into raw rows. Throws a `CsvError` if the file itself is broken. */
export function parseOrders(csv: string): RawOrder[] {
  const { rows } = readCsv(csv, COLUMNS);
  return rows.map(({ line, values: v }) => ({
    line,
    order_id: text(v.order_id),
    customer_id: text(v.customer_id),
    order_date: text(v.order_date),
    country: text(v.country),
    product: text(v.product),
    quantity: num(v.quantity),
    unit_price: num(v.unit_price),
  }));
}

// ---------------------------------------------------------------------------
// Cleaning

/**
 * Drop exact duplicates (every column equal; the line number does not count),
 * keeping the first occurrence.
 */
export function dedupe(rows: readonly RawOrder[]): RawOrder[] {
  const seen = new Set<string>();
  return rows.filter((r) => {
    const key = JSON.stringify(COLUMNS.map((c) => r[c])); // COLUMNS leaves out `line`
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** True for a real calendar date written `YYYY-MM-DD` (so not 2024-02-30). */
export function isIsoDate(s: string): boolean {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(s);
  if (!m) return false;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const date = new Date(Date.UTC(y, mo - 1, d));
  // Date.UTC rolls 2024-02-30 over to March 1st: a round trip catches it.
  return date.getUTCFullYear() === y && date.getUTCMonth() === mo - 1 && date.getUTCDate() === d;
}

const isCountry = (s: string): s is Country => (COUNTRIES as readonly string[]).includes(s);

export type Checked = { ok: true; order: Order } | { ok: false; reason: DropReason; detail: string };

const drop = (reason: DropReason, detail: string): Checked => ({ ok: false, reason, detail });

/** Check one row; the first failed check decides the reason. */
export function checkOrder(r: RawOrder): Checked {
  const { order_id, customer_id, order_date, country, product, quantity, unit_price } = r;
  if (
    order_id === null ||
    customer_id === null ||
    order_date === null ||
    country === null ||
    product === null ||
    quantity === null ||
    unit_price === null
  ) {
    return drop("missing_value", `empty: ${COLUMNS.filter((c) => r[c] === null).join(", ")}`);
  }
  // From here on TypeScript knows every field is non-null.
  if (!isIsoDate(order_date)) return drop("malformed_date", `order_date "${order_date}"`);
  if (!isCountry(country)) return drop("unknown_country", `country "${country}"`);
  if (!Number.isInteger(quantity) || quantity < 1) return drop("bad_quantity", `quantity ${quantity}`);
  if (!(unit_price > 0 && unit_price <= MAX_UNIT_PRICE)) {
    return drop("price_out_of_range", `unit_price ${unit_price} not in (0, ${MAX_UNIT_PRICE}]`);
  }
  return { ok: true, order: { order_id, customer_id, order_date, country, product, quantity, unit_price } };
}

/** Split rows into valid orders and a report of what was dropped and why. */
export function validateOrders(
  rows: readonly RawOrder[],
  examplesPerReason = 3,
): { valid: Order[]; dropped: DropReport } {
  const valid: Order[] = [];
  const byReason = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<DropReason, number>;
  const examples: DroppedRow[] = [];
  for (const row of rows) {
    const c = checkOrder(row);
    if (c.ok) {
      valid.push(c.order);
      continue;
    }
    if (byReason[c.reason]++ < examplesPerReason) {
      examples.push({ line: row.line, order_id: row.order_id, reason: c.reason, detail: c.detail });
    }
  }
  return { valid, dropped: { total: rows.length - valid.length, byReason, examples } };
}
