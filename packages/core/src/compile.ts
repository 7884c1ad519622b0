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
import { isDynamic } from "./control.js";
import {
  type AnyTask,
  type AnyWorkflow,
  type BuiltCondition,
  type BuiltGraph,
  type BuiltNode,
  type CallSite,
  handleInfo,
  isHandle,
  isTaskDef,
  isWorkflowDef,
  type LaunchPlanLike,
  type NodeOptions,
  type RetryOptions,
  type Shape,
} from "./dsl.js";
import { parseDuration } from "./duration.js";
import { ErrorCodes, TernError } from "./errors.js";
import { hashValue, sha256 } from "./hash.js";
import type { Json } from "./json.js";
import {
  type Binding,
  type BranchCase,
  type BranchNode,
  type CachePolicy,
  type CompiledWorkflow,
  type Condition,
  type GateNode,
  type InputSpec,
  type LaunchPlanSpec,
  type MapNode,
  type NodeOverrides,
  type NodeSpec,
  type RetryPolicy,
  SPEC_VERSION,
  type TaskMetadata,
  type TaskNode,
  type TaskSpec,
  type TypedInterface,
  taskKey,
  validateCompiledWorkflow,
  validateLaunchPlanSpec,
  type WorkflowSpec,
} from "./spec.js";
import { checkAssignable, describeSchema, type JsonSchema } from "./typecheck.js";
import { toJsonSchema } from "./types.js";

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
  const compiled = c.bundle(spec);
  return { spec: compiled, tasks: c.defs, inputSchemas: def.inputSchemas as Shape };
}

/**
 * Compile a launch plan: its workflow (as `compile()` does) and the plan's spec.
 */
export function compileLaunchPlan(
  lp: LaunchPlanLike,
  opts: CompileOptions = {},
): Compiled & { launchPlan: LaunchPlanSpec } {
  const c = new Compiler(opts);
  const spec = c.workflow(lp.workflow);
  const launchPlan = launchPlanSpec(lp, spec, opts.version);
  validateLaunchPlanSpec(launchPlan);
  return { spec: c.bundle(spec), tasks: c.defs, inputSchemas: lp.workflow.inputSchemas as Shape, launchPlan };
}

/**
 * Compile the graph a dynamic body built (at execution time) into a sub-DAG that
 * the engine runs in place of the dynamic node.
 */
