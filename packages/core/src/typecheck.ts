/**
 * Registration-time type checking of bindings, from serialized interfaces only.
 *
 * Every task and workflow interface is stored as JSON Schema (draft 2020-12, as produced by
 * zod 4's `z.toJSONSchema`, plus the Tern extension keyword `x-tern` for by-reference values).
 * When the compiler wires an upstream output (or a field of it) into a downstream input it asks
 * {@link checkAssignable} whether every value the source schema admits is acceptable to the
 * target schema. Working from the serialized form means JavaScript callers, remote references
 * and previously registered versions get the same checks as TypeScript code.
 *
 * The rules follow flytepropeller's compiler type checker (`validators/typing.go`) where they
 * make sense for JSON values, and are stricter in a few places:
 *
 * - `integer` and `number` are distinct and incompatible in both directions (Flyte: INTEGER vs FLOAT).
 * - enum → string is allowed; enum → enum needs the source values to be a subset of the target's
 *   (Flyte requires identical enums); string → enum is rejected (Flyte accepts it and lets the
 *   value fail at run time).
 * - A finite source (`const`/`enum`) is checked value by value, so `z.literal(3)`, which zod
 *   serializes as `{"type":"number","const":3}`, fits an integer input.
 * - Objects are structural: the source must provide every field the target requires, a field
 *   required by the target must be required in the source, and shared fields must be compatible.
 *   Extra source fields are fine: zod strips unknown keys, so `additionalProperties: false` on the
 *   target is not treated as a constraint. A source without an `additionalProperties` keyword is
 *   taken to declare no extra keys; an explicit `additionalProperties` schema is checked.
 * - Unions: every source variant must fit the target; a non-union source must fit at least one
 *   target variant (Flyte demands exactly one, because its union literals carry a variant tag;
 *   Tern values are plain JSON validated by zod, so ambiguity is harmless).
 * - `type` arrays (`["string","null"]`) and `anyOf`/`oneOf` are unions. An `allOf` target needs
 *   every member to accept the source; an `allOf` source fits when any one member fits (sound,
 *   though it may reject intersections that only fit as a whole; zod merges object intersections).
 * - `{}` (unknown/any) as target accepts everything; as source it only fits `{}`. `false` and
 *   `{"not":{}}` (never, e.g. the items of an empty list) fit anything.
 * - `x-tern` file/dir: same kind, and equal formats (case-insensitive) unless either side has
 *   none. file ↔ dir never fit (Flyte's blob check ignores dimensionality). dataframe: the
 *   target's columns must be a subset of the source's with compatible types; a target without
 *   columns accepts any dataframe, a source without columns only fits a target without columns
 *   (Flyte lets it through either way). An optional dataframe `format` follows the file rule.
 * - `$ref` is resolved as a JSON pointer into each side's own root (`#`, `#/$defs/...`).
 *   Recursive schemas are handled coinductively: revisiting a pair already being compared is
 *   assumed compatible.
 * - Annotations (`title`, `description`, `default`, `examples`, string `format`, `pattern`,
 *   min/max lengths and bounds, `minItems`/`maxItems`, `patternProperties`) do not take part in
 *   compatibility. Those constraints are enforced at run time when zod parses the value.
 * - Tuples (`prefixItems`) are compared position by position; a plain list never fits a tuple
 *   (its length is not fixed) and a tuple may not be longer than the target tuple allows.
 * - `not` is only understood as `{"not":{}}` (zod's `never`); any other `not` is reported as
 *   unsupported rather than silently ignored.
 *
 * @module
 */

/** A JSON Schema document or sub-schema: `true`/`false` or a keyword object. */
export type JsonSchema = boolean | { [k: string]: unknown };

/** Where and why a binding is not type-compatible. */
export interface Incompatibility {
  /**
   * JSON-path-like location inside the value where the types diverge, relative to the bound
   * value: `""` for the value itself, `.a.b` for fields, `[]` for list items, `[0]` for tuple
   * positions, `{}` for map values and `{key}` for map keys, e.g. `.features[].weight`.
   */
  path: string;
  /** One sentence explaining the mismatch, e.g. "integer is not compatible with number: ...". */
  reason: string;
  /** {@link describeSchema} rendering of the source sub-schema at `path`. */
  from: string;
  /** {@link describeSchema} rendering of the target sub-schema at `path`. */
  to: string;
}

