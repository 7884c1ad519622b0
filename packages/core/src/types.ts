/**
 * Tern's types are zod schemas. This module adds the by-reference types
 * (`t.file()`, `t.dir()`, `t.dataframe()`) and turns schemas into the JSON
 * Schema that compiled specs carry.
 *
 * By-reference values travel through blob storage; in task code they are plain
 * objects with a local `path`. Their JSON Schema carries an `x-tern` keyword so
 * the compiler can check them from the serialized interface alone.
 */
import { z } from "zod";
import { ErrorCodes, TernError } from "./errors.js";
import type { Json } from "./json.js";

export type RefKind = "file" | "dir" | "dataframe";

/** A file value. Create one in a task with {@link file}; read it through `path`. */
export interface TernFile {
  readonly $tern: "file";
  /** Local path: where to read it inside a task (always set there), or where to upload it from when returned. */
  readonly path: string;
  /** Blob URI once stored (`blob:sha256:…` or a storage URL). */
  readonly uri?: string;
  readonly format?: string;
  /** Original base name, kept for downloads. */
  readonly name?: string;
}

/** A directory value; like {@link TernFile} but uploaded as a tree. */
export interface TernDir {
  readonly $tern: "dir";
  /** Local path of the tree (always set inside a task). */
  readonly path: string;
  readonly uri?: string;
  readonly format?: string;
  readonly name?: string;
}

/** A table stored as JSON lines. Create one with {@link dataframe}; read it with {@link readDataFrame}. */
export interface TernDataFrame<Row = Record<string, unknown>> {
  readonly $tern: "dataframe";
  readonly path?: string;
  readonly uri?: string;
  readonly format?: "jsonl";
  /** Rows held in memory until the engine stores them. */
  readonly rows?: readonly Row[];
  /** Phantom: the row type. */
  readonly __row?: Row;
}

export type TernRef = TernFile | TernDir | TernDataFrame<any>;

/** Make a file value from a local path (in a task's output). */
export function file(path: string, opts: { format?: string } = {}): TernFile {
  return { $tern: "file", path, format: opts.format ?? extFormat(path) };
}

/** Make a directory value from a local path. */
export function dir(path: string, opts: { format?: string } = {}): TernDir {
  return { $tern: "dir", path, format: opts.format };
}

/** Make a dataframe value from rows; the engine writes them to blob storage as JSON lines. */
export function dataframe<Row extends Record<string, unknown>>(rows: readonly Row[]): TernDataFrame<Row> {
  return { $tern: "dataframe", rows, format: "jsonl" };
}

/** Read a dataframe's rows (from memory or its materialized file). */
export async function readDataFrame<Row>(df: TernDataFrame<Row>): Promise<Row[]> {
  if (df.rows) return [...df.rows];
  if (!df.path) throw new TernError(ErrorCodes.BLOB_NOT_FOUND, "dataframe has neither rows nor a local path");
  const { readFile } = await import("node:fs/promises");
  const text = await readFile(df.path, "utf8");
  return text
    .split("\n")
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as Row);
}

function extFormat(path: string): string | undefined {
  const m = /\.([A-Za-z0-9]+)$/.exec(path);
  return m ? m[1].toLowerCase() : undefined;
}

export function isTernRef(v: unknown): v is TernRef {
  if (typeof v !== "object" || v === null) return false;
  const k = (v as { $tern?: unknown }).$tern;
  return k === "file" || k === "dir" || k === "dataframe";
}

/** Check functions of by-reference schemas: `.meta()`/`.describe()` clones share them, so `toJsonSchema` can tell them from a user's `z.custom`. */
const refChecks = new WeakSet<object>();

function refSchema<T extends TernRef>(kind: RefKind, xtern: Record<string, Json>) {
  const check = (v: unknown) => isTernRef(v) && v.$tern === kind;
  refChecks.add(check);
  return z
    .custom<T>(check, {
      message: `expected a ${kind} value (make one with ${kind}(path) from @tern/core)`,
    })
    .meta({ "x-tern": { kind, ...xtern } });
}

/** Tern's by-reference types. */
export const t = {
  /** A file passed by reference. `format` (e.g. "csv") is checked between tasks; omit it for any file. */
  file(opts: { format?: string } = {}) {
    return refSchema<TernFile>("file", opts.format ? { format: opts.format } : {});
  },
  /** A directory passed by reference. */
  dir(opts: { format?: string } = {}) {
    return refSchema<TernDir>("dir", opts.format ? { format: opts.format } : {});
  },
  /** A table passed by reference, with typed columns. */
  dataframe<C extends Record<string, z.ZodType>>(opts: { columns?: C } = {}) {
    const columns: Record<string, Json> = {};
    for (const [name, s] of Object.entries(opts.columns ?? {}))
      columns[name] = toJsonSchema(s, "output") as Json;
    return refSchema<TernDataFrame<{ [K in keyof C]: z.output<C[K]> }>>(
      "dataframe",
      opts.columns ? { columns } : {},
    );
  },
};

const UNREPRESENTABLE = new Set([
  "date",
  "bigint",
  "map",
  "set",
  "symbol",
  "function",
  "custom",
  "promise",
  "undefined",
  "void",
  "nan",
  "transform",
]);

/**
 * JSON Schema of a zod schema as a spec carries it. `io: "input"` makes fields
 * with defaults optional (what a caller may pass); `"output"` is what a producer gives.
 * Types that cannot cross a process boundary (Date, Map, functions…) are refused.
 */
export function toJsonSchema(
  schema: z.ZodType,
  io: "input" | "output",
  where = "value",
): Record<string, unknown> {
  const bad: string[] = [];
  const out = z.toJSONSchema(schema, {
    io,
    unrepresentable: "any",
    override(ctx) {
      const def = (ctx.zodSchema as { _zod?: { def?: { type?: string; fn?: object } } })._zod?.def;
      const meta = z.globalRegistry.get(ctx.zodSchema as never) as Record<string, unknown> | undefined;
      // zod also visits the un-annotated original behind `.meta()`: recognise it by its check function.
      const isRef = def?.type === "custom" && def.fn !== undefined && refChecks.has(def.fn);
      if (def?.type && UNREPRESENTABLE.has(def.type) && !meta?.["x-tern"] && !isRef) bad.push(def.type);
    },
  }) as Record<string, unknown>;
  if (bad.length > 0) {
    throw new TernError(
      ErrorCodes.DEFINITION,
      `${where} uses a type that cannot be serialized: ${[...new Set(bad)].join(", ")}`,
      {
        hint: "use JSON-friendly types (z.iso.datetime() for dates, z.record for maps, t.file() for files)",
        details: { where, types: bad },
      },
    );
  }
  delete out.$schema;
  return out;
}
