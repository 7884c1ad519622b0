/**
 * Driving a plugin the way the engine does, for the conformance suite: check until a
 * terminal phase (woken early by `notify()`), read outputs as the engine reads them, and
 * build a wide workflow of one task for the limits check.
 */
import {
  type BackendPlugin,
  type CompiledWorkflow,
  type ErrorDocument,
  type Json,
  SPEC_VERSION,
  type TaskContext,
  type TaskSpec,
  type TaskStatus,
} from "@tern/core";
import type { TestTaskContext } from "../engine/task-context.js";

export const TERMINAL = new Set(["succeeded", "failed", "aborted"]);

/** Engine-like polling: check, then wait for `notify()` or a growing delay; tolerates a few check errors in a row. */
export async function driveToTerminal<S extends Json>(
  p: BackendPlugin<S>,
  ctx: TestTaskContext,
  state: S,
  timeoutMs: number,
): Promise<TaskStatus> {
  const deadline = Date.now() + timeoutMs;
  let wait = 10;
  let errors = 0;
  let last: TaskStatus | undefined;
  for (;;) {
    try {
      last = await p.check(ctx, state);
      errors = 0;
    } catch (e) {
      if (++errors >= 5) throw e;
    }
    if (last && TERMINAL.has(last.phase)) return last;
    if (Date.now() > deadline)
      throw new Error(
        `plugin "${p.id}" did not reach a terminal phase within ${timeoutMs} ms; last status: ${JSON.stringify(last)}`,
      );
    await ctx.waitForNotify(wait);
    wait = Math.min(wait * 2, 250);
  }
}

/** Polls `pred` until it is true (or throws after `timeoutMs` with `what`). */
export async function waitUntil(
  pred: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** What the engine makes of a terminal status: outputs (given, or from `outputs.json`), or an error. */
export async function readOutcome(
  ctx: TaskContext,
  status: TaskStatus,
): Promise<{ outputs?: unknown; error?: ErrorDocument }> {
  if (status.phase !== "succeeded") return { error: status.error };
  const blobs = ctx.blobs;
  let outputs: unknown = status.outputs;
  if (outputs && typeof outputs === "object" && (outputs as { $tern?: unknown }).$tern === "literal") {
    outputs = JSON.parse(
      Buffer.from(await blobs.get((outputs as unknown as { uri: string }).uri)).toString("utf8"),
    );
  }
  if (outputs !== undefined) return { outputs };
  const out = blobs.uri(`${ctx.outputPrefix}/outputs.json`);
  if (await blobs.exists(out))
    return { outputs: JSON.parse(Buffer.from(await blobs.get(out)).toString("utf8")) };
  const err = blobs.uri(`${ctx.outputPrefix}/error.json`);
  if (await blobs.exists(err))
    return { error: JSON.parse(Buffer.from(await blobs.get(err)).toString("utf8")) as ErrorDocument };
  const o = ctx.task.interface.output as { type?: unknown };
  if (o && typeof o === "object" && o.type === "null") return { outputs: null };
  return {
    error: {
      code: "TERN_E_SYSTEM",
      kind: "system",
      message: `reported success but wrote no outputs.json under ${ctx.outputPrefix}`,
    },
  };
}

/** A workflow of `n` independent nodes running `task` with the same inputs; its output is the list of their outputs. */
export function wideWorkflow(task: TaskSpec, inputs: Record<string, Json>, n: number): CompiledWorkflow {
  const key = `${task.id.name}@${task.id.version}`;
  const nodes = Array.from({ length: n }, (_, i) => ({
    id: `n${i}`,
    kind: "task" as const,
    task: key,
    inputs: Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, { literal: v }])),
    upstream: [],
  }));
  return {
    specVersion: SPEC_VERSION,
    workflow: {
      kind: "workflow",
      specVersion: SPEC_VERSION,
      id: { ...task.id, name: `${task.id.name}_conformance_wide` },
      interface: { inputs: {}, output: { type: "array", items: task.interface.output } },
      nodes,
      output: { list: nodes.map((nd) => ({ ref: { node: nd.id, path: [] } })) },
      failurePolicy: "continue",
    },
    tasks: { [key]: task },
  } as CompiledWorkflow;
}

/** A pass-through plugin that counts attempts in flight (launch → terminal check or abort). */
export function trackConcurrency<S extends Json>(
  p: BackendPlugin<S>,
): { plugin: BackendPlugin<S>; readonly max: number; readonly launches: number } {
  const open = new Set<string>();
  let max = 0;
  let launches = 0;
  const end = (id: string) => open.delete(id);
  const plugin: BackendPlugin<S> = {
    id: p.id,
    taskTypes: p.taskTypes,
    contractVersion: p.contractVersion,
    limits: p.limits,
    async launch(ctx) {
      launches++;
      open.add(ctx.attempt.id);
      max = Math.max(max, open.size);
      return p.launch(ctx);
    },
    async check(ctx, state) {
      const s = await p.check(ctx, state);
      if (TERMINAL.has(s.phase)) end(ctx.attempt.id);
      return s;
    },
    async abort(ctx, state) {
      end(ctx.attempt.id);
      return p.abort(ctx, state);
    },
    finalize: p.finalize ? (ctx, state) => p.finalize!(ctx, state) : undefined,
    logs: p.logs ? (ctx, state) => p.logs!(ctx, state) : undefined,
    validate: p.validate ? (task) => p.validate!(task) : undefined,
    close: p.close ? () => p.close!() : undefined,
  };
  return {
    plugin,
    get max() {
      return max;
    },
    get launches() {
      return launches;
    },
  };
}
