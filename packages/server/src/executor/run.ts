/**
 * One claimed execution on one replica: resume it from its stored event log, drive it
 * with the core engine, append its events (fenced by the lease), and record its end.
 *
 * A run ends in one of three ways: the execution finished (its record is terminal);
 * it was detached (the lease was lost, or the executor shuts down: the engine stops
 * following it but its work keeps running, for the next owner to re-attach to); or it
 * failed to start (recorded as a failed execution).
 */
import {
  attemptId,
  type BlobStore,
  type CompiledWorkflow,
  type Engine,
  ErrorCodes,
  type ErrorDocument,
  type ExecutionEvent,
  type ExecutionHandle,
  type ExecutionResult,
  type Json,
  type SignalAnswer,
  type SignalProvider,
  TernError,
  toErrorDocument,
} from "@tern/core";
import type { ExecutionRecord } from "../store/executions.js";
import type { Store } from "../store/store.js";
import { materializeBundles } from "./bundles.js";
import { EventLog } from "./event-log.js";
import type { ExecutorLogger } from "./logger.js";
import { type Replayed, replay } from "./replay.js";
import type { EventWriter } from "./writer.js";

/** The spec document stored with an execution. */
export interface StoredSpec {
  compiled: CompiledWorkflow;
}

/** Something that happened to an execution on this replica (for logs, metrics and tests). */
export interface ExecutorActivity {
  type: "claimed" | "detached" | "finished" | "released";
  execution: string;
  owner: string;
  at: number;
  reason?: string;
}

/** What a run needs from its executor. */
export interface RunHost {
  readonly store: Store;
  readonly owner: string;
  readonly blobs: BlobStore;
  readonly workDir: string;
  readonly engine: Engine;
  readonly logger: ExecutorLogger;
  /** Group commit of every run's event batches. */
  readonly writer: EventWriter;
  /** Live listeners of an execution's events. */
  listeners(execution: string): Iterable<(e: ExecutionEvent) => void> | undefined;
  activity(a: Omit<ExecutorActivity, "owner" | "at">): void;
  /** The execution's record became terminal here. */
  ended(rec: ExecutionRecord): void;
}

const NODE_TERMINAL = new Set(["succeeded", "failed", "skipped", "aborted"]);
/** Node phases that carry the outcome of the attempt they name. */
const ATTEMPT_OUTCOMES = new Set(["succeeded", "failed"]);
const EVENTS_PAGE = 10_000;
/** Rows of the node projection rewritten on resume: the last owner may have died before writing them. */
const PROJECTION_TAIL = 2000;
const PROJECTION_DELAY_MS = 1000;

export class ExecutionRun {
  readonly id: string;
  /** Local time of the claim: a lease renewal that started earlier cannot speak for this run. */
  readonly claimedAt = Date.now();
  handle?: ExecutionHandle;
  log?: EventLog;
  /**
   * Every event of the execution, stored or not, in order, once the run drives it (the
   * stored ones it resumed from, then each it emitted): watchers of an execution driven
   * here read its history from memory, not from the store.
   */
  history: ExecutionEvent[] = [];
  /** Gates waiting for a signal, woken by a local `signal()`. */
  readonly wake = new Map<string, () => void>();
  /** Settles when the run is over (finished, detached or failed to start). */
  readonly done: Promise<void>;
  /** Settles once the engine drives the execution (its work is under way again), or the run is over. */
  readonly started: Promise<void>;
  private markStarted!: () => void;
  private detached?: { reason: string; flush: boolean };
  private settled = false;
  /** Recording its outcome: past the point where detaching means anything. */
  private finishing = false;
  /** Its terminal record was written, which gave the execution up too. */
  private released = false;

  /**
   * @param created the execution was created already claimed by this replica: it has no
   *   events and its record says `running` (see `Executor.launch`).
   */
  constructor(
    private readonly host: RunHost,
    private rec: ExecutionRecord,
    private readonly created = false,
  ) {
    this.id = rec.id;
    this.started = new Promise((resolve) => {
      this.markStarted = resolve;
    });
    this.done = this.run();
    void this.done.finally(() => this.markStarted());
  }

