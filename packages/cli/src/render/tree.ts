/**
 * The live view for terminals: the workflow and its nodes as a tree, redrawn
 * in place with ANSI cursor movement at most ~10 times a second. Each line
 * spells out its phase next to the glyph, so nothing depends on colour alone.
 *
 * Lines are cut to the terminal's width (a wrapped line would break the
 * cursor arithmetic) and a graph taller than the screen shows its failed and
 * active nodes first, with a count of the rest. Anything else written to the
 * terminal meanwhile (a task's `console.log` in the inline backend) is printed
 * above the tree instead of through it.
 */
import type { ExecutionEvent } from "@tern/core";
import { type Board, isActive, itemsText, type NodeView, nodeDuration } from "./board.js";
import { formatDuration, type Palette, pad, phaseGlyph, phaseStyle, truncate } from "./format.js";

/** The terminal the tree is drawn on. */
export interface TtyStream {
  write(text: string): unknown;
  columns?: number;
  rows?: number;
}

type Write = (chunk: unknown, ...rest: unknown[]) => boolean;

const FRAME_MS = 100;
const HIDE_CURSOR = "\x1b[?25l";
const SHOW_CURSOR = "\x1b[?25h";

/** Draws a {@link Board} as a tree, in place, on a terminal. */
export class TreeRenderer {
  private drawn = 0;
  private dirty = true;
  private timer?: NodeJS.Timeout;
  private cursorHidden = false;
  private note?: string;
  private paused = false;
  private readonly write: (text: string) => unknown;
  private readonly unhook: (() => void)[] = [];
  private readonly restoreCursor = () => {
    if (this.cursorHidden) this.write(SHOW_CURSOR);
  };

  constructor(
    private readonly board: Board,
    private readonly out: TtyStream,
    private readonly p: Palette,
    private readonly executionId: string,
  ) {
    this.write = out.write.bind(out);
  }

  /**
   * Draw the first frame and start the frame timer. Other writes to `streams`
   * (by default the process's stdout and stderr) erase the frame first; the
   * next frame is drawn below them.
   */
  start(streams: NodeJS.WriteStream[] = [process.stdout, process.stderr]): void {
    for (const s of streams) this.interleave(s);
    this.write(HIDE_CURSOR);
    this.cursorHidden = true;
    process.once("exit", this.restoreCursor);
    this.draw();
    this.timer = setInterval(() => {
      // Running nodes' durations tick even without events.
      if (this.dirty || this.board.nodes.some((n) => isActive(n.phase))) this.draw();
    }, FRAME_MS);
    this.timer.unref();
  }

  /** Take the tree off the screen while something else uses the terminal (a gate's prompt). */
  pause(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.erase();
    this.paused = true;
  }

  /** Draw again after {@link pause}. */
  resume(): void {
    this.paused = false;
    this.draw();
    this.timer = setInterval(() => {
      if (this.dirty || this.board.nodes.some((n) => isActive(n.phase))) this.draw();
    }, FRAME_MS);
    this.timer.unref();
  }

  /** A line shown under the tree (e.g. "aborting…"), kept out of the way of the redraw. */
  notice(text: string): void {
    this.note = text;
    this.dirty = true;
  }

  /** Fold an event in; the next frame shows it. */
  onEvent(e: ExecutionEvent): void {
    this.board.apply(e);
    this.dirty = true;
  }

  /** Draw the final frame and give the cursor back (and the streams their own `write`). */
  finish(): void {
    if (this.timer) clearInterval(this.timer);
    for (const u of this.unhook.splice(0)) u();
    this.draw();
    this.restoreCursor();
    this.cursorHidden = false;
    process.removeListener("exit", this.restoreCursor);
  }

  /** Take the tree off the screen and give the terminal back, when the run never started. */
  discard(): void {
    if (this.timer) clearInterval(this.timer);
    for (const u of this.unhook.splice(0)) u();
    this.erase();
    this.restoreCursor();
    this.cursorHidden = false;
    process.removeListener("exit", this.restoreCursor);
  }

  private interleave(stream: NodeJS.WriteStream): void {
    if (!stream.isTTY) return;
    const own = stream.write as Write;
    const patched: Write = (chunk, ...rest) => {
      this.erase();
      const ok = own.call(stream, chunk, ...rest);
      // A partial line would be overwritten by the next frame: end it.
      if (!String(chunk).endsWith("\n")) own.call(stream, "\n");
      this.dirty = true;
      return ok;
    };
    stream.write = patched as typeof stream.write;
    this.unhook.push(() => {
      if (stream.write === patched) stream.write = own as typeof stream.write;
    });
  }

  /** Remove the frame from the screen, leaving the cursor where it began. */
  private erase(): void {
    if (this.drawn > 0) this.write(`\r\x1b[${this.drawn}A\x1b[J`);
    this.drawn = 0;
  }

