/**
 * The engine: a state machine that runs a compiled workflow through backend
 * plugins. Node phases follow Flyte (not-ready → queued → waiting-for-resources →
 * initializing → running → succeeded | failed | skipped | aborted, with cached and
 * recovered marks); every transition is an event, numbered in order.
 *
 * The engine owns retries (separate user and system budgets, exponential backoff
 * with jitter), per-attempt timeouts, the execution deadline, parallelism, plugin
 * limits, the failure policy, abort, and the cache. Plugins only launch, check
 * and abort work.
 */
import { createHash, randomFillSync } from "node:crypto";
import { Attempt, type AttemptHost, type AttemptNode } from "./attempt.js";
import type { BlobStore } from "./blob.js";
import { type CacheProducer, type Catalog, cacheKey, stripLocal } from "./catalog.js";
import type { Compiled } from "./compile.js";
import { nodeDependencies } from "./compile.js";
import type { Shape } from "./dsl.js";
import { ErrorCodes, type ErrorDocument, TernError, toErrorDocument } from "./errors.js";
import { offload } from "./execute/run-task.js";
import type { Json } from "./json.js";
import type { BackendPlugin, BackendRegistry, TaskContext, TaskPhase } from "./plugin.js";
import type {
  Backoff,
  Binding,
  CachePolicy,
  CompiledWorkflow,
  Condition,
  GateNode,
  LaunchPlanSpec,
  MapNode,
  NodeSpec,
  TaskNode,
  TaskSpec,
  WorkflowSpec,
} from "./spec.js";
import { validateCompiledWorkflow, validatedHere } from "./spec.js";
import { describeSchema, type JsonSchema } from "./typecheck.js";
import { isTernRef } from "./types.js";
import { validateValue } from "./validate-value.js";

export type NodePhase = "not-ready" | TaskPhase | "retrying" | "skipped";
export type ExecutionPhase = "running" | "succeeded" | "failed" | "aborted";

export interface ExecutionEvent {
  /** Position in the execution's event stream, from 1. */
  seq: number;
  /** Epoch milliseconds. */
  at: number;
  execution: string;
  /** Absent for execution-level events. */
  node?: string;
  phase: NodePhase | ExecutionPhase;
  attempt?: number;
  message?: string;
  error?: ErrorDocument;
  cached?: boolean;
  recovered?: boolean;
  /** On a cache hit: which execution produced the value (lineage). */
  producer?: CacheProducer;
  /** On launch: the plugin and its persisted state, to re-attach after a restart. */
  plugin?: string;
  pluginState?: Json;
  /** On success: the node's (or execution's) outputs. */
  outputs?: unknown;
  /** On `retrying`: when the next attempt starts. */
  retryInMs?: number;
  /** Map progress. */
  items?: MapItems;
  /** Task name, or what a control node is (`map(square)`, `branch`, `gate`…), on the node's first event. */
  task?: string;
  /** Node kind, on the node's first event. */
  kind?: NodeSpec["kind"] | "dynamic";
  /** On a dynamic node: how many nodes its body built. */
  expanded?: number;
  /** On a launch-plan node: the child execution. */
  childExecution?: string;
}

/** Counts of a map node's items. */
export interface MapItems {
  total: number;
  succeeded: number;
  failed: number;
  cached: number;
  /** The first failures (at most 20), by item index. */
  failures?: { index: number; error: ErrorDocument }[];
}

export interface NodeSummary {
  /** Fully qualified: `train`, `sub/train` inside subworkflow node `sub`, `dyn/square-3` inside a dynamic node. */
  id: string;
  /** Task name, or what a control node is (`map(square)`, `branch`, `gate:approve`, `workflow(sub)`). */
  task: string;
  kind: NodeSpec["kind"] | "dynamic";
  phase: NodePhase;
  attempts: number;
  cached: boolean;
  recovered: boolean;
  durationMs: number;
  error?: ErrorDocument;
  items?: MapItems;
}

export interface ExecutionResult {
  id: string;
  phase: Exclude<ExecutionPhase, "running">;
  outputs?: unknown;
  error?: ErrorDocument & { node?: string };
  nodes: NodeSummary[];
  startedAt: number;
  endedAt: number;
}

export interface EngineOptions {
  registry: BackendRegistry;
  blobs: BlobStore;
  catalog?: Catalog;
  /** Project directory for scratch space and bundles. @default process.cwd() */
  workDir?: string;
  /** Polling bounds for plugins that do not call `notify()`. */
  pollMinMs?: number;
  pollMaxMs?: number;
  /** Random source for backoff jitter (tests pass a fixed one). */
  random?: () => number;
  /** Longest a `serialize`d cache lease is held before another caller takes over. @default 10m */
  cacheLeaseTtlMs?: number;
  /** Checks in a row that may throw before the attempt fails as a system error. @default 5 */
  maxCheckErrors?: number;
}

export interface StartOptions {
  id?: string;
  /** Nodes at once. Default: the workflow's `maxParallelism`, else unlimited. */
  maxParallelism?: number;
  /**
   * Reuse outputs of nodes that already succeeded: in another execution (recovery: the
   * node succeeds with a `recovered` mark), or earlier in this one (`resumed: true`,
   * when a stored execution is resumed: the node is done, and no event repeats it).
   */
  reuse?: (nodeId: string) => { outputs: unknown; resumed?: boolean } | undefined;
  /** Event listener, called synchronously in event order. */
  onEvent?: (e: ExecutionEvent) => void;
  /** Zod schemas of the workflow inputs, to validate and fill defaults (from `compile()`). */
  inputSchemas?: Shape;
  /** Answers gates (approve, input). Without one, such a gate fails saying how to give a signal. */
  signals?: SignalProvider;
  /**
   * Resuming a stored execution: events continue after this seq, and a node picks
   * up its attempt count and retry budgets (the last attempt started is started again
   * with the same attempt id, which plugins make idempotent).
   */
  startSeq?: number;
  resume?: (nodeId: string) => ResumedNode | undefined;
  /**
   * No attempt of this execution was ever launched: it is new, not resumed from stored
   * events. Plugins are told (`TaskContext.attempt.firstLaunch`) and may skip looking
   * for earlier work to adopt. @default false
   */
  fresh?: boolean;
  /** Parent of a child execution (launch plans run as nodes). */
  parent?: { execution: string; node: string };
}

/** Where a node's attempts stood when a stored execution stopped (see {@link StartOptions.resume}). */
export interface ResumedNode {
  /** Attempts started. */
  attempts: number;
  userFailures: number;
  systemFailures: number;
  /** The last attempt started had not ended: it runs again under its own attempt id. */
  inFlight: boolean;
  /** The node had failed for good: it stays failed, no attempt runs. */
  failed?: ErrorDocument;
  /** When the node first started running (epoch ms): a resumed sleep gate sleeps only what is left. */
  startedAt?: number;
}

export interface SignalRequest {
  execution: string;
  /** The gate's node id (also the signal's name). */
  node: string;
  kind: "approve" | "input";
  /** For `input`: JSON Schema of the value. */
  schema?: unknown;
  /** For `approve`: the value under review. */
  value?: unknown;
  /** Fired when the execution no longer waits (abort, timeout). */
  signal: AbortSignal;
}

/** The answer to a gate: `approved` for approve gates, `value` for input gates. */
export interface SignalAnswer {
  approved?: boolean;
  value?: unknown;
  by?: string;
  reason?: string;
}

export type SignalProvider = (req: SignalRequest) => Promise<SignalAnswer>;

const TERMINAL: ReadonlySet<NodePhase> = new Set(["succeeded", "failed", "skipped", "aborted"]);

/** Random bytes for ids, drawn from the OS in blocks (one call per 512 ids, not one each). */
const idEntropy = Buffer.alloc(6 * 512);
let idEntropyAt = idEntropy.length;

export function newExecutionId(): string {
  if (idEntropyAt === idEntropy.length) {
    randomFillSync(idEntropy);
    idEntropyAt = 0;
  }
  const random = idEntropy.toString("hex", idEntropyAt, idEntropyAt + 6);
  idEntropyAt += 6;
  // Lowercase and starting with a letter: valid in URLs, DNS labels and pod names.
  return `x${Date.now().toString(36).slice(-5)}${random}`;
}

/** Delay before retry `n` (1-based): `min(max, base·factor^(n-1))` spread by ±jitter, never above `max`. */
export function backoffDelay(b: Backoff, n: number, random: () => number = Math.random): number {
  const raw = Math.min(b.maxMs, b.baseMs * b.factor ** (n - 1));
  const spread = 1 + b.jitter * (2 * random() - 1);
  return Math.max(0, Math.min(b.maxMs, Math.round(raw * spread)));
}

