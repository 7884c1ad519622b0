/**
 * The user's API: `task()`, `workflow()`, handles and `after()`.
 *
 * A workflow body runs once, when the workflow is first compiled, with
 * placeholder handles instead of values: calling a task inside it adds a node and
 * returns a handle to that node's output. Object outputs expose their fields as
 * handles (`split.train`). TypeScript checks the wiring; `compile()` checks it
 * again from the serialized types.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { fileURLToPath } from "node:url";
import type { z } from "zod";
import type { Duration } from "./duration.js";
import { ErrorCodes, TernError } from "./errors.js";
import type { Json } from "./json.js";
import type { TaskLogger } from "./plugin.js";
import type { FailurePolicy, Resources, SecretRef } from "./spec.js";

export type Shape = Record<string, z.ZodType>;
type MaybePromise<T> = T | Promise<T>;

// ---------------------------------------------------------------------------
// Handles

const HANDLE = Symbol.for("tern.handle");
const DEF_KIND = Symbol.for("tern.definition");

/** Where a handle points: a node's output (or the workflow inputs, node `$inputs`) and a path inside it. */
export interface HandleInfo {
  readonly node: string;
  readonly path: readonly (string | number)[];
  readonly builder: WorkflowBuilder;
}

/**
 * A placeholder for a value that exists only at execution time. `T` is phantom:
 * it makes `Handle<string>` unassignable where a number is expected.
 */
export interface Handle<T> {
  readonly [HANDLE]: HandleInfo;
  readonly __valueType?: T;
}

type IsPlainObject<T> = T extends readonly unknown[]
  ? false
  : T extends { $tern: string }
    ? false
    : T extends (...args: never[]) => unknown
      ? false
      : T extends object
        ? true
        : false;

/** A handle whose object fields are handles too. */
export type Promised<T> = Handle<T> &
  (IsPlainObject<NonNullable<T>> extends true
    ? { readonly [K in keyof NonNullable<T>]-?: Promised<NonNullable<T>[K]> }
    : unknown);

/** What may be passed where a `T` is expected in a workflow body: a value, a handle, or an object/array of them. */
export type Bindable<T> =
  | T
  | Handle<T>
  | (T extends readonly (infer E)[]
      ? readonly Bindable<E>[]
      : IsPlainObject<T> extends true
        ? { [K in keyof T]: Bindable<T[K]> }
        : never);

type OptionalKeys<I extends Shape> = { [K in keyof I]: undefined extends z.input<I[K]> ? K : never }[keyof I];
type RequiredKeys<I extends Shape> = Exclude<keyof I, OptionalKeys<I>>;

/**
 * The argument of a task or workflow call inside a workflow body. For `any` inputs it is
 * `any`: otherwise every key would be optional, and a workflow with a required input would
 * not be assignable to `AnyWorkflow` (what `compile()` and `run()` take).
 */
export type CallInputs<I extends Shape> = 0 extends 1 & I
  ? any
  : { [K in RequiredKeys<I>]: Bindable<z.input<I[K]>> } & {
      [K in OptionalKeys<I>]?: Bindable<z.input<I[K]>>;
    };

/** Values a task body receives. */
export type TaskInputs<I extends Shape> = { [K in keyof I]: z.output<I[K]> };

/** Handles a workflow body receives. */
export type WorkflowInputs<I extends Shape> = { [K in keyof I]: Promised<z.output<I[K]>> };

export function isHandle(v: unknown): v is Handle<unknown> {
  return (typeof v === "object" || typeof v === "function") && v !== null && HANDLE in (v as object);
}

export function handleInfo(h: Handle<unknown>): HandleInfo {
  return h[HANDLE];
}