/** Result of {@link checkAssignable}. */
export type AssignabilityResult = { ok: true } | { ok: false; error: Incompatibility };

/**
 * Can a value of schema `from` be passed where `to` is expected?
 *
 * Both schemas are full documents: `$ref`s in `from` are resolved against `from`, those in `to`
 * against `to`. Only the shape of values is compared; value constraints (bounds, patterns,
 * lengths) are left to run-time validation.
 *
 * @param from - schema of the value produced upstream (a node output or a field of it).
 * @param to - schema of the input it is bound to.
 * @returns `{ ok: true }`, or the first incompatibility found, with its location in the value.
 *
 * @example
 * ```ts
 * checkAssignable({ type: "integer" }, { type: "number" });
 * // { ok: false, error: { path: "", from: "integer", to: "number",
 * //   reason: "integer is not compatible with number: Tern keeps integers and floats apart; convert explicitly" } }
 * ```
 */
export function checkAssignable(from: JsonSchema, to: JsonSchema): AssignabilityResult {
  const error = new Checker(from, to).check(from, to, "");
  return error ? { ok: false, error } : { ok: true };
}

/**
 * Short human-readable rendering of a schema, used in error messages: `integer`, `string`,
 * `enum('a'|'b')`, `literal(3)`, `list<number>`, `[string, number]`, `map<string, integer>`,
 * `{a: integer, b?: string}`, `file(csv)`, `dir`, `dataframe{a: integer}`, `integer | null`,
 * `unknown`, `never`. Recursive references render as their `$defs` name (or `…`); deeply nested
 * objects are abbreviated to `{…}`.
 *
 * @param s - the schema (or sub-schema) to render.
 * @param root - the document `$ref`s in `s` point into; defaults to `s` itself.
 */
export function describeSchema(s: JsonSchema, root: JsonSchema = s): string {
  return render(s, root, new Set(), 0);
}

// ---------------------------------------------------------------------------------------------
// Normalized view of a schema
// ---------------------------------------------------------------------------------------------

type JsonObject = { [k: string]: unknown };
type ScalarType = "string" | "integer" | "number" | "boolean" | "null";
type TernKind = "file" | "dir" | "dataframe";

interface TernType {
  kind: TernKind;
  format: string | undefined;
  /** Dataframe columns; `undefined` when none are declared (generic dataframe). */
  columns: Record<string, JsonSchema> | undefined;
}

/** What a schema means for compatibility, with annotations stripped. */
type Shape =
  | { k: "any" }
  | { k: "never" }
  | { k: "ref"; ref: string }
  | { k: "union"; variants: readonly JsonSchema[] }
  | { k: "all"; members: readonly JsonSchema[] }
  | { k: "tern"; tern: TernType }
  | { k: "finite"; values: readonly unknown[] }
  | { k: "scalar"; type: ScalarType }
  | { k: "array"; prefix: readonly JsonSchema[]; rest: JsonSchema }
  | {
      k: "object";
      properties: Readonly<Record<string, JsonSchema>>;
      required: ReadonlySet<string>;
      /** `additionalProperties`, or `undefined` when the keyword is absent (no declared extras). */
      additional: JsonSchema | undefined;
      /** `propertyNames`, when present. */
      keys: JsonSchema | undefined;
    }
  | { k: "unsupported"; reason: string };

const ANY: Shape = { k: "any" };
const NEVER: Shape = { k: "never" };
const STRING_SCHEMA: JsonSchema = { type: "string" };
const SCALARS: ReadonlySet<string> = new Set(["string", "integer", "number", "boolean", "null"]);
const TERN_KINDS: ReadonlySet<string> = new Set(["file", "dir", "dataframe"]);
const COMBINATORS = ["$ref", "anyOf", "oneOf", "allOf"] as const;
/** Keywords that restrict the shape of a value; everything else is an annotation or a constraint. */
const STRUCTURAL = new Set([
  ...COMBINATORS,
  "type",
  "enum",
  "const",
  "not",
  "x-tern",
  "properties",
  "additionalProperties",
  "propertyNames",
  "required",
  "items",
  "prefixItems",
]);
const MAX_REF_HOPS = 64;
const MAX_DESCRIBE_DEPTH = 4;

