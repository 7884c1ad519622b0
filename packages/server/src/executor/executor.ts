/**
 * The durable executor: Flyte's propeller, as a class. Executions live in the
 * store; replicas share them through leases; each claimed execution is driven by
 * the core engine, its events appended to the store in order (see `run.ts`,
 * `event-log.ts`).
 *
 * Restart safety. Nothing that matters lives only in memory. After a crash (or on
 * another replica, once the lease expires) an execution is resumed from its stored
 * events: nodes that succeeded are reused and never run again; the attempt that was
 * in flight runs again under its own attempt id, and backends make that idempotent
 * (the process backend adopts the attempt's stored result or the worker still running
 * it; Kubernetes plugins find their pod by its deterministic name).
 *
 * Leases. Every `claimIntervalMs` a replica renews the leases it holds, then claims
 * queued executions and those whose lease expired. A replica that cannot renew stops
 * driving its executions (detaches them, leaving their work running) before its
 * leases can expire, and every event append is fenced by the lease: a replica that
 * lost an execution can neither run it nor write into its history.
 *
 * @example
 * const executor = await Executor.create({ store, blobs, workDir, leaseTtlMs: 15_000 });
 * executor.start();
 * const rec = await executor.launch({ project, domain, compiled, inputs: { n: 3 } });
 * // … kill -9 at any point; a new Executor on the same store resumes it.
 */
import {
  type BackendConfig,
  type BlobStore,
  type CompiledWorkflow,
  createEngine,
  ErrorCodes,
  type ExecutionEvent,
  type Json,
  type LocalEngine,
  newExecutionId,
  type SignalAnswer,
  TernError,
  type TernPlugin,
  validateCompiledWorkflow,
  validatedHere,
} from "@tern/core";
import type { ExecutionRecord } from "../store/executions.js";
import type { Store } from "../store/store.js";
import { checkInputs } from "./inputs.js";

/** Kept here too: callers import it from this module. */
export { bundleKey } from "./bundles.js";

import { type ExecutorLogger, silentLogger } from "./logger.js";
import { defaultOwner, isDeadLocalOwner } from "./owner.js";
import { ExecutionRun, type ExecutorActivity, logKey, type RunHost } from "./run.js";
import { EventWriter } from "./writer.js";

export interface ExecutorOptions {
  store: Store;
  /** Project directory: bundles are materialized under its `.tern/bundles`. */
  workDir: string;
  blobs: BlobStore;
  /** Backend for TypeScript tasks. @default "process" */
  backend?: string;
  plugins?: TernPlugin[];
  backendConfig?: BackendConfig;
  /**
   * This replica's name in leases. The default, `replica-<random>@<host>#<pid>.<start>`,
   * lets a replica on the same host take this one's executions over at once when this
   * process is gone (see `owner.ts`); a name given here relies on lease expiry.
   * @default a fresh name for this process
   */
  owner?: string;
  /** Take over at once the executions of dead replicas on this host (default owner names only). @default true */
  fastTakeover?: boolean;
  /** How long a claimed execution stays this replica's without renewal. @default 15000 */
  leaseTtlMs?: number;
  /** How often to renew leases and claim queued or orphaned executions; at most a third of the TTL. @default 1000 */
  claimIntervalMs?: number;
  /** Executions run at once by this replica. @default 1000 */
  maxExecutions?: number;
  /**
   * Executions claimed per round at most: smaller spreads a burst of new executions
   * over the replicas (each claims a share per round), larger starts them sooner. @default 100
   */
  claimBatch?: number;
  /** Worker processes of the process backend. */
  workers?: number;
  /** Where warnings go (a pino logger fits). @default silent */
  logger?: ExecutorLogger;
  /** Claims, hand-overs and ends, as they happen here. */
  onActivity?: (a: ExecutorActivity) => void;
  /** Engine polling bounds (see `EngineOptions`). */
  pollMinMs?: number;
  pollMaxMs?: number;
}

