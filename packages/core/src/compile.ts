/**
 * `compile()`: definitions → the JSON specs of `spec.ts`.
 *
 * It runs the workflow body once, serializes every interface to JSON Schema,
 * derives versions from content, and checks every binding again from the
 * serialized types (TypeScript already checked them, but JavaScript users,
 * `as any` and registered versions need the second check).
 */
import * as path from "node:path";
import { z } from "zod";
import { codeVersion } from "./code-version.js";
import { parseDuration } from "./duration.js";
import {
  type AnyTask,
  type AnyWorkflow,
  type BuiltNode,
  type CallSite,
  handleInfo,
  isHandle,
  isTaskDef,
  isWorkflowDef,
  type NodeOptions,
  type RetryOptions,
  type Shape,
} from "./dsl.js";
import { ErrorCodes, TernError } from "./errors.js";
import { hashValue, sha256 } from "./hash.js";
import {
  type Binding,
  type CachePolicy,
  type CompiledWorkflow,
  type InputSpec,
  type NodeOverrides,
  type RetryPolicy,
  SPEC_VERSION,
  type TaskMetadata,
  type TaskNode,
  type TaskSpec,
  type TypedInterface,
  taskKey,
  validateCompiledWorkflow,
  type WorkflowSpec,
} from "./spec.js";
import { toJsonSchema } from "./types.js";
import { checkAssignable, describeSchema, type JsonSchema } from "./typecheck.js";

export interface CompileOptions {
  /** @default "default" */
  project?: string;
  /** @default "development" */
  domain?: string;
  /** One version for the workflow and its tasks. Default: each derived from its content. */
  version?: string;
  /** Digest of the code bundle the definitions were loaded from. */
  bundle?: string;
  /** Directory module paths are recorded relative to. @default process.cwd() */
  projectRoot?: string;
}

/** The compiled specs plus the in-process definitions they came from. */
export interface Compiled {
  readonly spec: CompiledWorkflow;
  /** Task definitions by `name@version` (what in-process backends call). */
  readonly tasks: ReadonlyMap<string, AnyTask>;
  /** Zod schemas of the workflow's inputs (validation and defaults for executions). */
  readonly inputSchemas: Shape;
}

export const DEFAULT_PROJECT = "default";
export const DEFAULT_DOMAIN = "development";

export const DEFAULT_BACKOFF = { baseMs: 1000, maxMs: 300_000, factor: 2, jitter: 0.2 };
const DEFAULT_SYSTEM_RETRIES = 3;

/** Compile a workflow (or a single task, wrapped in a one-node workflow). */
export function compile(def: AnyWorkflow | AnyTask, opts: CompileOptions = {}): Compiled {
  if (!isWorkflowDef(def) && !isTaskDef(def)) {
    throw new TernError(ErrorCodes.USAGE, "compile() takes a workflow or a task definition", {
      hint: "pass what workflow() or task() returned",
    });
  }
  const c = new Compiler(opts);
  const spec = isTaskDef(def) ? c.wrapTask(def) : c.workflow(def);
  const compiled: CompiledWorkflow = { specVersion: SPEC_VERSION, workflow: spec, tasks: c.taskSpecs };
  validateCompiledWorkflow(compiled);
  return { spec: compiled, tasks: c.defs, inputSchemas: def.inputSchemas as Shape };
}

/** Interface of a task or workflow's inputs and output. */
export function interfaceOf(inputs: Shape, output: z.ZodType | undefined, owner: string): TypedInterface {
  const specs: Record<string, InputSpec> = {};
  for (const [k, s] of Object.entries(inputs)) {
    if (!(s instanceof z.ZodType)) {
      throw new TernError(ErrorCodes.DEFINITION, `${owner}: input "${k}" is not a zod schema`, {
        hint: `declare it as e.g. inputs: { ${k}: z.string() }`,
      });
    }
    const where = `input "${k}" of ${owner}`;
    const probe = s.safeParse(undefined);
    const spec: InputSpec = { schema: toJsonSchema(s, "input", where), optional: probe.success };
    if (probe.success && probe.data !== undefined) spec.default = probe.data as never;
    const description = s.description;
    if (description) spec.description = description;
    specs[k] = spec;
  }
  return { inputs: specs, output: output ? toJsonSchema(output, "output", `output of ${owner}`) : { type: "null" } };
}

