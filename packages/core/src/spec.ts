/**
 * The compiled artifacts: Tern's IDL. `compile()` turns definitions into these
 * plain JSON documents; they are the unit of registration, versioning and
 * execution. Each is defined here as a zod schema, so specs arriving from files,
 * the API or other languages are validated the same way, and their JSON Schema is
 * published under `@tern/core/schemas`.
 */
import { z } from "zod";
import { ErrorCodes, TernError } from "./errors.js";

/** Bumped on any incompatible change to the spec shapes. */
export const SPEC_VERSION = 1;

const json: z.ZodType<unknown> = z.json();
const jsonSchema = z.union([z.boolean(), z.record(z.string(), z.unknown())]);

const name = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z_][A-Za-z0-9_.-]*$/, "names start with a letter or _ and use letters, digits, _ . -");

export const IdentifierSchema = z.object({
  project: name,
  domain: name,
  name: name,
  version: z.string().min(1).max(128),
});
export type Identifier = z.infer<typeof IdentifierSchema>;

export const InputSpecSchema = z.object({
  /** JSON Schema of the accepted value (`io: input`). */
  schema: jsonSchema,
  /** The value used when the caller gives none. */
  default: json.optional(),
  /** True when the caller may leave it out (it has a default or accepts undefined). */
  optional: z.boolean(),
  description: z.string().optional(),
});
export type InputSpec = z.infer<typeof InputSpecSchema>;

export const InterfaceSchema = z.object({
  inputs: z.record(z.string(), InputSpecSchema),
  /** JSON Schema of the output value. */
  output: jsonSchema,
});
export type TypedInterface = z.infer<typeof InterfaceSchema>;

export const BackoffSchema = z.object({
  baseMs: z.number().nonnegative(),
  maxMs: z.number().nonnegative(),
  factor: z.number().min(1),
  /** 0..1: each delay is scaled by a random factor in [1 - jitter, 1 + jitter]. */
  jitter: z.number().min(0).max(1),
});
export type Backoff = z.infer<typeof BackoffSchema>;

export const RetryPolicySchema = z.object({
  /** Attempts after the first that a user error (the task threw) may spend. */
  user: z.number().int().min(0).max(100),
  /** Attempts after the first that system errors (plugin, infrastructure, preemption) may spend. */
  system: z.number().int().min(0).max(100),
  backoff: BackoffSchema,
});
export type RetryPolicy = z.infer<typeof RetryPolicySchema>;

export const CachePolicySchema = z.object({
  /** The cache version: given by the user or a hash of the code the task depends on. */
  version: z.string().min(1),
  /** True when `version` was derived from code. */
  derived: z.boolean(),
  /** Concurrent identical calls run once; the others wait for its result. */
  serialize: z.boolean(),
  /** Inputs left out of the cache key. */
  ignoreInputs: z.array(z.string()),
});
export type CachePolicy = z.infer<typeof CachePolicySchema>;

const quantities = z.object({
  cpu: z.union([z.string(), z.number()]).optional(),
  memory: z.string().optional(),
  gpu: z.number().int().nonnegative().optional(),
  ephemeralStorage: z.string().optional(),
});
export const ResourcesSchema = z.object({
  requests: quantities.optional(),
  limits: quantities.optional(),
  /** Number of GPUs (placed under limits by Kubernetes-like plugins). */
  gpu: z.number().int().nonnegative().optional(),
  /** Accelerator model, e.g. "nvidia-tesla-a100". */
  accelerator: z.string().optional(),
});
export type Resources = z.infer<typeof ResourcesSchema>;

export const SecretRefSchema = z.object({
  group: z.string().min(1),
  key: z.string().optional(),
  /** Expose as an environment variable with this name… */
  env: z.string().optional(),
  /** …or as a file at this path. */
  mountPath: z.string().optional(),
});
export type SecretRef = z.infer<typeof SecretRefSchema>;

export const TaskMetadataSchema = z.object({
  retries: RetryPolicySchema,
  /** Per-attempt timeout. */
  timeoutMs: z.number().int().positive().optional(),
  cache: CachePolicySchema.optional(),
  interruptible: z.boolean(),
  resources: ResourcesSchema.optional(),
  secrets: z.array(SecretRefSchema),
  image: z.string().optional(),
  env: z.record(z.string(), z.string()),
  description: z.string().optional(),
});
export type TaskMetadata = z.infer<typeof TaskMetadataSchema>;

