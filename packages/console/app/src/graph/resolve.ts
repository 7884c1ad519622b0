/**
 * A node's inputs, worked out in the browser from its bindings: the workflow's
 * inputs and upstream nodes' outputs (the server stores outputs, and a node's
 * inputs are exactly its bindings evaluated over them).
 */
import type { NodeState } from "./model.js";

export const PENDING = Symbol("pending");

interface Found {
  spec: any;
  /** Prefix of the level holding the node ("" or "a/b/"). */
  prefix: string;
  /** The workflow spec the node belongs to. */
  workflow: any;
}

/** The spec of a fully qualified node id, walking into subworkflows. */
export function specAt(compiled: any, id: string): Found | undefined {
  const parts = id.split("/");
  let workflow = compiled.workflow;
  let prefix = "";
  for (let i = 0; i < parts.length; i++) {
    const spec = workflow?.nodes?.find((n: any) => n.id === parts[i]);
    if (!spec) return undefined;
    if (i === parts.length - 1) return { spec, prefix, workflow };
    if (spec.kind !== "workflow") return undefined;
    workflow = compiled.subworkflows?.[spec.workflow];
    prefix += `${parts[i]}/`;
  }
  return undefined;
}

export function evalBinding(
  b: any,
  prefix: string,
  scopeInputs: (prefix: string) => unknown,
  states: Map<string, NodeState>,
): unknown {
  if (!b || typeof b !== "object") return b;
  if ("literal" in b) return b.literal;
  if (b.ref) {
    let v: unknown =
      b.ref.node === "$inputs" ? scopeInputs(prefix) : (states.get(prefix + b.ref.node)?.outputs ?? PENDING);
    if (v === PENDING) return PENDING;
    for (const k of b.ref.path ?? []) {
      if (v === null || typeof v !== "object") return undefined;
      v = (v as Record<string | number, unknown>)[k];
    }
    return v;
  }
  if (b.object) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(b.object)) out[k] = evalBinding(x, prefix, scopeInputs, states);
    return out;
  }
  if (b.list) return b.list.map((x: any) => evalBinding(x, prefix, scopeInputs, states));
  return undefined;
}

/** The inputs of node `id`, or undefined when its spec is not known (inside a dynamic node). */
export function nodeInputs(
  compiled: any,
  executionInputs: Record<string, unknown>,
  states: Map<string, NodeState>,
  id: string,
): Record<string, unknown> | undefined {
  const scopeInputs = (prefix: string): unknown => {
    if (prefix === "") return executionInputs;
    const groupId = prefix.slice(0, -1);
    const found = specAt(compiled, groupId);
    if (!found) return undefined;
    const own = nodeInputs(compiled, executionInputs, states, groupId) ?? {};
    const sub = compiled.subworkflows?.[found.spec.workflow];
    const withDefaults: Record<string, unknown> = {};
    for (const [k, spec] of Object.entries<any>(sub?.interface?.inputs ?? {}))
      if (spec.default !== undefined) withDefaults[k] = spec.default;
    return { ...withDefaults, ...own };
  };
  const found = specAt(compiled, id);
  if (!found) return undefined;
  const s = found.spec;
  const bindings: Record<string, any> =
    s.kind === "map"
      ? { ...s.inputs, ...s.bound }
      : s.kind === "gate" && s.gate.value
        ? { value: s.gate.value }
        : (s.inputs ?? {});
  const out: Record<string, unknown> = {};
  for (const [k, b] of Object.entries(bindings)) out[k] = evalBinding(b, found.prefix, scopeInputs, states);
  return out;
}

/** By-reference values (files, dataframes) with a uri inside a value. */
export function blobRefs(v: unknown, out: { kind: string; uri: string; name?: string }[] = []) {
  if (!v || typeof v !== "object") return out;
  if (Array.isArray(v)) {
    for (const x of v) blobRefs(x, out);
    return out;
  }
  const o = v as Record<string, unknown>;
  if ((o.$tern === "file" || o.$tern === "dataframe" || o.$tern === "dir") && typeof o.uri === "string")
    out.push({ kind: o.$tern, uri: o.uri, ...(typeof o.name === "string" ? { name: o.name } : {}) });
  for (const x of Object.values(o)) blobRefs(x, out);
  return out;
}