const isObject = (x: unknown): x is JsonObject => typeof x === "object" && x !== null && !Array.isArray(x);
const isSchema = (x: unknown): x is JsonSchema => typeof x === "boolean" || isObject(x);
const hasStructure = (s: JsonObject): boolean => Object.keys(s).some((k) => STRUCTURAL.has(k));

/** Shapes are memoized per schema object so that derived sub-schemas keep a stable identity. */
const shapes = new WeakMap<JsonObject, Shape>();

function shapeOf(s: JsonSchema): Shape {
  if (typeof s === "boolean") return s ? ANY : NEVER;
  let shape = shapes.get(s);
  if (!shape) {
    shape = computeShape(s);
    shapes.set(s, shape);
  }
  return shape;
}

function computeShape(s: JsonObject): Shape {
  if ("x-tern" in s) return ternShape(s["x-tern"]);

  const members: JsonSchema[] = [];
  if (typeof s.$ref === "string") members.push({ $ref: s.$ref });
  for (const key of ["anyOf", "oneOf"] as const) {
    const list = s[key];
    if (Array.isArray(list)) {
      if (!list.every(isSchema)) return { k: "unsupported", reason: `malformed ${key}` };
      members.push({ anyOf: list });
    }
  }
  if (Array.isArray(s.allOf)) {
    if (!s.allOf.every(isSchema)) return { k: "unsupported", reason: "malformed allOf" };
    members.push(...s.allOf);
  }
  if (members.length > 0) {
    const rest = Object.fromEntries(
      Object.entries(s).filter(([k]) => !(COMBINATORS as readonly string[]).includes(k)),
    );
    if (hasStructure(rest)) members.push(rest);
    if (members.length === 1 && !Array.isArray(s.allOf)) {
      const only = members[0] as JsonObject;
      if (typeof only.$ref === "string") return { k: "ref", ref: only.$ref };
      return { k: "union", variants: only.anyOf as JsonSchema[] };
    }
    return { k: "all", members };
  }

  if ("not" in s) {
    return isSchema(s.not) && shapeOf(s.not).k === "any"
      ? NEVER
      : { k: "unsupported", reason: "'not' is only supported as {\"not\":{}} (never)" };
  }
  if ("const" in s) return { k: "finite", values: [s.const] };
  if (Array.isArray(s.enum)) return { k: "finite", values: s.enum };

  const type = s.type;
  if (Array.isArray(type)) return { k: "union", variants: type.map((t) => ({ ...s, type: t })) };
  if (typeof type === "string") {
    if (SCALARS.has(type)) return { k: "scalar", type: type as ScalarType };
    if (type === "array") return arrayShape(s);
    if (type === "object") return objectShape(s);
    return { k: "unsupported", reason: `unknown type '${type}'` };
  }
  if (type !== undefined) return { k: "unsupported", reason: "malformed 'type'" };
  if ("properties" in s || "additionalProperties" in s || "propertyNames" in s || "required" in s) {
    return objectShape(s);
  }
  if ("items" in s || "prefixItems" in s) return arrayShape(s);
  return ANY;
}

function ternShape(x: unknown): Shape {
  if (!isObject(x) || typeof x.kind !== "string" || !TERN_KINDS.has(x.kind)) {
    return { k: "unsupported", reason: "x-tern needs a kind of 'file', 'dir' or 'dataframe'" };
  }
  if (x.format !== undefined && typeof x.format !== "string") {
    return { k: "unsupported", reason: "x-tern format must be a string" };
  }
  let columns: Record<string, JsonSchema> | undefined;
  if (x.columns !== undefined) {
    if (!isObject(x.columns) || !Object.values(x.columns).every(isSchema)) {
      return { k: "unsupported", reason: "x-tern columns must map column names to schemas" };
    }
    columns = Object.keys(x.columns).length > 0 ? (x.columns as Record<string, JsonSchema>) : undefined;
  }
  const format = x.format === "" ? undefined : x.format;
  return { k: "tern", tern: { kind: x.kind as TernKind, format, columns } };
}

