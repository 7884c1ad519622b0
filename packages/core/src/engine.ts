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
import { randomBytes } from "node:crypto";
import type { BlobStore } from "./blob.js";
import { type Catalog, cacheKey, type CacheProducer, stripLocal } from "./catalog.js";
import type { Compiled } from "./compile.js";
import { nodeDependencies } from "./compile.js";
import type { Shape } from "./dsl.js";
import { offload } from "./execute/run-task.js";
import { isTernRef } from "./types.js";
import { type ErrorDocument, ErrorCodes, TernError, toErrorDocument } from "./errors.js";
import type { Json } from "./json.js";
import type { BackendPlugin, BackendRegistry, TaskContext, TaskLogger, TaskPhase, TaskStatus } from "./plugin.js";
import type { Backoff, Binding, CachePolicy, CompiledWorkflow, TaskNode, TaskSpec } from "./spec.js";

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
}

export interface NodeSummary {
  id: string;
  task: string;
  phase: NodePhase;
  attempts: number;
  cached: boolean;
  recovered: boolean;
  durationMs: number;
  error?: ErrorDocument;
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
  /** Reuse outputs of nodes that already succeeded (recovery). */
  reuse?: (nodeId: string) => { outputs: unknown } | undefined;
  /** Event listener, called synchronously in event order. */
  onEvent?: (e: ExecutionEvent) => void;
  /** Zod schemas of the workflow inputs, to validate and fill defaults (from `compile()`). */
  inputSchemas?: Shape;
}

const TERMINAL: ReadonlySet<NodePhase> = new Set(["succeeded", "failed", "skipped", "aborted"]);