/** Resolve a retries option into a policy. */
export function retryPolicy(r: number | RetryOptions | undefined, base?: RetryPolicy): RetryPolicy {
  const b = base ?? { user: 0, system: DEFAULT_SYSTEM_RETRIES, backoff: DEFAULT_BACKOFF };
  if (r === undefined) return b;
  if (typeof r === "number") return { ...b, user: r };
  const bo = r.backoff ?? {};
  return {
    user: r.user ?? b.user,
    system: r.system ?? b.system,
    backoff: {
      baseMs: bo.base !== undefined ? parseDuration(bo.base, "retry backoff base") : b.backoff.baseMs,
      maxMs: bo.max !== undefined ? parseDuration(bo.max, "retry backoff max") : b.backoff.maxMs,
      factor: bo.factor ?? b.backoff.factor,
      jitter: bo.jitter ?? b.backoff.jitter,
    },
  };
}

class Compiler {
  readonly project: string;
  readonly domain: string;
  readonly taskSpecs: Record<string, TaskSpec> = {};
  readonly defs = new Map<string, AnyTask>();
  private readonly byDef = new Map<AnyTask, string>();
  private readonly byName = new Map<string, AnyTask>();

  constructor(private readonly opts: CompileOptions) {
    this.project = opts.project ?? DEFAULT_PROJECT;
    this.domain = opts.domain ?? DEFAULT_DOMAIN;
  }

  task(def: AnyTask): string {
    const known = this.byDef.get(def);
    if (known) return known;
    const name = def.taskName;
    const other = this.byName.get(name);
    if (other && other !== def) {
      throw new TernError(ErrorCodes.COMPILE, `two different tasks are named "${name}"${siteList(other.callSite, def.callSite)}`, {
        hint: "task names are unique within a project: rename one",
      });
    }
    const o = def.options;
    const owner = `task "${name}"`;
    const iface = interfaceOf(def.inputSchemas, def.outputSchema, owner);
    const codeHash = taskCodeHash(def);
    let cache: CachePolicy | undefined;
    if (o.cache) {
      const co = o.cache === true ? {} : o.cache;
      for (const k of co.ignoreInputs ?? []) {
        if (!(k in iface.inputs)) {
          throw new TernError(ErrorCodes.DEFINITION, `${owner}: cache.ignoreInputs names "${k}", which is not an input`, {
            hint: `inputs are: ${Object.keys(iface.inputs).join(", ") || "(none)"}`,
          });
        }
      }
      cache = {
        version: co.version ?? codeHash,
        derived: co.version === undefined,
        serialize: co.serialize ?? false,
        ignoreInputs: [...(co.ignoreInputs ?? [])].sort(),
      };
    }
    const metadata: TaskMetadata = {
      retries: retryPolicy(o.retries),
      interruptible: o.interruptible ?? false,
      secrets: o.secrets ?? [],
      env: o.env ?? {},
    };
    if (o.timeout !== undefined) metadata.timeoutMs = positive(parseDuration(o.timeout, `timeout of ${owner}`), owner);
    if (cache) metadata.cache = cache;
    if (o.resources) metadata.resources = o.resources;
    if (o.image) metadata.image = o.image;
    if (o.description) metadata.description = o.description;
    const type = o.type ?? "node";
    const spec: TaskSpec = {
      kind: "task",
      specVersion: SPEC_VERSION,
      id: { project: this.project, domain: this.domain, name, version: "" },
      type,
      interface: iface,
      metadata,
    };
    if (type === "node") {
      spec.code = { hash: codeHash };
      if (def.callSite.file) spec.code.module = path.relative(this.opts.projectRoot ?? process.cwd(), def.callSite.file);
    }
    if (o.custom) spec.custom = o.custom;
    spec.id.version = this.opts.version ?? contentVersion(spec);
    if (type === "node" && this.opts.bundle) spec.code = { ...spec.code, bundle: this.opts.bundle };
    const key = taskKey(spec.id);
    this.taskSpecs[key] = spec;
    this.defs.set(key, def);
    this.byDef.set(def, key);
    this.byName.set(name, def);
    return key;
  }