export function compileDynamic(
  name: string,
  graph: BuiltGraph,
  output: z.ZodType | undefined,
  opts: CompileOptions = {},
): Compiled {
  const c = new Compiler(opts);
  const spec = c.dynamicGraph(name, graph, output);
  return { spec: c.bundle(spec), tasks: c.defs, inputSchemas: {} };
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
  return {
    inputs: specs,
    output: output ? toJsonSchema(output, "output", `output of ${owner}`) : { type: "null" },
  };
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
  readonly subworkflows: Record<string, WorkflowSpec> = {};
  readonly launchPlans: Record<string, LaunchPlanSpec> = {};
  private readonly byDef = new Map<AnyTask, string>();
  private readonly byName = new Map<string, AnyTask>();
  private readonly byWorkflow = new Map<AnyWorkflow, WorkflowSpec>();
  private readonly compiling = new Set<AnyWorkflow>();

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
      throw new TernError(
        ErrorCodes.COMPILE,
        `two different tasks are named "${name}"${siteList(other.callSite, def.callSite)}`,
        {
          hint: "task names are unique within a project: rename one",
        },
      );
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
          throw new TernError(
            ErrorCodes.DEFINITION,
            `${owner}: cache.ignoreInputs names "${k}", which is not an input`,
            {
              hint: `inputs are: ${Object.keys(iface.inputs).join(", ") || "(none)"}`,
            },
          );
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
    if (o.timeout !== undefined)
      metadata.timeoutMs = positive(parseDuration(o.timeout, `timeout of ${owner}`), owner);
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
      if (def.callSite.file)
        spec.code.module = path.relative(this.opts.projectRoot ?? process.cwd(), def.callSite.file);
    }
    if (o.custom) spec.custom = o.custom;
    if (isDynamic(def)) spec.dynamic = true;
    spec.id.version = this.opts.version ?? contentVersion(spec);
    if (type === "node" && this.opts.bundle) spec.code = { ...spec.code, bundle: this.opts.bundle };
    const key = taskKey(spec.id);
    this.taskSpecs[key] = spec;
    this.defs.set(key, def);
    this.byDef.set(def, key);
    this.byName.set(name, def);
    return key;
  }

  /** The bundle of a root workflow: it, every task, subworkflow and launch plan it uses; validated. */
  bundle(spec: WorkflowSpec): CompiledWorkflow {
    const compiled: CompiledWorkflow = { specVersion: SPEC_VERSION, workflow: spec, tasks: this.taskSpecs };
    if (Object.keys(this.subworkflows).length) compiled.subworkflows = this.subworkflows;
    if (Object.keys(this.launchPlans).length) compiled.launchPlans = this.launchPlans;
    validateCompiledWorkflow(compiled);
    return compiled;
  }

  wrapTask(def: AnyTask): WorkflowSpec {
    const key = this.task(def);
    const ts = this.taskSpecs[key];
    const inputs: Record<string, Binding> = {};
    for (const k of Object.keys(ts.interface.inputs)) inputs[k] = { ref: { node: "$inputs", path: [k] } };
    const node: TaskNode = { id: safeNodeId(def.taskName), kind: "task", task: key, inputs, upstream: [] };
    return this.finish(
      {
        name: def.taskName,
        iface: ts.interface,
        nodes: [node],
        output: { ref: { node: node.id, path: [] } },
      },
      {},
    );
  }

  /** Compile a workflow (once per definition); returns its spec. */
  workflow(def: AnyWorkflow): WorkflowSpec {
    const known = this.byWorkflow.get(def);
    if (known) return known;
    if (this.compiling.has(def)) {
      throw new TernError(ErrorCodes.COMPILE, `workflow "${def.workflowName}" contains itself`, {
        hint: "a workflow cannot be its own subworkflow; use a dynamic workflow for recursion",
      });
    }
    this.compiling.add(def);
    try {
      const spec = this.compileWorkflow(def);
      this.byWorkflow.set(def, spec);
      return spec;
    } finally {
      this.compiling.delete(def);
    }
  }

  private compileWorkflow(def: AnyWorkflow): WorkflowSpec {
    const wname = def.workflowName;
    const owner = `workflow "${wname}"`;
    const iface = interfaceOf(def.inputSchemas, def.outputSchema, owner);
    const graph = def.graph();
    const visible = new Visible(undefined, new Set(allNodeIds(graph.nodes)));
    visible.set("$inputs", inputsObjectSchema(def.inputSchemas as Shape, owner));
    const nodes = this.nodes(wname, graph.nodes, visible);
    let output: Binding;
    if (def.outputSchema) {
      const target = iface.output;
      output = this.bind(graph.output, { wf: wname, node: "(output)", input: "(workflow output)" });
      this.checkBinding(output, toJsonSchema(def.outputSchema, "input", `output of ${owner}`), visible, {
        wf: wname,
        node: "(output)",
        input: "(workflow output)",
        declared: target,
      });
    } else {
      output = { literal: null };
    }
    const wopts: WorkflowExtras = {};
    if (def.options.failurePolicy) wopts.failurePolicy = def.options.failurePolicy;
    if (def.options.maxParallelism !== undefined) wopts.maxParallelism = def.options.maxParallelism;
    if (def.options.timeout !== undefined)
      wopts.timeoutMs = positive(parseDuration(def.options.timeout, `timeout of ${owner}`), owner);
    if (def.options.description) wopts.description = def.options.description;
    if (def.options.onFailure)
      wopts.onFailure = this.failureHandler(wname, def.options.onFailure, def.inputSchemas as Shape);
    checkAcyclic(wname, nodes);
    return this.finish({ name: wname, iface, nodes, output }, wopts);
  }

  /**
   * Compile the graph a dynamic body built at execution time: its values are
   * constants, so the sub-DAG has no inputs; its output must fit `output`.
   */
  dynamicGraph(name: string, graph: BuiltGraph, output: z.ZodType | undefined): WorkflowSpec {
    const visible = new Visible(undefined, new Set(allNodeIds(graph.nodes)));
    visible.set("$inputs", { type: "object", properties: {} });
    const nodes = this.nodes(name, graph.nodes, visible);
    let out: Binding = { literal: null };
    if (output) {
      out = this.bind(graph.output, { wf: name, node: "(output)", input: "(dynamic output)" });
      if ("literal" in out) {
        const r = output.safeParse(out.literal);
        if (!r.success) {
          throw new TernError(
            ErrorCodes.TYPE_MISMATCH,
            `dynamic "${name}" returned ${short(out.literal)}, which does not fit its output (${r.error.issues[0]?.message})`,
          );
        }
      } else {
        this.checkBinding(out, toJsonSchema(output, "input", `output of dynamic "${name}"`), visible, {
          wf: name,
          node: "(output)",
          input: "(dynamic output)",
        });
      }
    }
    checkAcyclic(name, nodes);
    return this.finish(
      {
        name,
        iface: { inputs: {}, output: output ? toJsonSchema(output, "output", name) : { type: "null" } },
        nodes,
        output: out,
      },
      {},
    );
  }

  /** Compile the nodes of one scope (a workflow, or a branch case). */
  private nodes(wf: string, built: BuiltNode[], visible: Visible): NodeSpec[] {
    const out: NodeSpec[] = [];
    for (const n of built) {
      const [spec, schema] = this.node(wf, n, visible);
      out.push(spec);
      visible.set(n.id, schema);
    }
    return out;
  }

  private node(wf: string, n: BuiltNode, visible: Visible): [NodeSpec, JsonSchema] {
    const upstream = [...n.upstream].sort();
    switch (n.kind) {
      case "task": {
        const key = this.task(n.task);
        const ts = this.taskSpecs[key];
        const inputs = this.callInputs(
          wf,
          n.id,
          `task "${ts.id.name}"`,
          ts.interface,
          n.task.inputSchemas,
          n.inputs,
          visible,
        );
        const node: TaskNode = { id: n.id, kind: "task", task: key, inputs, upstream };
        const ov = overrides(n.options, ts, `node "${n.id}" of workflow "${wf}"`);
        if (ov) node.overrides = ov;
        return [node, ts.interface.output];
      }
      case "workflow": {
        const sub = this.workflow(n.workflow);
        const key = taskKey(sub.id);
        this.subworkflows[key] = sub;
        const inputs = this.callInputs(
          wf,
          n.id,
          `workflow "${sub.id.name}"`,
          sub.interface,
          n.workflow.inputSchemas,
          n.inputs,
          visible,
        );
        return [{ id: n.id, kind: "workflow", workflow: key, inputs, upstream }, sub.interface.output];
      }
      case "launchplan": {
        const lp = this.launchPlan(n.launchPlan);
        const key = taskKey(lp.id);
        // Before the interface check: the plan's interface leaves fixed inputs out, and
        // "has no input" would hide why.
        for (const k of Object.keys(n.inputs)) {
          if (n.inputs[k] !== undefined && k in lp.fixed) {
            throw new TernError(
              ErrorCodes.COMPILE,
              `workflow "${wf}", node "${n.id}": input "${k}" is fixed by launch plan "${lp.id.name}"`,
              {
                hint: "leave it out; the plan sets it",
              },
            );
          }
        }
        const inputs = this.callInputs(
          wf,
          n.id,
          `launch plan "${lp.id.name}"`,
          lp.interface,
          n.launchPlan.workflow.inputSchemas,
          n.inputs,
          visible,
        );
        return [{ id: n.id, kind: "launchplan", launchPlan: key, inputs, upstream }, lp.interface.output];
      }
      case "map":
        return this.mapNode(wf, n, visible, upstream);
      case "branch":
        return this.branchNode(wf, n, visible, upstream);
      case "gate":
        return this.gateNode(wf, n, visible, upstream);
    }
  }

  private mapNode(
    wf: string,
    n: Extract<BuiltNode, { kind: "map" }>,
    visible: Visible,
    upstream: string[],
  ): [NodeSpec, JsonSchema] {
    const o = n.options;
    const isTask = n.target.kind === "task";
    let iface: TypedInterface;
    let target: { task: string } | { workflow: string };
    let what: string;
    let ts: TaskSpec | undefined;
    if (n.target.kind === "task") {
      const key = this.task(n.target);
      ts = this.taskSpecs[key];
      iface = ts.interface;
      target = { task: key };
      what = `task "${ts.id.name}"`;
    } else {
      const sub = this.workflow(n.target);
      const key = taskKey(sub.id);
      this.subworkflows[key] = sub;
      iface = sub.interface;
      target = { workflow: key };
      what = `workflow "${sub.id.name}"`;
    }
    const zod = n.target.inputSchemas as Shape;
    const bound = o.bound ?? {};
    for (const k of Object.keys(n.inputs)) {
      if (k in bound && bound[k] !== undefined) {
        throw new TernError(
          ErrorCodes.COMPILE,
          `workflow "${wf}", node "${n.id}": input "${k}" is both mapped and bound`,
          {
            hint: "map over it, or give it whole in bound, not both",
          },
        );
      }
    }
    // Mapped inputs: each gives a list of what the target takes.
    const listIface: TypedInterface = { inputs: {}, output: iface.output };
    for (const [k, spec] of Object.entries(iface.inputs))
      listIface.inputs[k] = { ...spec, schema: { type: "array", items: spec.schema }, optional: true };
    const listZod: Shape = {};
    for (const [k, s] of Object.entries(zod)) listZod[k] = z.array(s);
    const inputs = this.callInputs(wf, n.id, `map over ${what}`, listIface, listZod, n.inputs, visible);
    const boundIface: TypedInterface = { inputs: {}, output: iface.output };
    for (const [k, spec] of Object.entries(iface.inputs)) boundIface.inputs[k] = { ...spec, optional: true };
    const boundB = this.callInputs(wf, n.id, `map over ${what} (bound)`, boundIface, zod, bound, visible);
    for (const [k, spec] of Object.entries(iface.inputs)) {
      if (!spec.optional && !(k in inputs) && !(k in boundB)) {
        throw new TernError(
          ErrorCodes.COMPILE,
          `workflow "${wf}", node "${n.id}": required input "${k}" of ${what} is neither mapped nor bound`,
          {
            hint: `map over it ({ ${k}: list }) or give it in bound`,
            details: { workflow: wf, node: n.id, input: k },
          },
        );
      }
    }
    const ratio = o.minSuccessRatio ?? 1;
    const node: MapNode = {
      id: n.id,
      kind: "map",
      target,
      inputs,
      bound: boundB,
      minSuccessRatio: ratio,
      upstream,
    };
    if (o.concurrency !== undefined) node.concurrency = o.concurrency;
    if (isTask && ts) {
      const ov = overrides(o, ts, `node "${n.id}" of workflow "${wf}"`);
      if (ov) node.overrides = ov;
    }
    const item = ratio < 1 ? { anyOf: [iface.output, { type: "null" }] } : iface.output;
    return [node, { type: "array", items: item }];
  }

  private branchNode(
    wf: string,
    n: Extract<BuiltNode, { kind: "branch" }>,
    visible: Visible,
    upstream: string[],
  ): [NodeSpec, JsonSchema] {
    const cases: BranchCase[] = [];
    let schema: JsonSchema | undefined;
    let first = "";
    const agree = (s: JsonSchema, label: string) => {
      if (schema === undefined) {
        schema = s;
        first = label;
        return;
      }
      const a = checkAssignable(s, schema);
      const b = checkAssignable(schema, s);
      if (!a.ok || !b.ok) {
        throw new TernError(
          ErrorCodes.TYPE_MISMATCH,
          `workflow "${wf}", branch "${n.id}": ${label} gives ${describeSchema(s)}, but ${first} gives ${describeSchema(schema)}`,
          { hint: "every case of a branch must give the same type", details: { workflow: wf, node: n.id } },
        );
      }
    };
    n.cases.forEach((c, i) => {
      const when = this.condition(wf, n.id, c.when, visible);
      const inner = visible.child();
      const nodes = this.nodes(wf, c.nodes, inner);
      const output = this.bind(c.output, { wf, node: n.id, input: `(case ${i + 1} output)` });
      agree(
        this.schemaOf(output, inner, { wf, node: n.id, input: `(case ${i + 1} output)` }, true),
        i === 0 ? "the first case" : `case ${i + 1}`,
      );
      cases.push({ when, nodes, output });
    });
    const node: BranchNode = { id: n.id, kind: "branch", cases, upstream };
    if (n.else && "fail" in n.else) node.else = { fail: n.else.fail };
    else if (n.else) {
      const inner = visible.child();
      const nodes = this.nodes(wf, n.else.nodes, inner);
      const output = this.bind(n.else.output, { wf, node: n.id, input: "(else output)" });
      agree(this.schemaOf(output, inner, { wf, node: n.id, input: "(else output)" }, true), "the else case");
      node.else = { nodes, output };
    }
    let out: JsonSchema = schema ?? { type: "null" };
    if (!n.else) out = { anyOf: [out, { type: "null" }] };
    return [node, out];
  }

  private gateNode(
    wf: string,
    n: Extract<BuiltNode, { kind: "gate" }>,
    visible: Visible,
    upstream: string[],
  ): [NodeSpec, JsonSchema] {
    const g = n.gate;
    const node: GateNode = { id: n.id, kind: "gate", gate: { kind: "sleep", durationMs: 0 }, upstream };
    if (n.timeout !== undefined)
      node.timeoutMs = positive(parseDuration(n.timeout, `timeout of gate "${n.id}"`), `gate "${n.id}"`);
    if (g.kind === "sleep") {
      node.gate = { kind: "sleep", durationMs: g.durationMs };
      return [node, { type: "null" }];
    }
    if (g.kind === "input") {
      const schema = toJsonSchema(g.schema, "output", `gate "${n.id}"`);
      node.gate = { kind: "input", name: n.id, schema };
      return [node, schema];
    }
    const value = this.bind(g.value, { wf, node: n.id, input: "(approved value)" });
    node.gate = { kind: "approve", name: n.id, value };
    return [node, this.schemaOf(value, visible, { wf, node: n.id, input: "(approved value)" })];
  }

  /** Check a condition's operands and turn it into its spec. */
  private condition(wf: string, node: string, c: BuiltCondition, visible: Visible): Condition {
    const where = { wf, node, input: "(condition)" };
    if ("and" in c) return { and: c.and.map((x) => this.condition(wf, node, x, visible)) };
    if ("or" in c) return { or: c.or.map((x) => this.condition(wf, node, x, visible)) };
    if ("not" in c) return { not: this.condition(wf, node, c.not, visible) };
    if ("test" in c) {
      const operand = this.bind(c.operand, where);
      if (c.test === "true" || c.test === "false") {
        const s = this.schemaOf(operand, visible, where);
        if (
          !checkAssignable(s, { type: "boolean" }).ok &&
          !checkAssignable(s, { anyOf: [{ type: "boolean" }, { type: "null" }] }).ok
        ) {
          throw new TernError(
            ErrorCodes.TYPE_MISMATCH,
            `workflow "${wf}", branch "${node}": the condition tests ${describeSchema(s)} for ${c.test}, which is not a boolean`,
            {
              hint: 'compare it instead, e.g. gt(count, 0) or eq(status, "ok")',
              details: { workflow: wf, node },
            },
          );
        }
      }
      return { test: c.test, operand };
    }
    const left = this.bind(c.left, where);
    const right = this.bind(c.right, where);
    const ls = this.schemaOf(left, visible, where);
    const rs = this.schemaOf(right, visible, where);
    const kind = (s: JsonSchema): string => {
      for (const t of ["number", "integer", "string", "boolean", "null"])
        if (checkAssignable(s, { anyOf: [{ type: t }, { type: "null" }] }).ok)
          return t === "integer" ? "number" : t;
      if (checkAssignable(s, { anyOf: [{ type: "number" }, { type: "integer" }, { type: "null" }] }).ok)
        return "number";
      return "other";
    };
    const lk = kind(ls);
    const rk = kind(rs);
    const ordered = c.cmp !== "eq" && c.cmp !== "ne";
    if (
      lk === "other" ||
      rk === "other" ||
      (lk !== rk && lk !== "null" && rk !== "null") ||
      (ordered && (lk === "boolean" || lk === "null"))
    ) {
      throw new TernError(
        ErrorCodes.TYPE_MISMATCH,
        `workflow "${wf}", branch "${node}": cannot compare ${describeSchema(ls)} with ${describeSchema(rs)} using ${c.cmp}`,
        {
          hint: "compare numbers with numbers and strings with strings; eq/ne also take booleans and null",
          details: { workflow: wf, node },
        },
      );
    }
    return { cmp: c.cmp, left, right };
  }

  /** The schema of what a binding gives; `widen` types constants by kind (`"a"` is a string, not `literal('a')`). */
  private schemaOf(
    b: Binding,
    visible: Visible,
    where: { wf: string; node: string; input: string },
    widen = false,
  ): JsonSchema {
    if ("literal" in b) return widen ? widenSchema(literalSchema(b.literal)) : literalSchema(b.literal);
    if ("ref" in b) {
      const src = visible.lookup(b.ref.node, where);
      const s = schemaAt(src, b.ref.path);
      if (s === undefined) {
        throw new TernError(
          ErrorCodes.TYPE_MISMATCH,
          `workflow "${where.wf}", node "${where.node}": ${b.ref.node === "$inputs" ? "workflow input" : `node "${b.ref.node}"`} .${b.ref.path.join(".")} does not exist (the value is ${describeSchema(src)})`,
        );
      }
      return s;
    }
    if ("object" in b) {
      const properties: Record<string, JsonSchema> = {};
      for (const [k, x] of Object.entries(b.object)) properties[k] = this.schemaOf(x, visible, where, widen);
      return { type: "object", properties, required: Object.keys(properties) };
    }
    return { type: "array", prefixItems: b.list.map((x) => this.schemaOf(x, visible, where, widen)) };
  }

  /** Inputs of a call (task, workflow, launch plan, map): names, constants and types checked. */
  private callInputs(
    wf: string,
    nodeId: string,
    what: string,
    iface: TypedInterface,
    zodSchemas: Shape,
    raw: Record<string, unknown>,
    visible: Visible,
  ): Record<string, Binding> {
    const inputs: Record<string, Binding> = {};
    const declared = iface.inputs;
    for (const k of Object.keys(raw)) {
      if (raw[k] === undefined) continue;
      if (!(k in declared)) {
        throw new TernError(
          ErrorCodes.COMPILE,
          `workflow "${wf}", node "${nodeId}": ${what} has no input "${k}"`,
          {
            hint: `its inputs are: ${Object.keys(declared).join(", ") || "(none)"}`,
            details: { workflow: wf, node: nodeId, input: k },
          },
        );
      }
      const where = { wf, node: nodeId, input: k, task: what };
      const b = this.bind(raw[k], where);
      if ("literal" in b) {
        const zs = zodSchemas[k];
        const r = zs ? zs.safeParse(b.literal) : { success: true as const };
        if (!r.success) {
          throw new TernError(
            ErrorCodes.TYPE_MISMATCH,
            `workflow "${wf}", node "${nodeId}", input "${k}": the constant ${short(b.literal)} does not fit ${describeSchema(declared[k].schema)} (${r.error.issues[0]?.message})`,
            { details: where },
          );
        }
      } else {
        this.checkBinding(b, declared[k].schema, visible, where);
      }
      inputs[k] = b;
    }
    for (const [k, s] of Object.entries(declared)) {
      if (!s.optional && !(k in inputs)) {
        throw new TernError(
          ErrorCodes.COMPILE,
          `workflow "${wf}", node "${nodeId}": required input "${k}" of ${what} is not given`,
          {
            hint: `pass ${k} (${describeSchema(s.schema)})`,
            details: { workflow: wf, node: nodeId, input: k },
          },
        );
      }
    }
    return inputs;
  }

  /** The spec of a launch plan used as a node (its workflow goes into subworkflows). */
  launchPlan(lp: LaunchPlanLike): LaunchPlanSpec {
    const sub = this.workflow(lp.workflow);
    const key = taskKey(sub.id);
    this.subworkflows[key] = sub;
    const spec = launchPlanSpec(lp, sub, this.opts.version);
    this.launchPlans[taskKey(spec.id)] = spec;
    return spec;
  }

  private failureHandler(wf: string, handler: AnyTask, wfInputs: Shape): TaskNode {
    if (!isTaskDef(handler)) {
      throw new TernError(ErrorCodes.DEFINITION, `workflow "${wf}": onFailure must be a task`, {
        hint: "onFailure: task({ name, inputs: { error: failureInfo, execution: executionInfo } }, …)",
      });
    }
    const key = this.task(handler);
    const ts = this.taskSpecs[key];
    const inputs: Record<string, Binding> = {};
    for (const [k, spec] of Object.entries(ts.interface.inputs)) {
      if (k === "error") inputs.error = { ref: { node: "$error", path: [] } };
      else if (k === "execution") inputs.execution = { ref: { node: "$execution", path: [] } };
      else if (k in wfInputs) inputs[k] = { ref: { node: "$inputs", path: [k] } };
      else if (!spec.optional) {
        throw new TernError(
          ErrorCodes.COMPILE,
          `workflow "${wf}": the onFailure task "${ts.id.name}" needs input "${k}", which the workflow does not have`,
          {
            hint: "a failure handler takes error, execution and any of the workflow's inputs by name",
          },
        );
      }
    }
    for (const k of ["error", "execution"]) {
      if (!(k in ts.interface.inputs)) {
        throw new TernError(
          ErrorCodes.COMPILE,
          `workflow "${wf}": the onFailure task "${ts.id.name}" has no input "${k}"`,
          {
            hint: "declare inputs: { error: failureInfo, execution: executionInfo } (both exported by @tern/core)",
          },
        );
      }
    }
    return { id: "on-failure", kind: "task", task: key, inputs, upstream: [] };
  }

  private finish(
    w: { name: string; iface: TypedInterface; nodes: NodeSpec[]; output: Binding },
    o: WorkflowExtras,
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
    if (o.onFailure) spec.onFailure = o.onFailure;
    spec.id.version = this.opts.version ?? contentVersion(spec);
    return spec;
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
    outputs: Visible,
    where: { wf: string; node: string; input: string; task?: string; declared?: JsonSchema },
    subpath = "",
  ): void {
    if ("ref" in b) {
      const src = outputs.lookup(b.ref.node, where);
      const from = schemaAt(src, b.ref.path);
      const srcName = `${b.ref.node === "$inputs" ? "workflow input" : `node "${b.ref.node}"`}${b.ref.path.length ? ` .${b.ref.path.join(".")}` : ""}`;
      if (from === undefined) {
        throw new TernError(
          ErrorCodes.TYPE_MISMATCH,
          `workflow "${where.wf}", node "${where.node}", input "${where.input}${subpath}": expects ${describeSchema(target)}${where.task ? ` (${where.task})` : ""}, but ${srcName} does not exist (the value is ${describeSchema(src as JsonSchema)})`,
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
          `workflow "${where.wf}", node "${where.node}", input "${where.input}${subpath}": expects ${describeSchema(target)}${where.task ? ` (${where.task})` : ""}, but ${srcName} gives ${describeSchema(from)}${e.path ? ` — at ${e.path}: ${e.reason}` : ` — ${e.reason}`}`,
          {
            hint: "fix the wiring, or convert the value in a task",
            details: {
              workflow: where.wf,
              node: where.node,
              input: where.input,
              from: e.from,
              to: e.to,
              path: e.path,
            },
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
  if (o.timeout !== undefined)
    ov.timeoutMs = positive(parseDuration(o.timeout, `timeout of ${owner}`), owner);
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

const ANNOTATIONS = new Set([
  "title",
  "description",
  "default",
  "examples",
  "$schema",
  "$id",
  "$defs",
  "$comment",
  "deprecated",
  "readOnly",
  "writeOnly",
]);

/** `true`, `{}` or annotations only (`z.unknown()`, `z.any()`): every value fits, objects and lists of handles too. */
function acceptsAnything(s: JsonSchema): boolean {
  return (
    s === true || (typeof s === "object" && s !== null && Object.keys(s).every((k) => ANNOTATIONS.has(k)))
  );
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
    new TernError(
      ErrorCodes.COMPILE,
      `workflow "${where.wf}", node "${where.node}", input "${where.input}": ${what} cannot be a constant`,
      {
        hint: "constants must be JSON values (strings, numbers, booleans, null, arrays, plain objects)",
      },
    );
  const check = (x: unknown): void => {
    if (x === null || typeof x === "string" || typeof x === "boolean") return;
    if (typeof x === "number") {
      if (!Number.isFinite(x)) throw bad(String(x));
      return;
    }
    if (Array.isArray(x)) {
      for (const y of x) check(y);
      return;
    }
    if (typeof x === "object" && Object.getPrototypeOf(x) === Object.prototype) {
      for (const y of Object.values(x as object)) if (y !== undefined) check(y);
      return;
    }
    throw bad(typeof x === "object" ? ((x as object).constructor?.name ?? "an object") : typeof x);
  };
  check(v);
  return v;
}

type WorkflowExtras = {
  failurePolicy?: WorkflowSpec["failurePolicy"];
  maxParallelism?: number;
  timeoutMs?: number;
  description?: string;
  onFailure?: TaskNode;
};

/**
 * Output schemas of the nodes a binding may name: this scope's, then the enclosing
 * scopes' (a branch case sees the workflow's nodes; the workflow does not see inside
 * a case).
 */
class Visible {
  private readonly own = new Map<string, JsonSchema>();

  constructor(
    private readonly parent: Visible | undefined,
    /** Every node id of the workflow, to tell "inside a branch" from "unknown". */
    private readonly all: Set<string>,
  ) {}

  set(id: string, s: JsonSchema): void {
    this.own.set(id, s);
  }

  get(id: string): JsonSchema | undefined {
    return this.own.get(id) ?? this.parent?.get(id);
  }

  lookup(id: string, where: { wf: string; node: string }): JsonSchema {
    const s = this.get(id);
    if (s !== undefined) return s;
    if (this.all.has(id)) {
      throw new TernError(
        ErrorCodes.COMPILE,
        `workflow "${where.wf}", node "${where.node}": node "${id}" is inside a branch case (or later in the graph) and cannot be used here`,
        {
          hint: "use the branch's output instead of the nodes inside it",
          details: { workflow: where.wf, node: where.node },
        },
      );
    }
    throw new TernError(
      ErrorCodes.COMPILE,
      `workflow "${where.wf}", node "${where.node}": unknown upstream node "${id}"`,
    );
  }

  child(): Visible {
    return new Visible(this, this.all);
  }
}

function allNodeIds(nodes: BuiltNode[], out: string[] = []): string[] {
  for (const n of nodes) {
    out.push(n.id);
    if (n.kind === "branch") {
      for (const c of n.cases) allNodeIds(c.nodes, out);
      if (n.else && "nodes" in n.else) allNodeIds(n.else.nodes, out);
    }
  }
  return out;
}

/** The object schema of a workflow's inputs as its body sees them (defaults filled in). */
function inputsObjectSchema(inputs: Shape, owner: string): JsonSchema {
  const properties: Record<string, unknown> = {};
  const required: string[] = [];
  for (const [k, s] of Object.entries(inputs)) {
    properties[k] = toJsonSchema(s, "output", `input "${k}" of ${owner}`);
    const probe = s.safeParse(undefined);
    if (!probe.success || probe.data !== undefined) required.push(k);
  }
  return { type: "object", properties, required };
}

/** The schema of a constant (also how signal values are checked against a gate's schema). */
export function literalSchema(v: unknown): JsonSchema {
  if (v === null) return { type: "null" };
  if (typeof v === "boolean") return { type: "boolean" };
  if (typeof v === "number") return Number.isInteger(v) ? { type: "integer" } : { type: "number" };
  if (typeof v === "string") return { type: "string", const: v };
  if (Array.isArray(v)) return { type: "array", prefixItems: v.map(literalSchema) };
  const properties: Record<string, JsonSchema> = {};
  for (const [k, x] of Object.entries(v as object)) properties[k] = literalSchema(x);
  return { type: "object", properties, required: Object.keys(properties) };
}

/** A constant's schema without its exact value: what kind of value it is. */
function widenSchema(s: JsonSchema): JsonSchema {
  if (typeof s !== "object" || s === null) return s;
  const { const: _c, ...rest } = s as Record<string, unknown>;
  if (rest.prefixItems)
    return { type: "array", prefixItems: (rest.prefixItems as JsonSchema[]).map(widenSchema) };
  if (rest.properties) {
    const properties: Record<string, JsonSchema> = {};
    for (const [k, v] of Object.entries(rest.properties as Record<string, JsonSchema>))
      properties[k] = widenSchema(v);
    return { ...rest, properties };
  }
  return rest;
}

/** A launch plan's spec: defaults and fixed inputs checked, its caller-facing interface derived. */
export function launchPlanSpec(lp: LaunchPlanLike, wf: WorkflowSpec, version?: string): LaunchPlanSpec {
  const o = lp.options;
  const name = lp.launchPlanName;
  const zod = lp.workflow.inputSchemas as Shape;
  const check = (what: string, vals: Record<string, unknown> | undefined): Record<string, Json> => {
    const out: Record<string, Json> = {};
    for (const [k, v] of Object.entries(vals ?? {})) {
      if (v === undefined) continue;
      const r = zod[k]?.safeParse(v);
      if (!r?.success) {
        throw new TernError(
          ErrorCodes.DEFINITION,
          `launch plan "${name}": ${what} value for "${k}" does not fit the workflow's input (${r?.error.issues[0]?.message ?? "unknown input"})`,
        );
      }
      out[k] = v as Json;
    }
    return out;
  };
  const defaults = check("default", o.defaults);
  const fixed = check("fixed", o.fixed);
  const inputs: TypedInterface["inputs"] = {};
  for (const [k, spec] of Object.entries(wf.interface.inputs)) {
    if (k in fixed) continue;
    inputs[k] = k in defaults ? { ...spec, default: defaults[k], optional: true } : spec;
  }
  const spec: LaunchPlanSpec = {
    kind: "launchplan",
    specVersion: SPEC_VERSION,
    id: { project: wf.id.project, domain: wf.id.domain, name, version: "" },
    workflow: wf.id,
    defaults,
    fixed,
    notifications: o.notifications ?? [],
    interface: { inputs, output: wf.interface.output },
  };
  if (o.schedule) {
    spec.schedule =
      "cron" in o.schedule
        ? o.schedule.timezone
          ? { cron: o.schedule.cron, timezone: o.schedule.timezone }
          : { cron: o.schedule.cron }
        : { everyMs: parseDuration(o.schedule.every, `schedule of launch plan "${name}"`) };
  }
  spec.id.version = version ?? hashValue({ ...spec, id: { ...spec.id, version: "" } }).slice(0, 20);
  return spec;
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
      const nonNull = variants
        .map((v) => deref(v, root))
        .filter((v) => !(v && typeof v === "object" && (v as { type?: unknown }).type === "null"));
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
  for (
    let i = 0;
    i < 32 && cur && typeof cur === "object" && typeof (cur as { $ref?: unknown }).$ref === "string";
    i++
  ) {
    const ref = (cur as { $ref: string }).$ref;
    const m = /^#\/\$defs\/(.+)$/.exec(ref);
    if (!m) return cur;
    cur = (root.$defs as Record<string, unknown> | undefined)?.[m[1]];
  }
  return cur;
}

function checkAcyclic(wf: string, nodes: NodeSpec[]): void {
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

/** Node ids a binding reads. */
export function bindingRefs(b: Binding, out: Set<string>): Set<string> {
  if ("ref" in b) out.add(b.ref.node);
  else if ("object" in b) for (const x of Object.values(b.object)) bindingRefs(x, out);
  else if ("list" in b) for (const x of b.list) bindingRefs(x, out);
  return out;
}

function conditionRefs(c: Condition, out: Set<string>): void {
  if ("and" in c) for (const x of c.and) conditionRefs(x, out);
  else if ("or" in c) for (const x of c.or) conditionRefs(x, out);
  else if ("not" in c) conditionRefs(c.not, out);
  else if ("test" in c) bindingRefs(c.operand, out);
  else {
    bindingRefs(c.left, out);
    bindingRefs(c.right, out);
  }
}

/**
 * Node ids a node waits for: its data sources and its `after()` upstreams. A
 * branch waits for everything its conditions and cases read from outside it.
 * Pseudo-nodes (`$inputs`, `$error`, `$execution`) are left out.
 */
export function nodeDependencies(n: NodeSpec): Set<string> {
  const refs = new Set<string>(n.upstream);
  switch (n.kind) {
    case "task":
    case "workflow":
    case "launchplan":
      for (const b of Object.values(n.inputs)) bindingRefs(b, refs);
      break;
    case "map":
      for (const b of Object.values(n.inputs)) bindingRefs(b, refs);
      for (const b of Object.values(n.bound)) bindingRefs(b, refs);
      break;
    case "gate":
      if (n.gate.kind === "approve") bindingRefs(n.gate.value, refs);
      break;
    case "branch": {
      const inner = new Set<string>();
      const scope = (nodes: NodeSpec[], output: Binding) => {
        for (const x of nodes) {
          inner.add(x.id);
          for (const d of nodeDependencies(x)) refs.add(d);
        }
        bindingRefs(output, refs);
      };
      for (const c of n.cases) {
        conditionRefs(c.when, refs);
        scope(c.nodes, c.output);
      }
      if (n.else && "nodes" in n.else) scope(n.else.nodes, n.else.output);
      for (const id of inner) refs.delete(id);
      break;
    }
  }
  for (const id of [...refs]) if (id.startsWith("$")) refs.delete(id);
  return refs;
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