export class Engine {
  readonly opts: Required<Omit<EngineOptions, "catalog">> & { catalog?: Catalog };
  private readonly executions = new Set<Execution>();
  /** Cache keys being computed in this process (`serialize`). */
  readonly inflight = new Map<string, Promise<void>>();
  private readonly pluginSlots = new Map<
    string,
    { inUse: number; waiters: (() => void)[]; nextLaunchAt: number }
  >();

  constructor(opts: EngineOptions) {
    this.opts = {
      workDir: process.cwd(),
      pollMinMs: 20,
      pollMaxMs: 5000,
      random: Math.random,
      cacheLeaseTtlMs: 600_000,
      maxCheckErrors: 5,
      ...opts,
    };
  }

  /** Start an execution; await `handle.result` for the outcome. */
  start(
    compiled: Compiled | CompiledWorkflow,
    inputs: Record<string, unknown>,
    opts: StartOptions = {},
  ): ExecutionHandle {
    const spec = "spec" in compiled ? compiled.spec : compiled;
    const schemas = opts.inputSchemas ?? ("spec" in compiled ? compiled.inputSchemas : undefined);
    const ex = new Execution(this, spec, prepareInputs(spec, inputs, schemas), {
      ...opts,
      id: opts.id ?? newExecutionId(),
    });
    this.executions.add(ex);
    ex.result.finally(() => this.executions.delete(ex));
    ex.begin();
    return ex.handle;
  }

  /** Run to the end. Invalid inputs or specs reject the promise (they never throw synchronously). */
  async run(
    compiled: Compiled | CompiledWorkflow,
    inputs: Record<string, unknown> = {},
    opts: StartOptions = {},
  ): Promise<ExecutionResult> {
    return this.start(compiled, inputs, opts).result;
  }

  /**
   * Tell the plugins that the outcomes of these attempts (see `attemptId`) are stored
   * durably by the caller, so recovery data kept for them may go (see
   * `BackendPlugin.recorded`). A plugin's failure here is its own.
   */
  recorded(attempts: readonly string[]): void {
    if (attempts.length === 0) return;
    for (const p of this.opts.registry.plugins) {
      try {
        p.recorded?.(attempts);
      } catch {
        // advisory: the plugin keeps its recovery data
      }
    }
  }

  /** Abort running executions and close plugins. */
  async close(): Promise<void> {
    await Promise.all([...this.executions].map((e) => e.abort("engine closing")));
    await Promise.all(this.opts.registry.plugins.map((p) => p.close?.()));
    await this.opts.catalog?.close?.();
  }

  /**
   * Wait for a slot of a plugin's `maxConcurrent` and `launchesPerSecond`. When `signal`
   * fires while waiting, gives up without taking a slot (the caller checks its signal).
   */
  async acquireSlot(p: BackendPlugin<any>, onWait: () => void, signal?: AbortSignal): Promise<() => void> {
    const lim = p.limits;
    if (!lim?.maxConcurrent && !lim?.launchesPerSecond) return noop;
    let s = this.pluginSlots.get(p.id);
    if (!s) this.pluginSlots.set(p.id, (s = { inUse: 0, waiters: [], nextLaunchAt: 0 }));
    const slots = s;
    if (lim.maxConcurrent && slots.inUse >= lim.maxConcurrent) {
      if (signal?.aborted) return noop;
      onWait();
      const got = await new Promise<boolean>((resolve) => {
        const onAbort = () => {
          const i = slots.waiters.indexOf(waiter);
          if (i >= 0) slots.waiters.splice(i, 1);
          resolve(false);
        };
        const waiter = () => {
          signal?.removeEventListener("abort", onAbort);
          resolve(true);
        };
        slots.waiters.push(waiter);
        signal?.addEventListener("abort", onAbort, { once: true });
      });
      if (!got) return noop;
      // The releasing attempt handed its slot over: `inUse` already counts it.
    } else {
      slots.inUse++;
    }
    if (lim.launchesPerSecond) {
      const now = Date.now();
      const at = Math.max(now, slots.nextLaunchAt);
      slots.nextLaunchAt = at + 1000 / lim.launchesPerSecond;
      if (at > now) await sleep(at - now);
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      // Hand the slot straight to the next waiter, so no newcomer can take it in between.
      const next = slots.waiters.shift();
      if (next) next();
      else slots.inUse--;
    };
  }
}

const noop = () => {};
const DONE: Promise<void> = Promise.resolve();

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** Check names, fill defaults, validate with zod when the schemas are at hand. */
function prepareInputs(
  spec: CompiledWorkflow,
  raw: Record<string, unknown>,
  schemas?: Shape,
): Record<string, unknown> {
  const wf = spec.workflow;
  const declared = wf.interface.inputs;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(raw)) {
    if (!(k in declared)) {
      throw new TernError(ErrorCodes.INPUT_INVALID, `workflow "${wf.id.name}" has no input "${k}"`, {
        hint: `its inputs are: ${Object.keys(declared).join(", ") || "(none)"}`,
        details: { input: k },
      });
    }
  }
  for (const [k, s] of Object.entries(declared)) {
    let v = raw[k];
    if (schemas?.[k]) {
      const r = schemas[k].safeParse(v);
      if (!r.success) {
        const issue = r.error.issues[0];
        const at = issue?.path.length ? `.${issue.path.join(".")}` : "";
        throw new TernError(
          ErrorCodes.INPUT_INVALID,
          v === undefined
            ? `workflow "${wf.id.name}" needs input "${k}"`
            : `input "${k}${at}" of workflow "${wf.id.name}": ${issue?.message ?? "invalid"}`,
          { hint: `give --${k} <value>`, details: { input: k } },
        );
      }
      v = r.data;
    } else if (v === undefined) {
      if (s.default !== undefined) v = s.default;
      else if (!s.optional) {
        throw new TernError(ErrorCodes.INPUT_INVALID, `workflow "${wf.id.name}" needs input "${k}"`, {
          hint: `give --${k} <value>`,
          details: { input: k },
        });
      }
    }
    if (v !== undefined) out[k] = v;
  }
  return out;
}

export interface ExecutionHandle {
  readonly id: string;
  readonly result: Promise<ExecutionResult>;
  readonly events: readonly ExecutionEvent[];
  /** Log lines of a node's attempt (the last attempt by default). */
  logs(node: string, attempt?: number): readonly string[];
  abort(reason?: string): Promise<void>;
  /**
   * Stop driving the execution but leave its work running: no plugin is asked to abort
   * or finalize, no further event is emitted, no new attempt starts. For an engine that
   * hands the execution over (it lost its lease, or shuts down), so that the next engine
   * resumes it and re-attaches to the work. `result` then settles as `aborted` with
   * `error.details.detached` set.
   */
  detach(reason?: string): void;
}

/** A task node or a map item: what the cache and retry logic work on. */
interface TaskRun extends AttemptNode {
  phase: NodePhase;
  userFailures: number;
  systemFailures: number;
  cached: boolean;
  outputs?: unknown;
  error?: ErrorDocument;
  current?: Attempt;
  /** Map items record no events. */
  quiet: boolean;
  /** Fully qualified id of the node that owns the slot (the item's map, or itself). */
  holdsSlot: boolean;
}

interface NodeRt extends TaskRun {
  spec: NodeSpec;
  scope: Scope;
  /** Task name, or what a control node is. */
  label: string;
  kind: NodeSpec["kind"] | "dynamic";
  waitingFor: number;
  downstream: NodeRt[];
  upstream: NodeRt[];
  recovered: boolean;
  startedAt?: number;
  endedAt?: number;
  items?: MapItems;
  resolveInputs: () => Record<string, unknown>;
}

type ScopeResult = { ok: true; outputs: unknown } | { ok: false; error?: ErrorDocument; aborted: boolean };

/**
 * The nodes of one graph being run: the workflow, a branch case (which shares its
 * parent's ids and sees its nodes), a subworkflow or a dynamic sub-DAG (which get
 * `<node>/` prefixed ids and inputs of their own).
 */
class Scope {
  readonly nodes: NodeRt[] = [];
  readonly byId = new Map<string, NodeRt>();
  remaining = 0;
  completed = false;
  failed?: NodeRt;

  constructor(
    readonly prefix: string,
    readonly parent: Scope | undefined,
    private readonly ownInputs: Record<string, unknown> | undefined,
    readonly output: Binding,
    readonly onComplete: (r: ScopeResult) => void,
  ) {}

  find(id: string): NodeRt | undefined {
    return this.byId.get(id) ?? this.parent?.find(id);
  }

  get inputs(): Record<string, unknown> {
    return this.ownInputs ?? this.parent?.inputs ?? {};
  }
}

