/**
 * Shared test helpers: temp dirs and a scripted fake backend plugin that talks to the
 * engine only through the `BackendPlugin` contract.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import {
  type BackendLimits,
  type BackendPlugin,
  BackendRegistry,
  CONTRACT_VERSION,
  type Compiled,
  Engine,
  type EngineOptions,
  type ErrorDocument,
  type ExecutionEvent,
  type Json,
  LocalBlobStore,
  type TaskContext,
  type TaskStatus,
} from "@tern/core";

const dirs: string[] = [];

/** A fresh temp directory, removed by {@link cleanupTempDirs}. */
export function tempDir(prefix = "tern-test-"): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  dirs.push(d);
  return d;
}

export function cleanupTempDirs(): void {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
}

/** What one attempt of a node does, as the fake plugin reports it through `check`. */
export type Step =
  /**
   * Report `running` for `runningChecks` checks (default 1) and until `until()` holds,
   * then succeed with `outputs`.
   */
  | { do: "succeed"; outputs?: Json; runningChecks?: number; until?: () => boolean }
  /** Write `outputs.json` under `ctx.outputPrefix` at launch and report success without outputs. */
  | { do: "succeed-via-blob"; outputs: Json }
  /** Write `error.json` under `ctx.outputPrefix` at launch and report success without outputs. */
  | { do: "error-via-blob"; error: ErrorDocument }
  /** Report success without outputs and write nothing. */
  | { do: "succeed-empty" }
  /** Fail (after `until()` holds, if given). */
  | { do: "fail"; kind: "user" | "system"; message?: string; until?: () => boolean }
  | { do: "preempt" }
  /** Stay `running` forever (until aborted). */
  | { do: "hang" }
  /** `check` throws `times` times (default: forever), then succeeds with `outputs`. */
  | { do: "check-throws"; times?: number; outputs?: Json }
  /** `launch` throws. */
  | { do: "launch-throws"; message?: string };

export interface FakeCall {
  op: "launch" | "check" | "abort" | "finalize";
  node: string;
  attempt: number;
  interruptible: boolean;
}

type FakeState = { attempt: string; node: string; n: number };

/**
 * A backend plugin whose behaviour per node and attempt is scripted. It records every
 * call, and how many attempts are in flight at once (launched, not finalized).
 */
export class FakePlugin implements BackendPlugin<FakeState> {
  readonly contractVersion = CONTRACT_VERSION;
  readonly calls: FakeCall[] = [];
  /** Highest number of attempts between launch and finalize at the same time. */
  maxInFlight = 0;
  private inFlight = 0;
  private readonly checks = new Map<string, number>();
  /** Resolved when an attempt is launched, per `node/attempt`. */
  private readonly launchedWaiters = new Map<string, (() => void)[]>();
  /** `abort` waits this long (ms) before returning, to expose ordering bugs. */
  abortDelayMs = 0;

  constructor(
    private readonly script: (node: string, attempt: number) => Step,
    readonly id = "fake",
    readonly taskTypes: readonly string[] = ["fake"],
    readonly limits?: BackendLimits,
  ) {}

  private record(op: FakeCall["op"], ctx: TaskContext): void {
    this.calls.push({
      op,
      node: ctx.node.id,
      attempt: ctx.attempt.number,
      interruptible: ctx.attempt.interruptible,
    });
  }

  /** Calls of one kind, optionally for one node. */
  ops(op: FakeCall["op"], node?: string): FakeCall[] {
    return this.calls.filter((c) => c.op === op && (node === undefined || c.node === node));
  }

  /** Resolves once the node's attempt has been launched. */
  launched(node: string, attempt = 1): Promise<void> {
    if (this.calls.some((c) => c.op === "launch" && c.node === node && c.attempt === attempt))
      return Promise.resolve();
    return new Promise((r) => {
      const k = `${node}/${attempt}`;
      this.launchedWaiters.set(k, [...(this.launchedWaiters.get(k) ?? []), r]);
    });
  }

