/**
 * The node projection: each node's current state (phase, attempts, retry budgets
 * spent, outputs, error, plugin state), folded from the execution's event log and
 * written to `node_executions` for the API. The log is the source of truth; the
 * projection is rebuilt from it after a restart and written whole, row by row.
 */
import type { ExecutionEvent, Json } from "@tern/core";
import type { NodeExecutionUpsert } from "../store/nodes.js";

const NODE_TERMINAL = new Set(["succeeded", "failed", "skipped", "aborted"]);

export class NodeProjection {
  private readonly rows = new Map<string, NodeExecutionUpsert>();
  private dirty = new Set<string>();
  /** Seq of the last event folded in: an event seen again (a retried batch) is not counted twice. */
  private appliedSeq = 0;

  constructor(readonly execution: string) {}

  /** Fold one event in; `mark` (default) queues the node's row for the next write. */
  apply(e: ExecutionEvent, mark = true): void {
    if (e.seq <= this.appliedSeq) return;
    this.appliedSeq = e.seq;
    const id = e.node;
    if (!id) return;
    let r = this.rows.get(id);
    if (!r) {
      r = {
        execution: this.execution,
        nodeId: id,
        phase: e.phase,
        attempts: 0,
        userFailures: 0,
        systemFailures: 0,
      };
      this.rows.set(id, r);
    }
    r.phase = e.phase;
    if (e.attempt && e.attempt > (r.attempts ?? 0)) r.attempts = e.attempt;
    if (e.phase === "queued" && r.startedAt == null) r.startedAt = e.at;
    if (e.phase === "retrying" || e.phase === "failed") {
      if (e.error?.kind === "system") r.systemFailures = (r.systemFailures ?? 0) + 1;
      else r.userFailures = (r.userFailures ?? 0) + 1;
    }
    if (e.error) r.error = e.error;
    if (e.cached) r.cached = true;
    if (e.recovered) r.recovered = true;
    if (e.plugin) {
      r.plugin = e.plugin;
      r.pluginState = (e.pluginState ?? null) as Json;
    }
    if (e.phase === "succeeded") {
      r.outputs = (e.outputs ?? null) as Json;
      r.error = null;
    }
    if (NODE_TERMINAL.has(e.phase)) r.endedAt = e.at;
    if (mark) this.dirty.add(id);
  }

  /** Queue a node's row for the next write (after a restart, rows the last owner may not have written). */
  mark(node: string): void {
    if (this.rows.has(node)) this.dirty.add(node);
  }

  /** The rows changed since the last call. Give them back with {@link restore} if writing fails. */
  take(): NodeExecutionUpsert[] {
    if (this.dirty.size === 0) return [];
    const out: NodeExecutionUpsert[] = [];
    for (const id of this.dirty) out.push({ ...this.rows.get(id)! });
    this.dirty = new Set();
    return out;
  }

  restore(rows: readonly NodeExecutionUpsert[]): void {
    for (const r of rows) this.dirty.add(r.nodeId);
  }
}