/** Nodes started per turn of the event loop (see `pump`). */
const START_BATCH = 256;
/** Map items in flight at once when the map gives no concurrency. */
const DEFAULT_MAP_CONCURRENCY = 512;
/** Map items started between two turns of the event loop (see `runMap`). */
const MAP_ITEMS_PER_TURN = 4096;
const MAX_MAP_FAILURES_KEPT = 20;
const noInputs = (): Record<string, unknown> => ({});

class Execution implements AttemptHost {
  readonly id: string;
  readonly events: ExecutionEvent[] = [];
  private readonly allNodes: NodeRt[] = [];
  private readonly byFq = new Map<string, NodeRt>();
  private readonly ready: NodeRt[] = [];
  private readyHead = 0;
  private startedThisTurn = 0;
  private pumpScheduled = false;
  private seq = 0;
  private phase: ExecutionPhase = "running";
  private finished = false;
  /** Handed over (see `ExecutionHandle.detach`): no more events, work left running. */
  private detached = false;
  private failure?: ErrorDocument & { node?: string };
  private readonly maxParallelism: number;
  /** Slots of `maxParallelism`: held by running tasks, gates and map items; control nodes give theirs back while they wait. */
  private inUse = 0;
  private readonly slotWaiters: (() => void)[] = [];
  private readonly startedAt = Date.now();
  private deadlineTimer?: NodeJS.Timeout;
  private ac = new AbortController();
  private readonly active = new Set<Attempt>();
  private settle!: (r: ExecutionResult) => void;
  readonly result: Promise<ExecutionResult>;
  readonly handle: ExecutionHandle;
  private readonly project: string;
  private readonly domain: string;
  private readonly tasks: Record<string, TaskSpec>;
  private readonly subworkflows: Record<string, WorkflowSpec>;
  private readonly launchPlans: Record<string, LaunchPlanSpec>;
  private root!: Scope;
  private readonly validated = new Set<TaskSpec>();
  private readonly plugins = new Map<TaskSpec, BackendPlugin<any>>();
  readonly execution: TaskContext["execution"];
  readonly blobs: BlobStore;
  readonly workDir: string;
  readonly pollMinMs: number;
  readonly pollMaxMs: number;
  readonly maxCheckErrors: number;
  readonly fresh: boolean;

  constructor(
    private readonly engine: Engine,
    private readonly spec: CompiledWorkflow,
    private inputs: Record<string, unknown>,
    private readonly opts: StartOptions & { id: string },
  ) {
    this.id = opts.id;
    this.seq = opts.startSeq ?? 0;
    const wf = spec.workflow;
    this.project = wf.id.project;
    this.domain = wf.id.domain;
    this.execution = Object.freeze({ id: this.id, project: this.project, domain: this.domain });
    const eo = engine.opts;
    this.blobs = eo.blobs;
    this.workDir = eo.workDir;
    this.pollMinMs = eo.pollMinMs;
    this.pollMaxMs = eo.pollMaxMs;
    this.maxCheckErrors = eo.maxCheckErrors;
    this.fresh = opts.fresh === true;
    this.maxParallelism = opts.maxParallelism ?? wf.maxParallelism ?? Number.POSITIVE_INFINITY;
    this.tasks = { ...spec.tasks };
    this.subworkflows = { ...(spec.subworkflows ?? {}) };
    this.launchPlans = { ...(spec.launchPlans ?? {}) };
    this.result = new Promise((r) => (this.settle = r));
    // Every task type is checked before anything runs: a bad spec fails the start, not a node later.
    this.checkNodes(wf.nodes, new Set());
    if (wf.onFailure) this.pluginFor(this.taskSpec(wf.onFailure.task, wf.onFailure.id));
    this.handle = {
      id: this.id,
      result: this.result,
      events: this.events,
      logs: (node, attempt) => {
        const n = this.byFq.get(node);
        if (!n) return [];
        return n.logs?.get(attempt ?? n.attempts) ?? [];
      },
      abort: (reason) => this.abort(reason),
      detach: (reason) => this.detach(reason),
    };
  }

  // -------------------------------------------------------------------------
  // Specs and plugins

  private taskSpec(key: string, node: string): TaskSpec {
    const t = this.tasks[key];
    if (!t)
      throw new TernError(
        ErrorCodes.SPEC_INVALID,
        `node "${node}" references task "${key}", which the spec does not include`,
      );
    return t;
  }

  private pluginFor(task: TaskSpec): BackendPlugin<any> {
    let p = this.plugins.get(task);
    if (!p) {
      p = this.engine.opts.registry.forType(task.type, task.id.name);
      if (p.validate && !this.validated.has(task)) {
        p.validate(task);
        this.validated.add(task);
      }
      this.plugins.set(task, p);
    }
    return p;
  }

  private withOverrides(base: TaskSpec, overrides: TaskNode["overrides"]): TaskSpec {
    return overrides ? { ...base, metadata: { ...base.metadata, ...overrides } } : base;
  }

  private checkNodes(nodes: NodeSpec[], seen: Set<string>): void {
    for (const n of nodes) {
      switch (n.kind) {
        case "task":
          this.pluginFor(this.withOverrides(this.taskSpec(n.task, n.id), n.overrides));
          break;
        case "map":
          if ("task" in n.target) this.pluginFor(this.taskSpec(n.target.task, n.id));
          else this.checkWorkflow(n.target.workflow, n.id, seen);
          break;
        case "workflow":
          this.checkWorkflow(n.workflow, n.id, seen);
          break;
        case "launchplan": {
          const lp = this.launchPlans[n.launchPlan];
          if (!lp)
            throw new TernError(
              ErrorCodes.SPEC_INVALID,
              `node "${n.id}" references launch plan "${n.launchPlan}", which the spec does not include`,
            );
          this.checkWorkflow(`${lp.workflow.name}@${lp.workflow.version}`, n.id, seen);
          break;
        }
        case "branch":
          for (const c of n.cases) this.checkNodes(c.nodes, seen);
          if (n.else && "nodes" in n.else) this.checkNodes(n.else.nodes, seen);
          break;
        case "gate":
          break;
      }
    }
  }

  private checkWorkflow(key: string, node: string, seen: Set<string>): void {
    const wf = this.subworkflows[key];
    if (!wf)
      throw new TernError(
        ErrorCodes.SPEC_INVALID,
        `node "${node}" references workflow "${key}", which the spec does not include`,
      );
    if (seen.has(key)) return;
    seen.add(key);
    this.checkNodes(wf.nodes, seen);
  }

  // -------------------------------------------------------------------------
  // Building scopes

  private makeScope(
    prefix: string,
    parent: Scope | undefined,
    inputs: Record<string, unknown> | undefined,
    specs: NodeSpec[],
    output: Binding,
    onComplete: (r: ScopeResult) => void,
  ): Scope {
    const scope = new Scope(prefix, parent, inputs, output, onComplete);
    for (const s of specs) {
      const n = this.makeNode(s, scope);
      scope.nodes.push(n);
      scope.byId.set(s.id, n);
    }
    for (const n of scope.nodes) {
      for (const d of nodeDependencies(n.spec)) {
        const u = scope.byId.get(d);
        if (u) {
          u.downstream.push(n);
          n.upstream.push(u);
        } else if (!scope.find(d)) {
          throw new TernError(ErrorCodes.SPEC_INVALID, `node "${n.fqId}" depends on unknown node "${d}"`);
        }
        // A dependency in an enclosing scope (a branch case reading the workflow's nodes)
        // has succeeded already: the branch itself waited for it.
      }
      n.waitingFor = n.upstream.length;
      n.resolveInputs = this.inputResolver(n.spec, scope);
    }
    scope.remaining = scope.nodes.length;
    return scope;
  }

  private makeNode(s: NodeSpec, scope: Scope): NodeRt {
    const fqId = scope.prefix + s.id;
    let task: TaskSpec | undefined;
    let label: string;
    let kind: NodeRt["kind"] = s.kind;
    switch (s.kind) {
      case "task":
        task = this.withOverrides(this.taskSpec(s.task, fqId), s.overrides);
        label = task.id.name;
        if (task.dynamic) kind = "dynamic";
        break;
      case "map":
        label = `map(${("task" in s.target ? s.target.task : s.target.workflow).split("@")[0]})`;
        break;
      case "workflow":
        label = `workflow(${s.workflow.split("@")[0]})`;
        break;
      case "launchplan":
        label = `launchplan(${s.launchPlan.split("@")[0]})`;
        break;
      case "branch":
        label = "branch";
        break;
      case "gate":
        label = `gate:${s.gate.kind}`;
        break;
    }
    const n: NodeRt = {
      spec: s,
      scope,
      fqId,
      label,
      kind,
      task: task as TaskSpec,
      plugin: (task ? this.pluginFor(task) : undefined) as BackendPlugin<any>,
      waitingFor: 0,
      downstream: [],
      upstream: [],
      phase: "not-ready",
      attempts: 0,
      userFailures: 0,
      systemFailures: 0,
      cached: false,
      recovered: false,
      quiet: false,
      holdsSlot: false,
      prefix: `executions/${this.project}/${this.domain}/${this.id}/${fqId}`,
      ctxNode: { id: fqId },
      outputs: undefined,
      error: undefined,
      startedAt: undefined,
      endedAt: undefined,
      current: undefined,
      logs: undefined,
      resolveInputs: noInputs,
    };
    this.allNodes.push(n);
    this.byFq.set(fqId, n);
    return n;
  }