export const CodeRefSchema = z.object({
  /** Content digest of the esbuild bundle holding the task (`sha256:…`), when bundled. */
  bundle: z.string().optional(),
  /** Source module the task was defined in, relative to the project root. */
  module: z.string().optional(),
  /** Export name, when the task is exported. */
  export: z.string().optional(),
  /** Hash of the code the task depends on (its body, the helpers it uses, the modules they import). */
  hash: z.string().optional(),
});
export type CodeRef = z.infer<typeof CodeRefSchema>;

export const TaskSpecSchema = z.object({
  kind: z.literal("task"),
  specVersion: z.literal(SPEC_VERSION),
  id: IdentifierSchema,
  /** Which backend kind runs it ("node" for TypeScript bodies, or a plugin's task type). */
  type: z.string().min(1),
  interface: InterfaceSchema,
  metadata: TaskMetadataSchema,
  code: CodeRefSchema.optional(),
  /** Plugin-defined configuration for non-TypeScript tasks. */
  custom: z.record(z.string(), z.unknown()).optional(),
  /** A dynamic workflow: the body runs with real inputs and returns a sub-DAG to run. */
  dynamic: z.boolean().optional(),
});
export type TaskSpec = z.infer<typeof TaskSpecSchema>;

/**
 * Where a node input's value comes from. `ref.node` is a node id, or `$inputs`
 * for the workflow's inputs; `path` selects a field inside that value.
 */
export type Binding =
  | { literal: unknown }
  | { ref: { node: string; path: (string | number)[] } }
  | { object: Record<string, Binding> }
  | { list: Binding[] };

export const BindingSchema: z.ZodType<Binding> = z.lazy(() =>
  z.union([
    z.object({ literal: json }).strict(),
    z
      .object({ ref: z.object({ node: z.string(), path: z.array(z.union([z.string(), z.number()])) }) })
      .strict(),
    z.object({ object: z.record(z.string(), BindingSchema) }).strict(),
    z.object({ list: z.array(BindingSchema) }).strict(),
  ]),
) as z.ZodType<Binding>;

export const NodeOverridesSchema = TaskMetadataSchema.partial();
export type NodeOverrides = z.infer<typeof NodeOverridesSchema>;

const nodeId = z
  .string()
  .min(1)
  .max(120)
  .regex(/^[A-Za-z_][A-Za-z0-9_-]*$/, "node ids use letters, digits, _ and -");

const nodeBase = {
  id: nodeId,
  /** Nodes that must finish first without passing data (`after()`). */
  upstream: z.array(z.string()),
};

export const TaskNodeSchema = z.object({
  ...nodeBase,
  kind: z.literal("task"),
  /** Key into the compiled bundle's tasks: `name@version`. */
  task: z.string(),
  inputs: z.record(z.string(), BindingSchema),
  overrides: NodeOverridesSchema.optional(),
});
export type TaskNode = z.infer<typeof TaskNodeSchema>;

/** A workflow run as one node of another (its nodes run in the parent execution). */
export const WorkflowNodeSchema = z.object({
  ...nodeBase,
  kind: z.literal("workflow"),
  /** Key into the bundle's `subworkflows`: `name@version`. */
  workflow: z.string(),
  inputs: z.record(z.string(), BindingSchema),
});
export type WorkflowNode = z.infer<typeof WorkflowNodeSchema>;

/** A launch plan run as a child execution. */
export const LaunchPlanNodeSchema = z.object({
  ...nodeBase,
  kind: z.literal("launchplan"),
  /** Key into the bundle's `launchPlans`: `name@version`. */
  launchPlan: z.string(),
  inputs: z.record(z.string(), BindingSchema),
});
export type LaunchPlanNode = z.infer<typeof LaunchPlanNodeSchema>;

/** Fan a task or a subworkflow out over lists. */
export const MapNodeSchema = z.object({
  ...nodeBase,
  kind: z.literal("map"),
  target: z.union([z.object({ task: z.string() }).strict(), z.object({ workflow: z.string() }).strict()]),
  /** Inputs mapped over: each binding gives a list, all of one length. */
  inputs: z.record(z.string(), BindingSchema),
  /** Inputs given whole to every item. */
  bound: z.record(z.string(), BindingSchema),
  /** Items running at once. */
  concurrency: z.number().int().positive().optional(),
  /** Share of items that must succeed; failed items become null. @default 1 */
  minSuccessRatio: z.number().min(0).max(1),
  overrides: NodeOverridesSchema.optional(),
});
export type MapNode = z.infer<typeof MapNodeSchema>;

/** A condition of a branch, over node outputs and workflow inputs. */
export type Condition =
  | { cmp: "eq" | "ne" | "gt" | "gte" | "lt" | "lte"; left: Binding; right: Binding }
  | { test: "true" | "false" | "null" | "notnull"; operand: Binding }
  | { and: Condition[] }
  | { or: Condition[] }
  | { not: Condition };