function arrayShape(s: JsonObject): Shape {
  // Draft 2019-09 and earlier spell tuples as `items: [...]` plus `additionalItems`.
  const legacyTuple = Array.isArray(s.items);
  const prefix = legacyTuple ? s.items : (s.prefixItems ?? []);
  const rest = legacyTuple ? (s.additionalItems ?? true) : (s.items ?? true);
  if (!Array.isArray(prefix) || !prefix.every(isSchema) || !isSchema(rest)) {
    return { k: "unsupported", reason: "malformed array items" };
  }
  return { k: "array", prefix, rest };
}

function objectShape(s: JsonObject): Shape {
  const properties = s.properties ?? {};
  const required = s.required ?? [];
  if (!isObject(properties) || !Object.values(properties).every(isSchema)) {
    return { k: "unsupported", reason: "malformed properties" };
  }
  if (!Array.isArray(required) || !required.every((r) => typeof r === "string")) {
    return { k: "unsupported", reason: "malformed required" };
  }
  const additional = s.additionalProperties;
  const keys = s.propertyNames;
  if ((additional !== undefined && !isSchema(additional)) || (keys !== undefined && !isSchema(keys))) {
    return { k: "unsupported", reason: "malformed additionalProperties or propertyNames" };
  }
  return {
    k: "object",
    properties: properties as Record<string, JsonSchema>,
    required: new Set(required),
    additional,
    keys,
  };
}

/** Resolves a local JSON-pointer `$ref` (`#`, `#/$defs/Name`, ...) against `root`. */
function resolvePointer(ref: string, root: JsonSchema): JsonSchema | undefined {
  if (ref !== "#" && !ref.startsWith("#/")) return undefined;
  let node: unknown = root;
  for (const raw of ref === "#" ? [] : ref.slice(2).split("/")) {
    const key = decodeURIComponent(raw).replaceAll("~1", "/").replaceAll("~0", "~");
    if (Array.isArray(node)) node = node[Number(key)];
    else if (isObject(node)) node = node[key];
    else return undefined;
  }
  return isSchema(node) ? node : undefined;
}

/** Follows `$ref` chains; returns the referenced schema or an explanation of why it cannot. */
function deref(s: JsonSchema, root: JsonSchema): { schema: JsonSchema } | { error: string } {
  let current = s;
  for (let hop = 0; hop < MAX_REF_HOPS; hop++) {
    const shape = shapeOf(current);
    if (shape.k !== "ref") return { schema: current };
    const next = resolvePointer(shape.ref, root);
    if (next === undefined) {
      return { error: `cannot resolve $ref '${shape.ref}' (only local '#/...' references are supported)` };
    }
    current = next;
  }
  return { error: "$ref chain does not end in a schema" };
}

// ---------------------------------------------------------------------------------------------
// Checking
// ---------------------------------------------------------------------------------------------

/** Incompatibility of one sub-schema pair, or `undefined` when compatible. */
type Verdict = Incompatibility | undefined;

class Checker {
  /** Pairs (source, target) currently being compared, for recursive schemas. */
  private readonly active = new Map<JsonObject, Set<JsonObject>>();

  constructor(
    private readonly fromRoot: JsonSchema,
    private readonly toRoot: JsonSchema,
  ) {}

  check(from: JsonSchema, to: JsonSchema, path: string): Verdict {
    const f = deref(from, this.fromRoot);
    if ("error" in f) return this.incompatible(path, from, to, `the source schema is unusable: ${f.error}`);
    const t = deref(to, this.toRoot);
    if ("error" in t) return this.incompatible(path, from, to, `the target schema is unusable: ${t.error}`);
    const [fs, ts] = [f.schema, t.schema];
    if (typeof fs === "boolean" || typeof ts === "boolean") return this.compare(fs, ts, path);

    let targets = this.active.get(fs);
    if (targets?.has(ts)) return undefined; // revisiting a pair under comparison: assume compatible
    if (!targets) {
      targets = new Set();
      this.active.set(fs, targets);
    }
    targets.add(ts);
    try {
      return this.compare(fs, ts, path);
    } finally {
      targets.delete(ts);
    }
  }

