/**
 * `inline`: runs TypeScript task bodies in the engine's own process. The fastest
 * home, for `tern run` and embedding; its work cannot outlive the process, so a
 * restarted engine sees such attempts as lost (a system error, retried).
 */
// tsyringe needs the Reflect polyfill before it loads: keep this import first.
import "reflect-metadata";
import { inject, injectable } from "tsyringe";
import type { BlobStore } from "../blob.js";
import type { AnyTask } from "../dsl.js";
import { ErrorCodes } from "../errors.js";
import { type ExecuteEnv, executeTask } from "../execute/run-task.js";
import type { Json } from "../json.js";
import {
  type BackendPlugin,
  CONTRACT_VERSION,
  type TaskContext,
  type TaskLogger,
  type TaskStatus,
} from "../plugin.js";
import type { TaskSpec } from "../spec.js";
import { createToken, type Token } from "../tokens.js";

/** Finds the body of a TypeScript task from its spec. */
export type TaskResolver = (spec: TaskSpec) => AnyTask | Promise<AnyTask>;
export const TASK_RESOLVER: Token<TaskResolver> = createToken("tern.task-resolver");

interface Running {
  done: boolean;
  status?: TaskStatus;
  /** The body's `ctx.signal`, made only if the body reads it. */
  ac?: AbortController;
  aborted?: boolean;
  /** Finalized: forgotten at the next sweep, and unknown to `check` from now on. */
  gone?: boolean;
}

/**
 * Attempts by id. Finalized entries are not deleted one by one: on V8, a string-keyed Map
 * under constant set/delete churn keeps rehashing, and its chain of discarded tables keeps
 * young objects alive through scavenges (at 512 items in flight, most of a no-op map's time
 * went to the garbage collector). They are marked, and swept in bulk once they outnumber
 * the live ones.
 */
class AttemptTable {
  private map = new Map<string, Running>();
  private gone = 0;

  get(id: string): Running | undefined {
    const r = this.map.get(id);
    return r && !r.gone ? r : undefined;
  }

  set(id: string, r: Running): void {
    this.map.set(id, r);
  }

  forget(id: string): void {
    const r = this.map.get(id);
    if (!r || r.gone) return;
    r.gone = true;
    if (++this.gone >= 1024 && this.gone * 2 >= this.map.size) {
      const live = new Map<string, Running>();
      for (const [k, v] of this.map) if (!v.gone) live.set(k, v);
      this.map = live;
      this.gone = 0;
    }
  }
}

type InlineState = { attempt: string };

/**
 * What a body gets from its inline attempt. Most bodies never read `ctx.signal`, and on
 * Node 20 an AbortSignal and its listener cost more than the rest of an attempt: they are
 * made on first use (so is the logger). A class, not a literal with getters: cheaper to make.
 */
class InlineEnv implements ExecuteEnv {
  constructor(
    private readonly ctx: TaskContext,
    private readonly r: Running,
  ) {}

  get blobs(): BlobStore {
    return this.ctx.blobs;
  }

  get logger(): TaskLogger {
    return this.ctx.logger;
  }

  get signal(): AbortSignal {
    const r = this.r;
    if (!r.ac) {
      const ac = new AbortController();
      r.ac = ac;
      const outer = this.ctx.signal;
      if (outer.aborted || r.aborted) ac.abort(outer.reason);
      else outer.addEventListener("abort", () => ac.abort(outer.reason), { once: true });
    }
    return r.ac.signal;
  }
}

@injectable()
export class InlineBackend implements BackendPlugin<InlineState> {
  readonly id = "inline";
  readonly taskTypes = ["node"] as const;
  readonly contractVersion = CONTRACT_VERSION;
  private readonly running = new AttemptTable();
  private readonly defs = new WeakMap<TaskSpec, AnyTask>();

  constructor(@inject(TASK_RESOLVER) private readonly resolveTask: TaskResolver) {}

  async launch(ctx: TaskContext): Promise<InlineState> {
    const id = ctx.attempt.id;
    if (this.running.get(id)) return { attempt: id };
    const r: Running = { done: false };
    this.running.set(id, r);
    // One lookup per spec, not per attempt: the items of a map share theirs.
    let def = this.defs.get(ctx.task);
    if (!def) {
      const found = this.resolveTask(ctx.task);
      def = found instanceof Promise ? await found : found;
      this.defs.set(ctx.task, def);
    }
    executeTask(
      def,
      {
        task: ctx.task,
        inputs: ctx.inputs,
        execution: ctx.execution,
        node: ctx.node.id,
        attempt: ctx.attempt.number,
        checkpointPrefix: ctx.checkpointPrefix,
        workDir: ctx.workDir,
      },
      new InlineEnv(ctx, r),
    ).then((res) => {
      r.done = true;
      r.status = res.ok
        ? { phase: "succeeded", outputs: res.outputs as Json }
        : { phase: "failed", error: res.error };
      ctx.notify();
    });
    return { attempt: id };
  }

  async check(_ctx: TaskContext, state: InlineState): Promise<TaskStatus> {
    const r = this.running.get(state.attempt);
    if (!r) {
      return {
        phase: "failed",
        error: {
          code: ErrorCodes.SYSTEM,
          kind: "system",
          message: "the inline attempt was lost: inline work does not outlive the process that ran it",
        },
      };
    }
    return r.done ? r.status! : { phase: "running" };
  }

  async abort(_ctx: TaskContext, state: InlineState): Promise<void> {
    const r = this.running.get(state.attempt);
    if (!r) return;
    r.aborted = true;
    r.ac?.abort();
  }

  async finalize(_ctx: TaskContext, state: InlineState): Promise<void> {
    this.running.forget(state.attempt);
  }
}