/** What to run. */
export interface LaunchRequest {
  id?: string;
  project: string;
  domain: string;
  compiled: CompiledWorkflow;
  inputs: Record<string, unknown>;
  launchPlan?: { name: string; version: string };
  recoverFrom?: string;
  parent?: { execution: string; node: string };
  /** `compiled` and `inputs` are what {@link checkLaunch} returned: not checked again. */
  checked?: boolean;
}

const TERMINAL = new Set(["succeeded", "failed", "aborted"]);

/** One spec document per compiled workflow object: the store digests each document once. */
const specs = new WeakMap<CompiledWorkflow, Json>();
function storedSpec(compiled: CompiledWorkflow): Json {
  let spec = specs.get(compiled);
  if (!spec) specs.set(compiled, (spec = { compiled } as unknown as Json));
  return spec;
}

/**
 * What {@link Executor.launch} checks before it creates anything: the compiled workflow
 * (unless this very object was validated in this process) and the inputs against its
 * interface, defaults filled in. Throws `TERN_E_SPEC_INVALID`, or `TERN_E_INPUT_INVALID`
 * naming the input; callers that create several executions check them all first.
 */
export function checkLaunch(
  compiled: CompiledWorkflow,
  inputs: Record<string, unknown>,
): { compiled: CompiledWorkflow; inputs: Record<string, unknown> } {
  // The registry's cached copy was validated at its first launch; an unknown object is checked here.
  const checked = validatedHere(compiled) ? compiled : validateCompiledWorkflow(compiled);
  return { compiled: checked, inputs: checkInputs(checked, inputs) };
}

export class Executor {
  readonly owner: string;
  readonly logger: ExecutorLogger;
  private readonly runs = new Map<string, ExecutionRun>();
  private readonly listeners = new Map<string, Set<(e: ExecutionEvent) => void>>();
  private readonly endListeners = new Set<(rec: ExecutionRecord) => void>();
  private readonly host: RunHost;
  private timer?: NodeJS.Timeout;
  private ticking?: Promise<void>;
  private again = false;
  private closed = false;
  private readonly leaseTtlMs: number;
  private readonly claimIntervalMs: number;
  private readonly maxExecutions: number;
  private readonly claimBatch: number;
  /** Local time until which this replica's leases surely hold (start of the last good renewal + TTL). */
  private leaseValidUntil = 0;

  private constructor(
    private readonly opts: ExecutorOptions,
    readonly local: LocalEngine,
  ) {
    this.owner = opts.owner ?? defaultOwner();
    this.logger = opts.logger ?? silentLogger;
    this.leaseTtlMs = opts.leaseTtlMs ?? 15_000;
    this.claimIntervalMs = opts.claimIntervalMs ?? Math.min(1000, Math.floor(this.leaseTtlMs / 3));
    this.maxExecutions = opts.maxExecutions ?? 1000;
    this.claimBatch = opts.claimBatch ?? 100;
    if (this.claimIntervalMs * 3 > this.leaseTtlMs) {
      throw new TernError(
        ErrorCodes.CONFIG,
        `claimIntervalMs (${this.claimIntervalMs}) must be at most a third of leaseTtlMs (${this.leaseTtlMs})`,
        { hint: "renewals must fit several times in a lease, or a slow round lets it expire" },
      );
    }
    this.host = {
      store: opts.store,
      owner: this.owner,
      blobs: opts.blobs,
      workDir: opts.workDir,
      engine: local.engine,
      logger: this.logger,
      writer: new EventWriter(opts.store),
      listeners: (id) => this.listeners.get(id),
      activity: (a) => opts.onActivity?.({ ...a, owner: this.owner, at: Date.now() }),
      ended: (rec) => {
        for (const l of this.endListeners) {
          try {
            l(rec);
          } catch (e) {
            this.logger.warn(
              { execution: rec.id, err: (e as Error).message },
              "an execution-end listener failed",
            );
          }
        }
      },
    };
  }