  private draw(): void {
    if (this.paused) return;
    this.dirty = false;
    const lines = this.frame(Date.now());
    // Up to the first line of the previous frame, then overwrite line by line.
    let s = this.drawn > 0 ? `\r\x1b[${this.drawn}A` : "";
    for (const l of lines) s += `\x1b[2K${l}\n`;
    s += "\x1b[J";
    this.write(s);
    this.drawn = lines.length;
  }

  /** The lines of one frame. */
  frame(now: number): string[] {
    const b = this.board;
    const width = Math.max(20, (this.out.columns || 80) - 1);
    const maxRows = Math.max(4, (this.out.rows || 24) - 2);
    const elapsed = formatDuration((b.endedAt ?? now) - b.startedAt);
    const head = `${phaseStyle(b.phase, this.p)(`${phaseGlyph(b.phase)} ${b.phase}`)} ${this.p.bold(b.workflow)} ${this.p.dim(`${this.executionId}  ${elapsed}`)}`;
    const shown = pickRows(b.nodes, maxRows - 1);
    const hidden = b.nodes.length - shown.length;
    const idW = Math.min(28, Math.max(4, ...shown.map((n) => leaf(n.id).length)));
    const taskW = Math.min(28, Math.max(4, ...shown.map((n) => n.task.length)));
    const branches = connectors(shown, hidden > 0);
    const lines = [head, ...shown.map((n, i) => this.nodeLine(n, branches[i], idW, taskW, width, now))];
    if (hidden > 0) {
      const counts = new Map<string, number>();
      for (const n of b.nodes) if (!shown.includes(n)) counts.set(n.phase, (counts.get(n.phase) ?? 0) + 1);
      const rest = [...counts].map(([ph, c]) => `${c} ${ph}`).join(", ");
      lines.push(this.p.dim(truncate(`└─ … ${hidden} more: ${rest}`, width)));
    }
    if (this.note) lines.push(this.p.yellow(truncate(this.note, width)));
    return lines;
  }

  private nodeLine(
    n: NodeView,
    branch: string,
    idW: number,
    taskW: number,
    width: number,
    now: number,
  ): string {
    const phase = `${phaseGlyph(n.phase)} ${pad(n.phase, 12)}`;
    const tail: string[] = [pad(truncate(leaf(n.id), idW), idW), pad(truncate(n.task, taskW), taskW)];
    if (n.attempt > 1) tail.push(`attempt ${n.attempt}`);
    const items = itemsText(n.items);
    if (items) tail.push(items);
    const d = nodeDuration(n, now);
    if (d !== undefined && n.phase !== "not-ready") tail.push(formatDuration(d));
    if (n.cached) tail.push("cached");
    if (n.recovered) tail.push("recovered");
    if (n.phase === "retrying" && n.message) tail.push(n.message);
    const rest = truncate(tail.join("  "), width - branch.length - phase.length - 2);
    return `${this.p.dim(branch)}${phaseStyle(n.phase, this.p)(phase)}  ${rest}`;
  }
}

/** A nested node shows its own id segment; the indentation shows where it belongs. */
function leaf(id: string): string {
  return id.slice(id.lastIndexOf("/") + 1);
}

/**
 * The tree drawing before each shown node: `├─ ` or `└─ ` for the node itself,
 * after `│  ` (or blanks, under a last child) for each enclosing level.
 */
function connectors(shown: NodeView[], more: boolean): string[] {
  const last = shown.map((n, i) => {
    for (let j = i + 1; j < shown.length; j++) {
      if (shown[j].depth < n.depth) return true;
      if (shown[j].depth === n.depth && shown[j].parent === n.parent) return false;
    }
    // The "… more" line closes the top level.
    return !(more && n.depth === 0);
  });
  const lastById = new Map(shown.map((n, i) => [n.id, last[i]]));
  return shown.map((n, i) => {
    let prefix = "";
    const parts = n.id.split("/");
    for (let k = 1; k < parts.length; k++)
      prefix += lastById.get(parts.slice(0, k).join("/")) ? "   " : "│  ";
    return `${prefix}${last[i] ? "└─ " : "├─ "}`;
  });
}

/**
 * The nodes that fit: all of them when they do, else failed ones, then active
 * ones, then the most recently finished, in graph order.
 */
function pickRows(nodes: NodeView[], room: number): NodeView[] {
  if (nodes.length <= room) return nodes;
  const keep = Math.max(1, room - 1); // one row for the "… more" line
  const score = (n: NodeView) =>
    n.phase === "failed" ? 3 : isActive(n.phase) ? 2 : n.phase === "not-ready" ? 0 : 1;
  const chosen = new Set(
    [...nodes].sort((a, b) => score(b) - score(a) || b.changedAt - a.changedAt).slice(0, keep),
  );
  return nodes.filter((n) => chosen.has(n));
}
