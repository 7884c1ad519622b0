/**
 * The graph canvas of one level, built for big graphs: only the nodes inside
 * the viewport exist in the DOM (a spatial grid finds them), edges are drawn
 * on a canvas and culled, and when zoomed out past what text can show, nodes
 * become coloured cells on the canvas. Panning moves one transform; nothing is
 * laid out again. Keyboard: arrows move between nodes (left/right follow
 * edges, up/down within a column), Enter opens, Shift+arrows pan, + and -
 * zoom, 0 fits.
 */
import { phaseStyle } from "../phases.js";
import { NODE_H, NODE_W } from "./layout-core.js";
import type { GNode, Level, NodeState } from "./model.js";

const CELL = 600;
/** Below this scale (or above this many visible nodes) nodes are drawn on the canvas, without text. */
const LOD_SCALE = 0.35;
const LOD_COUNT = 1200;

export interface GraphCallbacks {
  select(id: string | undefined): void;
  open(node: GNode): void;
}

export interface FrameStats {
  frames: number;
  /** Time spent in the last renders, ms. */
  renderMs: number[];
  visible: number;
  lod: boolean;
}

export class GraphView {
  readonly el: HTMLDivElement;
  private readonly canvas: HTMLCanvasElement;
  private readonly layer: HTMLDivElement;
  private level?: Level;
  private xy: Float64Array = new Float64Array(0);
  private width = 0;
  private height = 0;
  private states = new Map<string, NodeState>();
  private grid = new Map<number, number[]>();
  private succ: number[][] = [];
  private pred: number[][] = [];
  /** Node elements in the DOM, by node id (an element never changes node while it stays visible). */
  private mounted = new Map<string, HTMLDivElement>();
  private pool: HTMLDivElement[] = [];
  private stamp = new Uint32Array(0);
  private stampGen = 1;
  private tx = 20;
  private ty = 20;
  private s = 1;
  private frame = 0;
  private contentDirty = true;
  private selected = -1;
  private drag?: { x: number; y: number; tx: number; ty: number; moved: boolean };
  private readonly resize: ResizeObserver;
  readonly stats: FrameStats = { frames: 0, renderMs: [], visible: 0, lod: false };

  constructor(
    host: HTMLElement,
    private readonly cb: GraphCallbacks,
  ) {
    this.el = document.createElement("div");
    this.el.className = "graph";
    this.el.tabIndex = 0;
    this.el.setAttribute("role", "application");
    this.el.setAttribute(
      "aria-label",
      "Workflow graph. Arrow keys move between nodes, Enter opens the node or group, Escape goes up, Shift+arrows pan, plus and minus zoom, 0 fits.",
    );
    this.canvas = document.createElement("canvas");
    this.layer = document.createElement("div");
    this.layer.className = "graph-layer";
    this.el.append(this.canvas, this.layer);
    host.append(this.el);
    this.el.addEventListener("pointerdown", this.onDown);
    this.el.addEventListener("pointermove", this.onMove);
    this.el.addEventListener("pointerup", this.onUp);
    this.el.addEventListener("pointercancel", this.onUp);
    this.el.addEventListener("wheel", this.onWheel, { passive: false });
    this.el.addEventListener("keydown", this.onKey);
    this.el.addEventListener("dblclick", this.onDbl);
    this.resize = new ResizeObserver(() => this.schedule(true));
    this.resize.observe(this.el);
  }

  destroy(): void {
    cancelAnimationFrame(this.frame);
    this.resize.disconnect();
    this.el.remove();
  }