  static async create(opts: ExecutorOptions): Promise<Executor> {
    const local = await createEngine({
      workDir: opts.workDir,
      backend: opts.backend ?? "process",
      plugins: opts.plugins,
      backendConfig: opts.backendConfig,
      blobs: opts.blobs,
      catalog: opts.store.catalog,
      workers: opts.workers,
      // Worker processes outlive a crashed server and their attempts are adopted on resume.
      durable: true,
      ...(opts.pollMinMs ? { pollMinMs: opts.pollMinMs } : {}),
      ...(opts.pollMaxMs ? { pollMaxMs: opts.pollMaxMs } : {}),
    });
    return new Executor(opts, local);
  }

  get store(): Store {
    return this.opts.store;
  }

  /** Ids of the executions this replica drives now. */
  get active(): string[] {
    return [...this.runs.values()].filter((r) => !r.over).map((r) => r.id);
  }

  /** Start claiming work: queued executions and those of replicas that stopped renewing. */
  start(): void {
    if (this.timer || this.closed) return;
    this.timer = setInterval(() => void this.tick(), this.claimIntervalMs);
    void this.tick();
  }

  /**
   * Create an execution: inputs are checked against the workflow's interface (a
   * `TERN_E_INPUT_INVALID` error names the input), then it is stored as queued and
   * claimed by a replica. With `id`, a second launch of the same id is refused with
   * `TERN_E_CONFLICT` (which makes a retried launch idempotent).
   */
  async launch(req: LaunchRequest): Promise<ExecutionRecord> {
    const { compiled, inputs } = req.checked
      ? { compiled: req.compiled, inputs: req.inputs }
      : checkLaunch(req.compiled, req.inputs);
    const id = req.id ?? newExecutionId();
    const wf = compiled.workflow.id;
    // With room and a lease that is current, the new execution is created already ours and
    // started at once: no claim round, no queued → running write. Right after start() the
    // first round decides whether this replica's leases are current.
    if (this.leaseValidUntil === 0 && this.ticking) await this.ticking;
    const now = Date.now();
    const takeNow =
      this.timer !== undefined &&
      !this.closed &&
      this.runs.size < this.maxExecutions &&
      now < this.leaseValidUntil - Math.min(this.claimIntervalMs, this.leaseTtlMs / 3);
    // Group-committed with the other executions and event batches written meanwhile.
    const record = await this.host.writer.create({
      id,
      project: req.project,
      domain: req.domain,
      workflow: { name: wf.name, version: wf.version },
      ...(req.launchPlan ? { launchPlan: req.launchPlan } : {}),
      ...(req.parent ? { parent: req.parent } : {}),
      ...(req.recoverFrom ? { recoverFrom: req.recoverFrom } : {}),
      phase: takeNow ? "running" : "queued",
      ...(takeNow ? { owner: this.owner, leaseExpiresAt: now + this.leaseTtlMs, startedAt: now } : {}),
      inputs: inputs as Json,
      spec: storedSpec(compiled),
    });
    if (takeNow && !this.closed) this.startRun(record, true);
    else if (this.timer) void this.tick();
    return record;
  }