  /** The execution's record as this run knows it: terminal once the run recorded its end. */
  get record(): ExecutionRecord {
    return this.rec;
  }

  /** Whether the run is over. */
  get over(): boolean {
    return this.settled;
  }

  /** Driving the execution now: its every event reaches this replica's listeners. */
  get driving(): boolean {
    return !this.settled && !this.detached && !this.log?.lost;
  }

  /**
   * Stop driving the execution, leaving its work running. `flush` keeps writing the
   * events already queued (a clean shutdown, the lease is still ours); otherwise they
   * are dropped (the lease is gone: the next owner rebuilds them from what is stored).
   */
  detach(reason: string, flush: boolean): void {
    if (this.settled || this.detached || this.finishing) return;
    this.detached = { reason, flush };
    this.host.logger.info({ execution: this.id, reason }, "detaching execution");
    this.handle?.detach(reason);
    if (!flush) this.log?.stop();
  }

  // -------------------------------------------------------------------------

  /** The detach request, read fresh (a method: not narrowed across awaits). */
  private stopping(): { reason: string; flush: boolean } | undefined {
    return this.detached;
  }

  private async run(): Promise<void> {
    const { host } = this;
    host.activity({ type: "claimed", execution: this.id });
    let outcome: ExecutorActivity["type"] = "finished";
    let reason: string | undefined;
    try {
      await this.drive();
      const detached = this.stopping();
      if (detached) {
        outcome = "detached";
        reason = detached.reason;
        if (detached.flush) await this.log?.drain();
      } else if (this.log?.lost) {
        outcome = "detached";
        reason = this.log.lost.message;
      }
    } catch (e) {
      const detached = this.stopping();
      if (detached || this.log?.lost) {
        outcome = "detached";
        reason = detached?.reason ?? this.log?.lost?.message;
      } else {
        reason = (e as Error).message;
        await this.failToStart(e).catch((err) => {
          host.logger.error(
            { execution: this.id, err: (err as Error).message },
            "could not record the execution's failure",
          );
        });
      }
    } finally {
      this.settled = true;
      for (const w of this.wake.values()) w();
      const released =
        this.released || (await host.store.executions.release(this.id, host.owner).catch(() => false));
      host.activity({ type: outcome, execution: this.id, ...(reason ? { reason } : {}) });
      if (released) host.activity({ type: "released", execution: this.id });
    }
  }