export function newExecutionId(): string {
  // Lowercase and starting with a letter: valid in URLs, DNS labels and pod names.
  return `x${Date.now().toString(36).slice(-5)}${randomBytes(6).toString("hex")}`;
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
  private readonly pluginSlots = new Map<string, { inUse: number; waiters: (() => void)[]; nextLaunchAt: number }>();

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
  start(compiled: Compiled | CompiledWorkflow, inputs: Record<string, unknown>, opts: StartOptions = {}): ExecutionHandle {
    const spec = "spec" in compiled ? compiled.spec : compiled;
    const schemas = opts.inputSchemas ?? ("spec" in compiled ? compiled.inputSchemas : undefined);
    const ex = new Execution(this, spec, prepareInputs(spec, inputs, schemas), { ...opts, id: opts.id ?? newExecutionId() });
    this.executions.add(ex);
    ex.result.finally(() => this.executions.delete(ex));
    ex.begin();
    return ex.handle;
  }

  /** Run to the end. Invalid inputs or specs reject the promise (they never throw synchronously). */
  async run(compiled: Compiled | CompiledWorkflow, inputs: Record<string, unknown> = {}, opts: StartOptions = {}): Promise<ExecutionResult> {
    return this.start(compiled, inputs, opts).result;
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
function prepareInputs(spec: CompiledWorkflow, raw: Record<string, unknown>, schemas?: Shape): Record<string, unknown> {
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
}

interface NodeRt {
  spec: TaskNode;
  task: TaskSpec;
  plugin: BackendPlugin<any>;
  waitingFor: number;
  downstream: NodeRt[];
  phase: NodePhase;
  attempts: number;
  userFailures: number;
  systemFailures: number;
  cached: boolean;
  recovered: boolean;
  outputs?: unknown;
  error?: ErrorDocument;
  startedAt?: number;
  endedAt?: number;
  current?: Attempt;
  /** Nodes this one waits for (data and `after()`), computed once. */
  upstream: NodeRt[];
  /** Blob prefix of the node's attempts and checkpoint. */
  prefix: string;
  /** `ctx.node`, shared by the node's attempts. */
  ctxNode: { readonly id: string };
  /** Log lines by attempt; created on the first line. */
  logs?: Map<number, string[]>;
  resolveInputs: () => Record<string, unknown>;
}

const MAX_LOG_LINES = 10_000;
/** Nodes started per turn of the event loop (see `pump`). */
const START_BATCH = 256;
const noInputs = (): Record<string, unknown> => ({});

class Execution {
  readonly id: string;
  readonly events: ExecutionEvent[] = [];
  readonly nodes: NodeRt[] = [];
  private readonly byId = new Map<string, NodeRt>();
  private readonly ready: NodeRt[] = [];
  private readyHead = 0;
  private startedThisTurn = 0;
  private pumpScheduled = false;
  private running = 0;
  private remaining: number;
  private seq = 0;
  private phase: ExecutionPhase = "running";
  private finished = false;
  private failure?: ErrorDocument & { node?: string };
  private readonly maxParallelism: number;
  private readonly startedAt = Date.now();
  private deadlineTimer?: NodeJS.Timeout;
  private readonly ac = new AbortController();
  private settle!: (r: ExecutionResult) => void;
  readonly result: Promise<ExecutionResult>;
  readonly handle: ExecutionHandle;
  private readonly project: string;
  private readonly domain: string;

  constructor(
    private readonly engine: Engine,
    private readonly spec: CompiledWorkflow,
    private inputs: Record<string, unknown>,
    private readonly opts: StartOptions & { id: string },
  ) {
    this.id = opts.id;
    const wf = spec.workflow;
    this.project = wf.id.project;
    this.domain = wf.id.domain;
    this.maxParallelism = opts.maxParallelism ?? wf.maxParallelism ?? Number.POSITIVE_INFINITY;
    this.result = new Promise((r) => (this.settle = r));
    const validated = new Set<TaskSpec>();
    for (const n of wf.nodes) {
      const base = spec.tasks[n.task];
      if (!base) {
        throw new TernError(ErrorCodes.SPEC_INVALID, `node "${n.id}" references task "${n.task}", which the spec does not include`);
      }
      const task = n.overrides ? { ...base, metadata: { ...base.metadata, ...n.overrides } } : base;
      const plugin = engine.opts.registry.forType(task.type, task.id.name);
      if (plugin.validate && !validated.has(task)) {
        plugin.validate(task);
        validated.add(task);
      }
      const rt: NodeRt = {
        spec: n,
        task,
        plugin,
        waitingFor: 0,
        downstream: [],
        phase: "not-ready",
        attempts: 0,
        userFailures: 0,
        systemFailures: 0,
        cached: false,
        recovered: false,
        upstream: [],
        prefix: `executions/${this.project}/${this.domain}/${this.id}/${n.id}`,
        ctxNode: { id: n.id },
        outputs: undefined,
        error: undefined,
        startedAt: undefined,
        endedAt: undefined,
        current: undefined,
        logs: undefined,
        resolveInputs: noInputs,
      };
      this.nodes.push(rt);
      this.byId.set(n.id, rt);
    }
    for (const rt of this.nodes) {
      const deps = nodeDependencies(rt.spec);
      rt.waitingFor = deps.size;
      for (const d of deps) {
        const u = this.byId.get(d)!;
        u.downstream.push(rt);
        rt.upstream.push(u);
      }
      const keys = Object.keys(rt.spec.inputs);
      if (keys.length === 0) continue;
      const resolvers = keys.map((k) => this.compileBinding(rt.spec.inputs[k]));
      rt.resolveInputs = () => {
        const o: Record<string, unknown> = {};
        for (let i = 0; i < keys.length; i++) {
          const v = resolvers[i]();
          if (v !== undefined) o[keys[i]] = v;
        }
        return o;
      };
    }
    this.remaining = this.nodes.length;
    const self = this;
    this.handle = {
      id: this.id,
      result: this.result,
      events: this.events,
      logs: (node, attempt) => {
        const n = self.byId.get(node);
        if (!n) return [];
        return n.logs?.get(attempt ?? n.attempts) ?? [];
      },
      abort: (reason) => self.abort(reason),
    };
  }

  private compileBinding(b: Binding): () => unknown {
    if ("literal" in b) {
      const v = b.literal;
      return () => v;
    }
    if ("ref" in b) {
      const { node, path } = b.ref;
      if (node === "$inputs") return () => getPath(this.inputs, path);
      const src = this.byId.get(node)!;
      return path.length === 0 ? () => src.outputs : () => getPath(src.outputs, path);
    }
    if ("object" in b) {
      const parts = Object.entries(b.object).map(([k, x]) => [k, this.compileBinding(x)] as const);
      return () => {
        const o: Record<string, unknown> = {};
        for (const [k, r] of parts) o[k] = r();
        return o;
      };
    }
    const items = b.list.map((x) => this.compileBinding(x));
    return () => items.map((r) => r());
  }

  private emit(e: Omit<ExecutionEvent, "seq" | "at" | "execution">): void {
    const ev = e as ExecutionEvent;
    ev.seq = ++this.seq;
    ev.at = Date.now();
    ev.execution = this.id;
    this.events.push(ev);
    this.opts.onEvent?.(ev);
  }

  /** A node's phase change, as an event. (Hot path: one object, fixed key order.) */
  setPhase(n: NodeRt, phase: NodePhase, extra?: Partial<ExecutionEvent>): void {
    n.phase = phase;
    const ev: ExecutionEvent = { seq: ++this.seq, at: Date.now(), execution: this.id, node: n.spec.id, phase, attempt: n.attempts || undefined };
    if (extra) Object.assign(ev, extra);
    this.events.push(ev);
    this.opts.onEvent?.(ev);
  }

  begin(): void {
    this.emit({ phase: "running", message: `workflow ${this.spec.workflow.id.name}` });
    if (hasLocalRefs(this.inputs)) {
      // Files given as inputs live only on this machine: store them first, so tasks
      // (and cache keys) see their content, not a path that may change under them.
      offload(this.inputs, this.engine.opts.blobs).then(
        (v) => {
          this.inputs = v as Record<string, unknown>;
          this.schedule();
        },
        (e) => this.fail({ ...toErrorDocument(e, "user"), message: `storing the execution's input files failed: ${(e as Error).message}` }),
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
    for (const n of this.nodes) if (n.waitingFor === 0) this.enqueue(n);
    if (this.nodes.length === 0) this.finish();
    else this.pump();
  }

  private enqueue(n: NodeRt): void {
    this.ready.push(n);
  }

  private pump(): void {
    while (this.readyHead < this.ready.length && this.running < this.maxParallelism && this.phase === "running") {
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
      this.startedThisTurn++;
      const n = this.ready[this.readyHead++];
      this.running++;
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

  private nodeDone(n: NodeRt): void {
    this.running--;
    n.endedAt = Date.now();
    this.remaining--;
    if (n.phase === "failed" && !this.failure) {
      this.failure = { ...n.error!, node: n.spec.id };
      if (this.spec.workflow.failurePolicy === "fail-fast") this.failFast();
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
        if (bad || this.halted) this.skip(d, bad ? `upstream node "${bad.spec.id}" ${bad.phase}` : "execution ended");
        else this.enqueue(d);
      }
    }
    if (this.remaining === 0) this.finish();
    else this.pump();
  }

  /** Skip a node that will never run, and everything below it. */
  private skip(n: NodeRt, why: string): void {
    if (TERMINAL.has(n.phase)) return;
    this.setPhase(n, "skipped", { message: why });
    n.endedAt = Date.now();
    this.remaining--;
    for (const d of n.downstream) {
      if (--d.waitingFor === 0) this.skip(d, `upstream node "${n.spec.id}" skipped`);
    }
  }

  /** No new attempt starts once the execution is aborted, failed fast or past its deadline. */
  private get halted(): boolean {
    return this.phase !== "running" || this.ac.signal.aborted;
  }

  private failFast(): void {
    // Wakes nodes waiting out a retry backoff or a cache lease; they end as aborted.
    this.ac.abort("another node failed (fail-fast)");
    for (const n of this.nodes) n.current?.stop("aborted", "another node failed (fail-fast)");
    // Nodes queued but not started are skipped as they come out of the queue.
    for (let i = this.readyHead; i < this.ready.length; i++) {
      const n = this.ready[i];
      if (!TERMINAL.has(n.phase)) {
        this.skip(n, "another node failed (fail-fast)");
      }
    }
    this.readyHead = this.ready.length;
  }

  private fail(error: ErrorDocument): void {
    if (this.phase !== "running") return;
    this.failure ??= error;
    this.failFast();
    for (const n of this.nodes) if (!TERMINAL.has(n.phase) && !n.current && n.waitingFor > 0) this.skip(n, error.message);
    if (this.remaining === 0) this.finish();
  }

  async abort(reason = "aborted by request"): Promise<void> {
    if (this.phase !== "running") return;
    this.phase = "aborted";
    this.ac.abort(reason);
    this.failure ??= { code: ErrorCodes.ABORTED, kind: "user", message: reason };
    const stops = this.nodes.map((n) => n.current?.stop("aborted", reason));
    for (let i = this.readyHead; i < this.ready.length; i++) this.skip(this.ready[i], reason);
    this.readyHead = this.ready.length;
    for (const n of this.nodes) if (!TERMINAL.has(n.phase) && !n.current && n.phase === "not-ready") this.skip(n, reason);
    await Promise.all(stops);
    if (this.remaining === 0) this.finish();
    await this.result;
  }

  private finish(): void {
    // Reached from nodeDone, fail() and abort(): the execution ends once, with one terminal event.
    if (this.finished) return;
    this.finished = true;
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    const endedAt = Date.now();
    const nodes: NodeSummary[] = this.nodes.map((n) => ({
      id: n.spec.id,
      task: n.task.id.name,
      phase: n.phase,
      attempts: n.attempts,
      cached: n.cached,
      recovered: n.recovered,
      durationMs: n.startedAt ? (n.endedAt ?? endedAt) - n.startedAt : 0,
      ...(n.error ? { error: n.error } : {}),
    }));
    let result: ExecutionResult;
    if (this.phase === "aborted") {
      result = { id: this.id, phase: "aborted", error: this.failure, nodes, startedAt: this.startedAt, endedAt };
    } else if (this.failure || this.nodes.some((n) => n.phase === "failed")) {
      this.phase = "failed";
      result = { id: this.id, phase: "failed", error: this.failure, nodes, startedAt: this.startedAt, endedAt };
    } else {
      this.phase = "succeeded";
      let outputs: unknown;
      try {
        outputs = this.compileBinding(this.spec.workflow.output)();
      } catch (e) {
        this.phase = "failed";
        this.failure = toErrorDocument(e, "system");
      }
      result =
        this.phase === "succeeded"
          ? { id: this.id, phase: "succeeded", outputs: outputs ?? null, nodes, startedAt: this.startedAt, endedAt }
          : { id: this.id, phase: "failed", error: this.failure, nodes, startedAt: this.startedAt, endedAt };
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

  /** Not `async` on purpose: the uncached path goes straight to runAttempts (hot path). */
  private runNode(n: NodeRt): Promise<void> {
    const reused = this.opts.reuse?.(n.spec.id);
    if (reused) {
      n.outputs = reused.outputs;
      n.recovered = true;
      this.setPhase(n, "succeeded", { recovered: true, outputs: reused.outputs });
      return DONE;
    }
    this.setPhase(n, "queued");
    n.startedAt = Date.now();
    let inputs: Record<string, unknown>;
    try {
      inputs = n.resolveInputs();
    } catch (e) {
      n.error = toErrorDocument(e, "system");
      this.setPhase(n, "failed", { error: n.error });
      return DONE;
    }
    const cache = n.task.metadata.cache;
    if (!cache || !this.engine.opts.catalog) return this.runAttempts(n, inputs);
    return this.runCached(n, inputs, cache);
  }

  private async runCached(n: NodeRt, inputs: Record<string, unknown>, cache: CachePolicy): Promise<void> {
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
      const owner = `${this.id}/${n.spec.id}`;
      if (catalog.acquire && !(await catalog.acquire(key, owner, this.engine.opts.cacheLeaseTtlMs))) {
        await sleep(100, this.ac.signal);
        if (this.ac.signal.aborted) return this.setPhase(n, "aborted", { message: String(this.ac.signal.reason) });
        if (await this.cacheHit(n, key)) return;
        continue;
      }
      let done!: () => void;
      this.engine.inflight.set(
        key,
        new Promise<void>((r) => (done = r)),
      );
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

  private async cacheHit(n: NodeRt, key: string): Promise<boolean> {
    const hit = await this.engine.opts.catalog!.get(key);
    if (!hit) return false;
    n.outputs = hit.outputs;
    n.cached = true;
    this.setPhase(n, "succeeded", { cached: true, producer: hit.producer, outputs: hit.outputs });
    return true;
  }

  private async runAttempts(n: NodeRt, inputs: Record<string, unknown>, key?: string, cache?: CachePolicy): Promise<void> {
    const retries = n.task.metadata.retries;
    for (;;) {
      if (this.halted) {
        this.setPhase(n, "aborted", { message: "execution ended" });
        return;
      }
      n.attempts++;
      const systemLeft = retries.system - n.systemFailures;
      const interruptible = n.task.metadata.interruptible && systemLeft > 0;
      const attempt = new Attempt(this.engine, this, n, inputs, interruptible);
      n.current = attempt;
      const status = await attempt.run();
      n.current = undefined;
      if (status.phase === "succeeded") {
        n.outputs = status.outputs;
        this.setPhase(n, "succeeded", { outputs: status.outputs });
        if (key && cache) await this.remember(n, key, cache);
        return;
      }
      if (status.phase === "aborted") {
        this.setPhase(n, "aborted", { message: status.message });
        return;
      }
      const err: ErrorDocument = status.error ?? { code: ErrorCodes.SYSTEM, kind: "system", message: status.message ?? "failed" };
      const system = err.kind === "system" || status.preempted === true;
      if (system) n.systemFailures++;
      else n.userFailures++;
      const canRetry = system ? n.systemFailures <= retries.system : n.userFailures <= retries.user;
      if (!canRetry) {
        n.error = err;
        this.setPhase(n, "failed", { error: err });
        return;
      }
      const delay = backoffDelay(retries.backoff, system ? n.systemFailures : n.userFailures, this.engine.opts.random);
      this.setPhase(n, "retrying", { error: err, retryInMs: delay });
      await sleep(delay, this.ac.signal);
    }
  }

  private async remember(n: NodeRt, key: string, cache: CachePolicy): Promise<void> {
    try {
      await this.engine.opts.catalog!.put({
        key,
        project: this.project,
        domain: this.domain,
        task: n.task.id.name,
        cacheVersion: cache.version,
        outputs: stripLocal(n.outputs) as Json,
        producer: { execution: this.id, node: n.spec.id, attempt: n.attempts },
      });
    } catch (e) {
      // The node succeeded; failing to cache it must not fail the execution.
      this.emit({ node: n.spec.id, phase: "succeeded", message: `could not write the cache: ${(e as Error).message}` });
    }
  }

  /** `ctx.execution`, shared by every attempt of the execution. */
  private ctxExecution?: TaskContext["execution"];

  attemptContext(n: NodeRt, inputs: Record<string, unknown>, interruptible: boolean, attempt: Attempt): TaskContext {
    const ex = (this.ctxExecution ??= Object.freeze({ id: this.id, project: this.project, domain: this.domain }));
    return new AttemptContext(this.engine, ex, n, inputs as Record<string, Json>, interruptible, attempt);
  }
}

/**
 * What a plugin gets for one attempt. A class (not a literal with closures): one is made
 * per attempt, so the logger and the AbortSignal are only made when used.
 */
class AttemptContext implements TaskContext {
  readonly node: { readonly id: string };
  readonly attempt: { readonly id: string; readonly number: number; readonly interruptible: boolean };
  readonly task: TaskSpec;
  readonly outputPrefix: string;
  readonly checkpointPrefix: string;
  readonly blobs: BlobStore;
  readonly workDir: string;
  readonly notify: () => void;
  private inputsUriP?: Promise<string>;
  private log?: TaskLogger;

  constructor(
    engine: Engine,
    readonly execution: TaskContext["execution"],
    private readonly n: NodeRt,
    readonly inputs: Readonly<Record<string, Json>>,
    interruptible: boolean,
    private readonly owner: Attempt,
  ) {
    const attemptNo = n.attempts;
    this.node = n.ctxNode;
    this.attempt = { id: `${execution.id}-${n.spec.id}-${attemptNo}`, number: attemptNo, interruptible };
    this.task = n.task;
    this.checkpointPrefix = n.prefix;
    this.outputPrefix = `${n.prefix}/${attemptNo}`;
    this.blobs = engine.opts.blobs;
    this.workDir = engine.opts.workDir;
    this.notify = owner.notify;
  }

  inputsUri(): Promise<string> {
    return (this.inputsUriP ??= this.blobs.put(`${this.outputPrefix}/inputs.json`, JSON.stringify(stripLocal(this.inputs))));
  }

  /** Made on first use: most plugins never look (an AbortSignal costs microseconds on Node 20). */
  get signal(): AbortSignal {
    return this.owner.signal;
  }

  get logger(): TaskLogger {
    if (this.log) return this.log;
    const n = this.n;
    const attemptNo = this.attempt.number;
    // Created with the first line: most attempts log nothing.
    let lines: string[] | undefined;
    const log =
      (level: string): TaskLogger["info"] =>
      (msg, fields) => {
        if (!lines) (n.logs ??= new Map()).set(attemptNo, (lines = []));
        if (lines.length >= MAX_LOG_LINES) {
          if (lines.length === MAX_LOG_LINES) lines.push(`… log truncated after ${MAX_LOG_LINES} lines`);
          return;
        }
        lines.push(`${new Date().toISOString()} ${level} ${msg}${fields ? ` ${JSON.stringify(fields)}` : ""}`);
      };
    this.log = { debug: log("DEBUG"), info: log("INFO"), warn: log("WARN"), error: log("ERROR") };
    return this.log;
  }
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

/** One attempt of one node: launch, then check until terminal; timeout and abort stop it. */
class Attempt {
  /** Made on first use of `signal` (an AbortController costs microseconds on Node 20). */
  private ac?: AbortController;
  private wake?: () => void;
  private pending = false;
  private stopped?: { phase: "failed" | "aborted"; error?: ErrorDocument; message: string };
  /** The plugin's `abort` of a stopped attempt; `finalize` and the slot release wait for it. */
  private stopping?: Promise<void>;
  private state?: Json;
  private ctx!: TaskContext;
  private launched?: Promise<unknown>;

  constructor(
    private readonly engine: Engine,
    private readonly ex: Execution,
    private readonly n: NodeRt,
    private readonly inputs: Record<string, unknown>,
    private readonly interruptible: boolean,
  ) {}

  private report(phase: NodePhase, extra?: Partial<ExecutionEvent>): void {
    this.ex.setPhase(this.n, phase, extra);
  }

  readonly notify = (): void => {
    if (this.wake) {
      const w = this.wake;
      this.wake = undefined;
      w();
    } else this.pending = true;
  };

  /** Aborted when the attempt is stopped (timeout, abort, fail-fast). */
  get signal(): AbortSignal {
    if (!this.ac) {
      this.ac = new AbortController();
      if (this.stopped) this.ac.abort(this.stopped.message);
    }
    return this.ac.signal;
  }

  /** Stop from outside (abort, fail-fast, timeout). The plugin's `abort` is called once, if launched. */
  stop(phase: "failed" | "aborted", message: string, error?: ErrorDocument): Promise<void> {
    if (this.stopped) return this.stopping ?? Promise.resolve();
    this.stopped = { phase, message, error };
    this.ac?.abort(message);
    this.notify();
    this.stopping = (async () => {
      // A launch in flight still produces the state to abort.
      const state = this.launched ? await this.launched.then((st) => st as Json, () => undefined) : this.state;
      if (state === undefined) return;
      try {
        await this.n.plugin.abort(this.ctx, state);
      } catch {
        // Best effort: the attempt is over for the engine either way.
      }
    })();
    return this.stopping;
  }

  async run(): Promise<TaskStatus> {
    const n = this.n;
    const plugin = n.plugin;
    this.ctx = this.ex.attemptContext(n, this.inputs, this.interruptible, this);
    const release = plugin.limits
      ? await this.engine.acquireSlot(plugin, () => this.report("waiting-for-resources"), this.signal)
      : noop;
    let timer: NodeJS.Timeout | undefined;
    try {
      if (this.stopped) return this.stoppedStatus();
      const timeoutMs = n.task.metadata.timeoutMs;
      if (timeoutMs) {
        timer = setTimeout(() => {
          void this.stop("failed", `timed out after ${timeoutMs} ms`, {
            code: ErrorCodes.TIMEOUT,
            kind: "user",
            message: `task "${n.task.id.name}" (node "${n.spec.id}") timed out after ${timeoutMs} ms (attempt ${n.attempts})`,
            hint: "raise the task's timeout, or make it faster",
          });
        }, timeoutMs);
      }
      const launch = plugin.launch(this.ctx);
      this.launched = launch;
      try {
        this.state = (await launch) as Json;
      } catch (e) {
        const doc = toErrorDocument(e, "system");
        if (!(e instanceof TernError)) doc.kind = "system";
        return { phase: "failed", error: { ...doc, message: `plugin "${plugin.id}" could not launch: ${doc.message}` } };
      }
      if (this.stopped) return this.stoppedStatus(); // stop() aborts the launched work
      this.report("initializing", { plugin: plugin.id, pluginState: this.state });
      let last: TaskPhase = "initializing";
      let checkErrors = 0;
      let pollMs = this.engine.opts.pollMinMs;
      for (;;) {
        let status: TaskStatus | undefined;
        try {
          status = await plugin.check(this.ctx, this.state);
          checkErrors = 0;
        } catch (e) {
          if (++checkErrors >= this.engine.opts.maxCheckErrors) {
            const doc = toErrorDocument(e, "system");
            return { phase: "failed", error: { ...doc, kind: "system", message: `plugin "${plugin.id}" check failed: ${doc.message}` } };
          }
        }
        if (this.stopped) return this.stoppedStatus();
        if (status) {
          if (status.phase === "succeeded" || status.phase === "failed" || status.phase === "aborted") {
            const done = this.complete(status);
            return done instanceof Promise ? await done : done;
          }
          if (status.phase !== last) {
            last = status.phase;
            this.report(status.phase, status.message ? { message: status.message } : undefined);
          }
        }
        if (this.pending) {
          this.pending = false;
          continue;
        }
        await new Promise<void>((resolve) => {
          this.wake = resolve;
          // Not unref'd: between polls this timer may be all that keeps the process alive.
          const t = setTimeout(this.notify, pollMs);
          const orig = resolve;
          this.wake = () => {
            clearTimeout(t);
            orig();
          };
        });
        this.pending = false;
        pollMs = Math.min(pollMs * 2, this.engine.opts.pollMaxMs);
      }
    } finally {
      if (timer) clearTimeout(timer);
      // A stopped attempt's work is aborted before its slot is freed and it is finalized.
      if (this.stopping) await this.stopping;
      release();
      if (this.state !== undefined && plugin.finalize) {
        try {
          await plugin.finalize(this.ctx, this.state);
        } catch {
          // finalize is cleanup; its failure does not change the outcome
        }
      }
    }
  }

  private stoppedStatus(): TaskStatus {
    const s = this.stopped!;
    return s.phase === "aborted" ? { phase: "aborted", message: s.message } : { phase: "failed", error: s.error, message: s.message };
  }

  /** Turn a terminal status into outputs or an error, reading `outputs.json`/`error.json` when needed. */
  private complete(status: TaskStatus): TaskStatus | Promise<TaskStatus> {
    if (status.phase !== "succeeded") return status;
    if (status.outputs !== undefined && !isLiteralRef(status.outputs)) return status;
    return this.completeAsync(status);
  }

  private async completeAsync(status: TaskStatus): Promise<TaskStatus> {
    if (status.outputs !== undefined) return { ...status, outputs: (await resolveLiteral(status.outputs, this.ctx.blobs)) as Json };
    const blobs = this.ctx.blobs;
    const outUri = blobs.uri(`${this.ctx.outputPrefix}/outputs.json`);
    if (await blobs.exists(outUri)) {
      const text = Buffer.from(await blobs.get(outUri)).toString("utf8");
      return { ...status, outputs: JSON.parse(text) as Json };
    }
    const errUri = blobs.uri(`${this.ctx.outputPrefix}/error.json`);
    if (await blobs.exists(errUri)) {
      const doc = JSON.parse(Buffer.from(await blobs.get(errUri)).toString("utf8")) as ErrorDocument;
      return { phase: "failed", error: doc };
    }
    if (isNullOutput(this.n.task)) return { ...status, outputs: null };
    return {
      phase: "failed",
      error: {
        code: ErrorCodes.SYSTEM,
        kind: "system",
        message: `plugin "${this.n.plugin.id}" reported success but wrote no outputs.json under ${this.ctx.outputPrefix}`,
      },
    };
  }
}

function isNullOutput(t: TaskSpec): boolean {
  const o = t.interface.output as { type?: unknown };
  return typeof o === "object" && o?.type === "null";
}

function isLiteralRef(v: unknown): boolean {
  return v !== null && typeof v === "object" && (v as { $tern?: unknown }).$tern === "literal";
}

/** A large output may come back as a reference to a literal in blob storage. */
export async function resolveLiteral(v: unknown, blobs: BlobStore): Promise<unknown> {
  if (isLiteralRef(v)) {
    const uri = (v as { uri: string }).uri;
    return JSON.parse(Buffer.from(await blobs.get(uri)).toString("utf8"));
  }
  return v;
}
