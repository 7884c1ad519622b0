import { describe, expect, it } from "vitest";
import { z } from "zod";
import { checkAssignable, describeSchema, type Incompatibility, type JsonSchema } from "../src/typecheck.js";

/** Serialize a zod schema the way Tern stores interfaces. */
const json = (schema: z.ZodType): JsonSchema => z.toJSONSchema(schema) as JsonSchema;

interface Case {
  name: string;
  from: JsonSchema;
  to: JsonSchema;
  /** `undefined`: compatible; otherwise where and why it must fail. */
  fails?: { path: string; reason: RegExp };
}

const ok = (name: string, from: JsonSchema, to: JsonSchema): Case => ({ name, from, to });
const bad = (name: string, from: JsonSchema, to: JsonSchema, path: string, reason: RegExp): Case => ({
  name,
  from,
  to,
  fails: { path, reason },
});

// Hand-written schemas.
const INT = { type: "integer" };
const NUM = { type: "number" };
const STR = { type: "string" };
const BOOL = { type: "boolean" };
const NULL = { type: "null" };
const ANY = {};
const NEVER = { not: {} };
const AB = { type: "string", enum: ["a", "b"] };
const ABC = { type: "string", enum: ["a", "b", "c"] };
const list = (items: JsonSchema) => ({ type: "array", items });
const map = (value: JsonSchema, keys?: JsonSchema) => ({
  type: "object",
  additionalProperties: value,
  ...(keys ? { propertyNames: keys } : {}),
});
const obj = (
  properties: Record<string, JsonSchema>,
  required = Object.keys(properties),
  extra?: JsonSchema,
) => ({
  type: "object",
  properties,
  required,
  ...(extra === undefined ? {} : { additionalProperties: extra }),
});
const tuple = (prefixItems: JsonSchema[], items: JsonSchema = false) => ({
  type: "array",
  prefixItems,
  items,
});
const anyOf = (...variants: JsonSchema[]) => ({ anyOf: variants });
const file = (format?: string) => ({ "x-tern": { kind: "file", ...(format ? { format } : {}) } });
const dir = (format?: string) => ({ "x-tern": { kind: "dir", ...(format ? { format } : {}) } });
const frame = (columns?: Record<string, JsonSchema>, format?: string) => ({
  "x-tern": { kind: "dataframe", ...(columns ? { columns } : {}), ...(format ? { format } : {}) },
});

// Schemas produced by zod 4.
const zInt = json(z.number().int());
const zNum = json(z.number());
// Schemas with a meta id become `$defs` entries; each id may appear once per conversion.
const LeafNum = z.object({ v: z.number() }).meta({ id: "Leaf" });
const LeafInt = z.object({ v: z.number().int() }).meta({ id: "Leaf" });
const LeafStr = z.object({ v: z.string() }).meta({ id: "Leaf" });
const treeOf = (v: z.ZodType) => {
  const Tree: z.ZodType = z.object({
    v,
    get kids() {
      return z.array(Tree).optional();
    },
  });
  return z.object({ tree: Tree });
};
const Category: z.ZodType = z.lazy(() => z.object({ name: z.string(), sub: z.array(Category) }));
const SelfNode: z.ZodType = z.object({
  name: z.string(),
  get children() {
    return z.array(SelfNode);
  },
});
const features = (weight: z.ZodType) =>
  json(z.object({ features: z.array(z.object({ name: z.string(), weight })), label: z.string().optional() }));