  private async drive(): Promise<void> {
    const { host } = this;
    const { store, owner } = host;
    const t0 = Date.now();
    const { compiled } = this.rec.spec as unknown as StoredSpec;
    await materializeBundles(compiled, host.workDir, host.blobs);
    // A queued execution that never started has no events: nothing to read.
    const queued = this.rec.phase === "queued" && this.rec.startedAt === undefined;
    const fresh = this.created || queued;
    const stored = fresh ? [] : await readAllEvents(store, this.id);
    this.history = stored;
    const t1 = Date.now();
    const state = replay(stored);
    if (this.stopping()) return;
    const log = new EventLog({
      store,
      execution: this.id,
      owner,
      logger: host.logger,
      onLost: (e) => this.detach(`lease lost: ${e.message}`, false),
      writer: host.writer,
      onStored: (events) => {
        // Attempts whose outcome is stored now: backends may drop what they kept to adopt them.
        let done: string[] | undefined;
        for (const e of events) {
          if (e.node && e.attempt !== undefined && ATTEMPT_OUTCOMES.has(e.phase))
            (done ??= []).push(attemptId(this.id, e.node, e.attempt));
        }
        if (done) host.engine.recorded(done);
      },
    });
    this.log = log;
    if (stored.length) {
      // The last owner may have stopped before writing the rows of its last batch: rewrite
      // them, a little later (the projection serves the API; resuming the work comes first).
      const tail = stored.slice(-PROJECTION_TAIL);
      setTimeout(() => {
        for (const e of tail) if (e.node) log.projection.mark(e.node);
        log.writeProjectionSoon();
      }, PROJECTION_DELAY_MS).unref();
    }
    if (state.terminal) {
      // It ended, but the record was not updated before the last owner stopped.
      for (const e of stored) log.projection.apply(e, false);
      await this.finish(state.terminal);
      return;
    }
    if (this.rec.phase === "aborting") {
      await this.endAborted(state.lastSeq, "terminated by request");
      return;
    }
    if (queued) {
      const startedAt = Date.now();
      const marked = await store.executions.update(
        this.id,
        { phase: "running", startedAt },
        { owner, phases: ["queued"] },
      );
      // The record end listeners get is this one: it says when the execution started.
      if (marked) this.rec = { ...this.rec, phase: "running", startedAt };
      else {
        const now = await store.executions.get(this.id);
        if (now?.owner !== owner) return;
        if (now.phase === "aborting") {
          await this.endAborted(state.lastSeq, "terminated by request");
          return;
        }
      }
    }
    const reuse = await this.reuseMap(state);
    let seq = state.lastSeq;
    // Who drives the execution from here, in its own history: each owner change is visible
    // (to live watchers too).
    this.onEvent({
      seq: ++seq,
      at: Date.now(),
      execution: this.id,
      phase: "running",
      message: stored.length ? `resumed by ${owner} after seq ${state.lastSeq}` : `claimed by ${owner}`,
    });
    const handle = host.engine.start(compiled, this.rec.inputs as Record<string, unknown>, {
      id: this.id,
      startSeq: seq,
      reuse: (node) => reuse.get(node),
      resume: (node) => state.nodes.get(node),
      fresh,
      onEvent: (e) => this.onEvent(e),
      signals: this.signalProvider(),
      ...(this.rec.parent ? { parent: this.rec.parent } : {}),
    });
    this.handle = handle;
    this.markStarted();
    // The projection of what was stored (its rows are written only with later batches,
    // which flush after this synchronous step): built once the engine is under way.
    for (const e of stored) log.projection.apply(e, false);
    const early = this.stopping();
    if (early) handle.detach(early.reason);
    if (stored.length) {
      host.logger.info(
        {
          execution: this.id,
          events: stored.length,
          succeeded: state.succeeded.size,
          readMs: t1 - t0,
          startMs: Date.now() - t1,
        },
        "resumed execution from its event log",
      );
    }
    const result = await handle.result;
    if (this.stopping() || log.lost) return;
    // Its last events and its end are stored together (see EventLog.end).
    await this.finish(result);
  }

  /** Succeeded nodes: this execution's own (resumed, silently), then a recovered execution's. */
  private async reuseMap(state: Replayed): Promise<Map<string, { outputs: unknown; resumed?: boolean }>> {
    const reuse = new Map<string, { outputs: unknown; resumed?: boolean }>();
    for (const [node, v] of state.succeeded) reuse.set(node, { outputs: v.outputs, resumed: true });
    if (this.rec.recoverFrom) {
      const prior = replay(await readAllEvents(this.host.store, this.rec.recoverFrom));
      for (const [node, v] of prior.succeeded) if (!reuse.has(node)) reuse.set(node, { outputs: v.outputs });
    }
    return reuse;
  }

  private onEvent(e: ExecutionEvent): void {
    this.history.push(e);
    this.log?.push(e);
    const ls = this.host.listeners(this.id);
    if (ls) {
      for (const l of ls) {
        try {
          l(e);
        } catch {
          // a listener's failure is its own
        }
      }
    }
    if (e.node && NODE_TERMINAL.has(e.phase) && this.handle) void this.saveLog(e.node, e.attempt);
  }

