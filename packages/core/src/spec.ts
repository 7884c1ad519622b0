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
    z.object({ ref: z.object({ node: z.string(), path: z.array(z.union([z.string(), z.number()])) }) }).strict(),
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

export const TaskNodeSchema = z.object({
  id: nodeId,
  kind: z.literal("task"),
  /** Key into the compiled bundle's tasks: `name@version`. */
  task: z.string(),
  inputs: z.record(z.string(), BindingSchema),
  /** Nodes that must finish first without passing data (`after()`). */
  upstream: z.array(z.string()),
  overrides: NodeOverridesSchema.optional(),
});
export type TaskNode = z.infer<typeof TaskNodeSchema>;

export const NodeSpecSchema = TaskNodeSchema;
export type NodeSpec = z.infer<typeof NodeSpecSchema>;

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
});
export type WorkflowSpec = z.infer<typeof WorkflowSpecSchema>;

/** A workflow with every task it references: what `compile()` returns and what gets registered. */
export const CompiledWorkflowSchema = z.object({
  specVersion: z.literal(SPEC_VERSION),
  workflow: WorkflowSpecSchema,
  /** Keyed by `name@version`, the key task nodes use. */
  tasks: z.record(z.string(), TaskSpecSchema),
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
  };
}

function validate<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issues = r.error.issues
    .slice(0, 5)
    .map((i) => `${i.path.length ? i.path.join(".") : "(root)"}: ${i.message}`)
    .join("; ");
  throw new TernError(ErrorCodes.SPEC_INVALID, `invalid ${what}: ${issues}`, {
    hint: `compare the document with the ${what} JSON Schema (specJsonSchemas())`,
    details: { issues: r.error.issues.slice(0, 20) },
  });
}

export const validateTaskSpec = (v: unknown): TaskSpec => validate(TaskSpecSchema, v, "TaskSpec");
export const validateWorkflowSpec = (v: unknown): WorkflowSpec => validate(WorkflowSpecSchema, v, "WorkflowSpec");
export const validateCompiledWorkflow = (v: unknown): CompiledWorkflow =>
  validate(CompiledWorkflowSchema, v, "CompiledWorkflow");
export const validateExecutionSpec = (v: unknown): ExecutionSpec => validate(ExecutionSpecSchema, v, "ExecutionSpec");

export function taskKey(id: Pick<Identifier, "name" | "version">): string {
  return `${id.name}@${id.version}`;
}