  wrapTask(def: AnyTask): WorkflowSpec {
    const key = this.task(def);
    const ts = this.taskSpecs[key];
    const inputs: Record<string, Binding> = {};
    for (const k of Object.keys(ts.interface.inputs)) inputs[k] = { ref: { node: "$inputs", path: [k] } };
    const node: TaskNode = { id: safeNodeId(def.taskName), kind: "task", task: key, inputs, upstream: [] };
    return this.finish(
      { name: def.taskName, iface: ts.interface, nodes: [node], output: { ref: { node: node.id, path: [] } } },
      {},
    );
  }

  workflow(def: AnyWorkflow): WorkflowSpec {
    const wname = def.workflowName;
    const owner = `workflow "${wname}"`;
    const iface = interfaceOf(def.inputSchemas, def.outputSchema, owner);
    const graph = def.graph();
    const nodeOutputs = new Map<string, JsonSchema>();
    // Inside the body, inputs with defaults are always present: their "output" form.
    const inputsSchema: Record<string, unknown> = { type: "object", properties: {}, required: [] };
    for (const [k, s] of Object.entries(def.inputSchemas as Shape)) {
      (inputsSchema.properties as Record<string, unknown>)[k] = toJsonSchema(s, "output", `input "${k}" of ${owner}`);
      if (!s.safeParse(undefined).success || s.safeParse(undefined).data !== undefined) (inputsSchema.required as string[]).push(k);
    }
    nodeOutputs.set("$inputs", inputsSchema);
    const nodes: TaskNode[] = [];
    for (const n of graph.nodes) {
      const key = this.task(n.task);
      const ts = this.taskSpecs[key];
      nodes.push(this.taskNode(wname, n, key, ts, nodeOutputs));
      nodeOutputs.set(n.id, ts.interface.output);
    }
    let output: Binding;
    if (def.outputSchema) {
      const target = iface.output;
      output = this.bind(graph.output, { wf: wname, node: "(output)", input: "(workflow output)" });
      this.checkBinding(output, toJsonSchema(def.outputSchema, "input", `output of ${owner}`), nodeOutputs, {
        wf: wname,
        node: "(output)",
        input: "(workflow output)",
        declared: target,
      });
    } else {
      output = { literal: null };
    }
    const wopts: { failurePolicy?: WorkflowSpec["failurePolicy"]; maxParallelism?: number; timeoutMs?: number; description?: string } = {};
    if (def.options.failurePolicy) wopts.failurePolicy = def.options.failurePolicy;
    if (def.options.maxParallelism !== undefined) wopts.maxParallelism = def.options.maxParallelism;
    if (def.options.timeout !== undefined) wopts.timeoutMs = positive(parseDuration(def.options.timeout, `timeout of ${owner}`), owner);
    if (def.options.description) wopts.description = def.options.description;
    checkAcyclic(wname, nodes);
    return this.finish({ name: wname, iface, nodes, output }, wopts);
  }

  private finish(
    w: { name: string; iface: TypedInterface; nodes: TaskNode[]; output: Binding },
    o: { failurePolicy?: WorkflowSpec["failurePolicy"]; maxParallelism?: number; timeoutMs?: number; description?: string },
  ): WorkflowSpec {
    const spec: WorkflowSpec = {
      kind: "workflow",
      specVersion: SPEC_VERSION,
      id: { project: this.project, domain: this.domain, name: w.name, version: "" },
      interface: w.iface,
      nodes: w.nodes,
      output: w.output,
      failurePolicy: o.failurePolicy ?? "fail-fast",
    };
    if (o.maxParallelism !== undefined) spec.maxParallelism = o.maxParallelism;
    if (o.timeoutMs !== undefined) spec.timeoutMs = o.timeoutMs;
    if (o.description) spec.description = o.description;
    spec.id.version = this.opts.version ?? contentVersion(spec);
    return spec;
  }