function makeHandle<T>(info: HandleInfo): Promised<T> {
  const fields = new Map<string, Promised<unknown>>();
  const target = Object.create(null) as object;
  return new Proxy(target, {
    get(_t, prop) {
      if (prop === HANDLE) return info;
      if (prop === Symbol.toPrimitive || prop === "toString" || prop === "valueOf" || prop === "toJSON") {
        return () => {
          throw new TernError(
            ErrorCodes.DEFINITION,
            `the output of node "${info.node}"${info.path.length ? `.${info.path.join(".")}` : ""} was used as a value inside a workflow body`,
            {
              hint: "workflow bodies only wire tasks together and cannot read values; do the computation in a task (or a dynamic workflow)",
            },
          );
        };
      }
      if (typeof prop === "symbol" || prop === "then") return undefined;
      let f = fields.get(prop);
      if (!f) {
        f = makeHandle({ node: info.node, path: [...info.path, prop], builder: info.builder });
        fields.set(prop, f);
      }
      return f;
    },
    has(_t, prop) {
      return prop === HANDLE;
    },
  }) as Promised<T>;
}

// ---------------------------------------------------------------------------
// Task definitions

/** What a task body gets besides its inputs. */
export interface TaskCtx {
  readonly logger: TaskLogger;
  readonly execution: { readonly id: string; readonly project: string; readonly domain: string };
  readonly node: { readonly id: string };
  readonly task: { readonly name: string };
  /** 1-based attempt number. */
  readonly attempt: number;
  /** A private directory for this attempt, created on first use. */
  readonly scratchDir: string;
  /** Resume long work: what one attempt saves, the next attempt of the same node loads. */
  readonly checkpoint: {
    /** Save bytes, or any JSON-serializable value. */
    save(data: unknown): Promise<void>;
    load(): Promise<Uint8Array | undefined>;
    loadJson<T = Json>(): Promise<T | undefined>;
  };
  /** Aborted when the attempt times out or the execution is aborted. */
  readonly signal: AbortSignal;
}

export type TaskBody<I extends Shape, O extends z.ZodType> = (
  inputs: TaskInputs<I>,
  ctx: TaskCtx,
) => MaybePromise<z.input<O> | (undefined extends z.input<O> ? void : never)>;

export interface CacheOptions<I extends Shape = Shape> {
  /** Cache version. Default: a hash of the code the task depends on, so editing it invalidates the cache. */
  version?: string;
  /** Run concurrent identical calls once; the others wait for its result. @default false */
  serialize?: boolean;
  /** Inputs left out of the cache key. */
  ignoreInputs?: (keyof I & string)[];
}

export interface BackoffOptions {
  /** First delay. @default "1s" */
  base?: Duration;
  /** Largest delay. @default "5m" */
  max?: Duration;
  /** Growth per attempt. @default 2 */
  factor?: number;
  /** Random spread, 0..1. @default 0.2 */
  jitter?: number;
}

export interface RetryOptions {
  /** Retries after user errors (the task threw). @default 0 */
  user?: number;
  /** Retries after system errors (infrastructure, preemption). @default 3 */
  system?: number;
  backoff?: BackoffOptions;
}

export interface TaskOptions<I extends Shape, O extends z.ZodType> {
  /** Unique task name, e.g. "say_hello". */
  name: string;
  inputs?: I;
  /** Output schema. Omit for a task that returns nothing. */
  output?: O;
  description?: string;
  /** Cache outputs by inputs. `true` uses the code-derived version. @default false */
  cache?: boolean | CacheOptions<I>;
  /** A number is the user retry budget. @default 0 user, 3 system */
  retries?: number | RetryOptions;
  /** Per-attempt timeout. */
  timeout?: Duration;
  /** May run on preemptible capacity; the last system retry runs non-interruptible. @default false */
  interruptible?: boolean;
  resources?: Resources;
  secrets?: SecretRef[];
  /** Container image for backends that run containers. */
  image?: string;
  env?: Record<string, string>;
  /** Backend kind. @default "node" (a TypeScript body) */
  type?: string;
  /** Plugin-defined configuration for non-TypeScript task types. */
  custom?: Record<string, Json>;
}

/** Per-call overrides inside a workflow body (Flyte's `with_overrides`). */
export interface NodeOptions {
  /** Node id. @default the task name, suffixed when repeated */
  id?: string;
  retries?: number | RetryOptions;
  timeout?: Duration;
  cache?: boolean | CacheOptions;
  resources?: Resources;
  interruptible?: boolean;
  env?: Record<string, string>;
}