  private compare(from: JsonSchema, to: JsonSchema, path: string): Verdict {
    const fs = shapeOf(from);
    const ts = shapeOf(to);
    if (fs.k === "unsupported") {
      return this.incompatible(path, from, to, `unsupported source schema: ${fs.reason}`);
    }
    if (ts.k === "unsupported") {
      return this.incompatible(path, from, to, `unsupported target schema: ${ts.reason}`);
    }
    if (fs.k === "never" || ts.k === "any") return undefined;

    if (fs.k === "union") {
      for (const variant of fs.variants) {
        const error = this.check(variant, to, path);
        if (error) return error;
      }
      return undefined;
    }
    if (fs.k === "finite") return this.finiteInto(fs.values, from, to, path);
    if (ts.k === "all") {
      for (const member of ts.members) {
        const error = this.check(from, member, path);
        if (error) return error;
      }
      return undefined;
    }
    if (fs.k === "all") {
      // A value satisfying every member satisfies each one: fitting any member is enough.
      let first: Verdict;
      for (const member of fs.members) {
        const error = this.check(member, to, path);
        if (!error) return undefined;
        first ??= error;
      }
      return first;
    }
    if (ts.k === "union") return this.intoUnion(from, fs, to, ts.variants, path);
    if (fs.k === "any") {
      return this.incompatible(
        path,
        from,
        to,
        "an untyped value may be anything; give the upstream output a type",
      );
    }
    if (ts.k === "never") return this.incompatible(path, from, to, "the target accepts no value at all");
    if (fs.k === "tern" || ts.k === "tern") return this.tern(from, fs, to, ts, path);
    if (ts.k === "finite") return this.intoFinite(from, fs, to, ts.values, path);
    if (fs.k === "scalar" && ts.k === "scalar") return this.scalars(from, fs.type, to, ts.type, path);
    if (fs.k === "array" && ts.k === "array") return this.arrays(from, fs, to, ts, path);
    if (fs.k === "object" && ts.k === "object") return this.objects(fs, to, ts, path);
    return this.incompatible(path, from, to);
  }

  /** A const/enum source: every one of its values must be accepted by the target. */
  private finiteInto(values: readonly unknown[], from: JsonSchema, to: JsonSchema, path: string): Verdict {
    for (const value of values) {
      if (!valueFits(value, to, this.toRoot, new Set())) {
        return this.incompatible(path, from, to, `value ${formatValue(value)} is not accepted`);
      }
    }
    return undefined;
  }

  private intoUnion(
    from: JsonSchema,
    fs: Shape,
    to: JsonSchema,
    variants: readonly JsonSchema[],
    path: string,
  ): Verdict {
    const failures: { variant: JsonSchema; error: Incompatibility }[] = [];
    for (const variant of variants) {
      const error = this.check(from, variant, path);
      if (!error) return undefined;
      failures.push({ variant, error });
    }
    // When exactly one variant is of the same family as the source (e.g. the object in
    // `object | null`), its error pinpoints the problem better than a generic message.
    const family = familyOf(fs);
    const close = failures.filter(({ variant }) => {
      const resolved = deref(variant, this.toRoot);
      return "schema" in resolved && family !== undefined && familyOf(shapeOf(resolved.schema)) === family;
    });
    if (close.length === 1) return close[0].error;
    return this.incompatible(path, from, to, "it fits none of the union's variants");
  }

  private intoFinite(
    from: JsonSchema,
    fs: Shape,
    to: JsonSchema,
    values: readonly unknown[],
    path: string,
  ): Verdict {
    if (fs.k === "scalar") {
      const covered =
        (fs.type === "boolean" && values.includes(true) && values.includes(false)) ||
        (fs.type === "null" && values.includes(null));
      if (covered) return undefined;
      const detail =
        fs.type === "string"
          ? "a plain string may hold values outside the enum; narrow it with z.enum first (Flyte defers this to run time, Tern rejects it)"
          : `a plain ${fs.type} may hold values outside the allowed ones`;
      return this.incompatible(path, from, to, detail);
    }
    return this.incompatible(path, from, to);
  }

  private scalars(from: JsonSchema, f: ScalarType, to: JsonSchema, t: ScalarType, path: string): Verdict {
    if (f === t) return undefined;
    if ((f === "integer" && t === "number") || (f === "number" && t === "integer")) {
      return this.incompatible(path, from, to, "Tern keeps integers and floats apart; convert explicitly");
    }
    return this.incompatible(path, from, to);
  }