  setLevel(
    level: Level,
    xy: Float64Array,
    width: number,
    height: number,
    states: Map<string, NodeState>,
  ): void {
    // The same level again (its structure grew at run time): keep the view and the selection.
    const same = this.level?.prefix === level.prefix;
    const keep = same && this.selected >= 0 ? this.level!.nodes[this.selected]?.id : undefined;
    this.level = level;
    this.xy = xy;
    this.width = width;
    this.height = height;
    this.states = states;
    if (!same) {
      for (const el of this.mounted.values()) this.release(el);
      this.mounted.clear();
    }
    this.grid.clear();
    this.stamp = new Uint32Array(level.nodes.length);
    for (let i = 0; i < level.nodes.length; i++) {
      const x0 = Math.floor(xy[2 * i] / CELL);
      const x1 = Math.floor((xy[2 * i] + NODE_W) / CELL);
      const y0 = Math.floor(xy[2 * i + 1] / CELL);
      const y1 = Math.floor((xy[2 * i + 1] + NODE_H) / CELL);
      for (let cx = x0; cx <= x1; cx++)
        for (let cy = y0; cy <= y1; cy++) {
          const k = cx * 100_003 + cy;
          const list = this.grid.get(k);
          if (list) list.push(i);
          else this.grid.set(k, [i]);
        }
    }
    this.succ = level.nodes.map(() => []);
    this.pred = level.nodes.map(() => []);
    for (const [a, b] of level.edges) {
      this.succ[a].push(b);
      this.pred[b].push(a);
    }
    this.selected = keep === undefined ? -1 : level.nodes.findIndex((n) => n.id === keep);
    if (same) this.schedule(true);
    else this.fit();
  }

  /** Node states changed: redraw what is visible. */
  refresh(): void {
    this.schedule(true);
  }

  select(id: string | undefined, reveal = true): void {
    const i = id === undefined ? -1 : (this.level?.nodes.findIndex((n) => n.id === id) ?? -1);
    this.selected = i;
    if (i >= 0 && reveal) this.reveal(i);
    this.schedule(true);
  }

  /** Fit the level in view (never zooming in past 1). */
  fit(): void {
    const w = this.el.clientWidth || 800;
    const h = this.el.clientHeight || 500;
    const s = Math.min(1, (w - 40) / Math.max(1, this.width), (h - 40) / Math.max(1, this.height));
    // A level too big to read when fitted opens at a readable zoom on its start instead.
    this.s = s < LOD_SCALE ? 0.6 : s;
    this.tx = this.s === s ? (w - this.width * s) / 2 : 20;
    this.ty = this.s === s ? (h - this.height * s) / 2 : 20;
    this.schedule(true);
  }

  panBy(dx: number, dy: number): void {
    this.tx += dx;
    this.ty += dy;
    this.schedule(false);
  }

  zoomAt(factor: number, cx: number, cy: number): void {
    const s = Math.min(2, Math.max(0.02, this.s * factor));
    this.tx = cx - ((cx - this.tx) * s) / this.s;
    this.ty = cy - ((cy - this.ty) * s) / this.s;
    this.s = s;
    this.schedule(false);
  }

  get scale(): number {
    return this.s;
  }

  private reveal(i: number): void {
    const w = this.el.clientWidth;
    const h = this.el.clientHeight;
    const x = this.xy[2 * i] * this.s + this.tx;
    const y = this.xy[2 * i + 1] * this.s + this.ty;
    if (this.s < 0.5) this.s = 0.8;
    const sx = this.xy[2 * i] * this.s + this.tx;
    const sy = this.xy[2 * i + 1] * this.s + this.ty;
    if (x < 0 || y < 0 || x + NODE_W * this.s > w || y + NODE_H * this.s > h || sx !== x || sy !== y) {
      this.tx = w / 2 - (this.xy[2 * i] + NODE_W / 2) * this.s;
      this.ty = h / 2 - (this.xy[2 * i + 1] + NODE_H / 2) * this.s;
    }
  }

  private schedule(content: boolean): void {
    if (content) this.contentDirty = true;
    if (!this.frame) this.frame = requestAnimationFrame(() => this.render());
  }

  private release(el: HTMLDivElement): void {
    el.remove();
    this.pool.push(el);
  }