export const ConditionSchema: z.ZodType<Condition> = z.lazy(() =>
  z.union([
    z
      .object({
        cmp: z.enum(["eq", "ne", "gt", "gte", "lt", "lte"]),
        left: BindingSchema,
        right: BindingSchema,
      })
      .strict(),
    z.object({ test: z.enum(["true", "false", "null", "notnull"]), operand: BindingSchema }).strict(),
    z.object({ and: z.array(ConditionSchema).min(1) }).strict(),
    z.object({ or: z.array(ConditionSchema).min(1) }).strict(),
    z.object({ not: ConditionSchema }).strict(),
  ]),
) as z.ZodType<Condition>;

export interface BranchCase {
  when: Condition;
  nodes: NodeSpec[];
  output: Binding;
}

/** `when(…).then(…).elseIf(…).else(…)`: the first case whose condition holds runs; the others are skipped. */
export interface BranchNode {
  id: string;
  upstream: string[];
  kind: "branch";
  cases: BranchCase[];
  /** What runs when no case holds, if anything. */
  else?: { nodes: NodeSpec[]; output: Binding } | { fail: string };
}

export type GateSpec =
  | { kind: "approve"; name: string; value: Binding }
  | { kind: "sleep"; durationMs: number }
  | { kind: "input"; name: string; schema: unknown };

/** Wait for a person (approve, input) or for time (sleep). */
export interface GateNode {
  id: string;
  upstream: string[];
  kind: "gate";
  gate: GateSpec;
  /** Give up waiting after this long. */
  timeoutMs?: number;
}

export type NodeSpec = TaskNode | WorkflowNode | LaunchPlanNode | MapNode | BranchNode | GateNode;

export const GateSpecSchema: z.ZodType<GateSpec> = z.union([
  z.object({ kind: z.literal("approve"), name: z.string().min(1), value: BindingSchema }).strict(),
  z.object({ kind: z.literal("sleep"), durationMs: z.number().int().nonnegative() }).strict(),
  z.object({ kind: z.literal("input"), name: z.string().min(1), schema: jsonSchema }).strict(),
]) as z.ZodType<GateSpec>;

export const NodeSpecSchema: z.ZodType<NodeSpec> = z.lazy(() =>
  z.discriminatedUnion("kind", [
    TaskNodeSchema,
    WorkflowNodeSchema,
    LaunchPlanNodeSchema,
    MapNodeSchema,
    z.object({
      ...nodeBase,
      kind: z.literal("branch"),
      cases: z
        .array(z.object({ when: ConditionSchema, nodes: z.array(NodeSpecSchema), output: BindingSchema }))
        .min(1),
      else: z
        .union([
          z.object({ nodes: z.array(NodeSpecSchema), output: BindingSchema }),
          z.object({ fail: z.string() }),
        ])
        .optional(),
    }),
    z.object({
      ...nodeBase,
      kind: z.literal("gate"),
      gate: GateSpecSchema,
      timeoutMs: z.number().int().positive().optional(),
    }),
  ]),
) as z.ZodType<NodeSpec>;

export const FailurePolicySchema = z.enum(["fail-fast", "continue"]);
export type FailurePolicy = z.infer<typeof FailurePolicySchema>;

export const WorkflowSpecSchema = z.object({
  kind: z.literal("workflow"),
  specVersion: z.literal(SPEC_VERSION),
  id: IdentifierSchema,
  interface: InterfaceSchema,
  nodes: z.array(NodeSpecSchema),
  /** How the workflow's output is assembled from node outputs. */
  output: BindingSchema,
  failurePolicy: FailurePolicySchema,
  maxParallelism: z.number().int().positive().optional(),
  /** Execution deadline. */
  timeoutMs: z.number().int().positive().optional(),
  description: z.string().optional(),
  /** Runs when the execution fails, with the error and the execution's ids. */
  onFailure: TaskNodeSchema.optional(),
});
export type WorkflowSpec = z.infer<typeof WorkflowSpecSchema>;

export const ScheduleSchema = z.union([
  z.object({ cron: z.string().min(1), timezone: z.string().optional() }).strict(),
  z.object({ everyMs: z.number().int().positive() }).strict(),
]);
export type Schedule = z.infer<typeof ScheduleSchema>;

export const NotificationSchema = z.object({
  /** Terminal phases that notify. */
  phases: z.array(z.enum(["succeeded", "failed", "aborted"])).min(1),
  webhook: z.string().url(),
});
export type Notification = z.infer<typeof NotificationSchema>;