export interface CallSite {
  /** Absolute path of the source file, when known. */
  file?: string;
  line?: number;
  column?: number;
}

export interface TaskDef<I extends Shape = Shape, O extends z.ZodType = z.ZodType> {
  (inputs: CallInputs<I>, opts?: NodeOptions): Promised<z.output<O>>;
  readonly [DEF_KIND]: "task";
  readonly kind: "task";
  readonly taskName: string;
  readonly options: Readonly<TaskOptions<I, O>>;
  readonly inputSchemas: I;
  readonly outputSchema: O | undefined;
  readonly fn: TaskBody<I, O>;
  /** Where `task()` was called: used for the code-derived cache version and error messages. */
  readonly callSite: CallSite;
}

export interface WorkflowOptions<I extends Shape, O extends z.ZodType> {
  name: string;
  inputs?: I;
  output?: O;
  description?: string;
  /** `fail-fast` aborts running nodes on the first failure; `continue` runs everything it still can. @default "fail-fast" */
  failurePolicy?: FailurePolicy;
  /** Nodes of this workflow running at once. */
  maxParallelism?: number;
  /** Execution deadline. */
  timeout?: Duration;
  /**
   * Runs when the execution fails. Its inputs: `error` ({@link failureInfo}),
   * `execution` ({@link executionInfo}), and any of the workflow's inputs by name.
   */
  onFailure?: AnyTask;
}

export type WorkflowBody<I extends Shape, O extends z.ZodType> = (
  inputs: WorkflowInputs<I>,
) => Bindable<z.input<O>> | void;

export interface WorkflowDef<I extends Shape = Shape, O extends z.ZodType = z.ZodType> {
  /** Inside another workflow's body: run this workflow as one node (a subworkflow). */
  (inputs: CallInputs<I>, opts?: { id?: string }): Promised<z.output<O>>;
  readonly [DEF_KIND]: "workflow";
  readonly kind: "workflow";
  readonly workflowName: string;
  readonly options: Readonly<WorkflowOptions<I, O>>;
  readonly inputSchemas: I;
  readonly outputSchema: O | undefined;
  readonly callSite: CallSite;
  /** The graph the body builds; the body runs on first access only. */
  graph(): BuiltGraph;
}

export type AnyTask = TaskDef<any, any>;
export type AnyWorkflow = WorkflowDef<any, any>;

export function isTaskDef(v: unknown): v is AnyTask {
  return typeof v === "function" && (v as { [DEF_KIND]?: unknown })[DEF_KIND] === "task";
}

export function isWorkflowDef(v: unknown): v is AnyWorkflow {
  return typeof v === "function" && (v as { [DEF_KIND]?: unknown })[DEF_KIND] === "workflow";
}

/** Mark a definition object with its kind (how `isTaskDef` and friends recognise it). */
export function markDefinition<T extends object>(
  def: T,
  kind: "task" | "workflow" | "launchplan",
  props: Record<string, unknown>,
): T {
  const descriptors: PropertyDescriptorMap = { [DEF_KIND]: { value: kind }, kind: { value: kind } };
  for (const [k, v] of Object.entries(props)) descriptors[k] = { value: v };
  return Object.defineProperties(def, descriptors);
}

export function definitionKind(v: unknown): "task" | "workflow" | "launchplan" | undefined {
  if ((typeof v !== "function" && typeof v !== "object") || v === null) return undefined;
  return (v as { [DEF_KIND]?: "task" | "workflow" | "launchplan" })[DEF_KIND];
}

const NAME_RE = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

function checkName(kind: string, name: unknown, site: CallSite): asserts name is string {
  if (typeof name !== "string" || !NAME_RE.test(name) || name.length > 200) {
    throw new TernError(
      ErrorCodes.DEFINITION,
      `${kind} name ${JSON.stringify(name)} is not valid${where(site)}`,
      {
        hint: "use letters, digits, _ . - (starting with a letter or _), at most 200 characters",
      },
    );
  }
}

function where(site: CallSite): string {
  return site.file ? ` (${site.file}${site.line ? `:${site.line}` : ""})` : "";
}

/** Every task defined in this process, by name (how in-process backends and workers find bodies). */
const TASKS = new Map<string, AnyTask[]>();