  private render(): void {
    this.frame = 0;
    const t0 = performance.now();
    const level = this.level;
    const w = this.el.clientWidth;
    const h = this.el.clientHeight;
    const dpr = window.devicePixelRatio || 1;
    if (this.canvas.width !== Math.round(w * dpr) || this.canvas.height !== Math.round(h * dpr)) {
      this.canvas.width = Math.round(w * dpr);
      this.canvas.height = Math.round(h * dpr);
      this.canvas.style.width = `${w}px`;
      this.canvas.style.height = `${h}px`;
    }
    const ctx = this.canvas.getContext("2d")!;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    if (!level) return;
    const { s, tx, ty } = this;
    // The viewport in layout coordinates, with a margin so nodes appear before they enter.
    const m = 100;
    const vx0 = (-tx - m) / s;
    const vy0 = (-ty - m) / s;
    const vx1 = (w - tx + m) / s;
    const vy1 = (h - ty + m) / s;
    const visible: number[] = [];
    const gen = ++this.stampGen;
    for (let cx = Math.floor(vx0 / CELL); cx <= Math.floor(vx1 / CELL); cx++) {
      for (let cy = Math.floor(vy0 / CELL); cy <= Math.floor(vy1 / CELL); cy++) {
        const list = this.grid.get(cx * 100_003 + cy);
        if (!list) continue;
        for (const i of list) {
          if (this.stamp[i] === gen) continue;
          this.stamp[i] = gen;
          const x = this.xy[2 * i];
          const y = this.xy[2 * i + 1];
          if (x + NODE_W >= vx0 && x <= vx1 && y + NODE_H >= vy0 && y <= vy1) visible.push(i);
        }
      }
    }
    const lod = s < LOD_SCALE || visible.length > LOD_COUNT;
    // Edges: those with an end in view (or crossing it), as one path.
    ctx.save();
    ctx.translate(tx, ty);
    ctx.scale(s, s);
    ctx.lineWidth = 1.2 / Math.max(s, 0.3);
    ctx.strokeStyle = "#8a8f98";
    ctx.beginPath();
    let drawn = 0;
    for (const [a, b] of level.edges) {
      const ax = this.xy[2 * a] + NODE_W;
      const ay = this.xy[2 * a + 1] + NODE_H / 2;
      const bx = this.xy[2 * b];
      const by = this.xy[2 * b + 1] + NODE_H / 2;
      if (
        Math.max(ax, bx) < vx0 ||
        Math.min(ax, bx) > vx1 ||
        Math.max(ay, by) < vy0 ||
        Math.min(ay, by) > vy1
      )
        continue;
      const mx = (ax + bx) / 2;
      ctx.moveTo(ax, ay);
      if (lod) ctx.lineTo(bx, by);
      else ctx.bezierCurveTo(mx, ay, mx, by, bx, by);
      drawn++;
    }
    ctx.stroke();
    if (lod) {
      // Cells coloured by phase; the selected one outlined.
      for (const i of visible) {
        const st = this.states.get(level.nodes[i].id);
        ctx.fillStyle = phaseStyle(st?.phase).color;
        ctx.fillRect(this.xy[2 * i], this.xy[2 * i + 1], NODE_W, NODE_H);
      }
      if (this.selected >= 0) {
        ctx.lineWidth = 4 / s;
        ctx.strokeStyle = "#000";
        ctx.strokeRect(this.xy[2 * this.selected], this.xy[2 * this.selected + 1], NODE_W, NODE_H);
      }
    }
    ctx.restore();
    this.layer.style.transform = `translate(${tx}px, ${ty}px) scale(${s})`;
    // DOM nodes: mount what entered, release what left, refresh content when states changed.
    const want = new Map<string, number>();
    if (!lod) for (const i of visible) want.set(level.nodes[i].id, i);
    for (const [id, el] of this.mounted) {
      if (!want.has(id)) {
        this.release(el);
        this.mounted.delete(id);
      }
    }
    for (const [id, i] of want) {
      let el = this.mounted.get(id);
      const fresh = !el;
      if (!el) {
        el = this.pool.pop() ?? document.createElement("div");
        this.mounted.set(id, el);
        this.layer.append(el);
      }
      if (fresh || this.contentDirty) {
        el.style.left = `${this.xy[2 * i]}px`;
        el.style.top = `${this.xy[2 * i + 1]}px`;
        this.paintNode(el, i);
      }
    }
    this.contentDirty = false;
    this.stats.frames++;
    this.stats.visible = visible.length;
    this.stats.lod = lod;
    this.stats.renderMs.push(performance.now() - t0);
    if (this.stats.renderMs.length > 600) this.stats.renderMs.splice(0, 300);
    this.el.dataset.visible = String(lod ? 0 : visible.length);
    this.el.dataset.edges = String(drawn);
    this.el.dataset.lod = String(lod);
  }