  private async saveLog(node: string, attempt?: number): Promise<void> {
    const lines = this.handle?.logs(node, attempt) ?? [];
    if (!lines.length) return;
    await this.host.blobs
      .put(logKey(this.rec, node, attempt ?? 1), `${lines.join("\n")}\n`)
      .catch(() => undefined);
  }

  /** Record the outcome on the execution, while this replica holds it. */
  private async finish(result: Pick<ExecutionResult, "phase" | "outputs" | "error">): Promise<void> {
    this.finishing = true;
    const patch = {
      phase: result.phase,
      outputs: result.phase === "succeeded" ? ((result.outputs ?? null) as Json) : null,
      error: (result.error as ErrorDocument | undefined) ?? null,
      endedAt: Date.now(),
    };
    // With the log's last batch (and after every event before it); without a log, on its own.
    const ok = this.log
      ? await this.log.end(patch)
      : await this.host.store.executions.update(this.id, patch, { owner: this.host.owner, release: true });
    if (!ok) return;
    this.released = true;
    this.rec = {
      ...this.rec,
      phase: patch.phase,
      endedAt: patch.endedAt,
      updatedAt: Math.max(this.rec.updatedAt, patch.endedAt),
      ...(patch.outputs !== null ? { outputs: patch.outputs } : {}),
      ...(patch.error ? { error: patch.error } : {}),
    };
    this.host.ended(this.rec);
  }

  /** An execution terminated while no replica ran it: close its log and record it aborted. */
  private async endAborted(lastSeq: number, message: string): Promise<void> {
    const error: ErrorDocument = { code: ErrorCodes.ABORTED, kind: "user", message };
    this.onEvent({ seq: lastSeq + 1, at: Date.now(), execution: this.id, phase: "aborted", error });
    await this.finish({ phase: "aborted", error });
  }

  /** The execution could not start (a missing bundle, an invalid spec): it fails, with an event saying why. */
  private async failToStart(e: unknown): Promise<void> {
    const error = toErrorDocument(e, "system");
    this.host.logger.warn({ execution: this.id, err: error.message }, "execution failed to start");
    const { store, owner } = this.host;
    // Whatever the log still holds is dropped: the failure event follows what is stored.
    this.log?.stop();
    this.log = undefined;
    const last = await store.events.lastSeq(this.id);
    await store.events.append(this.id, [{ seq: last + 1, at: Date.now(), phase: "failed", error }], {
      owner,
    });
    await this.finish({ phase: "failed", error });
  }

  /** Gates wait for a signal in the store; a local `signal()` wakes them at once, other replicas' are polled. */
  private signalProvider(): SignalProvider {
    return async (req) => {
      for (;;) {
        const got = await this.host.store.signals.get(this.id, req.node, "signal");
        if (got) return got.value as SignalAnswer;
        if (req.signal.aborted || this.settled) throw new TernError(ErrorCodes.ABORTED, "gate wait stopped");
        await new Promise<void>((resolve) => {
          const t = setTimeout(done, 1000);
          const wake = this.wake;
          function done() {
            clearTimeout(t);
            wake.delete(req.node);
            req.signal.removeEventListener("abort", done);
            resolve();
          }
          wake.set(req.node, done);
          req.signal.addEventListener("abort", done, { once: true });
        });
      }
    };
  }
}

/** Every stored event of an execution, in order. */
export async function readAllEvents(store: Store, id: string): Promise<ExecutionEvent[]> {
  const out: ExecutionEvent[] = [];
  for (let after = 0; ; ) {
    const page = await store.events.list(id, after, EVENTS_PAGE);
    for (const e of page) out.push(e);
    if (page.length < EVENTS_PAGE) return out;
    after = page[page.length - 1].seq;
  }
}

/** Blob key of a node attempt's saved log. */
export function logKey(
  rec: Pick<ExecutionRecord, "project" | "domain" | "id">,
  node: string,
  attempt: number,
): string {
  return `executions/${rec.project}/${rec.domain}/${rec.id}/${node}/${attempt}/log.txt`;
}