/** Tasks defined with this name (normally one). */
export function definedTasks(name: string): readonly AnyTask[] {
  return TASKS.get(name) ?? [];
}

/**
 * Define a task: a typed, cacheable, retryable unit of work.
 *
 * @example
 * export const sayHello = task(
 *   { name: "say_hello", inputs: { name: z.string() }, output: z.string(), cache: true },
 *   async ({ name }) => `Hello, ${name}!`,
 * );
 */
export function task<I extends Shape = {}, O extends z.ZodType = z.ZodVoid>(
  options: TaskOptions<I, O>,
  fn: TaskBody<I, O>,
): TaskDef<I, O> {
  const callSite = captureCallSite();
  checkName("task", options?.name, callSite);
  if (typeof fn !== "function") {
    throw new TernError(
      ErrorCodes.DEFINITION,
      `task "${options.name}" has no body function${where(callSite)}`,
      {
        hint: "task({ name, inputs, output }, async (inputs, ctx) => { … })",
      },
    );
  }
  const def = ((inputs: CallInputs<I>, opts?: NodeOptions) => {
    const b = currentBuilder(`task "${options.name}"`);
    const o = opts ?? {};
    const args = b.namedInputs(inputs, `task "${options.name}"`, Object.keys(options.inputs ?? {}));
    return b.add({ kind: "task", task: def as AnyTask, inputs: args, options: o }, options.name, o.id);
  }) as TaskDef<I, O>;
  markDefinition(def, "task", {
    taskName: options.name,
    options: Object.freeze({ ...options }),
    inputSchemas: options.inputs ?? {},
    outputSchema: options.output,
    fn,
    callSite,
  });
  const list = TASKS.get(options.name);
  if (list) list.push(def as AnyTask);
  else TASKS.set(options.name, [def as AnyTask]);
  return def;
}

/**
 * Define a workflow: a typed DAG of tasks. The body wires nodes with handles and
 * runs once; it cannot look at values.
 *
 * @example
 * export const hello = workflow(
 *   { name: "hello", inputs: { name: z.string().default("world") }, output: z.string() },
 *   ({ name }) => sayHello({ name }),
 * );
 */
export function workflow<I extends Shape = {}, O extends z.ZodType = z.ZodVoid>(
  options: WorkflowOptions<I, O>,
  body: WorkflowBody<I, O>,
): WorkflowDef<I, O> {
  const callSite = captureCallSite();
  checkName("workflow", options?.name, callSite);
  if (typeof body !== "function") {
    throw new TernError(
      ErrorCodes.DEFINITION,
      `workflow "${options.name}" has no body function${where(callSite)}`,
    );
  }
  let built: BuiltGraph | undefined;
  const def = ((inputs: CallInputs<I>, opts?: { id?: string }) => {
    const b = currentBuilder(`workflow "${options.name}"`);
    const args = b.namedInputs(inputs, `workflow "${options.name}"`, Object.keys(options.inputs ?? {}));
    return b.add({ kind: "workflow", workflow: def as AnyWorkflow, inputs: args }, options.name, opts?.id);
  }) as WorkflowDef<I, O>;
  markDefinition(def, "workflow", {
    workflowName: options.name,
    options: Object.freeze({ ...options }),
    inputSchemas: (options.inputs ?? {}) as I,
    outputSchema: options.output,
    callSite,
    graph() {
      if (!built) built = buildGraph(options.name, callSite, (inputs) => body(inputs as WorkflowInputs<I>));
      return built;
    },
  });
  return def;
}

// ---------------------------------------------------------------------------
// Graph building

interface BuiltBase {
  readonly id: string;
  readonly upstream: Set<string>;
}

/** A launch plan definition (see `launchPlan()`); declared here so nodes can name it. */
export interface LaunchPlanLike {
  readonly kind: "launchplan";
  readonly launchPlanName: string;
  readonly workflow: AnyWorkflow;
  readonly options: {
    readonly defaults?: Record<string, unknown>;
    readonly fixed?: Record<string, unknown>;
    readonly schedule?: { cron: string; timezone?: string } | { every: Duration };
    readonly notifications?: { phases: ("succeeded" | "failed" | "aborted")[]; webhook: string }[];
  };
}

