/**
 * Workflow inputs from the command line: `--name value` flags parsed against
 * each input's JSON Schema (from the compiled interface), on top of an optional
 * `--inputs file.json` base object.
 *
 * Only the text → value conversion happens here; the engine validates the
 * result against the zod schemas and fills defaults.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { closest } from "./render/format.js";

/** What an input declares (the relevant part of core's `InputSpec`). */
export interface DeclaredInput {
  schema: unknown;
  optional: boolean;
  default?: unknown;
  description?: string;
}

/** Makes file and directory values from local paths (core's `file()` and `dir()`). */
export interface RefMakers {
  file(p: string): unknown;
  dir(p: string): unknown;
}

/** What input parsing needs to know about the workflow. */
export interface InputContext {
  /** What the inputs belong to, for messages: `workflow "hello"`. */
  owner: string;
  declared: Record<string, DeclaredInput>;
  refs: RefMakers;
  /** Directory relative flag paths resolve from. @default process.cwd() */
  cwd?: string;
}

type Schema = Record<string, unknown>;

/** Raised for a bad flag, value or inputs file; shaped like core's `TernError` (exit status 2). */
export class InputError extends Error {
  constructor(
    readonly code: "TERN_E_USAGE" | "TERN_E_INPUT_INVALID" | "TERN_E_FILE_NOT_FOUND",
    message: string,
    readonly hint?: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = "TernError";
  }
}

/** `maxDepth` and `max_depth` are both given as `--max-depth`. */
export function flagName(input: string): string {
  return input
    .replace(/([a-z0-9])([A-Z])/g, "$1-$2")
    .replace(/_/g, "-")
    .toLowerCase();
}

/** The declared input a flag names: exact, or its kebab-case form as snake_case or camelCase. */
export function matchInput(flag: string, names: readonly string[]): string | undefined {
  if (names.includes(flag)) return flag;
  const snake = flag.replace(/-/g, "_");
  if (names.includes(snake)) return snake;
  const camel = flag.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
  if (names.includes(camel)) return camel;
  return names.find((n) => flagName(n) === flag);
}

/** One line per input: `--max-depth <integer>  (default 3)  description`. */
export function describeInputs(declared: Record<string, DeclaredInput>): string[] {
  return Object.entries(declared).map(([k, d]) => {
    const s = schemaOf(d.schema);
    const value = isBooleanSchema(s) ? "" : ` <${typeLabel(s)}>`;
    const extra =
      d.default !== undefined
        ? `  (default ${JSON.stringify(d.default)})`
        : d.optional
          ? "  (optional)"
          : "  (required)";
    return `--${flagName(k)}${value}${extra}${d.description ? `  ${d.description}` : ""}`;
  });
}

/**
 * Turn flag tokens into input values. `base` (from `--inputs`) is overridden key
 * by key. Array inputs accept JSON text or the flag repeated (`--tag a --tag b`).
 */
