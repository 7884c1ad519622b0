/**
 * Reading an execution's stored event log back: where it stopped (last seq, a
 * terminal outcome), which nodes already succeeded (reused, never run again) and
 * where every other node's attempts stand (resumed: the attempt in flight runs again
 * under its own attempt id, so the backend adopts its work instead of repeating it).
 */
import type { ExecutionEvent, ExecutionResult, ResumedNode } from "@tern/core";

/** What the stored events of an execution say. */
export interface Replayed {
  /** Seq of the last stored event (0 when none). */
  lastSeq: number;
  /** Set when the log already ends with the execution's outcome. */
  terminal?: Pick<ExecutionResult, "phase" | "outputs" | "error">;
  /** Nodes that succeeded, with their outputs. */
  succeeded: Map<string, { outputs: unknown }>;
  /** Every other node that started, by fully qualified id. */
  nodes: Map<string, ResumedNode>;
}

const EXECUTION_TERMINAL = new Set(["succeeded", "failed", "aborted"]);
const IN_FLIGHT = new Set(["waiting-for-resources", "initializing", "running"]);

/** Replay stored events (in seq order) into the state a resumed engine needs. */
export function replay(events: readonly ExecutionEvent[]): Replayed {
  const out: Replayed = { lastSeq: 0, succeeded: new Map(), nodes: new Map() };
  for (const e of events) {
    if (e.seq > out.lastSeq) out.lastSeq = e.seq;
    if (!e.node) {
      if (EXECUTION_TERMINAL.has(e.phase)) {
        out.terminal = { phase: e.phase as ExecutionResult["phase"], outputs: e.outputs, error: e.error };
      }
      continue;
    }
    if (e.phase === "succeeded") {
      out.succeeded.set(e.node, { outputs: e.outputs });
      out.nodes.delete(e.node);
      continue;
    }
    let n = out.nodes.get(e.node);
    if (!n) {
      n = { attempts: 0, userFailures: 0, systemFailures: 0, inFlight: false };
      out.nodes.set(e.node, n);
    }
    if (e.attempt && e.attempt > n.attempts) n.attempts = e.attempt;
    if (e.phase === "retrying" || e.phase === "failed") {
      if (e.error?.kind === "system") n.systemFailures++;
      else n.userFailures++;
      n.inFlight = false;
      if (e.phase === "failed" && e.error) n.failed = e.error;
    } else if (IN_FLIGHT.has(e.phase)) {
      n.inFlight = n.attempts > 0;
      if (e.phase === "running" && n.startedAt === undefined) n.startedAt = e.at;
    }
  }
  return out;
}