  private paintNode(el: HTMLDivElement, i: number): void {
    const n = this.level!.nodes[i];
    const st = this.states.get(n.id);
    const ph = phaseStyle(st?.phase);
    const key = `${n.id}|${i}|${st?.phase}|${st?.attempts}|${st?.cached}|${st?.recovered}|${JSON.stringify(st?.items ?? "")}|${n.size}|${i === this.selected}`;
    if (el.dataset.key === key) return;
    el.dataset.key = key;
    el.className = `gnode${n.group ? " group" : ""}${i === this.selected ? " selected" : ""}`;
    el.dataset.id = n.id;
    el.dataset.phase = st?.phase ?? "not-ready";
    el.dataset.index = String(i);
    el.style.borderColor = ph.color;
    el.title = `${n.id}: ${ph.label}`;
    const marks: string[] = [];
    if (st?.cached) marks.push("cached");
    if (st?.recovered) marks.push("recovered");
    if (st && st.attempts > 1) marks.push(`attempt ${st.attempts}`);
    let extra = "";
    if (st?.items)
      extra = `${st.items.succeeded}/${st.items.total} items${st.items.failed ? `, ${st.items.failed} failed` : ""}`;
    else if (n.group) extra = `${n.size ?? "?"} nodes · open ⊞`;
    el.replaceChildren();
    const bar = document.createElement("span");
    bar.className = "gbar";
    bar.style.background = ph.color;
    bar.style.color = ph.ink;
    bar.textContent = `${ph.glyph} ${ph.label}`;
    const title = document.createElement("span");
    title.className = "gtitle";
    title.textContent = n.local;
    const sub = document.createElement("span");
    sub.className = "gsub";
    sub.textContent = [n.label, extra, ...marks].filter(Boolean).join(" · ");
    el.append(title, sub, bar);
  }

  private indexAt(target: EventTarget | null): number {
    const el = (target as HTMLElement | null)?.closest?.(".gnode") as HTMLElement | null;
    if (el?.dataset.index) return Number(el.dataset.index);
    return -1;
  }

  private onDown = (e: PointerEvent) => {
    if (e.button !== 0) return;
    this.el.focus({ preventScroll: true });
    this.drag = { x: e.clientX, y: e.clientY, tx: this.tx, ty: this.ty, moved: false };
    this.el.setPointerCapture(e.pointerId);
  };