  private taskNode(wf: string, n: BuiltNode, key: string, ts: TaskSpec, outputs: Map<string, JsonSchema>): TaskNode {
    const inputs: Record<string, Binding> = {};
    const declared = ts.interface.inputs;
    for (const k of Object.keys(n.inputs)) {
      if (n.inputs[k] === undefined) continue;
      if (!(k in declared)) {
        throw new TernError(
          ErrorCodes.COMPILE,
          `workflow "${wf}", node "${n.id}": task "${ts.id.name}" has no input "${k}"`,
          { hint: `its inputs are: ${Object.keys(declared).join(", ") || "(none)"}`, details: { workflow: wf, node: n.id, input: k } },
        );
      }
      const where = { wf, node: n.id, input: k, task: ts.id.name };
      const b = this.bind(n.inputs[k], where);
      if ("literal" in b) {
        const zs = n.task.inputSchemas[k] as z.ZodType;
        const r = zs.safeParse(b.literal);
        if (!r.success) {
          throw new TernError(
            ErrorCodes.TYPE_MISMATCH,
            `workflow "${wf}", node "${n.id}", input "${k}": the constant ${short(b.literal)} does not fit ${describeSchema(declared[k].schema)} (${r.error.issues[0]?.message})`,
            { details: where },
          );
        }
      } else {
        this.checkBinding(b, declared[k].schema, outputs, where);
      }
      inputs[k] = b;
    }
    for (const [k, s] of Object.entries(declared)) {
      if (!s.optional && !(k in inputs)) {
        throw new TernError(
          ErrorCodes.COMPILE,
          `workflow "${wf}", node "${n.id}": required input "${k}" of task "${ts.id.name}" is not given`,
          { hint: `pass ${k} (${describeSchema(s.schema)})`, details: { workflow: wf, node: n.id, input: k } },
        );
      }
    }
    const node: TaskNode = { id: n.id, kind: "task", task: key, inputs, upstream: [...n.upstream].sort() };
    const ov = overrides(n.options, ts, `node "${n.id}" of workflow "${wf}"`);
    if (ov) node.overrides = ov;
    return node;
  }

  /** Turn what the body passed into a binding. */
  bind(v: unknown, where: { wf: string; node: string; input: string }): Binding {
    if (isHandle(v)) {
      const i = handleInfo(v);
      return { ref: { node: i.node, path: [...i.path] } };
    }
    if (Array.isArray(v)) {
      if (!containsHandle(v)) return { literal: literal(v, where) };
      return { list: v.map((x) => this.bind(x, where)) };
    }
    if (v && typeof v === "object" && Object.getPrototypeOf(v) === Object.prototype) {
      if (!containsHandle(v)) return { literal: literal(v, where) };
      const o: Record<string, Binding> = {};
      for (const [k, x] of Object.entries(v)) if (x !== undefined) o[k] = this.bind(x, where);
      return { object: o };
    }
    return { literal: literal(v, where) };
  }

  checkBinding(
    b: Binding,
    target: JsonSchema,
    outputs: Map<string, JsonSchema>,
    where: { wf: string; node: string; input: string; task?: string; declared?: JsonSchema },
    subpath = "",
  ): void {
    if ("ref" in b) {
      const src = outputs.get(b.ref.node);
      if (src === undefined) {
        throw new TernError(ErrorCodes.COMPILE, `workflow "${where.wf}", node "${where.node}": unknown upstream node "${b.ref.node}"`);
      }
      const from = schemaAt(src, b.ref.path);
      const srcName = `${b.ref.node === "$inputs" ? "workflow input" : `node "${b.ref.node}"`}${b.ref.path.length ? ` .${b.ref.path.join(".")}` : ""}`;
      if (from === undefined) {
        throw new TernError(
          ErrorCodes.TYPE_MISMATCH,
          `workflow "${where.wf}", node "${where.node}", input "${where.input}${subpath}": expects ${describeSchema(target)}${where.task ? ` (task "${where.task}")` : ""}, but ${srcName} does not exist (the value is ${describeSchema(src as JsonSchema)})`,
          {
            hint: "use a field the upstream output declares",
            details: { workflow: where.wf, node: where.node, input: where.input, path: b.ref.path },
          },
        );
      }
      const r = checkAssignable(from, target);
      if (!r.ok) {
        const e = r.error;
        throw new TernError(
          ErrorCodes.TYPE_MISMATCH,
          `workflow "${where.wf}", node "${where.node}", input "${where.input}${subpath}": expects ${describeSchema(target)}${where.task ? ` (task "${where.task}")` : ""}, but ${srcName} gives ${describeSchema(from)}${e.path ? ` — at ${e.path}: ${e.reason}` : ` — ${e.reason}`}`,
          {
            hint: "fix the wiring, or convert the value in a task",
            details: { workflow: where.wf, node: where.node, input: where.input, from: e.from, to: e.to, path: e.path },
          },
        );
      }
      return;
    }
    if ("object" in b) {
      for (const [k, sub] of Object.entries(b.object)) {
        const t = schemaAt(target, [k]) ?? (acceptsAnything(target) ? {} : undefined);
        if (t === undefined) {
          throw new TernError(
            ErrorCodes.TYPE_MISMATCH,
            `workflow "${where.wf}", node "${where.node}", input "${where.input}${subpath}": field "${k}" is not part of ${describeSchema(target)}`,
          );
        }
        this.checkBinding(sub, t, outputs, where, `${subpath}.${k}`);
      }
      return;
    }
    if ("list" in b) {
      b.list.forEach((sub, i) => {
        const t = schemaAt(target, [i]) ?? (acceptsAnything(target) ? {} : undefined);
        if (t === undefined) {
          throw new TernError(
            ErrorCodes.TYPE_MISMATCH,
            `workflow "${where.wf}", node "${where.node}", input "${where.input}${subpath}": a list was given for ${describeSchema(target)}`,
          );
        }
        this.checkBinding(sub, t, outputs, where, `${subpath}[${i}]`);
      });
    }
    // Nested literals are validated against the zod schema when the task runs.
  }
}