  private inputResolver(s: NodeSpec, scope: Scope): () => Record<string, unknown> {
    const inputs =
      s.kind === "task" || s.kind === "workflow" || s.kind === "launchplan" || s.kind === "map"
        ? s.inputs
        : undefined;
    const keys = inputs ? Object.keys(inputs) : [];
    if (!inputs || keys.length === 0) return noInputs;
    const resolvers = keys.map((k) => this.compileBinding(inputs[k], scope));
    return () => {
      const o: Record<string, unknown> = {};
      for (let i = 0; i < keys.length; i++) {
        const v = resolvers[i]();
        if (v !== undefined) o[keys[i]] = v;
      }
      return o;
    };
  }

  private compileBinding(b: Binding, scope: Scope): () => unknown {
    if ("literal" in b) {
      const v = b.literal;
      return () => v;
    }
    if ("ref" in b) {
      const { node, path } = b.ref;
      if (node === "$inputs")
        return path.length === 0 ? () => scope.inputs : () => getPath(scope.inputs, path);
      if (node === "$error") return () => getPath(this.failureInfo(), path);
      if (node === "$execution") return () => getPath(this.executionInfo(), path);
      const src = scope.find(node);
      if (!src) throw new TernError(ErrorCodes.SPEC_INVALID, `a binding names unknown node "${node}"`);
      return path.length === 0 ? () => src.outputs : () => getPath(src.outputs, path);
    }
    if ("object" in b) {
      const parts = Object.entries(b.object).map(([k, x]) => [k, this.compileBinding(x, scope)] as const);
      return () => {
        const o: Record<string, unknown> = {};
        for (const [k, r] of parts) o[k] = r();
        return o;
      };
    }
    const items = b.list.map((x) => this.compileBinding(x, scope));
    return () => items.map((r) => r());
  }

  private failureInfo(): Record<string, unknown> {
    const f = this.failure;
    return f
      ? { code: f.code, kind: f.kind, message: f.message, ...(f.node ? { node: f.node } : {}) }
      : { code: ErrorCodes.SYSTEM, kind: "system", message: "unknown failure" };
  }

  private executionInfo(): Record<string, unknown> {
    return { id: this.id, project: this.project, domain: this.domain, workflow: this.spec.workflow.id.name };
  }

  // -------------------------------------------------------------------------
  // Events

  private emit(e: Omit<ExecutionEvent, "seq" | "at" | "execution">): void {
    if (this.detached) return;
    const ev = e as ExecutionEvent;
    ev.seq = ++this.seq;
    ev.at = Date.now();
    ev.execution = this.id;
    this.events.push(ev);
    this.opts.onEvent?.(ev);
  }

  /** A node's phase change, as an event. (Hot path: one object, fixed key order.) */
  setPhase(n: TaskRun, phase: NodePhase, extra?: Partial<ExecutionEvent>): void {
    n.phase = phase;
    if (n.quiet || this.detached) return;
    const ev: ExecutionEvent = {
      seq: ++this.seq,
      at: Date.now(),
      execution: this.id,
      node: n.fqId,
      phase,
      attempt: n.attempts || undefined,
    };
    if (extra) Object.assign(ev, extra);
    this.events.push(ev);
    this.opts.onEvent?.(ev);
  }

  acquireSlot(p: BackendPlugin<any>, onWait: () => void, signal?: AbortSignal): Promise<() => void> {
    return this.engine.acquireSlot(p, onWait, signal);
  }

  report(
    n: AttemptNode,
    phase: TaskPhase | "waiting-for-resources" | "initializing",
    extra?: Record<string, unknown>,
  ): void {
    this.setPhase(n as TaskRun, phase, extra as Partial<ExecutionEvent>);
  }

  // -------------------------------------------------------------------------
  // Running

  begin(): void {
    this.emit({ phase: "running", message: `workflow ${this.spec.workflow.id.name}` });
    if (hasLocalRefs(this.inputs)) {
      // Files given as inputs live only on this machine: store them first, so tasks
      // (and cache keys) see their content, not a path that may change under them.
      offload(this.inputs, this.blobs).then(
        (v) => {
          this.inputs = v as Record<string, unknown>;
          this.schedule();
        },
        (e) => {
          this.failure = {
            ...toErrorDocument(e, "user"),
            message: `storing the execution's input files failed: ${(e as Error).message}`,
          };
          void this.finish();
        },
      );
      return;
    }
    this.schedule();
  }

  private schedule(): void {
    const timeout = this.spec.workflow.timeoutMs;
    if (timeout) {
      this.deadlineTimer = setTimeout(() => {
        this.fail({
          code: ErrorCodes.DEADLINE,
          kind: "user",
          message: `execution exceeded its deadline of ${timeout} ms`,
          hint: "raise the workflow's timeout or make its tasks faster",
        });
      }, timeout);
    }
    const wf = this.spec.workflow;
    this.root = this.makeScope("", undefined, this.inputs, wf.nodes, wf.output, (r) => void this.rootDone(r));
    this.startScope(this.root);
  }

  private startScope(scope: Scope): void {
    if (scope.nodes.length === 0) {
      this.completeScope(scope);
      return;
    }
    for (const n of scope.nodes) {
      if (n.waitingFor > 0) continue;
      if (this.halted) this.skip(n, "execution ended");
      else this.ready.push(n);
    }
    if (scope.remaining === 0) this.completeScope(scope);
    else this.pump();
  }

  /** Run a child scope to its end. */
  private runScope(make: (done: (r: ScopeResult) => void) => Scope): Promise<ScopeResult> {
    return new Promise<ScopeResult>((resolve) => {
      let scope: Scope;
      try {
        scope = make(resolve);
      } catch (e) {
        resolve({ ok: false, error: toErrorDocument(e, "user"), aborted: false });
        return;
      }
      this.startScope(scope);
    });
  }

  private completeScope(scope: Scope): void {
    if (scope.completed) return;
    scope.completed = true;
    scope.onComplete(this.scopeResult(scope));
  }

  private scopeResult(scope: Scope): ScopeResult {
    if (scope.failed) return { ok: false, error: scope.failed.error, aborted: false };
    const unfinished = scope.nodes.find((n) => n.phase !== "succeeded" && n.phase !== "skipped");
    if (unfinished || (this.halted && scope.nodes.some((n) => n.phase === "skipped"))) {
      return { ok: false, error: unfinished?.error, aborted: true };
    }
    try {
      return { ok: true, outputs: this.compileBinding(scope.output, scope)() ?? null };
    } catch (e) {
      return { ok: false, error: toErrorDocument(e, "system"), aborted: false };
    }
  }

  private pump(): void {
    while (this.readyHead < this.ready.length) {
      if (this.inUse >= this.maxParallelism) break;
      if (this.startedThisTurn >= START_BATCH) {
        // A wide fan starts in batches, one per turn of the event loop: quick nodes of a
        // batch finish before the next starts, so their state is not all alive at once.
        if (!this.pumpScheduled) {
          this.pumpScheduled = true;
          setImmediate(() => {
            this.pumpScheduled = false;
            this.startedThisTurn = 0;
            this.pump();
          });
        }
        break;
      }
      const n = this.ready[this.readyHead++];
      if (TERMINAL.has(n.phase)) continue;
      if (this.halted) {
        this.skip(n, "execution ended");
        continue;
      }
      this.startedThisTurn++;
      this.inUse++;
      n.holdsSlot = true;
      let started: Promise<void>;
      try {
        started = this.runNode(n);
      } catch (e) {
        started = Promise.reject(e);
      }
      started.then(
        () => this.nodeDone(n),
        (e) => {
          // runNode handles its own failures; anything here is an engine bug surfaced as a system error.
          n.error = toErrorDocument(e, "system");
          this.setPhase(n, "failed", { error: n.error });
          this.nodeDone(n);
        },
      );
    }
    if (this.readyHead > 1024 && this.readyHead * 2 > this.ready.length) {
      this.ready.splice(0, this.readyHead);
      this.readyHead = 0;
    }
  }

