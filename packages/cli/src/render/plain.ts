/**
 * Progress for pipes and CI logs: one line per change of a node's phase or
 * attempt, with the time since the execution started. Nothing is redrawn, so
 * the log of a long run shows what happened when.
 */
import type { ExecutionEvent } from "@tern/core";
import { type Board, isTerminal, itemsText, nodeDuration } from "./board.js";
import { formatDuration, type Palette, pad, phaseGlyph, phaseStyle } from "./format.js";

/** Where progress lines go. */
export interface Sink {
  write(text: string): unknown;
}

/** Prints a line for each change of a node, as events arrive. */
export class PlainRenderer {
  private idWidth: number;

  constructor(
    private readonly board: Board,
    private readonly out: Sink,
    private readonly p: Palette,
  ) {
    this.idWidth = Math.min(32, Math.max(8, ...board.nodes.map((n) => n.id.length)));
  }

  /** Print the line for an event, if it changed something worth a line. */
  onEvent(e: ExecutionEvent): void {
    const c = this.board.apply(e);
    const t = this.p.dim(`[${formatDuration(Math.max(0, e.at - this.board.startedAt)).padStart(7)}]`);
    if (!c.node) {
      // The execution's own start; its end is the summary's job.
      if (e.seq === 1)
        this.out.write(`${t} ${this.p.bold(`${this.board.workflow}`)} execution ${e.execution} started\n`);
      return;
    }
    if (!c.phaseChanged && !c.attemptChanged && !c.newMessage) return;
    const n = c.node;
    const style = phaseStyle(n.phase, this.p);
    const parts = [t, style(`${phaseGlyph(n.phase)} ${pad(n.phase, 12)}`), pad(n.id, this.idWidth)];
    if (n.task && n.task !== n.id) parts.push(this.p.dim(n.task));
    if (n.attempt > 1) parts.push(`attempt ${n.attempt}`);
    const items = itemsText(n.items);
    if (items && isTerminal(n.phase)) parts.push(items);
    if (n.cached) parts.push(this.p.cyan("cached"));
    if (n.recovered) parts.push(this.p.cyan("recovered"));
    if (e.phase === "succeeded" || e.phase === "failed") {
      const d = nodeDuration(n);
      if (d !== undefined && !n.cached && !n.recovered) parts.push(this.p.dim(formatDuration(d)));
    }
    if (e.phase === "retrying") {
      parts.push(`in ${formatDuration(e.retryInMs ?? 0)}: ${e.error?.message ?? ""}`);
    } else if (e.phase === "failed" && e.error) {
      parts.push(`${e.error.code}: ${firstLine(e.error.message)}`);
    } else if (e.message) {
      parts.push(this.p.dim(firstLine(e.message)));
    }
    this.out.write(`${parts.join(" ").trimEnd()}\n`);
  }

  /** Nothing to tear down: lines are final as soon as they are written. */
  finish(): void {}
}

function firstLine(s: string): string {
  const i = s.indexOf("\n");
  return i < 0 ? s : `${s.slice(0, i)} …`;
}