  async launch(ctx: TaskContext): Promise<FakeState> {
    this.record("launch", ctx);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    const step = this.script(ctx.node.id, ctx.attempt.number);
    if (step.do === "launch-throws") throw new Error(step.message ?? "cannot launch");
    if (step.do === "succeed-via-blob") {
      await ctx.blobs.put(`${ctx.outputPrefix}/outputs.json`, JSON.stringify(step.outputs));
    }
    if (step.do === "error-via-blob") {
      await ctx.blobs.put(`${ctx.outputPrefix}/error.json`, JSON.stringify(step.error));
    }
    const k = `${ctx.node.id}/${ctx.attempt.number}`;
    for (const w of this.launchedWaiters.get(k) ?? []) w();
    this.launchedWaiters.delete(k);
    return { attempt: ctx.attempt.id, node: ctx.node.id, n: ctx.attempt.number };
  }

  async check(ctx: TaskContext, state: FakeState): Promise<TaskStatus> {
    this.record("check", ctx);
    const seen = (this.checks.get(state.attempt) ?? 0) + 1;
    this.checks.set(state.attempt, seen);
    const step = this.script(state.node, state.n);
    switch (step.do) {
      case "succeed":
        if (seen <= (step.runningChecks ?? 1) || (step.until && !step.until())) return { phase: "running" };
        return { phase: "succeeded", outputs: step.outputs ?? null };
      case "succeed-via-blob":
      case "error-via-blob":
      case "succeed-empty":
        return { phase: "succeeded" };
      case "fail":
        if (step.until && !step.until()) return { phase: "running" };
        return {
          phase: "failed",
          error: {
            code: step.kind === "user" ? "TERN_E_TASK_FAILED" : "TERN_E_SYSTEM",
            kind: step.kind,
            message: step.message ?? `${step.kind} failure`,
          },
        };
      case "preempt":
        return {
          phase: "failed",
          preempted: true,
          error: { code: "TERN_E_SYSTEM", kind: "system", message: "preempted" },
        };
      case "hang":
        return { phase: "running" };
      case "check-throws":
        if (step.times === undefined || seen <= step.times) throw new Error(`check failed (${seen})`);
        return { phase: "succeeded", outputs: step.outputs ?? null };
      case "launch-throws":
        throw new Error("unreachable");
    }
  }

  async abort(ctx: TaskContext, _state: FakeState): Promise<void> {
    this.record("abort", ctx);
    if (this.abortDelayMs) await new Promise((r) => setTimeout(r, this.abortDelayMs));
  }

  async finalize(ctx: TaskContext, _state: FakeState): Promise<void> {
    this.record("finalize", ctx);
    this.inFlight--;
  }
}

/** An engine with only the given plugins, a blob store in a temp dir and fast polling. */
export function fakeEngine(plugins: BackendPlugin<any>[], opts: Partial<EngineOptions> = {}): Engine {
  const dir = tempDir();
  return new Engine({
    registry: new BackendRegistry(plugins),
    blobs: new LocalBlobStore(path.join(dir, "blobs")),
    workDir: dir,
    pollMinMs: 1,
    pollMaxMs: 5,
    random: () => 0.5,
    ...opts,
  });
}

/** Phases of one node, in event order. */
export function nodePhases(events: readonly ExecutionEvent[], node: string): string[] {
  return events.filter((e) => e.node === node).map((e) => e.phase);
}

/** Execution-level events (no node). */
export function executionPhases(events: readonly ExecutionEvent[]): string[] {
  return events.filter((e) => e.node === undefined).map((e) => e.phase);
}

/** Resolves when `pred` holds for an event (past or future) of the stream fed to `onEvent`. */
export class EventWatcher {
  readonly events: ExecutionEvent[] = [];
  private waiters: { pred: (e: ExecutionEvent) => boolean; resolve: () => void }[] = [];
  readonly onEvent = (e: ExecutionEvent): void => {
    this.events.push(e);
    this.waiters = this.waiters.filter((w) => {
      if (!w.pred(e)) return true;
      w.resolve();
      return false;
    });
  };
  when(pred: (e: ExecutionEvent) => boolean): Promise<void> {
    if (this.events.some(pred)) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ pred, resolve }));
  }
}

export type { Compiled };
