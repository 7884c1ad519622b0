#!/usr/bin/env node
/**
 * Writes the example datasets in this folder. Deterministic: a seeded PRNG and no
 * clock, so running it again gives byte-identical files.
 *
 *   node examples/data/generate.mjs
 *
 * - orders.csv: synthetic e-commerce orders with planted problems for the
 *   data-quality example (exact duplicates, missing values, bad quantities, prices
 *   out of range, malformed dates, unknown country codes).
 * - iris.csv: Fisher's iris measurements (UCI version), for the ML example.
 *
 * See README.md here for what each file contains and where it comes from.
 */
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));

/** mulberry32: a tiny 32-bit PRNG; same seed, same sequence, on every platform. */
function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const rand = mulberry32(20240601);
const int = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1)); // inclusive
const pick = (items) => items[Math.floor(rand() * items.length)];
/** Pick from [[value, weight], ...]. */
function weighted(pairs) {
  const total = pairs.reduce((s, [, w]) => s + w, 0);
  let r = rand() * total;
  for (const [v, w] of pairs) {
    r -= w;
    if (r < 0) return v;
  }
  return pairs[pairs.length - 1][0];
}

/** RFC 4180 quoting: only fields with a comma, quote or newline are quoted. */
function csvField(s) {
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}
const csvLine = (fields) => fields.map(csvField).join(",");

// ---------------------------------------------------------------------------
// orders.csv

const PRODUCTS = [
  ["Notebook A5", 4.5],
  ["Fountain pen", 24.0],
  ["Desk lamp", 39.9],
  ["Cable, USB-C (2 m)", 9.99], // a comma: must be quoted
  ['Mug "Tern" 350 ml', 12.5], // quotes: must be quoted and doubled
  ["Backpack 20 L", 59.0],
  ["Wireless mouse", 19.99],
  ["Mechanical keyboard", 89.0],
  ['Monitor 27"', 249.0],
  ["Sticky notes, 12 pack", 6.75],
  ["Headphones", 129.0],
  ["Laptop stand", 34.5],
];

const COUNTRIES = [
  ["US", 22], ["DE", 18], ["GB", 14], ["FR", 12], ["NL", 6], ["ES", 6],
  ["IT", 6], ["SE", 4], ["PL", 4], ["JP", 4], ["CA", 2], ["AU", 2],
];

const QUANTITIES = [
  [() => 1, 45], [() => 2, 25], [() => 3, 12], [() => int(4, 5), 10], [() => int(6, 10), 6], [() => int(11, 25), 2],
];

const DISCOUNTS = [[0, 70], [0.05, 15], [0.1, 10], [0.15, 5]];

function isoDate(dayOfYear) {
  const d = new Date(Date.UTC(2024, 0, 1 + dayOfYear));
  return d.toISOString().slice(0, 10);
}

/** One clean order; columns in file order. */
function cleanOrder(n) {
  const [product, base] = pick(PRODUCTS);
  const price = base * (1 - weighted(DISCOUNTS));
  return {
    order_id: `ORD-${String(n).padStart(6, "0")}`,
    customer_id: `C${String(int(1, 400)).padStart(4, "0")}`,
    order_date: isoDate(int(0, 365)), // 2024 is a leap year: day 365 is Dec 31
    country: weighted(COUNTRIES),
    product,
    quantity: String(weighted(QUANTITIES)()),
    unit_price: price.toFixed(2),
  };
}

/** Planted problems: each damaged row gets exactly one, so every drop has one clear reason. */
const DEFECTS = [
  ["missing_value", 0.025, (o) => {
    o[pick(["customer_id", "order_date", "country", "quantity", "unit_price"])] = "";
  }],
  ["bad_quantity", 0.02, (o) => {
    o.quantity = pick(["0", "-1", "-2", "-5"]);
  }],
  ["price_out_of_range", 0.015, (o) => {
    o.unit_price = pick(["0.00", "-9.99", "99999.99", "12500.00"]);
  }],
  ["malformed_date", 0.015, (o) => {
    const [y, m, d] = o.order_date.split("-");
    o.order_date = pick([`${d}/${m}/${y}`, `${y}/${m}/${d}`, "2024-02-30", "2024-13-05", "yesterday"]);
  }],
  ["unknown_country", 0.015, (o) => {
    o.country = pick(["XX", "UK", "EU", "ZZ"]);
  }],
];