  private arrays(
    from: JsonSchema,
    fs: Extract<Shape, { k: "array" }>,
    to: JsonSchema,
    ts: Extract<Shape, { k: "array" }>,
    path: string,
  ): Verdict {
    if (ts.prefix.length > fs.prefix.length) {
      const detail =
        fs.prefix.length === 0
          ? "a list has no fixed length but the target is a tuple"
          : `the target tuple needs ${ts.prefix.length} positions but the source guarantees only ${fs.prefix.length}`;
      return this.incompatible(path, from, to, detail);
    }
    const targetRestNever = this.isNever(ts.rest, this.toRoot);
    for (const [i, element] of fs.prefix.entries()) {
      if (i >= ts.prefix.length && targetRestNever) {
        return this.incompatible(
          path,
          from,
          to,
          `the source has more elements than the target tuple's ${ts.prefix.length}`,
        );
      }
      const error = this.check(element, ts.prefix[i] ?? ts.rest, `${path}[${i}]`);
      if (error) return error;
    }
    if (this.isNever(fs.rest, this.fromRoot)) return undefined;
    if (targetRestNever) {
      return this.incompatible(
        path,
        from,
        to,
        "the source may have more elements than the target tuple allows",
      );
    }
    return this.check(fs.rest, ts.rest, `${path}[]`);
  }

  private objects(
    fs: Extract<Shape, { k: "object" }>,
    to: JsonSchema,
    ts: Extract<Shape, { k: "object" }>,
    path: string,
  ): Verdict {
    for (const [name, target] of Object.entries(ts.properties)) {
      const at = path + segment(name);
      const source = this.sourceField(fs, name);
      const required = ts.required.has(name);
      if (!source) {
        if (!required) continue;
        return {
          path: at,
          reason: `field '${name}' is required by the target but absent from the source`,
          from: "absent",
          to: describeSchema(target, this.toRoot),
        };
      }
      if (required && !source.required) {
        return {
          path: at,
          reason: source.declared
            ? `field '${name}' is optional in the source but required by the target`
            : `field '${name}' is required by the target but the source does not guarantee key '${name}'`,
          from: `optional ${describeSchema(source.schema, this.fromRoot)}`,
          to: describeSchema(target, this.toRoot),
        };
      }
      const error = this.check(source.schema, target, at);
      if (error) return error;
    }
    // Required keys without a property schema (records keyed by an enum): must be guaranteed.
    for (const name of ts.required) {
      if (name in ts.properties || this.sourceField(fs, name)?.required) continue;
      return {
        path: path + segment(name),
        reason: `key '${name}' is required by the target but not guaranteed by the source`,
        from: "absent",
        to: ts.additional === undefined ? "unknown" : describeSchema(ts.additional, this.toRoot),
      };
    }

    // Source keys the target does not list go through its propertyNames / additionalProperties.
    // `additionalProperties: false` on the target is not enforced: zod strips unknown keys.
    const extras =
      ts.additional !== undefined && ts.additional !== false && shapeOf(ts.additional).k !== "any"
        ? ts.additional
        : undefined;
    if (!extras && !ts.keys) return undefined;
    for (const [name, schema] of Object.entries(fs.properties)) {
      if (name in ts.properties) continue;
      const at = path + segment(name);
      if (ts.keys && !valueFits(name, ts.keys, this.toRoot, new Set())) {
        return {
          path: at,
          reason: `key '${name}' is not an allowed key of ${describeSchema(to, this.toRoot)}`,
          from: `key '${name}'`,
          to: describeSchema(ts.keys, this.toRoot),
        };
      }
      const error = extras === undefined ? undefined : this.check(schema, extras, at);
      if (error) return error;
    }
    if (fs.additional === undefined || this.isNever(fs.additional, this.fromRoot)) return undefined;
    if (ts.keys) {
      const error = this.check(fs.keys ?? STRING_SCHEMA, ts.keys, `${path}{key}`);
      if (error) return error;
    }
    return extras === undefined ? undefined : this.check(fs.additional, extras, `${path}{}`);
  }

  /** The schema the source gives to key `name`, via its properties or its map value schema. */
  private sourceField(
    fs: Extract<Shape, { k: "object" }>,
    name: string,
  ): { schema: JsonSchema; required: boolean; declared: boolean } | undefined {
    const required = fs.required.has(name);
    if (Object.hasOwn(fs.properties, name)) return { schema: fs.properties[name], required, declared: true };
    if (fs.additional === undefined || this.isNever(fs.additional, this.fromRoot)) return undefined;
    if (fs.keys && !valueFits(name, fs.keys, this.fromRoot, new Set())) return undefined;
    return { schema: fs.additional, required, declared: false };
  }

