/**
 * Layout of one graph level, run in a Web Worker so the page never freezes:
 * dagre (layered, left to right) up to {@link DAGRE_LIMIT} nodes; above that a
 * linear-time layered layout (longest-path ranks, one barycenter sweep), since
 * dagre needs seconds there; a level without edges (a dynamic node's children)
 * is a grid.
 */
import dagre from "@dagrejs/dagre";

export const NODE_W = 200;
export const NODE_H = 56;
const GAP_X = 60;
const GAP_Y = 18;
export const DAGRE_LIMIT = 1500;

export interface LayoutRequest {
  id: number;
  count: number;
  edges: [number, number][];
}

export interface LayoutResult {
  id: number;
  /** Top-left corner of node i at [2i], [2i+1]. */
  xy: Float64Array;
  width: number;
  height: number;
  engine: "dagre" | "layered" | "grid";
  ms: number;
}

function grid(count: number): { xy: Float64Array; width: number; height: number } {
  const cols = Math.max(1, Math.ceil(Math.sqrt(count * 2.5)));
  const xy = new Float64Array(count * 2);
  for (let i = 0; i < count; i++) {
    xy[2 * i] = (i % cols) * (NODE_W + GAP_X / 2);
    xy[2 * i + 1] = Math.floor(i / cols) * (NODE_H + GAP_Y);
  }
  const rows = Math.ceil(count / cols);
  return { xy, width: cols * (NODE_W + GAP_X / 2), height: rows * (NODE_H + GAP_Y) };
}

function withDagre(count: number, edges: [number, number][]) {
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: "LR", nodesep: GAP_Y, ranksep: GAP_X, marginx: 0, marginy: 0 });
  g.setDefaultEdgeLabel(() => ({}));
  for (let i = 0; i < count; i++) g.setNode(String(i), { width: NODE_W, height: NODE_H });
  for (const [a, b] of edges) g.setEdge(String(a), String(b));
  dagre.layout(g);
  const xy = new Float64Array(count * 2);
  let width = 0;
  let height = 0;
  for (let i = 0; i < count; i++) {
    const n = g.node(String(i)) as { x: number; y: number };
    xy[2 * i] = n.x - NODE_W / 2;
    xy[2 * i + 1] = n.y - NODE_H / 2;
    width = Math.max(width, n.x + NODE_W / 2);
    height = Math.max(height, n.y + NODE_H / 2);
  }
  return { xy, width, height };
}

function layered(count: number, edges: [number, number][]) {
  const preds: number[][] = Array.from({ length: count }, () => []);
  const succs: number[][] = Array.from({ length: count }, () => []);
  const indeg = new Int32Array(count);
  for (const [a, b] of edges) {
    succs[a].push(b);
    preds[b].push(a);
    indeg[b]++;
  }
  // Longest path from the sources, in topological order (a cycle's rest goes last).
  const rank = new Int32Array(count);
  const order: number[] = [];
  for (let i = 0; i < count; i++) if (indeg[i] === 0) order.push(i);
  for (let k = 0; k < order.length; k++) {
    const n = order[k];
    for (const s of succs[n]) {
      rank[s] = Math.max(rank[s], rank[n] + 1);
      if (--indeg[s] === 0) order.push(s);
    }
  }
  if (order.length < count) for (let i = 0; i < count; i++) if (indeg[i] > 0) order.push(i);
  const ranks: number[][] = [];
  for (const n of order) (ranks[rank[n]] ??= []).push(n);
  // One sweep: order each rank by the mean position of its predecessors.
  const pos = new Float64Array(count);
  ranks[0]?.forEach((n, i) => {
    pos[n] = i;
  });
  for (let r = 1; r < ranks.length; r++) {
    const list = ranks[r] ?? [];
    const key = new Map<number, number>();
    for (const n of list) {
      const ps = preds[n];
      key.set(n, ps.length ? ps.reduce((s, p) => s + pos[p], 0) / ps.length : Number.MAX_SAFE_INTEGER);
    }
    list.sort((a, b) => key.get(a)! - key.get(b)! || a - b);
    list.forEach((n, i) => {
      pos[n] = i;
    });
  }
  const xy = new Float64Array(count * 2);
  let tall = 0;
  for (const list of ranks) tall = Math.max(tall, list?.length ?? 0);
  for (let r = 0; r < ranks.length; r++) {
    const list = ranks[r] ?? [];
    const offset = ((tall - list.length) * (NODE_H + GAP_Y)) / 2;
    list.forEach((n, i) => {
      xy[2 * n] = r * (NODE_W + GAP_X);
      xy[2 * n + 1] = offset + i * (NODE_H + GAP_Y);
    });
  }
  return { xy, width: ranks.length * (NODE_W + GAP_X), height: tall * (NODE_H + GAP_Y) };
}

export function layout(req: LayoutRequest): LayoutResult {
  const t0 = performance.now();
  const engine = req.edges.length === 0 ? "grid" : req.count <= DAGRE_LIMIT ? "dagre" : "layered";
  const r =
    engine === "grid"
      ? grid(req.count)
      : engine === "dagre"
        ? withDagre(req.count, req.edges)
        : layered(req.count, req.edges);
  return { id: req.id, ...r, engine, ms: performance.now() - t0 };
}