export function parseInputFlags(
  tokens: readonly string[],
  ctx: InputContext,
  base: Record<string, unknown> = {},
): Record<string, unknown> {
  const names = Object.keys(ctx.declared);
  const out: Record<string, unknown> = { ...base };
  const seen = new Set<string>();
  const cwd = ctx.cwd ?? process.cwd();
  for (let i = 0; i < tokens.length; i++) {
    const tok = tokens[i];
    if (tok === "--") continue;
    if (!tok.startsWith("--") || tok.length === 2) {
      throw new InputError(
        "TERN_E_USAGE",
        `unexpected argument "${tok}"`,
        `give inputs as --<input> <value>; ${inputsHint(ctx)}`,
      );
    }
    const body = tok.slice(2);
    const eq = body.indexOf("=");
    const flag = eq >= 0 ? body.slice(0, eq) : body;
    const inline = eq >= 0 ? body.slice(eq + 1) : undefined;
    let key = matchInput(flag, names);
    let negated = false;
    if (key === undefined && flag.startsWith("no-")) {
      const k = matchInput(flag.slice(3), names);
      if (k !== undefined && isBooleanSchema(schemaOf(ctx.declared[k].schema))) {
        key = k;
        negated = true;
      }
    }
    if (key === undefined) {
      const guess = closest(flag, names.map(flagName));
      throw new InputError(
        "TERN_E_USAGE",
        `unknown option --${flag}: ${ctx.owner} has no input "${flag}"${guess ? ` (did you mean --${guess}?)` : ""}`,
        inputsHint(ctx),
        { input: flag },
      );
    }
    const schema = schemaOf(ctx.declared[key].schema);
    const label = `input "${key}" (--${flagName(key)})`;
    let value: unknown;
    if (isBooleanSchema(schema)) {
      if (negated) {
        if (inline !== undefined)
          throw new InputError(
            "TERN_E_USAGE",
            `--${flag} takes no value`,
            `write --${flagName(key)}=false instead`,
            { input: key },
          );
        value = false;
      } else if (inline !== undefined) value = parseBoolean(inline, label, key);
      else if (tokens[i + 1] === "true" || tokens[i + 1] === "false") value = tokens[++i] === "true";
      else value = true;
    } else {
      let raw = inline;
      if (raw === undefined) {
        const next = tokens[i + 1];
        if (next === undefined || (next.startsWith("--") && next.length > 2)) {
          throw new InputError(
            "TERN_E_USAGE",
            `--${flag} needs a value (${typeLabel(schema)})`,
            `e.g. --${flagName(key)} ${example(schema)}`,
            {
              input: key,
            },
          );
        }
        raw = next;
        i++;
      }
      if (schemaType(schema) === "array" && !raw.trimStart().startsWith("[")) {
        // Repeated flag: one item each time.
        const item = convert(
          raw,
          schemaOf((schema.items as Schema | undefined) ?? {}, schema),
          label,
          key,
          cwd,
          ctx.refs,
        );
        const prev = seen.has(key) ? (out[key] as unknown[]) : [];
        value = [...prev, item];
      } else {
        if (seen.has(key)) {
          throw new InputError("TERN_E_USAGE", `--${flagName(key)} was given twice`, "give each input once", {
            input: key,
          });
        }
        value = convert(raw, schema, label, key, cwd, ctx.refs);
      }
    }
    seen.add(key);
    out[key] = value;
  }
  return out;
}

/**
 * Refuse a run that leaves out a required input, naming the flag and its type
 * (the engine would refuse it too, with less to go on).
 */
export function checkRequired(values: Record<string, unknown>, ctx: InputContext): void {
  const missing = Object.entries(ctx.declared).filter(([k, d]) => !d.optional && values[k] === undefined);
  if (missing.length === 0) return;
  const flags = missing.map(([k, d]) => `--${flagName(k)} <${typeLabel(schemaOf(d.schema))}>`);
  throw new InputError(
    "TERN_E_INPUT_INVALID",
    `${ctx.owner} needs input${missing.length > 1 ? "s" : ""} ${missing.map(([k]) => `"${k}"`).join(", ")}: give ${flags.join(" ")}`,
    inputsHint(ctx),
    { inputs: missing.map(([k]) => k) },
  );
}

/**
 * Read an `--inputs` JSON file. String values of file and directory inputs are
 * paths relative to the file's own directory.
 */
export function readInputsFile(file: string, ctx: InputContext): Record<string, unknown> {
  const abs = path.resolve(ctx.cwd ?? process.cwd(), file);
  let text: string;
  try {
    text = fs.readFileSync(abs, "utf8");
  } catch {
    throw new InputError(
      "TERN_E_FILE_NOT_FOUND",
      `inputs file not found: ${file}`,
      "give the path of a JSON file with an object of inputs",
      { file },
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new InputError(
      "TERN_E_INPUT_INVALID",
      `cannot parse inputs file ${file}: ${(e as Error).message}`,
      "the file must hold one JSON object",
    );
  }
  if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new InputError(
      "TERN_E_INPUT_INVALID",
      `inputs file ${file} must hold a JSON object, e.g. {"name": "Ada"}`,
    );
  }
  const out = { ...(parsed as Record<string, unknown>) };
  const dir = path.dirname(abs);
  for (const [k, v] of Object.entries(out)) {
    const d = ctx.declared[k];
    if (!d || typeof v !== "string") continue;
    const s = schemaOf(d.schema);
    if (refKind(s)) out[k] = convert(v, s, `input "${k}" (in ${file})`, k, dir, ctx.refs);
  }
  return out;
}