  private tern(from: JsonSchema, fs: Shape, to: JsonSchema, ts: Shape, path: string): Verdict {
    if (fs.k !== "tern" || ts.k !== "tern") {
      return this.incompatible(
        path,
        from,
        to,
        "by-reference values (file, dir, dataframe) only fit inputs of the same kind",
      );
    }
    const [f, t] = [fs.tern, ts.tern];
    if (f.kind !== t.kind) {
      return this.incompatible(path, from, to, `a ${f.kind} cannot be passed where a ${t.kind} is expected`);
    }
    if (
      f.format !== undefined &&
      t.format !== undefined &&
      f.format.toLowerCase() !== t.format.toLowerCase()
    ) {
      return this.incompatible(path, from, to, `format '${f.format}' differs from '${t.format}'`);
    }
    if (t.kind !== "dataframe" || !t.columns) return undefined;
    if (!f.columns) {
      return this.incompatible(
        path,
        from,
        to,
        "the source dataframe declares no columns but the target requires some",
      );
    }
    for (const [name, target] of Object.entries(t.columns)) {
      const at = path + segment(name);
      if (!Object.hasOwn(f.columns, name)) {
        return {
          path: at,
          reason: `column '${name}' is required by the target but absent from the source dataframe`,
          from: "absent",
          to: describeSchema(target, this.toRoot),
        };
      }
      const error = this.check(f.columns[name], target, at);
      if (error) return error;
    }
    return undefined;
  }

  private isNever(s: JsonSchema, root: JsonSchema): boolean {
    const resolved = deref(s, root);
    return "schema" in resolved && shapeOf(resolved.schema).k === "never";
  }

  /** Builds "<from> is not compatible with <to>[: detail]" for the sub-schemas at `path`. */
  private incompatible(path: string, from: JsonSchema, to: JsonSchema, detail?: string): Incompatibility {
    const f = describeSchema(from, this.fromRoot);
    const t = describeSchema(to, this.toRoot);
    return { path, reason: `${f} is not compatible with ${t}${detail ? `: ${detail}` : ""}`, from: f, to: t };
  }
}

/** Broad family of a shape, used to pick the most relevant union variant in error messages. */
function familyOf(shape: Shape): string | undefined {
  switch (shape.k) {
    case "scalar":
      return shape.type === "integer" ? "number" : shape.type;
    case "array":
    case "object":
      return shape.k;
    case "tern":
      return shape.tern.kind;
    default:
      return undefined;
  }
}

/** Does the concrete JSON value `v` have the shape `schema` describes (constraints ignored)? */
function valueFits(v: unknown, schema: JsonSchema, root: JsonSchema, seen: Set<JsonSchema>): boolean {
  const resolved = deref(schema, root);
  if ("error" in resolved) return false;
  const s = resolved.schema;
  if (seen.has(s)) return false; // a reference cycle that never reaches a concrete schema
  const within = new Set(seen).add(s);
  const shape = shapeOf(s);
  switch (shape.k) {
    case "any":
      return true;
    case "union":
      return shape.variants.some((x) => valueFits(v, x, root, within));
    case "all":
      return shape.members.every((x) => valueFits(v, x, root, within));
    case "finite":
      return shape.values.some((x) => jsonEqual(x, v));
    case "scalar":
      return scalarFits(v, shape.type);
    case "array":
      return (
        Array.isArray(v) &&
        v.length >= shape.prefix.length &&
        v.every((x, i) => valueFits(x, shape.prefix[i] ?? shape.rest, root, new Set()))
      );
    case "object":
      return (
        isObject(v) &&
        [...shape.required].every((k) => Object.hasOwn(v, k)) &&
        Object.entries(v).every(
          ([k, x]) =>
            (!shape.keys || valueFits(k, shape.keys, root, new Set())) &&
            valueFits(x, shape.properties[k] ?? shape.additional ?? true, root, new Set()),
        )
      );
    default:
      return false; // never, tern (a literal is not a stored reference), unsupported, ref
  }
}

