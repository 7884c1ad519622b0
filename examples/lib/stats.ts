/**
 * Statistics over clean orders, one function per report section. Each is
 * independent of the others, which is why the workflow runs them as parallel nodes.
 */
import { z } from "zod";
import type { Order } from "./orders.js";

/** Round to cents (or any number of decimals) for presentation. */
export function round(x: number, decimals = 2): number {
  const f = 10 ** decimals;
  return Math.round(x * f) / f;
}

/**
 * The q-quantile (0..1) of sorted numbers, interpolating linearly between the two
 * nearest ranks (what numpy and most spreadsheets do by default).
 */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) throw new RangeError("quantile of an empty list");
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

// ---------------------------------------------------------------------------
// Revenue per country

export const CountryRevenueSchema = z.object({
  country: z.string(),
  orders: z.number().int(),
  units: z.number().int(),
  revenue: z.number(),
});

export const RevenueReportSchema = z.object({
  /** Sum of quantity × unit price over all orders. */
  total: z.number(),
  /** Highest revenue first. */
  byCountry: z.array(CountryRevenueSchema),
});
export type RevenueReport = z.infer<typeof RevenueReportSchema>;

/** Revenue per country. Money is summed in integer cents, so the totals are exact. */
export function revenueByCountry(orders: readonly Order[]): RevenueReport {
  const acc = new Map<string, { orders: number; units: number; cents: number }>();
  let totalCents = 0;
  for (const o of orders) {
    const cents = Math.round(o.quantity * o.unit_price * 100);
    totalCents += cents;
    const a = acc.get(o.country) ?? { orders: 0, units: 0, cents: 0 };
    a.orders += 1;
    a.units += o.quantity;
    a.cents += cents;
    acc.set(o.country, a);
  }
  const byCountry = [...acc]
    .map(([country, a]) => ({ country, orders: a.orders, units: a.units, revenue: a.cents / 100 }))
    .sort((a, b) => b.revenue - a.revenue || a.country.localeCompare(b.country));
  return { total: totalCents / 100, byCountry };
}

// ---------------------------------------------------------------------------
// Quantity distribution

/** Histogram buckets of quantity per order line, as [label, lowest, highest]. */
export const QUANTITY_BUCKETS: readonly (readonly [string, number, number])[] = [
  ["1", 1, 1],
  ["2", 2, 2],
  ["3", 3, 3],
  ["4-5", 4, 5],
  ["6-10", 6, 10],
  ["11+", 11, Number.POSITIVE_INFINITY],
];

export const QuantityStatsSchema = z.object({
  min: z.number(),
  max: z.number(),
  mean: z.number(),
  median: z.number(),
  p90: z.number(),
  histogram: z.array(z.object({ bucket: z.string(), count: z.number().int() })),
});
export type QuantityStats = z.infer<typeof QuantityStatsSchema>;

export function quantityDistribution(orders: readonly Order[]): QuantityStats {
  if (orders.length === 0) throw new RangeError("no orders to describe");
  const q = orders.map((o) => o.quantity).sort((a, b) => a - b);
  const sum = q.reduce((s, x) => s + x, 0);
  return {
    min: q[0],
    max: q[q.length - 1],
    mean: round(sum / q.length),
    median: round(quantile(q, 0.5)),
    p90: round(quantile(q, 0.9)),
    histogram: QUANTITY_BUCKETS.map(([bucket, lo, hi]) => ({
      bucket,
      count: q.filter((x) => x >= lo && x <= hi).length,
    })),
  };
}

// ---------------------------------------------------------------------------
// Dates

export const DateStatsSchema = z.object({
  first: z.string(),
  last: z.string(),
  /** Calendar days from first to last, both included. */
  days: z.number().int(),
  /** Orders per `YYYY-MM`, in month order. */
  byMonth: z.array(z.object({ month: z.string(), orders: z.number().int() })),
});
export type DateStats = z.infer<typeof DateStatsSchema>;

const DAY_MS = 86_400_000;

/** Date range and orders per month. Dates are `YYYY-MM-DD`, so text order is date order. */
export function dateRange(orders: readonly Order[]): DateStats {
  if (orders.length === 0) throw new RangeError("no orders to describe");
  const dates = orders.map((o) => o.order_date).sort();
  const first = dates[0];
  const last = dates[dates.length - 1];
  const perMonth = new Map<string, number>();
  for (const d of dates) perMonth.set(d.slice(0, 7), (perMonth.get(d.slice(0, 7)) ?? 0) + 1);
  return {
    first,
    last,
    days: (Date.parse(last) - Date.parse(first)) / DAY_MS + 1,
    byMonth: [...perMonth].map(([month, n]) => ({ month, orders: n })),
  };
}