  /** Give a slot back (a control node about to wait, or a finished node). */
  private releaseSlot(n: TaskRun): void {
    if (!n.holdsSlot) return;
    n.holdsSlot = false;
    const next = this.slotWaiters.shift();
    if (next) next();
    else this.inUse--;
  }

  /** Wait for a slot (map items); false when the execution stops first. */
  private acquireExecSlot(): Promise<boolean> | boolean {
    if (this.halted) return false;
    if (this.inUse < this.maxParallelism) {
      this.inUse++;
      return true;
    }
    return new Promise<boolean>((resolve) => {
      const signal = this.ac.signal;
      const onAbort = () => {
        const i = this.slotWaiters.indexOf(waiter);
        if (i >= 0) this.slotWaiters.splice(i, 1);
        resolve(false);
      };
      const waiter = () => {
        signal.removeEventListener("abort", onAbort);
        resolve(true);
      };
      this.slotWaiters.push(waiter);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  private nodeDone(n: NodeRt): void {
    this.releaseSlot(n);
    n.endedAt = Date.now();
    const scope = n.scope;
    scope.remaining--;
    if (n.phase === "failed") {
      scope.failed ??= n;
      if (!this.failure) {
        this.failure = {
          ...(n.error ?? { code: ErrorCodes.SYSTEM, kind: "system", message: "failed" }),
          node: (n.error?.details?.node as string | undefined) ?? n.fqId,
        };
        if (this.spec.workflow.failurePolicy === "fail-fast") this.failFast();
      }
    }
    for (const d of n.downstream) {
      if (--d.waitingFor === 0 && !TERMINAL.has(d.phase)) {
        let bad: NodeRt | undefined;
        for (const u of d.upstream) {
          if (u.phase !== "succeeded") {
            bad = u;
            break;
          }
        }
        if (bad || this.halted)
          this.skip(d, bad ? `upstream node "${bad.fqId}" ${bad.phase}` : "execution ended");
        else this.ready.push(d);
      }
    }
    if (scope.remaining === 0) this.completeScope(scope);
    this.pump();
  }

  /** Skip a node that will never run, and everything below it in its scope. */
  private skip(n: NodeRt, why: string): void {
    if (TERMINAL.has(n.phase)) return;
    this.setPhase(n, "skipped", { message: why, ...this.firstEventFields(n) });
    n.endedAt = Date.now();
    n.scope.remaining--;
    for (const d of n.downstream) {
      if (--d.waitingFor === 0) this.skip(d, `upstream node "${n.fqId}" skipped`);
    }
    if (n.scope.remaining === 0) this.completeScope(n.scope);
  }

  /** No new attempt starts once the execution is aborted, failed fast or past its deadline. */
  private get halted(): boolean {
    return this.phase !== "running" || this.ac.signal.aborted;
  }

  private failFast(reason = "another node failed (fail-fast)"): void {
    // Wakes nodes waiting out a retry backoff, a cache lease, a gate or a slot; they end as aborted.
    this.ac.abort(reason);
    for (const a of this.active) void a.stop("aborted", reason);
    for (let i = this.readyHead; i < this.ready.length; i++) this.skip(this.ready[i], reason);
    this.readyHead = this.ready.length;
  }

  private fail(error: ErrorDocument): void {
    if (this.phase !== "running") return;
    this.failure ??= error;
    this.failFast(error.message);
  }

  detach(reason = "the execution was handed over"): void {
    if (this.phase !== "running" || this.finished) return;
    this.detached = true;
    this.phase = "aborted";
    this.failure = { code: ErrorCodes.ABORTED, kind: "system", message: reason, details: { detached: true } };
    // Wakes what waits (backoff, cache lease, gates, slots); attempts stop without touching their work.
    this.ac.abort(reason);
    for (const a of this.active) a.detach(reason);
    if (!this.root) void this.finish();
  }

  async abort(reason = "aborted by request"): Promise<void> {
    if (this.phase !== "running" || this.finished) return;
    this.phase = "aborted";
    this.failure ??= { code: ErrorCodes.ABORTED, kind: "user", message: reason };
    this.failFast(reason);
    if (!this.root) void this.finish();
    await this.result;
  }

  private async rootDone(r: ScopeResult): Promise<void> {
    if (!r.ok && this.phase !== "aborted" && this.spec.workflow.onFailure)
      await this.runFailureHandler(this.spec.workflow.onFailure);
    await this.finish(r.ok ? r.outputs : undefined);
  }

  /** The workflow's onFailure task: runs after a failure, even after fail-fast stopped the rest. */
  private async runFailureHandler(spec: TaskNode): Promise<void> {
    this.ac = new AbortController();
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    await this.runScope((done) =>
      this.makeScope("", this.root, undefined, [spec], { literal: null }, done),
    ).catch(() => undefined);
  }

  private async finish(outputs?: unknown): Promise<void> {
    // Reached once, from the root scope's end or a failed start.
    if (this.finished) return;
    this.finished = true;
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    const endedAt = Date.now();
    const nodes: NodeSummary[] = this.allNodes.map((n) => {
      const s: NodeSummary = {
        id: n.fqId,
        task: n.label,
        kind: n.kind,
        phase: n.phase,
        attempts: n.attempts,
        cached: n.cached,
        recovered: n.recovered,
        durationMs: n.startedAt ? (n.endedAt ?? endedAt) - n.startedAt : 0,
      };
      if (n.error) s.error = n.error;
      if (n.items) s.items = n.items;
      return s;
    });
    const failedNode = this.allNodes.find((n) => n.phase === "failed");
    let result: ExecutionResult;
    if (this.phase === "aborted") {
      result = {
        id: this.id,
        phase: "aborted",
        error: this.failure,
        nodes,
        startedAt: this.startedAt,
        endedAt,
      };
    } else if (this.failure || failedNode || outputs === undefined) {
      const error =
        this.failure ??
        (failedNode?.error
          ? { ...failedNode.error, node: failedNode.fqId }
          : {
              code: ErrorCodes.SYSTEM,
              kind: "system" as const,
              message: "the execution ended without outputs",
            });
      result = { id: this.id, phase: "failed", error, nodes, startedAt: this.startedAt, endedAt };
    } else {
      result = { id: this.id, phase: "succeeded", outputs, nodes, startedAt: this.startedAt, endedAt };
    }
    this.phase = result.phase;
    this.emit({
      phase: result.phase,
      ...(result.error ? { error: result.error } : {}),
      ...(result.phase === "succeeded" ? { outputs: result.outputs } : {}),
    });
    this.settle(result);
  }

  // -------------------------------------------------------------------------
  // One node

  private firstEventFields(n: NodeRt): Partial<ExecutionEvent> {
    return { task: n.label, kind: n.kind };
  }

  /** Not `async` on purpose: the uncached task path goes straight to runAttempts (hot path). */
  private runNode(n: NodeRt): Promise<void> {
    const reused = this.opts.reuse?.(n.fqId);
    if (reused) {
      n.outputs = reused.outputs;
      if (reused.resumed) {
        n.phase = "succeeded";
        return DONE;
      }
      n.recovered = true;
      this.setPhase(n, "succeeded", {
        recovered: true,
        outputs: reused.outputs,
        ...this.firstEventFields(n),
      });
      return DONE;
    }
    this.setPhase(n, "queued", this.firstEventFields(n));
    n.startedAt = Date.now();
    const s = n.spec;
    switch (s.kind) {
      case "task":
        break;
      case "map":
        return this.runMap(n, s);
      case "workflow":
        return this.runSubworkflow(n, s.workflow);
      case "launchplan":
        return this.runLaunchPlan(n, s.launchPlan);
      case "branch":
        return this.runBranch(n, s);
      case "gate":
        return this.runGate(n, s);
    }
    let inputs: Record<string, unknown>;
    try {
      inputs = n.resolveInputs();
    } catch (e) {
      n.error = toErrorDocument(e, "system");
      this.setPhase(n, "failed", { error: n.error });
      return DONE;
    }
    if (n.task.dynamic) return this.runDynamic(n, inputs);
    return this.runTask(n, inputs);
  }

  /** Cache lookup, then attempts. Used by task nodes and map items. */
  private runTask(n: TaskRun, inputs: Record<string, unknown>): Promise<void> {
    const cache = n.task.metadata.cache;
    if (!cache || !this.engine.opts.catalog) return this.runAttempts(n, inputs);
    return this.runCached(n, inputs, cache);
  }

  private async runCached(n: TaskRun, inputs: Record<string, unknown>, cache: CachePolicy): Promise<void> {
    const catalog = this.engine.opts.catalog!;
    const key = cacheKey(n.task, cache.version, cache.ignoreInputs, inputs);
    if (await this.cacheHit(n, key)) return;
    if (!cache.serialize) return this.runAttempts(n, inputs, key, cache);
    // serialize: one caller per key computes, identical callers wait for its result.
    for (;;) {
      const mine = this.engine.inflight.get(key);
      if (mine) {
        await mine;
        if (await this.cacheHit(n, key)) return;
        continue;
      }
      const owner = `${this.id}/${n.fqId}`;
      if (catalog.acquire && !(await catalog.acquire(key, owner, this.engine.opts.cacheLeaseTtlMs))) {
        await sleep(100, this.ac.signal);
        if (this.ac.signal.aborted)
          return this.setPhase(n, "aborted", { message: String(this.ac.signal.reason) });
        if (await this.cacheHit(n, key)) return;
        continue;
      }
      let done!: () => void;
      this.engine.inflight.set(key, new Promise<void>((r) => (done = r)));
      try {
        if (await this.cacheHit(n, key)) return;
        return await this.runAttempts(n, inputs, key, cache);
      } finally {
        this.engine.inflight.delete(key);
        done();
        await catalog.release?.(key, owner);
      }
    }
  }

  private async cacheHit(n: TaskRun, key: string): Promise<boolean> {
    const hit = await this.engine.opts.catalog!.get(key);
    if (!hit) return false;
    n.outputs = hit.outputs;
    n.cached = true;
    this.setPhase(n, "succeeded", { cached: true, producer: hit.producer, outputs: hit.outputs });
    return true;
  }

  /** Attempts until success, a spent retry budget, or a stop. Ends with `n.phase` terminal. */
  private async runAttempts(
    n: TaskRun,
    inputs: Record<string, unknown>,
    key?: string,
    cache?: CachePolicy,
  ): Promise<void> {
    const status = await this.attemptUntilDone(n, inputs);
    if (status === undefined) return;
    n.outputs = status;
    this.setPhase(n, "succeeded", { outputs: status });
    if (key && cache) await this.remember(n, key, cache);
  }

  /** The outputs of the first successful attempt, or undefined after a failure or stop (the phase is set). */
  private async attemptUntilDone(n: TaskRun, inputs: Record<string, unknown>): Promise<unknown> {
    const retries = n.task.metadata.retries;
    const resumed = n.attempts === 0 && !n.quiet ? this.opts.resume?.(n.fqId) : undefined;
    if (resumed) {
      // The attempt that was in flight runs again under its own id; a finished one is not repeated.
      n.attempts = resumed.inFlight ? resumed.attempts - 1 : resumed.attempts;
      n.userFailures = resumed.userFailures;
      n.systemFailures = resumed.systemFailures;
      if (resumed.failed) {
        n.error = resumed.failed;
        this.setPhase(n, "failed", { error: n.error });
        return undefined;
      }
    }
    for (;;) {
      if (this.halted) {
        this.setPhase(n, "aborted", { message: "execution ended" });
        return undefined;
      }
      n.attempts++;
      const systemLeft = retries.system - n.systemFailures;
      const interruptible = n.task.metadata.interruptible && systemLeft > 0;
      const attempt = new Attempt(this, n, inputs, interruptible);
      n.current = attempt;
      this.active.add(attempt);
      const status = await attempt.run();
      this.active.delete(attempt);
      n.current = undefined;
      if (status.phase === "succeeded") return status.outputs ?? null;
      if (status.phase === "aborted") {
        this.setPhase(n, "aborted", { message: status.message });
        return undefined;
      }
      const err: ErrorDocument = status.error ?? {
        code: ErrorCodes.SYSTEM,
        kind: "system",
        message: status.message ?? "failed",
      };
      const system = err.kind === "system" || status.preempted === true;
      if (system) n.systemFailures++;
      else n.userFailures++;
      const canRetry = system ? n.systemFailures <= retries.system : n.userFailures <= retries.user;
      if (!canRetry) {
        n.error = err;
        this.setPhase(n, "failed", { error: err });
        return undefined;
      }
      const delay = backoffDelay(
        retries.backoff,
        system ? n.systemFailures : n.userFailures,
        this.engine.opts.random,
      );
      this.setPhase(n, "retrying", { error: err, retryInMs: delay });
      await sleep(delay, this.ac.signal);
    }
  }

  private async remember(n: TaskRun, key: string, cache: CachePolicy): Promise<void> {
    try {
      await this.engine.opts.catalog!.put({
        key,
        project: this.project,
        domain: this.domain,
        task: n.task.id.name,
        cacheVersion: cache.version,
        outputs: stripLocal(n.outputs) as Json,
        producer: { execution: this.id, node: n.fqId, attempt: n.attempts },
      });
    } catch (e) {
      // The node succeeded; failing to cache it must not fail the execution.
      if (!n.quiet)
        this.emit({
          node: n.fqId,
          phase: "running",
          message: `could not write the cache: ${(e as Error).message}`,
        });
    }
  }

  // -------------------------------------------------------------------------
  // Control nodes

  /** End a control node from a child scope's result. */
  private endFromScope(n: NodeRt, r: ScopeResult, extra?: Partial<ExecutionEvent>): void {
    if (r.ok) {
      n.outputs = r.outputs;
      this.setPhase(n, "succeeded", { outputs: r.outputs, ...extra });
    } else if (r.aborted && !r.error) {
      this.setPhase(n, "aborted", { message: "execution ended" });
    } else {
      n.error = r.error ?? { code: ErrorCodes.SYSTEM, kind: "system", message: "a child node failed" };
      this.setPhase(n, "failed", { error: n.error });
    }
  }

  /** A dynamic node: run its body (a task), then the sub-DAG it built, in place of the node. */
  private async runDynamic(n: NodeRt, inputs: Record<string, unknown>): Promise<void> {
    const cache = n.task.metadata.cache;
    const catalog = this.engine.opts.catalog;
    let key: string | undefined;
    if (cache && catalog) {
      key = cacheKey(n.task, cache.version, cache.ignoreInputs, inputs);
      if (await this.cacheHit(n, key)) return;
    }
    const built = await this.attemptUntilDone(n, inputs);
    if (built === undefined) return;
    let sub: CompiledWorkflow;
    try {
      const raw = (built as { spec?: unknown })?.spec ?? built;
      // Compiled (and validated) in this process by an in-process backend: not twice.
      sub = validatedHere(raw) ? (raw as CompiledWorkflow) : validateCompiledWorkflow(raw);
      for (const [k, t] of Object.entries(sub.tasks)) {
        this.tasks[k] ??= t;
        this.pluginFor(this.tasks[k]);
      }
      Object.assign(this.subworkflows, sub.subworkflows ?? {});
      Object.assign(this.launchPlans, sub.launchPlans ?? {});
      this.checkNodes(sub.workflow.nodes, new Set());
    } catch (e) {
      n.error = {
        ...toErrorDocument(e, "user"),
        message: `dynamic "${n.task.id.name}" built a sub-DAG that cannot run: ${(e as Error).message}`,
      };
      this.setPhase(n, "failed", { error: n.error });
      return;
    }
    const count = countNodes(sub.workflow.nodes);
    this.setPhase(n, "running", { expanded: count, message: `expanded into ${count} nodes` });
    this.releaseSlot(n);
    const r = await this.runScope((done) =>
      this.makeScope(`${n.fqId}/`, undefined, {}, sub.workflow.nodes, sub.workflow.output, done),
    );
    this.endFromScope(n, r);
    if (r.ok && key && cache) await this.remember(n, key, cache);
  }

  private async runSubworkflow(n: NodeRt, key: string): Promise<void> {
    const wf = this.subworkflows[key];
    let inputs: Record<string, unknown>;
    try {
      inputs = withDefaults(wf, n.resolveInputs());
    } catch (e) {
      n.error = toErrorDocument(e, "user");
      this.setPhase(n, "failed", { error: n.error });
      return;
    }
    this.setPhase(n, "running");
    this.releaseSlot(n);
    const r = await this.runScope((done) =>
      this.makeScope(`${n.fqId}/`, undefined, inputs, wf.nodes, wf.output, done),
    );
    this.endFromScope(n, r);
  }

  /** A launch plan node: a child execution with the plan's defaults and fixed inputs. */
  private async runLaunchPlan(n: NodeRt, key: string): Promise<void> {
    const lp = this.launchPlans[key];
    const wf = this.subworkflows[`${lp.workflow.name}@${lp.workflow.version}`];
    this.releaseSlot(n);
    let child: ExecutionHandle;
    try {
      const inputs = withDefaults(wf, { ...lp.defaults, ...n.resolveInputs(), ...lp.fixed });
      const spec: CompiledWorkflow = {
        specVersion: this.spec.specVersion,
        workflow: wf,
        tasks: this.tasks,
        subworkflows: this.subworkflows,
        launchPlans: this.launchPlans,
      };
      child = this.engine.start(spec, inputs, {
        // Derived from the parent and node: a resumed parent's child reuses its attempts' results.
        id: childExecutionId(this.id, n.fqId),
        signals: this.opts.signals,
        reuse: this.opts.reuse ? (id) => this.opts.reuse?.(`${n.fqId}/${id}`) : undefined,
        parent: { execution: this.id, node: n.fqId },
      });
    } catch (e) {
      n.error = toErrorDocument(e, "user");
      this.setPhase(n, "failed", { error: n.error });
      return;
    }
    this.setPhase(n, "running", { childExecution: child.id, message: `child execution ${child.id}` });
    const onAbort = () =>
      this.detached
        ? child.detach("parent execution handed over")
        : void child.abort("parent execution stopped");
    this.ac.signal.addEventListener("abort", onAbort, { once: true });
    const r = await child.result;
    this.ac.signal.removeEventListener("abort", onAbort);
    if (r.phase === "succeeded")
      this.endFromScope(n, { ok: true, outputs: r.outputs }, { childExecution: child.id });
    else this.endFromScope(n, { ok: false, error: r.error, aborted: r.phase === "aborted" });
  }

  private async runBranch(n: NodeRt, s: Extract<NodeSpec, { kind: "branch" }>): Promise<void> {
    this.releaseSlot(n);
    let chosen = -1;
    try {
      chosen = s.cases.findIndex((c) => this.evaluate(c.when, n.scope));
    } catch (e) {
      n.error = toErrorDocument(e, "user");
      this.setPhase(n, "failed", { error: n.error });
      return;
    }
    // Nodes of the cases not taken are skipped, so every node of the graph ends in a phase.
    const skipCase = (nodes: NodeSpec[], why: string) => {
      const scope = this.makeScope(n.scope.prefix, n.scope, undefined, nodes, { literal: null }, () => {});
      for (const x of scope.nodes) this.skip(x, why);
    };
    s.cases.forEach((c, i) => {
      if (i !== chosen)
        skipCase(c.nodes, `branch "${n.fqId}" took ${chosen >= 0 ? `case ${chosen + 1}` : "no case"}`);
    });
    const elseCase = s.else;
    if (chosen < 0 && elseCase && "fail" in elseCase) {
      n.error = {
        code: ErrorCodes.BRANCH_FAILED,
        kind: "user",
        message: `branch "${n.fqId}": ${elseCase.fail}`,
        details: { node: n.fqId },
      };
      this.setPhase(n, "failed", { error: n.error });
      return;
    }
    if (chosen >= 0 && elseCase && "nodes" in elseCase)
      skipCase(elseCase.nodes, `branch "${n.fqId}" took case ${chosen + 1}`);
    const taken = chosen >= 0 ? s.cases[chosen] : elseCase && "nodes" in elseCase ? elseCase : undefined;
    if (!taken) {
      n.outputs = null;
      this.setPhase(n, "succeeded", { outputs: null, message: "no case held" });
      return;
    }
    this.setPhase(n, "running", { message: chosen >= 0 ? `case ${chosen + 1}` : "else" });
    const r = await this.runScope((done) =>
      this.makeScope(n.scope.prefix, n.scope, undefined, taken.nodes, taken.output, done),
    );
    this.endFromScope(n, r);
  }

  private evaluate(c: Condition, scope: Scope): boolean {
    if ("and" in c) return c.and.every((x) => this.evaluate(x, scope));
    if ("or" in c) return c.or.some((x) => this.evaluate(x, scope));
    if ("not" in c) return !this.evaluate(c.not, scope);
    if ("test" in c) {
      const v = this.compileBinding(c.operand, scope)();
      switch (c.test) {
        case "true":
          return v === true;
        case "false":
          return v === false;
        case "null":
          return v === null || v === undefined;
        case "notnull":
          return v !== null && v !== undefined;
      }
    }
    const l = this.compileBinding(c.left, scope)() as Scalar;
    const r = this.compileBinding(c.right, scope)() as Scalar;
    switch (c.cmp) {
      case "eq":
        return (l ?? null) === (r ?? null);
      case "ne":
        return (l ?? null) !== (r ?? null);
    }
    if (l === null || l === undefined || r === null || r === undefined) return false;
    switch (c.cmp) {
      case "gt":
        return l > r;
      case "gte":
        return l >= r;
      case "lt":
        return l < r;
      case "lte":
        return l <= r;
    }
  }

  private async runGate(n: NodeRt, s: GateNode): Promise<void> {
    const g = s.gate;
    this.setPhase(n, "running", {
      message:
        g.kind === "sleep"
          ? `sleeping ${g.durationMs} ms`
          : `waiting for ${g.kind === "approve" ? "approval" : "input"} "${g.name}"`,
    });
    this.releaseSlot(n);
    const stop = new AbortController();
    const onAbort = () => stop.abort(this.ac.signal.reason);
    this.ac.signal.addEventListener("abort", onAbort, { once: true });
    let timer: NodeJS.Timeout | undefined;
    try {
      if (g.kind === "sleep") {
        // A resumed execution's gate slept since it first started, under the previous owner.
        const since = this.opts.resume?.(n.fqId)?.startedAt;
        const left = since === undefined ? g.durationMs : Math.max(0, since + g.durationMs - Date.now());
        await sleep(left, stop.signal);
        if (stop.signal.aborted) return this.setPhase(n, "aborted", { message: String(stop.signal.reason) });
        n.outputs = null;
        return this.setPhase(n, "succeeded", { outputs: null });
      }
      const provider = this.opts.signals;
      if (!provider) {
        n.error = {
          code: ErrorCodes.SIGNAL_MISSING,
          kind: "user",
          message: `gate "${n.fqId}" is waiting for ${g.kind === "approve" ? "an approval" : "a value"}, and nothing can give it`,
          hint:
            g.kind === "approve"
              ? `run again with --signal ${g.name}=true (or =false to reject)`
              : `run again with --signal ${g.name}=<value>`,
          details: { node: n.fqId },
        };
        return this.setPhase(n, "failed", { error: n.error });
      }
      const value = g.kind === "approve" ? this.compileBinding(g.value, n.scope)() : undefined;
      const answer = provider({
        execution: this.id,
        node: n.fqId,
        kind: g.kind,
        ...(g.kind === "input" ? { schema: g.schema } : { value }),
        signal: stop.signal,
      });
      const timeout = s.timeoutMs;
      const outcome = await Promise.race<SignalAnswer | "timeout" | "stopped">([
        answer,
        new Promise<"stopped">((r) =>
          stop.signal.addEventListener("abort", () => r("stopped"), { once: true }),
        ),
        ...(timeout
          ? [new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), timeout)))]
          : []),
      ]);
      if (outcome === "stopped") return this.setPhase(n, "aborted", { message: String(stop.signal.reason) });
      if (outcome === "timeout") {
        n.error = {
          code: ErrorCodes.TIMEOUT,
          kind: "user",
          message: `gate "${n.fqId}" got no signal within ${timeout} ms`,
          details: { node: n.fqId },
        };
        return this.setPhase(n, "failed", { error: n.error });
      }
      if (g.kind === "approve") {
        if (outcome.approved !== true) {
          n.error = {
            code: ErrorCodes.GATE_REJECTED,
            kind: "user",
            message: `gate "${n.fqId}" was rejected${outcome.by ? ` by ${outcome.by}` : ""}${outcome.reason ? `: ${outcome.reason}` : ""}`,
            details: { node: n.fqId },
          };
          return this.setPhase(n, "failed", { error: n.error });
        }
        n.outputs = value;
        return this.setPhase(n, "succeeded", {
          outputs: value,
          message: `approved${outcome.by ? ` by ${outcome.by}` : ""}`,
        });
      }
      const found =
        outcome.value === undefined ? { path: "", message: "" } : validateValue(outcome.value, g.schema);
      const problem = found && `${found.path ? `${found.path} ` : ""}${found.message}`;
      if (problem !== undefined) {
        n.error = {
          code: ErrorCodes.INPUT_INVALID,
          kind: "user",
          message: `gate "${n.fqId}" expects ${describeSchema(g.schema as JsonSchema)}, but the signal gave ${outcome.value === undefined ? "no value" : JSON.stringify(outcome.value)}${problem ? ` (${problem})` : ""}`,
          hint: `signal a value of type ${describeSchema(g.schema as JsonSchema)}`,
          details: { node: n.fqId },
        };
        return this.setPhase(n, "failed", { error: n.error });
      }
      n.outputs = outcome.value;
      return this.setPhase(n, "succeeded", { outputs: outcome.value });
    } catch (e) {
      // A provider that gives up because the execution stopped: the gate was aborted, not failed.
      if (stop.signal.aborted) return this.setPhase(n, "aborted", { message: String(stop.signal.reason) });
      n.error = toErrorDocument(e, "user");
      return this.setPhase(n, "failed", { error: n.error });
    } finally {
      if (timer) clearTimeout(timer);
      this.ac.signal.removeEventListener("abort", onAbort);
      // The provider stops waiting too (timeout, or an answer it no longer needs to give).
      if (!stop.signal.aborted) stop.abort("the gate no longer waits");
    }
  }

  /** A map node: items run with bounded concurrency; no events per item, progress as counts. */
  private async runMap(n: NodeRt, s: MapNode): Promise<void> {
    this.releaseSlot(n);
    let lists: [string, unknown[]][];
    let bound: Record<string, unknown>;
    let total = 0;
    try {
      const mapped = n.resolveInputs();
      bound = {};
      for (const [k, b] of Object.entries(s.bound)) {
        const v = this.compileBinding(b, n.scope)();
        if (v !== undefined) bound[k] = v;
      }
      lists = Object.entries(mapped).map(([k, v]) => {
        if (!Array.isArray(v)) {
          throw new TernError(
            ErrorCodes.INPUT_INVALID,
            `map "${n.fqId}": input "${k}" is not a list (got ${v === null ? "null" : typeof v})`,
            {
              hint: "map over lists; give other inputs whole through bound",
              details: { node: n.fqId, input: k },
            },
          );
        }
        return [k, v] as [string, unknown[]];
      });
      total = lists[0]?.[1].length ?? 0;
      for (const [k, v] of lists) {
        if (v.length !== total) {
          throw new TernError(
            ErrorCodes.INPUT_INVALID,
            `map "${n.fqId}": the mapped lists differ in length (${lists.map(([kk, vv]) => `${kk}: ${vv.length}`).join(", ")})`,
            { hint: "all mapped inputs must have one item per run", details: { node: n.fqId, input: k } },
          );
        }
      }
    } catch (e) {
      n.error = toErrorDocument(e, "user");
      this.setPhase(n, "failed", { error: n.error });
      return;
    }
    const items: MapItems = { total, succeeded: 0, failed: 0, cached: 0 };
    n.items = items;
    const outputs: unknown[] = new Array(total).fill(null);
    const tolerated = Math.floor(total * (1 - s.minSuccessRatio) + 1e-9);
    this.setPhase(n, "running", { items: { ...items } });
    let lastReport = Date.now();
    const progress = () => {
      const now = Date.now();
      if (now - lastReport >= 250) {
        lastReport = now;
        this.setPhase(n, "running", { items: { ...items, failures: undefined } });
      }
    };
    const isTask = "task" in s.target;
    const itemTask = isTask
      ? this.withOverrides(this.taskSpec((s.target as { task: string }).task, n.fqId), s.overrides)
      : undefined;
    const itemPlugin = itemTask ? this.pluginFor(itemTask) : undefined;
    const wf = isTask ? undefined : this.subworkflows[(s.target as { workflow: string }).workflow];
    const itemInputs = (i: number): Record<string, unknown> => {
      const o: Record<string, unknown> = { ...bound };
      for (const [k, v] of lists) if (v[i] !== undefined) o[k] = v[i];
      return o;
    };
    let next = 0;
    let stopped = false;
    const recordFailure = (i: number, error: ErrorDocument | undefined) => {
      items.failed++;
      const failures = (items.failures ??= []);
      if (failures.length < MAX_MAP_FAILURES_KEPT)
        failures.push({
          index: i,
          error: error ?? { code: ErrorCodes.SYSTEM, kind: "system", message: "failed" },
        });
      if (items.failed > tolerated) stopped = true;
    };
    const runOne = async (i: number): Promise<void> => {
      const got = this.acquireExecSlot();
      if (!(got === true || (await got))) {
        stopped = true;
        return;
      }
      const item: TaskRun = {
        fqId: `${n.fqId}[${i}]`,
        task: itemTask as TaskSpec,
        plugin: itemPlugin as BackendPlugin<any>,
        attempts: 0,
        prefix: `${n.prefix}/${i}`,
        ctxNode: { id: `${n.fqId}[${i}]` },
        phase: "queued",
        userFailures: 0,
        systemFailures: 0,
        cached: false,
        quiet: true,
        holdsSlot: true,
      };
      try {
        if (itemTask) {
          await this.runTask(item, itemInputs(i));
          if (item.phase === "succeeded") {
            outputs[i] = item.outputs ?? null;
            items.succeeded++;
            if (item.cached) items.cached++;
          } else if (item.phase === "failed") recordFailure(i, item.error);
          else stopped = true;
        } else {
          const inputs = withDefaults(wf!, itemInputs(i));
          // A subworkflow item runs its own nodes (with events); the slot is the map's share.
          this.releaseSlot(item);
          const r = await this.runScope((done) =>
            this.makeScope(`${n.fqId}[${i}]/`, undefined, inputs, wf!.nodes, wf!.output, done),
          );
          if (r.ok) {
            outputs[i] = r.outputs;
            items.succeeded++;
          } else if (r.error) recordFailure(i, r.error);
          else stopped = true;
        }
      } finally {
        this.releaseSlot(item);
        progress();
      }
    };
    // Items that finish without I/O (inline no-ops) would run the whole map in one drain of
    // the microtask queue, starving timers, signals and abort requests: every so many items,
    // all workers wait for one turn of the event loop.
    let sinceTurn = 0;
    let turn: Promise<void> | undefined;
    const worker = async () => {
      while (!stopped && !this.halted && next < total) {
        if (!turn && ++sinceTurn >= MAP_ITEMS_PER_TURN) {
          sinceTurn = 0;
          turn = new Promise<void>((resolve) =>
            setImmediate(() => {
              turn = undefined;
              resolve();
            }),
          );
        }
        if (turn) {
          await turn;
          continue;
        }
        await runOne(next++);
      }
    };
    const concurrency = Math.max(1, Math.min(total, s.concurrency ?? DEFAULT_MAP_CONCURRENCY));
    await Promise.all(Array.from({ length: total === 0 ? 0 : concurrency }, worker));
    // Items end in any order; report the failures kept in item order.
    items.failures?.sort((a, b) => a.index - b.index);
    const done = items.succeeded + items.failed;
    if (items.failed > tolerated) {
      const first = items.failures?.[0];
      n.error = {
        code: first?.error.code ?? ErrorCodes.TASK_FAILED,
        kind: first?.error.kind ?? "user",
        message: `map "${n.fqId}": ${items.failed} of ${total} items failed${s.minSuccessRatio < 1 ? ` (at most ${tolerated} may)` : ""}; item ${first?.index}: ${first?.error.message}`,
        details: { node: n.fqId, items: { ...items, failures: undefined } },
      };
      this.setPhase(n, "failed", { error: n.error, items });
      return;
    }
    if (done < total) {
      this.setPhase(n, "aborted", { message: "execution ended", items });
      return;
    }
    n.outputs = outputs;
    this.setPhase(n, "succeeded", { outputs, items });
  }
}