const cases: Case[] = [
  // --- scalars --------------------------------------------------------------------------------
  ok("integer → integer", INT, INT),
  ok("number → number", NUM, NUM),
  ok("string → string", STR, STR),
  ok("boolean → boolean", BOOL, BOOL),
  ok("null → null", NULL, NULL),
  bad(
    "integer ↛ number",
    INT,
    NUM,
    "",
    /^integer is not compatible with number: Tern keeps integers and floats apart/,
  ),
  bad(
    "number ↛ integer",
    NUM,
    INT,
    "",
    /^number is not compatible with integer: Tern keeps integers and floats apart/,
  ),
  bad("zod int ↛ zod number", zInt, zNum, "", /integers and floats apart/),
  bad("zod number ↛ zod int", zNum, zInt, "", /integers and floats apart/),
  ok("zod int32 → zod int (bounds ignored)", json(z.int32()), zInt),
  bad("string ↛ number", STR, NUM, "", /^string is not compatible with number$/),
  bad("number ↛ string", NUM, STR, "", /^number is not compatible with string$/),
  bad("boolean ↛ string", BOOL, STR, "", /boolean is not compatible with string/),
  bad("null ↛ string", NULL, STR, "", /null is not compatible with string/),
  bad("string ↛ null", STR, NULL, "", /string is not compatible with null/),
  ok(
    "constraints ignored (integer ranges)",
    { type: "integer", minimum: 0 },
    { type: "integer", minimum: 100 },
  ),
  ok("annotations and string format ignored", json(z.email().describe("mail")), json(z.string().min(3))),
  ok("zod iso datetime → string", json(z.iso.datetime()), STR),
  ok("default/title ignored", { type: "string", default: "x", title: "T", examples: ["y"] }, STR),

  // --- const / enum -------------------------------------------------------------------------
  ok("enum → string", AB, STR),
  ok("zod enum → zod string", json(z.enum(["a", "b"])), json(z.string())),
  bad(
    "string ↛ enum",
    STR,
    AB,
    "",
    /^string is not compatible with enum\('a'\|'b'\): a plain string may hold values outside/,
  ),
  bad("zod string ↛ zod enum", json(z.string()), json(z.enum(["x"])), "", /outside the enum/),
  ok("enum → superset enum", AB, ABC),
  bad(
    "enum ↛ subset enum",
    ABC,
    AB,
    "",
    /enum\('a'\|'b'\|'c'\) is not compatible with enum\('a'\|'b'\): value 'c' is not accepted/,
  ),
  ok("same enum, different order", { type: "string", enum: ["b", "a"] }, AB),
  ok("const → enum containing it", { type: "string", const: "a" }, AB),
  bad("const ↛ enum without it", { const: "z" }, AB, "", /value 'z' is not accepted/),
  ok("const → string", json(z.literal("x")), STR),
  bad("string ↛ const", STR, json(z.literal("x")), "", /outside the enum/),
  bad("enum ↛ number", AB, NUM, "", /value 'a' is not accepted/),
  ok("zod number literal 3 → integer (checked by value)", json(z.literal(3)), INT),
  bad("number literal 3.5 ↛ integer", { type: "number", const: 3.5 }, INT, "", /value 3.5 is not accepted/),
  ok("zod numeric enum → integer", json(z.enum({ A: 1, B: 2 })), zInt),
  bad(
    "integer ↛ numeric enum",
    INT,
    json(z.enum({ A: 1, B: 2 })),
    "",
    /a plain integer may hold values outside/,
  ),
  ok("enum → union of literals", AB, json(z.union([z.literal("a"), z.literal("b")]))),
  ok("union of literals → enum", json(z.union([z.literal("a"), z.literal("b")])), AB),
  ok("boolean → enum of both booleans", BOOL, { enum: [true, false] }),
  bad("boolean ↛ const true", BOOL, { const: true }, "", /a plain boolean may hold values outside/),
  ok("zod null literal → null", json(z.literal(null)), NULL),
  ok("null → const null", NULL, { const: null }),
  ok("mixed literal → string | number", json(z.literal(["a", 1])), anyOf(STR, NUM)),
  bad("mixed literal ↛ string", json(z.literal(["a", 1])), STR, "", /value 1 is not accepted/),
  ok("const object → matching object", { const: { a: 1 } }, obj({ a: INT })),
  bad(
    "const object ↛ object of strings",
    { const: { a: 1 } },
    obj({ a: STR }),
    "",
    /value \{"a":1\} is not accepted/,
  ),

  // --- any / never --------------------------------------------------------------------------
  ok("integer → {}", INT, ANY),
  ok("object → {}", json(z.object({ a: z.string() })), json(z.unknown())),
  ok("file → any", file("csv"), json(z.any())),
  ok("anything → true", list(INT), true),
  ok("{} → {}", ANY, ANY),
  ok("true → {}", true, ANY),
  bad(
    "{} ↛ integer",
    ANY,
    INT,
    "",
    /^unknown is not compatible with integer: an untyped value may be anything/,
  ),
  bad("zod unknown ↛ zod string", json(z.unknown()), json(z.string()), "", /untyped value/),
  bad("list<unknown> ↛ list<string>", list(ANY), list(STR), "[]", /untyped value/),
  ok("never → integer", json(z.never()), INT),
  ok("false → string", false, STR),
  ok("list<never> (empty list) → list<string>", json(z.array(z.never())), list(STR)),
  bad("integer ↛ never", INT, NEVER, "", /accepts no value/),
  bad("integer ↛ false", INT, false, "", /accepts no value/),
  bad(
    "unsupported 'not' is rejected, not ignored",
    STR,
    { not: { type: "null" } },
    "",
    /unsupported target schema/,
  ),

  // --- objects ------------------------------------------------------------------------------
  ok("same object", obj({ a: INT, b: STR }), obj({ a: INT, b: STR })),
  ok("source has extra fields", obj({ a: INT, b: STR, c: BOOL }), obj({ a: INT })),
  ok(
    "zod: extra fields pass into a stripping z.object (additionalProperties:false not enforced)",
    json(z.object({ a: z.number().int(), extra: z.string() })),
    json(z.object({ a: z.number().int() })),
  ),
  ok("target optional field absent from source", obj({ a: INT }), obj({ a: INT, b: STR }, ["a"])),
  bad(
    "required field missing",
    obj({ a: INT }),
    obj({ a: INT, b: STR }),
    ".b",
    /^field 'b' is required by the target but absent/,
  ),
  bad(
    "fewer fields ↛ more (reverse of extra fields)",
    obj({ a: INT }),
    obj({ a: INT, b: STR, c: BOOL }),
    ".b",
    /absent/,
  ),
  bad(
    "optional source field ↛ required target field",
    json(z.object({ a: z.string().optional() })),
    json(z.object({ a: z.string() })),
    ".a",
    /^field 'a' is optional in the source but required by the target/,
  ),
  ok(
    "required source field → optional target field",
    json(z.object({ a: z.string() })),
    json(z.object({ a: z.string().optional() })),
  ),
  ok(
    "optional → optional",
    json(z.object({ a: z.string().optional() })),
    json(z.object({ a: z.string().optional() })),
  ),
  bad(
    "shared field type mismatch",
    json(z.object({ a: z.string(), n: z.number() })),
    json(z.object({ a: z.string(), n: z.number().int() })),
    ".n",
    /number is not compatible with integer/,
  ),
  bad(
    "optional target field present with wrong type",
    obj({ a: STR }),
    obj({ a: INT }, []),
    ".a",
    /string is not compatible with integer/,
  ),
  ok(
    "zod default field is required in output → required target",
    json(z.object({ a: z.string().default("x") })),
    json(z.object({ a: z.string() })),
  ),
  ok(
    "zod input-mode default field (not required) accepts a required source",
    json(z.object({ a: z.string() })),
    z.toJSONSchema(z.object({ a: z.string().default("x") }), { io: "input" }) as JsonSchema,
  ),
  bad(
    "nested object mismatch",
    features(z.number().int()),
    features(z.number()),
    ".features[].weight",
    /integer is not compatible with number/,
  ),
  bad(
    "nested reverse mismatch",
    features(z.number()),
    features(z.number().int()),
    ".features[].weight",
    /number is not compatible with integer/,
  ),
  ok(
    "catchall number source gives an optional number field",
    obj({ a: STR }, ["a"], NUM),
    obj({ a: STR, b: NUM }, ["a"]),
  ),
  bad(
    "catchall string source ↛ optional number field",
    obj({ a: STR }, ["a"], STR),
    obj({ a: STR, b: NUM }, ["a"]),
    ".b",
    /string is not compatible with number/,
  ),
  bad(
    "loose object may carry an untyped value for an optional target field",
    json(z.looseObject({ a: z.string() })),
    json(z.object({ a: z.string(), b: z.number().optional() })),
    ".b",
    /untyped value/,
  ),
  ok("object → generic object", obj({ a: INT }), { type: "object" }),
  bad("generic object ↛ object with required field", { type: "object" }, obj({ a: INT }), ".a", /absent/),
  bad("object ↛ string", obj({ a: INT }), STR, "", /^\{a: integer\} is not compatible with string$/),
  bad("object ↛ list", obj({ a: INT }), list(INT), "", /is not compatible with list<integer>/),
  ok("odd property names", obj({ "a b": INT }), obj({ "a b": INT })),
  bad(
    "odd property names in paths",
    obj({ "a b": INT }),
    obj({ "a b": NUM }),
    '["a b"]',
    /integers and floats/,
  ),

  // --- records / maps -----------------------------------------------------------------------
  ok(
    "record → same record",
    json(z.record(z.string(), z.number().int())),
    json(z.record(z.string(), z.number().int())),
  ),
  bad(
    "record<int> ↛ record<number>",
    json(z.record(z.string(), z.number().int())),
    json(z.record(z.string(), z.number())),
    "{}",
    /integers and floats/,
  ),
  bad("record<number> ↛ record<int>", map(NUM), map(INT), "{}", /number is not compatible with integer/),
  ok(
    "record with enum keys → record with string keys",
    json(z.record(z.enum(["a", "b"]), z.number())),
    json(z.record(z.string(), z.number())),
  ),
  bad(
    "record with string keys ↛ record with required enum keys",
    json(z.record(z.string(), z.number())),
    json(z.record(z.enum(["a", "b"]), z.number())),
    ".a",
    /key 'a' is required by the target but not guaranteed/,
  ),
  bad(
    "record with string keys ↛ partial record with enum keys",
    json(z.record(z.string(), z.number())),
    json(z.partialRecord(z.enum(["a", "b"]), z.number())),
    "{key}",
    /string is not compatible with enum\('a'\|'b'\)/,
  ),
  ok(
    "enum-keyed record → object with those fields",
    json(z.record(z.enum(["a", "b"]), z.number())),
    obj({ a: NUM, b: NUM }),
  ),
  ok("object → map of its value type", obj({ a: INT, b: INT }), map(INT)),
  bad(
    "object ↛ map with a wrong field",
    obj({ a: INT, b: STR }),
    map(INT),
    ".b",
    /string is not compatible with integer/,
  ),
  bad(
    "object with a key outside the target's keys",
    obj({ c: NUM }),
    json(z.partialRecord(z.enum(["a", "b"]), z.number())),
    ".c",
    /key 'c' is not an allowed key/,
  ),
  bad(
    "map ↛ object with required field",
    map(INT),
    obj({ a: INT }),
    ".a",
    /the source does not guarantee key 'a'/,
  ),
  ok("map → object with optional field of the value type", map(INT), obj({ a: INT }, [])),
  bad(
    "map ↛ object with optional field of another type",
    map(STR),
    obj({ a: INT }, []),
    ".a",
    /string is not compatible with integer/,
  ),
  bad("map<list<int>> ↛ map<list<number>>", map(list(INT)), map(list(NUM)), "{}[]", /integers and floats/),
  ok("record → map with any values", json(z.record(z.string(), z.boolean())), map(ANY)),

  // --- arrays and tuples ----------------------------------------------------------------------
  ok("list<int> → list<int>", json(z.array(z.number().int())), json(z.array(z.number().int()))),
  bad("list<int> ↛ list<number>", list(INT), list(NUM), "[]", /integer is not compatible with number/),
  bad("list<number> ↛ list<int>", list(NUM), list(INT), "[]", /number is not compatible with integer/),
  bad(
    "list<list<int>> ↛ list<list<number>>",
    list(list(INT)),
    list(list(NUM)),
    "[][]",
    /integers and floats/,
  ),
  ok("list<enum> → list<string>", json(z.array(z.enum(["a"]))), json(z.array(z.string()))),
  bad("list ↛ string", list(STR), STR, "", /^list<string> is not compatible with string$/),
  bad("string ↛ list", STR, list(STR), "", /^string is not compatible with list<string>$/),
  ok("tuple → same tuple", json(z.tuple([z.string(), z.number()])), json(z.tuple([z.string(), z.number()]))),
  ok("tuple → list of a covering union", json(z.tuple([z.string(), z.number()])), list(anyOf(STR, NUM))),
  bad(
    "tuple ↛ list missing a position's type",
    tuple([STR, NUM]),
    list(STR),
    "[1]",
    /number is not compatible with string/,
  ),
  bad("list ↛ tuple", list(STR), tuple([STR, STR]), "", /a list has no fixed length/),
  bad(
    "longer tuple ↛ shorter closed tuple",
    tuple([STR, NUM]),
    tuple([STR]),
    "",
    /more elements than the target tuple's 1/,
  ),
  bad(
    "shorter tuple ↛ longer tuple",
    tuple([STR]),
    tuple([STR, NUM]),
    "",
    /needs 2 positions but the source guarantees only 1/,
  ),
  bad(
    "tuple position mismatch",
    json(z.tuple([z.string(), z.number().nullable()])),
    tuple([STR, NUM]),
    "[1]",
    /null is not compatible with number/,
  ),
  ok("tuple with rest → list", json(z.tuple([z.string()], z.number())), list(anyOf(STR, NUM))),
  bad(
    "tuple with rest ↛ closed tuple",
    json(z.tuple([z.string()], z.number())),
    tuple([STR]),
    "",
    /may have more elements/,
  ),
  ok("tuple with rest → tuple with compatible rest", tuple([STR, NUM], NUM), tuple([STR], NUM)),
  ok(
    "legacy items-array tuple → list",
    { type: "array", items: [STR, STR], additionalItems: false },
    list(STR),
  ),

  // --- unions -------------------------------------------------------------------------------
  ok("int → int | string", INT, json(z.union([z.number().int(), z.string()]))),
  ok(
    "nullable int → nullable int (type array)",
    json(z.number().int().nullable()),
    json(z.number().int().nullable()),
  ),
  ok("int → nullable int", zInt, json(z.number().int().nullable())),
  bad(
    "nullable int ↛ int",
    json(z.number().int().nullable()),
    zInt,
    "",
    /^null is not compatible with integer$/,
  ),
  ok(
    "string | number → string | number | boolean",
    json(z.union([z.string(), z.number()])),
    anyOf(STR, NUM, BOOL),
  ),
  bad(
    "string | number | boolean ↛ string | number",
    anyOf(STR, NUM, BOOL),
    json(z.union([z.string(), z.number()])),
    "",
    /^boolean is not compatible with string \| number: it fits none/,
  ),
  bad("boolean ↛ int | string", BOOL, anyOf(INT, STR), "", /fits none of the union's variants/),
  bad(
    "integer ↛ number | null explains the number variant",
    INT,
    json(z.number().nullable()),
    "",
    /integers and floats apart/,
  ),
  bad(
    "object ↛ nullable object reports the nested field",
    json(z.object({ a: z.number().int() })),
    json(z.object({ a: z.number() }).nullable()),
    ".a",
    /integer is not compatible with number/,
  ),
  ok(
    "nullable object (anyOf) → nullable object",
    json(z.object({ a: z.string() }).nullable()),
    json(z.object({ a: z.string() }).nullable()),
  ),
  ok("union source → {}", anyOf(STR, INT), ANY),
  ok("oneOf (z.xor) → anyOf", json(z.xor([z.string(), z.number()])), anyOf(NUM, STR)),
  ok(
    "discriminated union → same union",
    json(
      z.discriminatedUnion("k", [
        z.object({ k: z.literal("a"), x: z.string() }),
        z.object({ k: z.literal("b") }),
      ]),
    ),
    json(
      z.discriminatedUnion("k", [
        z.object({ k: z.literal("a"), x: z.string() }),
        z.object({ k: z.literal("b") }),
      ]),
    ),
  ),
  bad(
    "discriminated union ↛ union missing a variant",
    json(z.discriminatedUnion("k", [z.object({ k: z.literal("a") }), z.object({ k: z.literal("b") })])),
    json(z.object({ k: z.literal("a") })),
    ".k",
    /value 'b' is not accepted/,
  ),
  ok("single-variant union → its variant", anyOf(INT), INT),
  ok("empty union (never) → anything", anyOf(), STR),
  bad("anything ↛ empty union", STR, anyOf(), "", /fits none/),
  ok(
    "nullable $ref → nullable $ref",
    json(z.object({ a: LeafNum.nullable() })),
    json(z.object({ a: LeafNum.nullable() })),
  ),

  // --- allOf --------------------------------------------------------------------------------
  ok(
    "zod intersection of strings (allOf) → string",
    json(z.intersection(z.string(), z.string().min(3))),
    STR,
  ),
  ok("string → allOf of strings", STR, { allOf: [STR, { type: "string", minLength: 1 }] }),
  bad(
    "string ↛ allOf with an integer member",
    STR,
    { allOf: [STR, INT] },
    "",
    /string is not compatible with integer/,
  ),
  bad("allOf of strings ↛ integer", { allOf: [STR, STR] }, INT, "", /string is not compatible with integer/),

  // --- x-tern by-reference values -----------------------------------------------------------
  ok("file(csv) → file(csv)", file("csv"), file("csv")),
  ok("file(csv) → generic file", file("csv"), file()),
  ok("generic file → file(csv)", file(), file("csv")),
  ok("format comparison ignores case", file("CSV"), file("csv")),
  bad(
    "file(csv) ↛ file(parquet)",
    file("csv"),
    file("parquet"),
    "",
    /^file\(csv\) is not compatible with file\(parquet\): format 'csv' differs from 'parquet'/,
  ),
  bad("file ↛ dir", file(), dir(), "", /a file cannot be passed where a dir is expected/),
  bad("dir ↛ file", dir("zarr"), file(), "", /a dir cannot be passed where a file is expected/),
  ok("dir(zarr) → dir(zarr)", dir("zarr"), dir("zarr")),
  ok("dir → dir(zarr)", dir(), dir("zarr")),
  bad("dir(zarr) ↛ dir(images)", dir("zarr"), dir("images"), "", /format 'zarr' differs/),
  bad("file ↛ string", file("csv"), STR, "", /by-reference values/),
  bad("string ↛ file", STR, file("csv"), "", /by-reference values/),
  bad("{} ↛ file", ANY, file(), "", /untyped value/),
  bad("enum ↛ file", AB, file(), "", /value 'a' is not accepted/),
  ok(
    "x-tern wins over sibling keywords (zod .meta)",
    json(z.string().meta({ "x-tern": { kind: "file", format: "csv" } })),
    file("csv"),
  ),
  bad(
    "x-tern value with type:string ↛ string",
    json(z.string().meta({ "x-tern": { kind: "file" } })),
    json(z.string()),
    "",
    /by-reference/,
  ),
  ok("dataframe → dataframe with column subset", frame({ a: INT, b: STR }), frame({ a: INT })),
  ok("dataframe → generic dataframe", frame({ a: INT }), frame()),
  ok("dataframe with empty columns is generic", frame({ a: INT }), frame({})),
  ok("generic dataframe → generic dataframe", frame(), frame()),
  bad("generic dataframe ↛ dataframe with columns", frame(), frame({ a: INT }), "", /declares no columns/),
  bad(
    "dataframe missing a column",
    frame({ a: INT }),
    frame({ a: INT, c: STR }),
    ".c",
    /^column 'c' is required by the target but absent/,
  ),
  bad("dataframe column type mismatch", frame({ a: INT }), frame({ a: NUM }), ".a", /integers and floats/),
  ok("dataframe column enum → string", frame({ kind: AB }), frame({ kind: STR })),
  bad(
    "dataframe(parquet) ↛ dataframe(csv)",
    frame({ a: INT }, "parquet"),
    frame(undefined, "csv"),
    "",
    /format 'parquet' differs/,
  ),
  bad("dataframe ↛ file", frame(), file(), "", /a dataframe cannot be passed where a file is expected/),
  bad(
    "file field in an object",
    obj({ data: file("csv") }),
    obj({ data: file("json") }),
    ".data",
    /format 'csv' differs from 'json'/,
  ),
  ok("list of files", list(file("csv")), list(file())),
  ok("nullable file", file("csv"), anyOf(file("csv"), NULL)),
  bad(
    "malformed x-tern",
    { "x-tern": { kind: "blob" } },
    file(),
    "",
    /unsupported source schema: x-tern needs a kind/,
  ),

  // --- $ref / $defs / recursion ---------------------------------------------------------------
  ok(
    "shared $defs (meta id) → same",
    json(z.object({ a: LeafNum, b: LeafNum })),
    json(z.object({ a: LeafNum })),
  ),
  bad(
    "$ref'd leaf mismatch",
    json(z.object({ a: LeafInt })),
    json(z.object({ a: LeafNum })),
    ".a.v",
    /integers and floats/,
  ),
  ok("$ref source → inline target", json(z.object({ a: LeafStr })), obj({ a: obj({ v: STR }) })),
  ok(
    "z.lazy recursive schema → itself",
    json(z.object({ root: Category })),
    json(z.object({ root: Category })),
  ),
  ok("getter-recursive tree → same tree", json(treeOf(z.number().int())), json(treeOf(z.number().int()))),
  bad(
    "recursive tree int ↛ tree number",
    json(treeOf(z.number().int())),
    json(treeOf(z.number())),
    ".tree.v",
    /integers and floats/,
  ),
  bad(
    "recursive source ↛ finite target, mismatch at depth",
    json(treeOf(z.number().int())),
    obj({ tree: obj({ v: INT, kids: list(obj({ v: NUM })) }, ["v"]) }),
    ".tree.kids[].v",
    /integers and floats/,
  ),
  ok("$ref '#' root recursion → itself", json(SelfNode), json(SelfNode)),
  bad(
    "$ref '#' recursion ↛ recursion with another leaf type",
    json(SelfNode),
    {
      type: "object",
      properties: { name: INT, children: { type: "array", items: { $ref: "#" } } },
      required: ["name", "children"],
    },
    ".name",
    /string is not compatible with integer/,
  ),
  ok("nested $defs pointer", { $ref: "#/$defs/a~1b", $defs: { "a/b": INT } }, INT),
  bad("unresolvable $ref", { $ref: "#/$defs/Missing" }, INT, "", /cannot resolve \$ref '#\/\$defs\/Missing'/),
  bad(
    "remote $ref is not followed",
    INT,
    { $ref: "https://example.com/s.json" },
    "",
    /target schema is unusable: cannot resolve/,
  ),
  bad(
    "$ref cycle without a schema",
    { $ref: "#/$defs/A", $defs: { A: { $ref: "#/$defs/A" } } },
    INT,
    "",
    /does not end in a schema/,
  ),
  ok("$ref with sibling constraints", { $ref: "#/$defs/S", minLength: 2, $defs: { S: STR } }, STR),
];

describe("checkAssignable", () => {
  it.each(cases)("$name", ({ from, to, fails }) => {
    const result = checkAssignable(from, to);
    if (!fails) {
      expect(result).toEqual({ ok: true });
      return;
    }
    expect(result.ok).toBe(false);
    const error = (result as { error: Incompatibility }).error;
    expect(error.path).toBe(fails.path);
    expect(error.reason).toMatch(fails.reason);
    expect(error.from).toBeTypeOf("string");
    expect(error.to).toBeTypeOf("string");
  });

  // Every usable schema in the table (one whose refs resolve and keywords are supported on
  // both sides) must accept itself.
  const usable = (s: JsonSchema) => checkAssignable(s, true).ok && checkAssignable(false, s).ok;
  const distinct = new Map(cases.flatMap((c) => [c.from, c.to]).map((s) => [JSON.stringify(s), s]));
  const schemas = [...distinct.values()].filter(usable);
  it("keeps the unusable schemas out of the reflexivity check", () => {
    expect(usable({ $ref: "#/$defs/Missing" })).toBe(false);
    expect(usable({ not: { type: "null" } })).toBe(false);
    expect(schemas.length).toBeGreaterThan(100);
  });
  it.each(schemas.map((schema) => ({ schema, text: describeSchema(schema) })))(
    "is reflexive: $text",
    ({ schema }) => {
      expect(checkAssignable(schema, schema)).toEqual({ ok: true });
    },
  );

  it("reports the full incompatibility for a nested mismatch", () => {
    expect(checkAssignable(features(z.number().int()), features(z.number()))).toEqual({
      ok: false,
      error: {
        path: ".features[].weight",
        reason:
          "integer is not compatible with number: Tern keeps integers and floats apart; convert explicitly",
        from: "integer",
        to: "number",
      },
    });
  });

  it("reports a missing required field with its path and target type", () => {
    expect(
      checkAssignable(
        json(z.object({ a: z.string() })),
        json(z.object({ a: z.string(), b: z.array(z.number()) })),
      ),
    ).toEqual({
      ok: false,
      error: {
        path: ".b",
        reason: "field 'b' is required by the target but absent from the source",
        from: "absent",
        to: "list<number>",
      },
    });
  });

  it("explains the string → enum rule", () => {
    expect(checkAssignable(json(z.string()), json(z.enum(["train", "test"])))).toEqual({
      ok: false,
      error: {
        path: "",
        reason:
          "string is not compatible with enum('train'|'test'): a plain string may hold values outside the enum; " +
          "narrow it with z.enum first (Flyte defers this to run time, Tern rejects it)",
        from: "string",
        to: "enum('train'|'test')",
      },
    });
  });

  it("renders from/to with each side's own $defs", () => {
    const result = checkAssignable(json(z.object({ a: LeafInt })), json(z.object({ a: z.string() })));
    expect(result).toEqual({
      ok: false,
      error: {
        path: ".a",
        reason: "{v: integer} is not compatible with string",
        from: "{v: integer}",
        to: "string",
      },
    });
  });

  it("does not mutate its inputs", () => {
    const from = json(z.object({ a: z.number().int().nullable(), b: z.record(z.string(), z.string()) }));
    const to = json(z.object({ a: z.number().nullable() }));
    const [fromCopy, toCopy] = [structuredClone(from), structuredClone(to)];
    expect(checkAssignable(from, to).ok).toBe(false);
    expect([from, to]).toEqual([fromCopy, toCopy]);
  });
});

describe("describeSchema", () => {
  it.each<[string, JsonSchema, string]>([
    ["integer", zInt, "integer"],
    ["number", zNum, "number"],
    ["string", json(z.string()), "string"],
    ["boolean", json(z.boolean()), "boolean"],
    ["null", json(z.null()), "null"],
    ["unknown", json(z.unknown()), "unknown"],
    ["never", json(z.never()), "never"],
    ["false", false, "never"],
    ["enum", json(z.enum(["a", "b"])), "enum('a'|'b')"],
    ["string literal", json(z.literal("x")), "literal('x')"],
    ["number literal", json(z.literal(3)), "literal(3)"],
    ["numeric enum", json(z.enum({ A: 1, B: 2 })), "enum(1|2)"],
    ["list", json(z.array(z.number())), "list<number>"],
    ["nested list", list(list(STR)), "list<list<string>>"],
    ["tuple", json(z.tuple([z.string(), z.number()])), "[string, number]"],
    ["tuple with rest", json(z.tuple([z.string()], z.number())), "[string, ...number]"],
    ["record", json(z.record(z.string(), z.number().int())), "map<string, integer>"],
    ["enum-keyed record", json(z.record(z.enum(["a", "b"]), z.number())), "map<enum('a'|'b'), number>"],
    ["map without propertyNames", map(BOOL), "map<string, boolean>"],
    ["object", json(z.object({ a: z.number().int(), b: z.string().optional() })), "{a: integer, b?: string}"],
    [
      "object with catchall",
      json(z.object({ a: z.string() }).catchall(z.number())),
      "{a: string, [string]: number}",
    ],
    ["generic object", { type: "object" }, "object"],
    ["nullable", json(z.number().int().nullable()), "integer | null"],
    ["anyOf nullable object", json(z.object({ a: z.string() }).nullable()), "{a: string} | null"],
    ["union", json(z.union([z.string(), z.number()])), "string | number"],
    ["intersection", json(z.intersection(z.string(), z.string().min(3))), "string & string"],
    ["file", file("csv"), "file(csv)"],
    ["generic file", file(), "file"],
    ["dir", dir("zarr"), "dir(zarr)"],
    ["dataframe", frame({ a: INT }), "dataframe{a: integer}"],
    [
      "dataframe with format",
      frame({ a: INT, b: STR }, "parquet"),
      "dataframe(parquet){a: integer, b: string}",
    ],
    ["generic dataframe", frame(), "dataframe"],
    ["$defs reference", json(z.object({ a: LeafNum })), "{a: {v: number}}"],
    ["z.lazy recursion", json(z.object({ root: Category })), "{root: {name: string, sub: list<…>}}"],
    ["'#' recursion", json(SelfNode), "{name: string, children: list<…>}"],
    [
      "named recursion",
      { $ref: "#/$defs/Node", $defs: { Node: { type: "array", items: { $ref: "#/$defs/Node" } } } },
      "list<Node>",
    ],
    [
      "deep nesting is abbreviated",
      obj({ a: obj({ b: obj({ c: obj({ d: obj({ e: INT }) }) }) }) }),
      "{a: {b: {c: {d: {…}}}}}",
    ],
    ["unresolved ref", { $ref: "#/$defs/X" }, "unresolved(#/$defs/X)"],
  ])("%s", (_name, schema, expected) => {
    expect(describeSchema(schema)).toBe(expected);
  });

  it("resolves $ref against an explicit root", () => {
    const root = { $defs: { P: { type: "object", properties: { x: INT }, required: ["x"] } } };
    expect(describeSchema({ $ref: "#/$defs/P" }, root)).toBe("{x: integer}");
  });
});
