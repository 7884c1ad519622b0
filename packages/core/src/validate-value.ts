/**
 * Checking a JSON value against the JSON Schema of an interface: what the server
 * does with inputs of registered workflows (no zod there), and what the engine
 * does with gate signals. The subset zod emits: type, enum, const, properties,
 * required, additionalProperties, items, prefixItems, anyOf/oneOf/allOf, $ref to
 * $defs, numeric and length bounds, and Tern's `x-tern` references.
 */
import { z } from "zod";

export interface ValueProblem {
  /** Where in the value, e.g. `.rows[3].price`. */
  path: string;
  message: string;
}

type Schema = boolean | Record<string, unknown>;

/** Per schema object: zod's reading of it (null when it cannot read it or Tern's references are in it). */
const zodSchemas = new WeakMap<object, z.ZodType | null>();

/**
 * The first problem of `value` against `schema`, or undefined when it fits. zod
 * reads the schema when it can (so formats, patterns and bounds count, in zod's
 * words); a structural check covers what it cannot read, and Tern's references.
 */
export function validateValue(value: unknown, schema: unknown): ValueProblem | undefined {
  const zs = typeof schema === "object" && schema !== null ? zodReading(schema) : null;
  if (!zs) return check(value, schema as Schema, schema as Schema, "", 0);
  const r = zs.safeParse(value);
  if (r.success) return undefined;
  const issue = r.error.issues[0];
  return {
    path: issue?.path.map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`)).join("") ?? "",
    message: issue?.message ?? "invalid",
  };
}

/** zod's reading of a schema, once per schema object; null when zod cannot read it or it holds Tern's references. */
function zodReading(schema: object): z.ZodType | null {
  let zs = zodSchemas.get(schema);
  if (zs === undefined) {
    try {
      zs = JSON.stringify(schema).includes('"x-tern"')
        ? null
        : z.fromJSONSchema(schema as Parameters<typeof z.fromJSONSchema>[0]);
    } catch {
      zs = null;
    }
    zodSchemas.set(schema, zs);
  }
  return zs;
}

function typeOf(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (typeof v === "number") return Number.isInteger(v) ? "integer" : "number";
  return typeof v;
}

function fitsType(v: unknown, t: string): boolean {
  const actual = typeOf(v);
  return actual === t || (t === "number" && actual === "integer");
}

function resolveRef(s: Record<string, unknown>, root: Schema): Schema | undefined {
  const ref = s.$ref as string;
  if (ref === "#") return root;
  const m = /^#\/\$defs\/(.+)$/.exec(ref);
  if (!m || typeof root !== "object") return undefined;
  return (root.$defs as Record<string, Schema> | undefined)?.[m[1].replace(/~1/g, "/").replace(/~0/g, "~")];
}

function check(v: unknown, s: Schema, root: Schema, path: string, depth: number): ValueProblem | undefined {
  if (s === true) return undefined;
  if (s === false) return { path, message: "no value is allowed here" };
  if (depth > 64) return undefined;
  if (typeof s.$ref === "string") {
    const target = resolveRef(s, root);
    if (target === undefined) return { path, message: `unresolvable $ref ${s.$ref}` };
    const p = check(v, target, root, path, depth + 1);
    if (p) return p;
  }
  const xt = s["x-tern"] as { kind?: string } | undefined;
  if (xt?.kind) {
    const k = (v as { $tern?: unknown } | null)?.$tern;
    return k === xt.kind
      ? undefined
      : { path, message: `expected a ${xt.kind} value ({"$tern":"${xt.kind}","uri":…})` };
  }
  for (const key of ["anyOf", "oneOf"] as const) {
    const variants = s[key] as Schema[] | undefined;
    if (variants && !variants.some((x) => check(v, x, root, path, depth + 1) === undefined)) {
      const first = variants.map((x) => check(v, x, root, path, depth + 1)).find(Boolean);
      return first ?? { path, message: "fits none of the allowed types" };
    }
  }
  for (const x of (s.allOf as Schema[] | undefined) ?? []) {
    const p = check(v, x, root, path, depth + 1);
    if (p) return p;
  }
  if ("const" in s && JSON.stringify(s.const) !== JSON.stringify(v))
    return { path, message: `must be ${JSON.stringify(s.const)}` };
  if (Array.isArray(s.enum) && !s.enum.some((e) => JSON.stringify(e) === JSON.stringify(v))) {
    return { path, message: `must be one of ${s.enum.map((e) => JSON.stringify(e)).join(", ")}` };
  }
  const types =
    s.type === undefined ? undefined : Array.isArray(s.type) ? (s.type as string[]) : [s.type as string];
  if (types && !types.some((t) => fitsType(v, t))) {
    return {
      path,
      message: `expected ${types.join(" or ")}, got ${typeOf(v)}${typeOf(v) === "number" && types.includes("integer") ? " with a fraction" : ""}`,
    };
  }
  if (typeof v === "number") {
    if (typeof s.minimum === "number" && v < s.minimum) return { path, message: `must be ≥ ${s.minimum}` };
    if (typeof s.maximum === "number" && v > s.maximum) return { path, message: `must be ≤ ${s.maximum}` };
    if (typeof s.exclusiveMinimum === "number" && v <= s.exclusiveMinimum)
      return { path, message: `must be > ${s.exclusiveMinimum}` };
    if (typeof s.exclusiveMaximum === "number" && v >= s.exclusiveMaximum)
      return { path, message: `must be < ${s.exclusiveMaximum}` };
  }
  if (typeof v === "string") {
    if (typeof s.minLength === "number" && v.length < s.minLength)
      return { path, message: `must have at least ${s.minLength} characters` };
    if (typeof s.maxLength === "number" && v.length > s.maxLength)
      return { path, message: `must have at most ${s.maxLength} characters` };
  }
  if (Array.isArray(v)) {
    if (typeof s.minItems === "number" && v.length < s.minItems)
      return { path, message: `must have at least ${s.minItems} items` };
    if (typeof s.maxItems === "number" && v.length > s.maxItems)
      return { path, message: `must have at most ${s.maxItems} items` };
    const prefix = (s.prefixItems as Schema[] | undefined) ?? [];
    for (let i = 0; i < v.length; i++) {
      const item = i < prefix.length ? prefix[i] : (s.items as Schema | undefined);
      if (item === undefined) continue;
      const p = check(v[i], item, root, `${path}[${i}]`, depth + 1);
      if (p) return p;
    }
  } else if (v !== null && typeof v === "object") {
    const o = v as Record<string, unknown>;
    const props = (s.properties as Record<string, Schema> | undefined) ?? {};
    for (const r of (s.required as string[] | undefined) ?? []) {
      if (o[r] === undefined) return { path: `${path}.${r}`, message: "is required" };
    }
    for (const [k, x] of Object.entries(o)) {
      if (x === undefined) continue;
      const ps = props[k] ?? (s.additionalProperties as Schema | undefined);
      if (ps === undefined) continue;
      if (ps === false) return { path: `${path}.${k}`, message: "is not a known field" };
      const p = check(x, ps, root, `${path}.${k}`, depth + 1);
      if (p) return p;
    }
  }
  return undefined;
}