function overrides(o: NodeOptions, ts: TaskSpec, owner: string): NodeOverrides | undefined {
  const ov: NodeOverrides = {};
  if (o.retries !== undefined) ov.retries = retryPolicy(o.retries, ts.metadata.retries);
  if (o.timeout !== undefined) ov.timeoutMs = positive(parseDuration(o.timeout, `timeout of ${owner}`), owner);
  if (o.resources) ov.resources = o.resources;
  if (o.interruptible !== undefined) ov.interruptible = o.interruptible;
  if (o.env) ov.env = { ...ts.metadata.env, ...o.env };
  if (o.cache !== undefined) {
    if (o.cache === false) ov.cache = undefined;
    else {
      const co = o.cache === true ? {} : o.cache;
      ov.cache = {
        version: co.version ?? ts.code?.hash ?? ts.id.version,
        derived: co.version === undefined,
        serialize: co.serialize ?? false,
        ignoreInputs: [...(co.ignoreInputs ?? [])].sort(),
      };
    }
  }
  return Object.keys(ov).length || "cache" in ov ? ov : undefined;
}

const ANNOTATIONS = new Set(["title", "description", "default", "examples", "$schema", "$id", "$defs", "$comment", "deprecated", "readOnly", "writeOnly"]);

/** `true`, `{}` or annotations only (`z.unknown()`, `z.any()`): every value fits, objects and lists of handles too. */
function acceptsAnything(s: JsonSchema): boolean {
  return s === true || (typeof s === "object" && s !== null && Object.keys(s).every((k) => ANNOTATIONS.has(k)));
}

function positive(ms: number, owner: string): number {
  if (ms <= 0) throw new TernError(ErrorCodes.DEFINITION, `${owner}: a timeout must be longer than 0`);
  return ms;
}

function containsHandle(v: unknown): boolean {
  if (isHandle(v)) return true;
  if (Array.isArray(v)) return v.some(containsHandle);
  if (v && typeof v === "object") return Object.values(v).some(containsHandle);
  return false;
}

function literal(v: unknown, where: { wf: string; node: string; input: string }): unknown {
  const bad = (what: string) =>
    new TernError(ErrorCodes.COMPILE, `workflow "${where.wf}", node "${where.node}", input "${where.input}": ${what} cannot be a constant`, {
      hint: "constants must be JSON values (strings, numbers, booleans, null, arrays, plain objects)",
    });
  const check = (x: unknown): void => {
    if (x === null || typeof x === "string" || typeof x === "boolean") return;
    if (typeof x === "number") {
      if (!Number.isFinite(x)) throw bad(String(x));
      return;
    }
    if (Array.isArray(x)) return x.forEach(check);
    if (typeof x === "object" && Object.getPrototypeOf(x) === Object.prototype) return Object.values(x as object).forEach((y) => y !== undefined && check(y));
    throw bad(typeof x === "object" ? (x as object).constructor?.name ?? "an object" : typeof x);
  };
  check(v);
  return v;
}