function inputsHint(ctx: InputContext): string {
  const lines = describeInputs(ctx.declared);
  return lines.length
    ? `inputs of ${ctx.owner}:\n    ${lines.join("\n    ")}`
    : `${ctx.owner} takes no inputs`;
}

// ---------------------------------------------------------------------------
// Text → value by JSON Schema

function convert(
  raw: string,
  schema: Schema,
  label: string,
  key: string,
  cwd: string,
  refs: RefMakers,
): unknown {
  const bad = (what: string, hint?: string) =>
    new InputError("TERN_E_INPUT_INVALID", `${label} expects ${what}, got ${JSON.stringify(raw)}`, hint, {
      input: key,
      value: raw,
    });
  const kind = refKind(schema);
  if (kind) return refValue(raw, kind, label, key, cwd, refs);
  const variants = (schema.anyOf ?? schema.oneOf) as Schema[] | undefined;
  if (Array.isArray(variants)) {
    const resolved = variants.map((v) => schemaOf(v, schema));
    if (raw === "null" && resolved.some((v) => v.type === "null")) return null;
    const rest = resolved.filter((v) => v.type !== "null");
    if (rest.length === 1) return convert(raw, rest[0], label, key, cwd, refs);
    return firstFit(raw, rest, label, key, cwd, refs, bad);
  }
  if (Array.isArray(schema.type)) {
    if (raw === "null" && schema.type.includes("null")) return null;
    const rest = (schema.type as string[]).filter((t) => t !== "null").map((t) => ({ ...schema, type: t }));
    return firstFit(
      raw,
      rest.sort((a, b) => rank(a) - rank(b)),
      label,
      key,
      cwd,
      refs,
      bad,
    );
  }
  switch (schemaType(schema)) {
    case "integer": {
      if (!/^[-+]?\d+$/.test(raw.trim())) throw bad("an integer", `e.g. --${flagName(key)} 3`);
      const n = Number(raw);
      if (!Number.isSafeInteger(n)) throw bad("an integer between -(2^53-1) and 2^53-1");
      return n;
    }
    case "number": {
      if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(raw.trim()))
        throw bad("a number", `e.g. --${flagName(key)} 0.5`);
      return Number(raw);
    }
    case "boolean":
      return parseBoolean(raw, label, key);
    case "null":
      if (raw !== "null") throw bad("null");
      return null;
    case "string":
      return raw;
    case "object":
    case "array": {
      const want = schemaType(schema) === "object" ? "a JSON object" : "a JSON array";
      let v: unknown;
      try {
        v = JSON.parse(raw);
      } catch {
        throw bad(want, `quote the JSON for the shell, e.g. --${flagName(key)} '${example(schema)}'`);
      }
      if ((schemaType(schema) === "array") !== Array.isArray(v) || v === null || typeof v !== "object")
        throw bad(want);
      return v;
    }
    default:
      // Any JSON value (z.unknown(), z.any(), unions zod could not name): JSON when it parses, else text.
      try {
        return JSON.parse(raw);
      } catch {
        return raw;
      }
  }
}

function firstFit(
  raw: string,
  variants: Schema[],
  label: string,
  key: string,
  cwd: string,
  refs: RefMakers,
  bad: (what: string) => InputError,
): unknown {
  for (const v of [...variants].sort((a, b) => rank(a) - rank(b))) {
    try {
      return convert(raw, v, label, key, cwd, refs);
    } catch {
      // try the next variant
    }
  }
  throw bad(variants.map(typeLabel).join(" or "));
}

/** Order in which union members are tried: the most specific reading of the text first. */
function rank(s: Schema): number {
  const order = ["null", "boolean", "integer", "number", "object", "array", "string"];
  const i = order.indexOf(String(schemaType(s)));
  return i < 0 ? order.length : i;
}