const BASE_ROWS = 1940;
const DUPLICATES = 60; // ~3% of the final file
const COLUMNS = ["order_id", "customer_id", "order_date", "country", "product", "quantity", "unit_price"];

const lines = [];
for (let n = 1; n <= BASE_ROWS; n++) {
  const o = cleanOrder(n);
  let r = rand();
  for (const [, p, damage] of DEFECTS) {
    if (r < p) {
      damage(o);
      break;
    }
    r -= p;
  }
  lines.push(csvLine(COLUMNS.map((c) => o[c])));
}
// Exact duplicates, as a retried export or a double submit would make: a copy of an
// earlier line, inserted somewhere after it.
const sources = new Set();
while (sources.size < DUPLICATES) sources.add(int(0, BASE_ROWS - 1));
for (const src of [...sources].sort((a, b) => b - a)) {
  const at = int(src + 1, lines.length);
  lines.splice(at, 0, lines[src]);
}
writeFileSync(join(HERE, "orders.csv"), `${[COLUMNS.join(","), ...lines].join("\n")}\n`);

// ---------------------------------------------------------------------------
// iris.csv: 50 samples of each species, four measurements in cm, in the UCI order.

const IRIS = [
  "5.1 3.5 1.4 0.2,4.9 3 1.4 0.2,4.7 3.2 1.3 0.2,4.6 3.1 1.5 0.2,5 3.6 1.4 0.2,5.4 3.9 1.7 0.4,4.6 3.4 1.4 0.3,5 3.4 1.5 0.2,4.4 2.9 1.4 0.2,4.9 3.1 1.5 0.1",
  "5.4 3.7 1.5 0.2,4.8 3.4 1.6 0.2,4.8 3 1.4 0.1,4.3 3 1.1 0.1,5.8 4 1.2 0.2,5.7 4.4 1.5 0.4,5.4 3.9 1.3 0.4,5.1 3.5 1.4 0.3,5.7 3.8 1.7 0.3,5.1 3.8 1.5 0.3",
  "5.4 3.4 1.7 0.2,5.1 3.7 1.5 0.4,4.6 3.6 1 0.2,5.1 3.3 1.7 0.5,4.8 3.4 1.9 0.2,5 3 1.6 0.2,5 3.4 1.6 0.4,5.2 3.5 1.5 0.2,5.2 3.4 1.4 0.2,4.7 3.2 1.6 0.2",
  "4.8 3.1 1.6 0.2,5.4 3.4 1.5 0.4,5.2 4.1 1.5 0.1,5.5 4.2 1.4 0.2,4.9 3.1 1.5 0.1,5 3.2 1.2 0.2,5.5 3.5 1.3 0.2,4.9 3.1 1.5 0.1,4.4 3 1.3 0.2,5.1 3.4 1.5 0.2",
  "5 3.5 1.3 0.3,4.5 2.3 1.3 0.3,4.4 3.2 1.3 0.2,5 3.5 1.6 0.6,5.1 3.8 1.9 0.4,4.8 3 1.4 0.3,5.1 3.8 1.6 0.2,4.6 3.2 1.4 0.2,5.3 3.7 1.5 0.2,5 3.3 1.4 0.2",
  "7 3.2 4.7 1.4,6.4 3.2 4.5 1.5,6.9 3.1 4.9 1.5,5.5 2.3 4 1.3,6.5 2.8 4.6 1.5,5.7 2.8 4.5 1.3,6.3 3.3 4.7 1.6,4.9 2.4 3.3 1,6.6 2.9 4.6 1.3,5.2 2.7 3.9 1.4",
  "5 2 3.5 1,5.9 3 4.2 1.5,6 2.2 4 1,6.1 2.9 4.7 1.4,5.6 2.9 3.6 1.3,6.7 3.1 4.4 1.4,5.6 3 4.5 1.5,5.8 2.7 4.1 1,6.2 2.2 4.5 1.5,5.6 2.5 3.9 1.1",
  "5.9 3.2 4.8 1.8,6.1 2.8 4 1.3,6.3 2.5 4.9 1.5,6.1 2.8 4.7 1.2,6.4 2.9 4.3 1.3,6.6 3 4.4 1.4,6.8 2.8 4.8 1.4,6.7 3 5 1.7,6 2.9 4.5 1.5,5.7 2.6 3.5 1",
  "5.5 2.4 3.8 1.1,5.5 2.4 3.7 1,5.8 2.7 3.9 1.2,6 2.7 5.1 1.6,5.4 3 4.5 1.5,6 3.4 4.5 1.6,6.7 3.1 4.7 1.5,6.3 2.3 4.4 1.3,5.6 3 4.1 1.3,5.5 2.5 4 1.3",
  "5.5 2.6 4.4 1.2,6.1 3 4.6 1.4,5.8 2.6 4 1.2,5 2.3 3.3 1,5.6 2.7 4.2 1.3,5.7 3 4.2 1.2,5.7 2.9 4.2 1.3,6.2 2.9 4.3 1.3,5.1 2.5 3 1.1,5.7 2.8 4.1 1.3",
  "6.3 3.3 6 2.5,5.8 2.7 5.1 1.9,7.1 3 5.9 2.1,6.3 2.9 5.6 1.8,6.5 3 5.8 2.2,7.6 3 6.6 2.1,4.9 2.5 4.5 1.7,7.3 2.9 6.3 1.8,6.7 2.5 5.8 1.8,7.2 3.6 6.1 2.5",
  "6.5 3.2 5.1 2,6.4 2.7 5.3 1.9,6.8 3 5.5 2.1,5.7 2.5 5 2,5.8 2.8 5.1 2.4,6.4 3.2 5.3 2.3,6.5 3 5.5 1.8,7.7 3.8 6.7 2.2,7.7 2.6 6.9 2.3,6 2.2 5 1.5",
  "6.9 3.2 5.7 2.3,5.6 2.8 4.9 2,7.7 2.8 6.7 2,6.3 2.7 4.9 1.8,6.7 3.3 5.7 2.1,7.2 3.2 6 1.8,6.2 2.8 4.8 1.8,6.1 3 4.9 1.8,6.4 2.8 5.6 2.1,7.2 3 5.8 1.6",
  "7.4 2.8 6.1 1.9,7.9 3.8 6.4 2,6.4 2.8 5.6 2.2,6.3 2.8 5.1 1.5,6.1 2.6 5.6 1.4,7.7 3 6.1 2.3,6.3 3.4 5.6 2.4,6.4 3.1 5.5 1.8,6 3 4.8 1.8,6.9 3.1 5.4 2.1",
  "6.7 3.1 5.6 2.4,6.9 3.1 5.1 2.3,5.8 2.7 5.1 1.9,6.8 3.2 5.9 2.3,6.7 3.3 5.7 2.5,6.7 3 5.2 2.3,6.3 2.5 5 1.9,6.5 3 5.2 2,6.2 3.4 5.4 2.3,5.9 3 5.1 1.8",
].join(",");

const SPECIES = ["setosa", "versicolor", "virginica"];
const irisRows = IRIS.split(",").map((s, i) => [...s.split(" "), SPECIES[Math.floor(i / 50)]].join(","));
if (irisRows.length !== 150) throw new Error(`iris: expected 150 rows, got ${irisRows.length}`);
writeFileSync(
  join(HERE, "iris.csv"),
  `${["sepal_length,sepal_width,petal_length,petal_width,species", ...irisRows].join("\n")}\n`,
);

console.log(`wrote orders.csv (${lines.length} rows) and iris.csv (${irisRows.length} rows) in ${HERE}`);