export interface MapNodeOptions {
  id?: string;
  /** Inputs given whole to every item. */
  bound?: Record<string, unknown>;
  /** Items running at once. */
  concurrency?: number;
  /** Share of items that must succeed; failed items become null. @default 1 */
  minSuccessRatio?: number;
  retries?: number | RetryOptions;
  timeout?: Duration;
  cache?: boolean | CacheOptions;
  resources?: Resources;
  interruptible?: boolean;
}

/** A condition as written in a workflow body (operands are values or handles). */
export type BuiltCondition =
  | { cmp: "eq" | "ne" | "gt" | "gte" | "lt" | "lte"; left: unknown; right: unknown }
  | { test: "true" | "false" | "null" | "notnull"; operand: unknown }
  | { and: BuiltCondition[] }
  | { or: BuiltCondition[] }
  | { not: BuiltCondition };

export interface BuiltCase {
  readonly when: BuiltCondition;
  readonly nodes: BuiltNode[];
  readonly output: unknown;
}

export type BuiltGate =
  | { kind: "approve"; name: string; value: unknown }
  | { kind: "sleep"; durationMs: number }
  | { kind: "input"; name: string; schema: z.ZodType };

export type BuiltNode =
  | (BuiltBase & {
      readonly kind: "task";
      readonly task: AnyTask;
      readonly inputs: Record<string, unknown>;
      readonly options: NodeOptions;
    })
  | (BuiltBase & {
      readonly kind: "workflow";
      readonly workflow: AnyWorkflow;
      readonly inputs: Record<string, unknown>;
    })
  | (BuiltBase & {
      readonly kind: "launchplan";
      readonly launchPlan: LaunchPlanLike;
      readonly inputs: Record<string, unknown>;
    })
  | (BuiltBase & {
      readonly kind: "map";
      readonly target: AnyTask | AnyWorkflow;
      readonly inputs: Record<string, unknown>;
      readonly options: MapNodeOptions;
    })
  | (BuiltBase & {
      readonly kind: "branch";
      readonly cases: BuiltCase[];
      else?: { nodes: BuiltNode[]; output: unknown } | { fail: string };
    })
  | (BuiltBase & { readonly kind: "gate"; readonly gate: BuiltGate; readonly timeout?: Duration });

type DistributiveOmit<T, K extends keyof any> = T extends unknown ? Omit<T, K> : never;

export interface BuiltGraph {
  readonly workflow: string;
  readonly nodes: BuiltNode[];
  /** What the body returned. */
  readonly output: unknown;
}

export class WorkflowBuilder {
  readonly nodes: BuiltNode[] = [];
  /** Where new nodes go: the workflow, or the case of a branch being built. */
  private target: BuiltNode[] = this.nodes;
  private readonly ids = new Map<string, BuiltNode>();
  private readonly counters = new Map<string, number>();

  constructor(readonly workflow: string) {}

  inputsHandle(): WorkflowInputs<Shape> {
    return makeHandle({ node: "$inputs", path: [], builder: this }) as unknown as WorkflowInputs<Shape>;
  }

  /** Check the argument of a call is an object of named inputs. */
  namedInputs(inputs: unknown, what: string, declared: string[]): Record<string, unknown> {
    if (typeof inputs !== "object" || inputs === null || Array.isArray(inputs) || isHandle(inputs)) {
      throw new TernError(
        ErrorCodes.COMPILE,
        `workflow "${this.workflow}": ${what} must be called with an object of named inputs`,
        {
          hint: `${what.replace(/^\w+ "(.*)"$/, "$1")}({ ${declared.join(", ")} })`,
        },
      );
    }
    return { ...(inputs as Record<string, unknown>) };
  }

  /** Add a node with the explicit id, or one made from `base`. */
  add(
    node: DistributiveOmit<BuiltNode, "id" | "upstream">,
    base: string,
    explicit?: string,
  ): Promised<unknown> {
    const id = explicit !== undefined ? this.explicitId(explicit) : this.freshId(base);
    const full = { ...node, id, upstream: new Set<string>() } as BuiltNode;
    for (const h of collectHandles(full)) this.checkOwn(h, id);
    this.target.push(full);
    this.ids.set(id, full);
    return makeHandle({ node: id, path: [], builder: this });
  }