/** A workflow with default and fixed inputs, optionally on a schedule. */
export const LaunchPlanSpecSchema = z.object({
  kind: z.literal("launchplan"),
  specVersion: z.literal(SPEC_VERSION),
  id: IdentifierSchema,
  workflow: IdentifierSchema,
  /** Inputs used when the caller gives none. */
  defaults: z.record(z.string(), json),
  /** Inputs the caller cannot change. */
  fixed: z.record(z.string(), json),
  schedule: ScheduleSchema.optional(),
  notifications: z.array(NotificationSchema),
  /** The interface a caller sees: the workflow's, less fixed inputs, with the plan's defaults. */
  interface: InterfaceSchema,
});
export type LaunchPlanSpec = z.infer<typeof LaunchPlanSpecSchema>;

/** A workflow with every task it references: what `compile()` returns and what gets registered. */
export const CompiledWorkflowSchema = z.object({
  specVersion: z.literal(SPEC_VERSION),
  workflow: WorkflowSpecSchema,
  /** Keyed by `name@version`, the key task nodes use. */
  tasks: z.record(z.string(), TaskSpecSchema),
  /** Workflows used as nodes (and those launch plans run), keyed by `name@version`. */
  subworkflows: z.record(z.string(), WorkflowSpecSchema).optional(),
  /** Launch plans used as nodes, keyed by `name@version`. */
  launchPlans: z.record(z.string(), LaunchPlanSpecSchema).optional(),
});
export type CompiledWorkflow = z.infer<typeof CompiledWorkflowSchema>;

export const ExecutionSpecSchema = z.object({
  specVersion: z.literal(SPEC_VERSION),
  /** Execution id, unique within project and domain. */
  id: z.string().min(1).max(64),
  project: name,
  domain: name,
  workflow: IdentifierSchema,
  inputs: z.record(z.string(), json),
  maxParallelism: z.number().int().positive().optional(),
  /** Execution that this one recovers (reusing its succeeded nodes). */
  recoverFrom: z.string().optional(),
  createdAt: z.string(),
});
export type ExecutionSpec = z.infer<typeof ExecutionSpecSchema>;

/** The spec JSON Schemas, as published documentation. */
export function specJsonSchemas(): Record<string, unknown> {
  return {
    TaskSpec: z.toJSONSchema(TaskSpecSchema, { unrepresentable: "any" }),
    WorkflowSpec: z.toJSONSchema(WorkflowSpecSchema, { unrepresentable: "any" }),
    CompiledWorkflow: z.toJSONSchema(CompiledWorkflowSchema, { unrepresentable: "any" }),
    ExecutionSpec: z.toJSONSchema(ExecutionSpecSchema, { unrepresentable: "any" }),
    LaunchPlanSpec: z.toJSONSchema(LaunchPlanSpecSchema, { unrepresentable: "any" }),
  };
}

/** Objects that passed validation in this process (see {@link validatedHere}). */
const validatedObjects = new WeakSet<object>();

function validate<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (r.success) {
    if (typeof value === "object" && value !== null) validatedObjects.add(value);
    return r.data;
  }
  const issues = r.error.issues
    .slice(0, 5)
    .map((i) => `${i.path.length ? i.path.join(".") : "(root)"}: ${i.message}`)
    .join("; ");
  throw new TernError(ErrorCodes.SPEC_INVALID, `invalid ${what}: ${issues}`, {
    hint: `compare the document with the ${what} JSON Schema (specJsonSchemas())`,
    details: { issues: r.error.issues.slice(0, 20) },
  });
}

/**
 * True when this very object passed a `validate…()` call in this process: a spec compiled
 * here and handed over in memory (a dynamic sub-DAG on the inline backend) need not be
 * validated twice. Only for objects nobody changed since.
 */
export function validatedHere(v: unknown): boolean {
  return typeof v === "object" && v !== null && validatedObjects.has(v);
}

export const validateTaskSpec = (v: unknown): TaskSpec => validate(TaskSpecSchema, v, "TaskSpec");
export const validateWorkflowSpec = (v: unknown): WorkflowSpec =>
  validate(WorkflowSpecSchema, v, "WorkflowSpec");
export const validateCompiledWorkflow = (v: unknown): CompiledWorkflow =>
  validate(CompiledWorkflowSchema, v, "CompiledWorkflow");
export const validateLaunchPlanSpec = (v: unknown): LaunchPlanSpec =>
  validate(LaunchPlanSpecSchema, v, "LaunchPlanSpec");
export const validateExecutionSpec = (v: unknown): ExecutionSpec =>
  validate(ExecutionSpecSchema, v, "ExecutionSpec");

export function taskKey(id: Pick<Identifier, "name" | "version">): string {
  return `${id.name}@${id.version}`;
}
