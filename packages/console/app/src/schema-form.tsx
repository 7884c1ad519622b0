/**
 * A launch form generated from a workflow's interface (JSON Schema per input),
 * validated as the user types: each field says what is wrong with it, and the
 * form cannot be sent while any field is wrong.
 */
import { useMemo, useState } from "preact/hooks";

export type JsonSchema = Record<string, any>;
export interface InputSpec {
  schema: JsonSchema;
  default?: unknown;
  optional: boolean;
  description?: string;
}

const typeOf = (v: unknown): string =>
  v === null ? "null" : Array.isArray(v) ? "array" : Number.isInteger(v) ? "integer" : typeof v;

/** Problems of `value` against `schema` (the keywords zod's JSON Schema output uses), as `path: message`. */
export function validate(schema: JsonSchema | boolean | undefined, value: unknown, path = ""): string[] {
  if (schema === undefined || schema === true) return [];
  if (schema === false) return [`${path || "value"}: no value is allowed here`];
  return check(schema, value, path);
}

function check(schema: JsonSchema, value: unknown, path: string): string[] {
  const at = path || "value";
  const out: string[] = [];
  if (schema["x-tern"]) {
    const ok = typeof value === "object" && value !== null && (value as any).$tern === schema["x-tern"].kind;
    return ok
      ? []
      : [
          `${at}: expected a ${schema["x-tern"].kind} value like {"$tern":"${schema["x-tern"].kind}","uri":"…"}`,
        ];
  }
  for (const key of ["anyOf", "oneOf"] as const) {
    if (Array.isArray(schema[key])) {
      const branches = schema[key] as JsonSchema[];
      if (!branches.some((b) => validate(b, value, path).length === 0))
        out.push(`${at}: matches none of the allowed shapes`);
    }
  }
  if (Array.isArray(schema.allOf)) for (const s of schema.allOf) out.push(...validate(s, value, path));
  if (schema.const !== undefined && JSON.stringify(schema.const) !== JSON.stringify(value))
    out.push(`${at}: must be ${JSON.stringify(schema.const)}`);
  if (
    Array.isArray(schema.enum) &&
    !schema.enum.some((e: unknown) => JSON.stringify(e) === JSON.stringify(value))
  )
    out.push(`${at}: must be one of ${schema.enum.map((e: unknown) => JSON.stringify(e)).join(", ")}`);
  if (schema.type) {
    const types: string[] = Array.isArray(schema.type) ? schema.type : [schema.type];
    const t = typeOf(value);
    const ok = types.some((want) => want === t || (want === "number" && t === "integer"));
    if (!ok) return [...out, `${at}: expected ${types.join(" or ")}, got ${t}`];
  }
  if (typeof value === "string") {
    if (schema.minLength !== undefined && value.length < schema.minLength)
      out.push(`${at}: at least ${schema.minLength} characters`);
    if (schema.maxLength !== undefined && value.length > schema.maxLength)
      out.push(`${at}: at most ${schema.maxLength} characters`);
    if (schema.pattern && !new RegExp(schema.pattern, "u").test(value))
      out.push(`${at}: must match ${schema.pattern}`);
  }
  if (typeof value === "number") {
    if (schema.minimum !== undefined && value < schema.minimum)
      out.push(`${at}: must be ≥ ${schema.minimum}`);
    if (schema.maximum !== undefined && value > schema.maximum)
      out.push(`${at}: must be ≤ ${schema.maximum}`);
    if (schema.exclusiveMinimum !== undefined && value <= schema.exclusiveMinimum)
      out.push(`${at}: must be > ${schema.exclusiveMinimum}`);
    if (schema.exclusiveMaximum !== undefined && value >= schema.exclusiveMaximum)
      out.push(`${at}: must be < ${schema.exclusiveMaximum}`);
  }
  if (Array.isArray(value)) {
    if (schema.minItems !== undefined && value.length < schema.minItems)
      out.push(`${at}: at least ${schema.minItems} items`);
    if (schema.maxItems !== undefined && value.length > schema.maxItems)
      out.push(`${at}: at most ${schema.maxItems} items`);
    if (schema.items && typeof schema.items === "object")
      for (let i = 0; i < value.length; i++) out.push(...validate(schema.items, value[i], `${path}[${i}]`));
  }
  if (typeOf(value) === "object") {
    const o = value as Record<string, unknown>;
    for (const r of schema.required ?? []) if (!(r in o)) out.push(`${at}: missing field "${r}"`);
    const props: Record<string, JsonSchema> = schema.properties ?? {};
    for (const [k, v] of Object.entries(o)) {
      const sub: JsonSchema | boolean | undefined = k in props ? props[k] : schema.additionalProperties;
      if (sub === false) out.push(`${at}: unknown field "${k}"`);
      else out.push(...validate(sub, v, path ? `${path}.${k}` : k));
    }
  }
  return out;
}

type FieldKind = "text" | "number" | "boolean" | "select" | "json";

function kindOf(schema: JsonSchema): FieldKind {
  if (schema["x-tern"]) return "json";
  if (Array.isArray(schema.enum) && schema.enum.every((e: unknown) => typeof e === "string")) return "select";
  if (schema.type === "string") return "text";
  if (schema.type === "number" || schema.type === "integer") return "number";
  if (schema.type === "boolean") return "boolean";
  return "json";
}

function initialRaw(kind: FieldKind, spec: InputSpec): string {
  const d = spec.default;
  if (d === undefined) return kind === "boolean" ? "false" : "";
  if (kind === "text" || kind === "select") return String(d);
  if (kind === "number" || kind === "boolean") return String(d);
  return JSON.stringify(d, null, 2);
}