  /** Run `fn` with new nodes going into `list` (a branch case). */
  within<T>(list: BuiltNode[], fn: () => T): T {
    const prev = this.target;
    this.target = list;
    try {
      return fn();
    } finally {
      this.target = prev;
    }
  }

  node(id: string): BuiltNode | undefined {
    return this.ids.get(id);
  }

  /** An unused node id: `base`, else `base-2`, `base-3`… */
  private freshId(base: string): string {
    const clean = base
      .replace(/[^A-Za-z0-9_-]/g, "_")
      .replace(/^([^A-Za-z_])/, "_$1")
      .slice(0, 100);
    const n = this.counters.get(clean) ?? 0;
    this.counters.set(clean, n + 1);
    if (n === 0 && !this.ids.has(clean)) return clean;
    let i = Math.max(n + 1, 2);
    while (this.ids.has(`${clean}-${i}`)) i++;
    this.counters.set(clean, i);
    return `${clean}-${i}`;
  }

  /** Check an explicit id given by the user: valid and unused. */
  private explicitId(id: string): string {
    if (!/^[A-Za-z_][A-Za-z0-9_-]*$/.test(id) || id.length > 120) {
      throw new TernError(ErrorCodes.COMPILE, `workflow "${this.workflow}": node id "${id}" is not valid`, {
        hint: "node ids use letters, digits, _ and -",
      });
    }
    if (this.ids.has(id)) {
      throw new TernError(ErrorCodes.COMPILE, `workflow "${this.workflow}": two nodes have the id "${id}"`, {
        hint: "give each call a distinct { id }",
      });
    }
    return id;
  }

  checkOwn(h: Handle<unknown>, usedBy: string): void {
    const info = handleInfo(h);
    if (info.builder !== this) {
      throw new TernError(
        ErrorCodes.COMPILE,
        `workflow "${this.workflow}": node "${usedBy}" uses a handle from workflow "${info.builder.workflow}"`,
        { hint: "pass values between workflows through inputs and outputs, not handles" },
      );
    }
  }
}

/** Handles found inside a value (objects, arrays, sets and built nodes are searched). */
export function collectHandles(v: unknown, out: Handle<unknown>[] = []): Handle<unknown>[] {
  if (isHandle(v)) out.push(v);
  else if (Array.isArray(v)) for (const x of v) collectHandles(x, out);
  else if (v && typeof v === "object" && Object.getPrototypeOf(v) === Object.prototype) {
    for (const [k, x] of Object.entries(v)) {
      // Definitions and nested node lists are not values of this node.
      if (
        k === "task" ||
        k === "workflow" ||
        k === "launchPlan" ||
        k === "target" ||
        k === "nodes" ||
        k === "schema"
      )
        continue;
      collectHandles(x, out);
    }
  }
  return out;
}

/**
 * The builder of the body being run. Workflow bodies are synchronous: a stack is enough. A
 * dynamic body may await between task calls, so its builder also lives in an
 * AsyncLocalStorage — switched on only while such a body runs, because on Node 20 an active
 * AsyncLocalStorage puts a hook on every promise of the process (a large share of the cost of
 * a no-op task in the engine).
 */
const syncBuilders: WorkflowBuilder[] = [];
const builderContext = new AsyncLocalStorage<WorkflowBuilder>();
let asyncBodies = 0;

/** The workflow (or dynamic) body being built, or a usage error naming `what` was called outside one. */
export function currentBuilder(what: string): WorkflowBuilder {
  const b =
    syncBuilders.length > 0
      ? syncBuilders[syncBuilders.length - 1]
      : asyncBodies > 0
        ? builderContext.getStore()
        : undefined;
  if (!b) {
    throw new TernError(ErrorCodes.USAGE, `${what} was called outside a workflow body`, {
      hint: "call tasks inside workflow(…, (inputs) => …), or run one with `tern run <file> <task>` or run(task, inputs)",
    });
  }
  return b;
}

