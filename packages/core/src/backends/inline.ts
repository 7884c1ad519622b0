/**
 * `inline`: runs TypeScript task bodies in the engine's own process. The fastest
 * home, for `tern run` and embedding; its work cannot outlive the process, so a
 * restarted engine sees such attempts as lost (a system error, retried).
 */
import { inject, injectable } from "tsyringe";
import type { AnyTask } from "../dsl.js";
import { ErrorCodes } from "../errors.js";
import { executeTask } from "../execute/run-task.js";
import type { Json } from "../json.js";
import { type BackendPlugin, CONTRACT_VERSION, type TaskContext, type TaskStatus } from "../plugin.js";
import type { TaskSpec } from "../spec.js";
import { createToken, type Token } from "../tokens.js";

/** Finds the body of a TypeScript task from its spec. */
export type TaskResolver = (spec: TaskSpec) => AnyTask | Promise<AnyTask>;
export const TASK_RESOLVER: Token<TaskResolver> = createToken("tern.task-resolver");

interface Running {
  done: boolean;
  status?: TaskStatus;
  abort: AbortController;
}

type InlineState = { attempt: string };

@injectable()
export class InlineBackend implements BackendPlugin<InlineState> {
  readonly id = "inline";
  readonly taskTypes = ["node"] as const;
  readonly contractVersion = CONTRACT_VERSION;
  private readonly running = new Map<string, Running>();

  constructor(@inject(TASK_RESOLVER) private readonly resolveTask: TaskResolver) {}

  async launch(ctx: TaskContext): Promise<InlineState> {
    const id = ctx.attempt.id;
    if (this.running.has(id)) return { attempt: id };
    const r: Running = { done: false, abort: new AbortController() };
    this.running.set(id, r);
    const onAbort = () => r.abort.abort(ctx.signal.reason);
    ctx.signal.addEventListener("abort", onAbort, { once: true });
    const def = await this.resolveTask(ctx.task);
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
      { blobs: ctx.blobs, logger: ctx.logger, signal: r.abort.signal },
    ).then((res) => {
      ctx.signal.removeEventListener("abort", onAbort);
      r.done = true;
      r.status = res.ok ? { phase: "succeeded", outputs: res.outputs as Json } : { phase: "failed", error: res.error };
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
    this.running.get(state.attempt)?.abort.abort();
  }

  async finalize(_ctx: TaskContext, state: InlineState): Promise<void> {
    this.running.delete(state.attempt);
  }
}