  /**
   * Resolves once the first claim round after {@link start} is done and every execution it
   * took is under way again (its engine started), or after `timeoutMs`. A restarting
   * server waits for this before loading its API, so resuming stored work does not queue
   * behind module loading.
   */
  async resumed(timeoutMs = 2000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    });
    const round = (async () => {
      while (this.leaseValidUntil === 0 && this.ticking) await this.ticking;
      await Promise.all([...this.runs.values()].map((r) => r.started));
    })();
    try {
      await Promise.race([round, deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stop an execution: at once if it runs here, else its owner stops it at its next round. */
  async terminate(id: string, reason = "terminated by request"): Promise<ExecutionRecord> {
    const rec = await this.mustGet(id);
    if (TERMINAL.has(rec.phase)) return rec;
    const r = this.runs.get(id);
    if (r?.handle && !r.over) {
      await r.handle.abort(reason);
      await r.done;
    } else if (rec.phase === "queued" && !rec.owner) {
      const done = await this.store.executions.update(
        id,
        {
          phase: "aborted",
          endedAt: Date.now(),
          error: { code: ErrorCodes.ABORTED, kind: "user", message: reason },
        },
        { phases: ["queued"] },
      );
      if (!done)
        await this.store.executions.update(id, { phase: "aborting" }, { phases: ["queued", "running"] });
    } else {
      await this.store.executions.update(id, { phase: "aborting" }, { phases: ["queued", "running"] });
    }
    return this.mustGet(id);
  }

  /** Answer a gate. Signals are set once. */
  async signal(id: string, node: string, answer: SignalAnswer, by?: string): Promise<void> {
    await this.mustGet(id);
    await this.store.signals.set(id, node, "signal", answer as Json, { setBy: by });
    this.runs.get(id)?.wake.get(node)?.();
  }

  /**
   * Live events of an execution running on this replica. First the listener gets the
   * events emitted before now and not stored yet (with the store's, it misses none); with
   * `after`, every event after that seq instead, stored or not, when this replica drives
   * the execution (see {@link drives}): then nothing needs reading from the store.
   */
  subscribe(id: string, listener: (e: ExecutionEvent) => void, after?: number): () => void {
    let set = this.listeners.get(id);
    if (!set) this.listeners.set(id, (set = new Set()));
    set.add(listener);
    const run = this.runs.get(id);
    if (run?.driving && run.log) {
      const past = after === undefined ? run.log.queued() : run.history.filter((e) => e.seq > after);
      for (const e of past) {
        try {
          listener(e);
        } catch {
          // a listener's failure is its own
        }
      }
    }
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.listeners.get(id) === set) this.listeners.delete(id);
    };
  }

  /**
   * Whether this replica drives the execution now: then {@link subscribe} sees every event
   * after those stored, and watchers need not read the store for more.
   */
  drives(id: string): boolean {
    return this.runs.get(id)?.driving === true;
  }

  /**
   * For an execution this replica drives now: resolves when the run is over, with the
   * terminal record it stored, or undefined when it stopped driving the execution without
   * ending it (detached). Undefined when it does not drive the execution.
   */
  ended(id: string): Promise<ExecutionRecord | undefined> | undefined {
    const run = this.runs.get(id);
    if (!run?.driving) return undefined;
    return run.done.then(() => (TERMINAL.has(run.record.phase) ? run.record : undefined));
  }

  /** The record of an execution this replica drives now, as it knows it (no store read). */
  record(id: string): ExecutionRecord | undefined {
    const run = this.runs.get(id);
    return run?.driving ? run.record : undefined;
  }

  /** Called with the record of every execution that ends on this replica. */
  onExecutionEnd(listener: (rec: ExecutionRecord) => void): () => void {
    this.endListeners.add(listener);
    return () => this.endListeners.delete(listener);
  }

  /** Log lines of a node's attempt: live, or as stored when the attempt ended. */
  async logs(id: string, node: string, attempt?: number): Promise<string[]> {
    const r = this.runs.get(id);
    if (r?.handle) {
      const live = r.handle.logs(node, attempt);
      if (live.length) return [...live];
    }
    const rec = await this.mustGet(id);
    const n = attempt ?? (await this.store.nodes.get(id, node))?.attempts ?? 1;
    const uri = this.opts.blobs.uri(logKey(rec, node, n));
    if (!(await this.opts.blobs.exists(uri))) return [];
    return Buffer.from(await this.opts.blobs.get(uri))
      .toString("utf8")
      .split("\n")
      .filter(Boolean);
  }

  /**
   * Shut down cleanly: stop claiming, detach every execution (its queued events are
   * written, its work keeps running), give the leases back so another replica (or the
   * next start) resumes them at once, and let the process backend's busy workers finish
   * their attempts on their own. Nothing is aborted.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await this.ticking;
    const runs = [...this.runs.values()];
    for (const r of runs) r.detach("the executor is shutting down", true);
    await Promise.all(runs.map((r) => r.done));
    const backend = this.local.registry.get("process") as { handOver?: () => Promise<void> } | undefined;
    await backend?.handOver?.();
    await this.local.close();
  }

  // -------------------------------------------------------------------------

  private async mustGet(id: string): Promise<ExecutionRecord> {
    const rec = await this.store.executions.get(id);
    if (!rec) {
      throw new TernError(ErrorCodes.NOT_FOUND, `execution "${id}" does not exist`, {
        hint: "list executions with `tern executions list`",
        details: { execution: id },
      });
    }
    return rec;
  }

  /** One round: renew leases (or give up executions that can no longer be ours), claim, relay terminations. */
  private tick(): Promise<void> {
    if (this.closed) return this.ticking ?? Promise.resolve();
    if (this.ticking) {
      this.again = true;
      return this.ticking;
    }
    this.ticking = (async () => {
      try {
        do {
          this.again = false;
          if (await this.renew()) await this.claim();
        } while (this.again && !this.closed);
      } finally {
        this.ticking = undefined;
      }
    })();
    return this.ticking;
  }

  /** Renew this replica's leases; false when that failed (then nothing new is claimed). */
  private async renew(): Promise<boolean> {
    const t0 = Date.now();
    let held: Set<string>;
    try {
      held = new Set(await this.store.executions.renewLeases(this.owner, this.leaseTtlMs));
    } catch (e) {
      this.logger.warn({ owner: this.owner, err: (e as Error).message }, "renewing leases failed");
      // Give executions up before their leases can expire, so two replicas never drive one.
      const margin = Math.min(this.claimIntervalMs, this.leaseTtlMs / 3);
      if (Date.now() >= this.leaseValidUntil - margin) {
        for (const r of this.runs.values()) r.detach("the lease could not be renewed in time", false);
      }
      return false;
    }
    this.leaseValidUntil = t0 + this.leaseTtlMs;
    for (const r of this.runs.values()) {
      if (!r.over && r.claimedAt < t0 && !held.has(r.id))
        r.detach("the lease is held by another replica now", false);
    }
    return true;
  }

  private async claim(): Promise<void> {
    if (this.closed) return;
    try {
      const busy = [...this.runs.values()].filter((r) => !r.over).length;
      let free = Math.min(this.maxExecutions - busy, this.claimBatch);
      const claimed: ExecutionRecord[] = [];
      if (free > 0 && this.opts.fastTakeover !== false) {
        // Executions of a replica on this host whose process is gone: no need to wait for the lease.
        for (const owner of await this.store.executions.activeOwners()) {
          if (free <= 0 || owner === this.owner || !isDeadLocalOwner(owner)) continue;
          const taken = await this.store.executions.transfer(owner, this.owner, this.leaseTtlMs, free);
          if (taken.length)
            this.logger.info(
              { from: owner, executions: taken.length },
              "took over the executions of a dead replica on this host",
            );
          claimed.push(...taken);
          free -= taken.length;
        }
      }
      if (free > 0) claimed.push(...(await this.store.executions.claim(this.owner, this.leaseTtlMs, free)));
      if (claimed.length) {
        for (const rec of claimed) {
          const prior = this.runs.get(rec.id);
          if (prior && !prior.over) continue; // ours all along: our own lease had run out
          this.startRun(rec);
        }
      }
      if (this.runs.size) {
        const { items } = await this.store.executions.list({ phase: "aborting", limit: 500 });
        for (const rec of items) {
          const r = this.runs.get(rec.id);
          if (r?.handle && !r.over) void r.handle.abort("terminated by request");
        }
      }
    } catch (e) {
      // A store hiccup: the next round tries again; leases have slack for it.
      this.logger.warn({ owner: this.owner, err: (e as Error).message }, "claiming executions failed");
    }
  }

  /** Drive a claimed execution here; `created` when it was created already ours (it has no events yet). */
  private startRun(rec: ExecutionRecord, created = false): void {
    if (this.closed) {
      void this.store.executions.release(rec.id, this.owner).catch(() => false);
      return;
    }
    const run = new ExecutionRun(this.host, rec, created);
    this.runs.set(rec.id, run);
    void run.done.finally(() => {
      if (this.runs.get(rec.id) === run) this.runs.delete(rec.id);
    });
  }
}