/** The sub-schema at a path inside a value's schema (objects, arrays, nullable unions, $refs). */
export function schemaAt(schema: unknown, p: readonly (string | number)[]): JsonSchema | undefined {
  const root = schema as Record<string, unknown>;
  let cur: unknown = schema;
  for (const seg of p) {
    cur = deref(cur, root);
    if (!cur || typeof cur !== "object") return undefined;
    const s = cur as Record<string, unknown>;
    const variants = (s.anyOf ?? s.oneOf) as unknown[] | undefined;
    if (variants) {
      const nonNull = variants.map((v) => deref(v, root)).filter((v) => !(v && typeof v === "object" && (v as { type?: unknown }).type === "null"));
      if (nonNull.length !== 1) return undefined;
      cur = nonNull[0];
    }
    const o = cur as Record<string, unknown>;
    if (typeof seg === "number") {
      const prefix = o.prefixItems as unknown[] | undefined;
      cur = prefix?.[seg] ?? o.items;
    } else {
      const props = o.properties as Record<string, unknown> | undefined;
      cur = props?.[seg] ?? (typeof o.additionalProperties === "object" ? o.additionalProperties : undefined);
    }
    if (cur === undefined) return undefined;
  }
  if (p.length > 0 && root && typeof root === "object" && root.$defs && cur && typeof cur === "object") {
    return { ...(cur as object), $defs: root.$defs };
  }
  return cur as JsonSchema;
}

function deref(s: unknown, root: Record<string, unknown>): unknown {
  let cur = s;
  for (let i = 0; i < 32 && cur && typeof cur === "object" && typeof (cur as { $ref?: unknown }).$ref === "string"; i++) {
    const ref = (cur as { $ref: string }).$ref;
    const m = /^#\/\$defs\/(.+)$/.exec(ref);
    if (!m) return cur;
    cur = (root.$defs as Record<string, unknown> | undefined)?.[m[1]];
  }
  return cur;
}

function checkAcyclic(wf: string, nodes: TaskNode[]): void {
  const deps = new Map<string, Set<string>>();
  for (const n of nodes) deps.set(n.id, nodeDependencies(n));
  const state = new Map<string, 1 | 2>();
  const visit = (id: string, trail: string[]): void => {
    const s = state.get(id);
    if (s === 2) return;
    if (s === 1) {
      throw new TernError(ErrorCodes.COMPILE, `workflow "${wf}" has a cycle: ${[...trail, id].join(" → ")}`, {
        hint: "remove one of the after() orderings that close the loop",
      });
    }
    state.set(id, 1);
    for (const d of deps.get(id) ?? []) if (deps.has(d)) visit(d, [...trail, id]);
    state.set(id, 2);
  };
  for (const n of nodes) visit(n.id, []);
}

/** Node ids a node waits for: its data sources and its `after()` upstreams. */
export function nodeDependencies(n: Pick<TaskNode, "inputs" | "upstream">): Set<string> {
  const out = new Set<string>(n.upstream);
  const walk = (b: Binding) => {
    if ("ref" in b) {
      if (b.ref.node !== "$inputs") out.add(b.ref.node);
    } else if ("object" in b) Object.values(b.object).forEach(walk);
    else if ("list" in b) b.list.forEach(walk);
  };
  Object.values(n.inputs).forEach(walk);
  return out;
}

function taskCodeHash(def: AnyTask): string {
  if (def.callSite.file) {
    try {
      return codeVersion(def.callSite.file, def.taskName);
    } catch {
      // Source not readable (bundled without sources, eval'd code): fall back to the body's text.
    }
  }
  return sha256(def.fn.toString()).slice(0, 16);
}

function contentVersion(spec: TaskSpec | WorkflowSpec): string {
  return hashValue({ ...spec, id: { ...spec.id, version: "" } }).slice(0, 20);
}

function safeNodeId(name: string): string {
  const s = name.replace(/[^A-Za-z0-9_-]/g, "_");
  return /^[A-Za-z_]/.test(s) ? s : `_${s}`;
}

function short(v: unknown): string {
  const s = JSON.stringify(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function siteList(a: CallSite, b: CallSite): string {
  const f = (s: CallSite) => (s.file ? `${s.file}:${s.line ?? "?"}` : "unknown place");
  return a.file || b.file ? ` (${f(a)} and ${f(b)})` : "";
}