function refValue(
  raw: string,
  kind: string,
  label: string,
  key: string,
  cwd: string,
  refs: RefMakers,
): unknown {
  const abs = path.resolve(cwd, raw);
  const st = fs.statSync(abs, { throwIfNoEntry: false });
  const what = kind === "dir" ? "directory" : "file";
  if (!st) {
    throw new InputError(
      "TERN_E_INPUT_INVALID",
      `${label}: no such ${what}: ${raw}`,
      `give the path of an existing ${what}`,
      {
        input: key,
        path: abs,
      },
    );
  }
  if (kind === "dir") {
    if (!st.isDirectory())
      throw new InputError("TERN_E_INPUT_INVALID", `${label}: ${raw} is not a directory`, undefined, {
        input: key,
        path: abs,
      });
    return refs.dir(abs);
  }
  if (!st.isFile())
    throw new InputError("TERN_E_INPUT_INVALID", `${label}: ${raw} is a directory, not a file`, undefined, {
      input: key,
      path: abs,
    });
  if (kind === "dataframe") return { $tern: "dataframe", path: abs, format: "jsonl" };
  return refs.file(abs);
}

function parseBoolean(raw: string, label: string, key: string): boolean {
  const v = raw.toLowerCase();
  if (["true", "yes", "1", "on"].includes(v)) return true;
  if (["false", "no", "0", "off"].includes(v)) return false;
  throw new InputError(
    "TERN_E_INPUT_INVALID",
    `${label} expects true or false, got ${JSON.stringify(raw)}`,
    undefined,
    { input: key, value: raw },
  );
}

// ---------------------------------------------------------------------------
// Schema reading

/** Follow a local `$ref` (`#/$defs/X`) against the root schema. */
function schemaOf(s: unknown, root?: Schema): Schema {
  let cur = (s && typeof s === "object" ? s : {}) as Schema;
  const base = root ?? cur;
  for (let i = 0; i < 16 && typeof cur.$ref === "string"; i++) {
    const m = /^#\/\$defs\/(.+)$/.exec(cur.$ref as string);
    const defs = (base.$defs ?? cur.$defs) as Record<string, Schema> | undefined;
    if (!m || !defs?.[m[1]]) break;
    cur = { ...defs[m[1]], $defs: base.$defs };
  }
  return cur;
}

function schemaType(s: Schema): string | undefined {
  if (typeof s.type === "string") return s.type;
  if ("const" in s)
    return s.const === null
      ? "null"
      : typeof s.const === "number"
        ? "number"
        : typeof s.const === "boolean"
          ? "boolean"
          : "string";
  if (Array.isArray(s.enum) && s.enum.every((x) => typeof x === "string")) return "string";
  return undefined;
}

function refKind(s: Schema): string | undefined {
  const x = s["x-tern"] as { kind?: unknown } | undefined;
  return typeof x?.kind === "string" ? x.kind : undefined;
}

function isBooleanSchema(s: Schema): boolean {
  if (schemaType(s) === "boolean") return true;
  const variants = (s.anyOf ?? s.oneOf) as Schema[] | undefined;
  if (Array.isArray(variants)) {
    const rest = variants.map((v) => schemaOf(v, s)).filter((v) => v.type !== "null");
    return rest.length === 1 && isBooleanSchema(rest[0]);
  }
  return Array.isArray(s.type) && s.type.filter((t) => t !== "null").join() === "boolean";
}

function typeLabel(s: Schema): string {
  const kind = refKind(s);
  if (kind) return kind === "dir" ? "dir path" : `${kind} path`;
  if (Array.isArray(s.enum)) return s.enum.map((v) => String(v)).join("|");
  const variants = (s.anyOf ?? s.oneOf) as Schema[] | undefined;
  if (Array.isArray(variants)) return variants.map((v) => typeLabel(schemaOf(v, s))).join("|");
  if (Array.isArray(s.type)) return s.type.join("|");
  const t = schemaType(s);
  if (t === "object") return "json object";
  if (t === "array") return "json array";
  return t ?? "json";
}

function example(s: Schema): string {
  switch (schemaType(s)) {
    case "integer":
      return "3";
    case "number":
      return "0.5";
    case "object":
      return '{"key": "value"}';
    case "array":
      return '["a", "b"]';
    case "boolean":
      return "true";
    default:
      return refKind(s) ? "./path" : "<value>";
  }
}
