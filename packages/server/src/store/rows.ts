/**
 * The executor's hot statements as plain SQL: multi-row inserts and upserts, the fence
 * query and the end-of-execution update. Kysely builds and compiles a syntax tree for
 * every call (a node per value of a multi-row insert); under load that cost more CPU than
 * SQLite itself. These statements have fixed shapes, so their text is made once per
 * dialect and row count and only the parameters change. Identifiers are constants of this
 * module; every value is a bound parameter.
 */
import type { Kysely } from "kysely";
import type { DialectName } from "./db.js";
import { CompiledQuery } from "./kysely.js";
import type { Database } from "./schema.js";

type Db = Kysely<Database>;

const texts = new Map<string, string>();

/** `?` for SQLite, `$n` for PostgreSQL, numbered from `from`. */
function params(dialect: DialectName, count: number, from: number): string[] {
  return Array.from({ length: count }, (_, i) => (dialect === "postgres" ? `$${from + i}` : "?"));
}

function cached(key: string, make: () => string): string {
  let t = texts.get(key);
  if (t === undefined) {
    t = make();
    // Shapes are few (dialect × statement × row count up to the chunk size): a bound for safety only.
    if (texts.size >= 4096) texts.clear();
    texts.set(key, t);
  }
  return t;
}

/** `(…), (…)` placeholders of `rows` rows of `cols` values. */
function valuesList(dialect: DialectName, rows: number, cols: number): string {
  const out: string[] = [];
  for (let r = 0; r < rows; r++) out.push(`(${params(dialect, cols, r * cols + 1).join(", ")})`);
  return out.join(", ");
}

/**
 * Insert `rows` (objects with exactly `columns`) into `table`, with `suffix` (an ON
 * CONFLICT or RETURNING clause, constant text) appended. Returns the statements' rows.
 *
 * The rows go in statements of power-of-two sizes (37 rows: 32, 4, 1), so a table sees a
 * few statement texts, which stay prepared in the driver's cache, instead of one text per
 * row count, each parsed anew.
 */
export async function insertRows<R = unknown>(
  db: Db,
  dialect: DialectName,
  table: string,
  columns: readonly string[],
  rows: readonly Record<string, unknown>[],
  suffix = "",
): Promise<R[]> {
  const out: R[] = [];
  for (let at = 0; at < rows.length; ) {
    let size = MAX_ROWS;
    while (size > rows.length - at) size >>= 1;
    const got = await insertExactly<R>(db, dialect, table, columns, rows.slice(at, at + size), suffix);
    for (const r of got) out.push(r);
    at += size;
  }
  return out;
}

/** Rows per statement at most (a power of two; 22 columns × 256 stays under every parameter limit). */
const MAX_ROWS = 256;

async function insertExactly<R>(
  db: Db,
  dialect: DialectName,
  table: string,
  columns: readonly string[],
  rows: readonly Record<string, unknown>[],
  suffix = "",
): Promise<R[]> {
  if (rows.length === 0) return [];
  const text = cached(`${dialect}|insert|${table}|${columns.join(",")}|${rows.length}|${suffix}`, () => {
    const cols = columns.map((c) => `"${c}"`).join(", ");
    return `insert into "${table}" (${cols}) values ${valuesList(dialect, rows.length, columns.length)}${suffix ? ` ${suffix}` : ""}`;
  });
  const values: unknown[] = [];
  for (const row of rows) for (const c of columns) values.push(row[c]);
  return (await db.executeQuery<R>(CompiledQuery.raw(text, values))).rows;
}

/** `on conflict (keys) do update set c = excluded.c, …` for every column but the keys. */
export function upsertClause(keys: readonly string[], columns: readonly string[]): string {
  const set = columns
    .filter((c) => !keys.includes(c))
    .map((c) => `"${c}" = excluded."${c}"`)
    .join(", ");
  return `on conflict (${keys.map((k) => `"${k}"`).join(", ")}) do update set ${set}`;
}

/**
 * The fence of a group append: each execution's owner and last stored seq, the rows
 * share-locked on PostgreSQL (a concurrent claim waits for, or skips, them).
 */
export async function fenceRows(
  db: Db,
  dialect: DialectName,
  ids: readonly string[],
): Promise<{ id: string; owner: string | null; last_seq: number | string | null }[]> {
  const text = cached(`${dialect}|fence|${ids.length}`, () => {
    const list = params(dialect, ids.length, 1).join(", ");
    return `select "id", "owner", (select max("seq") from "events" where "events"."execution" = "executions"."id") as "last_seq" from "executions" where "id" in (${list})${dialect === "postgres" ? " for share" : ""}`;
  });
  return (
    await db.executeQuery<{ id: string; owner: string | null; last_seq: number | null }>(
      CompiledQuery.raw(text, [...ids]),
    )
  ).rows;
}

/**
 * `update table set <set> where <where>` with every value bound; `set` values of `null`
 * are bound as NULL, a `where` value that is an array is `in (…)` its items (at least
 * one). Returns the number of rows changed.
 */
export async function updateRows(
  db: Db,
  dialect: DialectName,
  table: string,
  set: Record<string, unknown>,
  where: Record<string, unknown>,
): Promise<number> {
  const setCols = Object.keys(set);
  const whereCols = Object.keys(where);
  const sizes = whereCols.map((c) => (Array.isArray(where[c]) ? (where[c] as unknown[]).length : 0));
  const text = cached(
    `${dialect}|update|${table}|${setCols.join(",")}|${whereCols.join(",")}|${sizes.join(",")}`,
    () => {
      const s = setCols.map((c, i) => `"${c}" = ${params(dialect, 1, i + 1)[0]}`).join(", ");
      let at = setCols.length + 1;
      const w = whereCols.map((c, i) => {
        const list = params(dialect, sizes[i] || 1, at);
        at += list.length;
        return sizes[i] ? `"${c}" in (${list.join(", ")})` : `"${c}" = ${list[0]}`;
      });
      return `update "${table}" set ${s} where ${w.join(" and ")}`;
    },
  );
  const values = [...setCols.map((c) => set[c]), ...whereCols.flatMap((c) => where[c] as unknown)];
  const r = await db.executeQuery(CompiledQuery.raw(text, values));
  return Number(r.numAffectedRows ?? 0n);
}