function scalarFits(v: unknown, type: ScalarType): boolean {
  switch (type) {
    case "string":
      return typeof v === "string";
    case "integer":
      return Number.isInteger(v);
    case "number":
      return typeof v === "number" && Number.isFinite(v);
    case "boolean":
      return typeof v === "boolean";
    case "null":
      return v === null;
  }
}

function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) {
    return Array.isArray(b) && a.length === b.length && a.every((x, i) => jsonEqual(x, b[i]));
  }
  if (isObject(a) && isObject(b)) {
    const keys = Object.keys(a);
    return (
      keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && jsonEqual(a[k], b[k]))
    );
  }
  return false;
}

/** Path segment for a field: `.name`, or `["odd name"]` when it is not identifier-like. */
function segment(name: string): string {
  return /^[A-Za-z_$][\w$]*$/.test(name) ? `.${name}` : `[${JSON.stringify(name)}]`;
}

// ---------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------

function formatValue(v: unknown): string {
  return typeof v === "string" ? `'${v}'` : JSON.stringify(v);
}

function render(s: JsonSchema, root: JsonSchema, visiting: Set<JsonSchema>, depth: number): string {
  if (typeof s === "boolean" || visiting.has(s)) return renderShape(s, root, visiting, depth);
  visiting.add(s); // so that a `$ref` back to an enclosing schema renders as a name
  try {
    return renderShape(s, root, visiting, depth);
  } finally {
    visiting.delete(s);
  }
}

function renderShape(s: JsonSchema, root: JsonSchema, visiting: Set<JsonSchema>, depth: number): string {
  const shape = shapeOf(s);
  const sub = (x: JsonSchema) => render(x, root, visiting, depth + 1);
  switch (shape.k) {
    case "any":
      return "unknown";
    case "never":
      return "never";
    case "unsupported":
      return "unsupported";
    case "ref": {
      const target = resolvePointer(shape.ref, root);
      if (target === undefined) return `unresolved(${shape.ref})`;
      if (visiting.has(target)) {
        const name = shape.ref.split("/").at(-1) ?? "";
        return shape.ref === "#" || name.startsWith("__") ? "…" : name;
      }
      return render(target, root, visiting, depth);
    }
    case "union":
      return shape.variants.length === 0
        ? "never"
        : shape.variants.map((x) => render(x, root, visiting, depth)).join(" | ");
    case "all":
      return shape.members
        .map((x) => {
          const text = render(x, root, visiting, depth);
          return text.includes(" | ") ? `(${text})` : text;
        })
        .join(" & ");
    case "finite":
      return shape.values.length === 1
        ? `literal(${formatValue(shape.values[0])})`
        : `enum(${shape.values.map(formatValue).join("|")})`;
    case "scalar":
      return shape.type;
    case "tern": {
      const { kind, format, columns } = shape.tern;
      const head = format ? `${kind}(${format})` : kind;
      if (!columns) return head;
      if (depth >= MAX_DESCRIBE_DEPTH) return `${head}{…}`;
      return `${head}{${Object.entries(columns)
        .map(([name, col]) => `${name}: ${sub(col)}`)
        .join(", ")}}`;
    }
    case "array": {
      if (shape.prefix.length === 0) return `list<${sub(shape.rest)}>`;
      const items = shape.prefix.map(sub);
      if (shapeOf(shape.rest).k !== "never") items.push(`...${sub(shape.rest)}`);
      return `[${items.join(", ")}]`;
    }
    case "object": {
      const entries = Object.entries(shape.properties);
      const extra = shape.additional !== undefined && shapeOf(shape.additional).k !== "never";
      const keyText = () => (shape.keys ? sub(shape.keys) : "string");
      if (entries.length === 0) {
        return extra ? `map<${keyText()}, ${sub(shape.additional as JsonSchema)}>` : "object";
      }
      if (depth >= MAX_DESCRIBE_DEPTH) return "{…}";
      const fields = entries.map(([name, x]) => `${name}${shape.required.has(name) ? "" : "?"}: ${sub(x)}`);
      if (extra) fields.push(`[${keyText()}]: ${sub(shape.additional as JsonSchema)}`);
      return `{${fields.join(", ")}}`;
    }
  }
}