interface Parsed {
  present: boolean;
  value?: unknown;
  errors: string[];
}

function parseField(name: string, kind: FieldKind, raw: string, spec: InputSpec): Parsed {
  if (raw.trim() === "" && kind !== "text" && kind !== "boolean") {
    return spec.optional ? { present: false, errors: [] } : { present: false, errors: [`${name}: required`] };
  }
  if (kind === "text" && raw === "" && spec.optional) return { present: false, errors: [] };
  let value: unknown;
  switch (kind) {
    case "text":
    case "select":
      value = raw;
      break;
    case "boolean":
      value = raw === "true";
      break;
    case "number":
      value = Number(raw);
      if (!Number.isFinite(value as number) || !/^\s*-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$/.test(raw))
        return { present: true, errors: [`${name}: "${raw}" is not a number`] };
      break;
    default:
      try {
        value = JSON.parse(raw);
      } catch (e) {
        return { present: true, errors: [`${name}: not valid JSON (${(e as Error).message})`] };
      }
  }
  return { present: true, value, errors: validate(spec.schema, value, name) };
}

function describe(schema: JsonSchema): string {
  if (schema["x-tern"]) return schema["x-tern"].kind;
  if (Array.isArray(schema.enum)) return "one of a list";
  if (schema.type === "array") return `list of ${schema.items ? describe(schema.items) : "values"}`;
  return Array.isArray(schema.type) ? schema.type.join(" | ") : (schema.type ?? "JSON");
}

export interface LaunchFormProps {
  inputs: Record<string, InputSpec>;
  /** Send the inputs; reject with an error to show. */
  onLaunch(inputs: Record<string, unknown>): Promise<void>;
  disabled?: string;
}

export function LaunchForm({ inputs, onLaunch, disabled }: LaunchFormProps) {
  const names = Object.keys(inputs);
  const kinds = useMemo(() => Object.fromEntries(names.map((n) => [n, kindOf(inputs[n].schema)])), [inputs]);
  const [raw, setRaw] = useState<Record<string, string>>(() =>
    Object.fromEntries(names.map((n) => [n, initialRaw(kinds[n], inputs[n])])),
  );
  const [sending, setSending] = useState(false);
  const [failure, setFailure] = useState<string | undefined>();
  const parsed = Object.fromEntries(names.map((n) => [n, parseField(n, kinds[n], raw[n] ?? "", inputs[n])]));
  const invalid = names.some((n) => parsed[n].errors.length > 0);

  const submit = async (e: Event) => {
    e.preventDefault();
    if (invalid || sending || disabled) return;
    const values: Record<string, unknown> = {};
    for (const n of names) if (parsed[n].present) values[n] = parsed[n].value;
    setSending(true);
    setFailure(undefined);
    try {
      await onLaunch(values);
    } catch (err) {
      setFailure((err as Error).message + ((err as { hint?: string }).hint ? ` — ${(err as any).hint}` : ""));
    } finally {
      setSending(false);
    }
  };

  return (
    <form class="launch-form" onSubmit={submit} noValidate aria-label="Launch form">
      {names.length === 0 && <p class="muted">This workflow takes no inputs.</p>}
      {names.map((n) => {
        const spec = inputs[n];
        const kind = kinds[n];
        const id = `input-${n}`;
        const errs = parsed[n].errors;
        const common = {
          id,
          name: n,
          "aria-invalid": errs.length > 0,
          "aria-describedby": `${id}-help ${id}-err`,
        };
        const set = (v: string) => setRaw((r) => ({ ...r, [n]: v }));
        return (
          <div class={`field${errs.length ? " invalid" : ""}`} key={n}>
            <label for={id}>
              {n}{" "}
              <span class="muted">
                ({describe(spec.schema)}
                {spec.optional ? ", optional" : ""})
              </span>
            </label>
            {kind === "boolean" ? (
              <input
                type="checkbox"
                {...common}
                checked={raw[n] === "true"}
                onChange={(e) => set((e.currentTarget as HTMLInputElement).checked ? "true" : "false")}
              />
            ) : kind === "select" ? (
              <select
                {...common}
                value={raw[n]}
                onChange={(e) => set((e.currentTarget as HTMLSelectElement).value)}
              >
                {spec.optional && <option value="">(none)</option>}
                {(spec.schema.enum as string[]).map((v) => (
                  <option value={v} key={v}>
                    {v}
                  </option>
                ))}
              </select>
            ) : kind === "json" ? (
              <textarea
                {...common}
                rows={3}
                value={raw[n]}
                spellcheck={false}
                onInput={(e) => set((e.currentTarget as HTMLTextAreaElement).value)}
              />
            ) : (
              <input
                type="text"
                inputMode={kind === "number" ? "decimal" : undefined}
                {...common}
                value={raw[n]}
                onInput={(e) => set((e.currentTarget as HTMLInputElement).value)}
              />
            )}
            <div id={`${id}-help`} class="muted small">
              {spec.description ?? ""}
              {spec.default !== undefined ? ` default: ${JSON.stringify(spec.default)}` : ""}
            </div>
            <div id={`${id}-err`} class="error small" role={errs.length ? "alert" : undefined}>
              {errs.join("; ")}
            </div>
          </div>
        );
      })}
      {failure && (
        <p class="error" role="alert">
          {failure}
        </p>
      )}
      <button type="submit" disabled={invalid || sending || !!disabled} title={disabled}>
        {sending ? "Launching…" : "Launch"}
      </button>
      {disabled && <span class="muted small"> {disabled}</span>}
    </form>
  );
}