type Scalar = string | number | boolean | null | undefined;

/** A launch-plan node's child execution id: stable across restarts of the parent. */
function childExecutionId(parent: string, node: string): string {
  return `${parent}-c${createHash("sha256").update(node).digest("hex").slice(0, 10)}`;
}

function countNodes(nodes: NodeSpec[]): number {
  let c = 0;
  for (const n of nodes) {
    c++;
    if (n.kind === "branch") {
      for (const x of n.cases) c += countNodes(x.nodes);
      if (n.else && "nodes" in n.else) c += countNodes(n.else.nodes);
    }
  }
  return c;
}

/** A workflow's inputs with its defaults filled in; a missing required input is an error. */
function withDefaults(wf: WorkflowSpec, given: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...given };
  for (const [k, s] of Object.entries(wf.interface.inputs)) {
    if (out[k] !== undefined) continue;
    if (s.default !== undefined) out[k] = s.default;
    else if (!s.optional) {
      throw new TernError(ErrorCodes.INPUT_INVALID, `workflow "${wf.id.name}" needs input "${k}"`, {
        details: { input: k },
      });
    }
  }
  return out;
}

function hasLocalRefs(v: unknown): boolean {
  if (Array.isArray(v)) return v.some(hasLocalRefs);
  if (v && typeof v === "object") {
    const o = v as Record<string, unknown>;
    if (isTernRef(o)) return !o.uri;
    return Object.values(o).some(hasLocalRefs);
  }
  return false;
}

function getPath(v: unknown, path: readonly (string | number)[]): unknown {
  let cur = v;
  for (const p of path) {
    if (cur === null || cur === undefined) return undefined;
    cur = (cur as Record<string | number, unknown>)[p];
  }
  return cur;
}

/** A large output may come back as a reference to a literal in blob storage. */
export { resolveLiteral } from "./attempt.js";