  private onMove = (e: PointerEvent) => {
    if (!this.drag) return;
    const dx = e.clientX - this.drag.x;
    const dy = e.clientY - this.drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 3) this.drag.moved = true;
    if (!this.drag.moved) return;
    this.tx = this.drag.tx + dx;
    this.ty = this.drag.ty + dy;
    this.schedule(false);
  };

  private onUp = (e: PointerEvent) => {
    const d = this.drag;
    this.drag = undefined;
    if (!d || d.moved) return;
    const i = this.pickAt(e);
    this.selected = i;
    this.cb.select(i >= 0 ? this.level!.nodes[i].id : undefined);
    this.schedule(true);
  };

  /** The node under a pointer event: the DOM node, or the canvas cell when zoomed out. */
  private pickAt(e: PointerEvent | MouseEvent): number {
    const hit = document.elementFromPoint(e.clientX, e.clientY);
    const i = this.indexAt(hit);
    if (i >= 0 || !this.level) return i;
    const r = this.el.getBoundingClientRect();
    const x = (e.clientX - r.left - this.tx) / this.s;
    const y = (e.clientY - r.top - this.ty) / this.s;
    for (const j of this.grid.get(Math.floor(x / CELL) * 100_003 + Math.floor(y / CELL)) ?? []) {
      if (
        x >= this.xy[2 * j] &&
        x <= this.xy[2 * j] + NODE_W &&
        y >= this.xy[2 * j + 1] &&
        y <= this.xy[2 * j + 1] + NODE_H
      )
        return j;
    }
    return -1;
  }

  private onDbl = (e: MouseEvent) => {
    const i = this.pickAt(e);
    if (i >= 0 && this.level!.nodes[i].group) this.cb.open(this.level!.nodes[i]);
  };

  private onWheel = (e: WheelEvent) => {
    e.preventDefault();
    const r = this.el.getBoundingClientRect();
    if (e.ctrlKey || e.metaKey || Math.abs(e.deltaY) >= Math.abs(e.deltaX)) {
      this.zoomAt(Math.exp(-e.deltaY * 0.0015), e.clientX - r.left, e.clientY - r.top);
    } else {
      this.panBy(-e.deltaX, -e.deltaY);
    }
  };

  /** Nearest node in a direction, from the selection (or the first node). */
  private neighbour(key: string): number {
    const level = this.level!;
    const cur = this.selected;
    if (cur < 0) return level.nodes.length ? 0 : -1;
    const cx = this.xy[2 * cur];
    const cy = this.xy[2 * cur + 1];
    const pick = (cands: number[], score: (j: number) => number) => {
      let best = -1;
      let bestScore = Number.POSITIVE_INFINITY;
      for (const j of cands) {
        const sc = score(j);
        if (sc < bestScore) {
          bestScore = sc;
          best = j;
        }
      }
      return best;
    };
    const near = (j: number) => Math.abs(this.xy[2 * j + 1] - cy) + Math.abs(this.xy[2 * j] - cx) / 4;
    if (key === "ArrowRight" && this.succ[cur].length) return pick(this.succ[cur], near);
    if (key === "ArrowLeft" && this.pred[cur].length) return pick(this.pred[cur], near);
    // Otherwise the closest node that way on screen (columns for up/down, rows for left/right).
    const inDir = (j: number) => {
      const dx = this.xy[2 * j] - cx;
      const dy = this.xy[2 * j + 1] - cy;
      if (key === "ArrowDown") return dy > 0 ? dy + Math.abs(dx) * 4 : Number.POSITIVE_INFINITY;
      if (key === "ArrowUp") return dy < 0 ? -dy + Math.abs(dx) * 4 : Number.POSITIVE_INFINITY;
      if (key === "ArrowRight") return dx > 0 ? dx + Math.abs(dy) * 4 : Number.POSITIVE_INFINITY;
      return dx < 0 ? -dx + Math.abs(dy) * 4 : Number.POSITIVE_INFINITY;
    };
    // Search the grid cells around the node first; fall back to every node.
    const around: number[] = [];
    const gx = Math.floor(cx / CELL);
    const gy = Math.floor(cy / CELL);
    for (let x = gx - 2; x <= gx + 2; x++)
      for (let y = gy - 2; y <= gy + 2; y++) around.push(...(this.grid.get(x * 100_003 + y) ?? []));
    const j = pick(around, inDir);
    if (j >= 0 && inDir(j) !== Number.POSITIVE_INFINITY) return j;
    const k = pick(
      level.nodes.map((_, i) => i),
      inDir,
    );
    return k >= 0 && inDir(k) !== Number.POSITIVE_INFINITY ? k : cur;
  }

  private onKey = (e: KeyboardEvent) => {
    if (!this.level) return;
    const step = 80;
    if (e.key.startsWith("Arrow")) {
      e.preventDefault();
      if (e.shiftKey) {
        const d = { ArrowLeft: [step, 0], ArrowRight: [-step, 0], ArrowUp: [0, step], ArrowDown: [0, -step] }[
          e.key
        ] ?? [0, 0];
        this.panBy(d[0], d[1]);
        return;
      }
      const j = this.neighbour(e.key);
      if (j >= 0) {
        this.selected = j;
        this.reveal(j);
        this.cb.select(this.level.nodes[j].id);
        this.schedule(true);
      }
    } else if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      const n = this.level.nodes[this.selected];
      if (!n) return;
      if (n.group) this.cb.open(n);
      else this.cb.select(n.id);
    } else if (e.key === "+" || e.key === "=") {
      this.zoomAt(1.25, this.el.clientWidth / 2, this.el.clientHeight / 2);
    } else if (e.key === "-") {
      this.zoomAt(0.8, this.el.clientWidth / 2, this.el.clientHeight / 2);
    } else if (e.key === "0") {
      this.fit();
    }
  };
}