/** Run a synchronous `body` with `b` as the current builder. */
export function withBuilder<T>(b: WorkflowBuilder, body: () => T): T {
  syncBuilders.push(b);
  try {
    return body();
  } finally {
    syncBuilders.pop();
  }
}

/** Run `body` (a dynamic body, which may await) with `b` as the current builder, across its awaits. */
export async function withAsyncBuilder<T>(b: WorkflowBuilder, body: () => T | Promise<T>): Promise<T> {
  asyncBodies++;
  try {
    return await builderContext.run(b, body);
  } finally {
    if (--asyncBodies === 0) builderContext.disable();
  }
}

function buildGraph(name: string, site: CallSite, body: (inputs: unknown) => unknown): BuiltGraph {
  const b = new WorkflowBuilder(name);
  let output: unknown;
  try {
    output = withBuilder(b, () => body(b.inputsHandle()));
  } catch (e) {
    if (e instanceof TernError) throw e;
    throw new TernError(
      ErrorCodes.DEFINITION,
      `workflow "${name}" body threw: ${(e as Error)?.message ?? e}${where(site)}`,
      {
        hint: "a workflow body only calls tasks and returns handles; it runs once to build the graph",
        cause: e,
      },
    );
  }
  if (output instanceof Promise) {
    // The body goes on running after its first await: its rejection must not surface
    // as an unhandled rejection.
    output.catch(() => undefined);
    throw new TernError(ErrorCodes.DEFINITION, `workflow "${name}" body is async${where(site)}`, {
      hint: "workflow bodies are synchronous: remove async/await; use a dynamic workflow to act on values",
    });
  }
  for (const h of collectHandles(output)) b.checkOwn(h, "(output)");
  return { workflow: name, nodes: b.nodes, output };
}

/**
 * Order nodes without passing data: every node in `downstream` starts only after
 * `upstream` has succeeded.
 *
 * @example
 * const a = load({});
 * const b = cleanup({});
 * after(a, b); // cleanup waits for load
 */
export function after(upstream: Handle<unknown> | Handle<unknown>[], ...downstream: Handle<unknown>[]): void {
  const ups = Array.isArray(upstream) ? upstream : [upstream];
  for (const d of downstream) {
    const di = handleInfo(d);
    const node = di.builder.node(di.node);
    if (!node) {
      throw new TernError(
        ErrorCodes.COMPILE,
        `after(): "${di.node}" is not a node of workflow "${di.builder.workflow}"`,
        {
          hint: "pass the handles returned by task calls",
        },
      );
    }
    for (const u of ups) {
      const ui = handleInfo(u);
      if (ui.node === "$inputs" || !ui.builder.node(ui.node)) {
        throw new TernError(
          ErrorCodes.COMPILE,
          `after(): "${ui.node}" is not a node of workflow "${ui.builder.workflow}"`,
        );
      }
      di.builder.checkOwn(u, di.node);
      node.upstream.add(ui.node);
    }
  }
}

// ---------------------------------------------------------------------------
// Call sites

const CORE_DIR = fileURLToPath(new URL(".", import.meta.url));
// With source maps on (--enable-source-maps, vitest, tsx), frames of this package's
// dist files are reported at their sources: skip those too.
const CORE_SRC_DIR = fileURLToPath(new URL("../src/", import.meta.url));

function captureCallSite(): CallSite {
  const stack = new Error().stack ?? "";
  for (const line of stack.split("\n").slice(1)) {
    const m = /\(?((?:file:\/\/)?[^()\s]+?):(\d+):(\d+)\)?\s*$/.exec(line.trim());
    if (!m) continue;
    let file = m[1];
    if (file.startsWith("file://")) {
      try {
        file = fileURLToPath(file);
      } catch {
        continue;
      }
    }
    if (
      file.startsWith(CORE_DIR) ||
      file.startsWith(CORE_SRC_DIR) ||
      file.startsWith("node:") ||
      !file.startsWith("/")
    )
      continue;
    return { file, line: Number(m[2]), column: Number(m[3]) };
  }
  return {};
}
