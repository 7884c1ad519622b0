/**
 * The execution's graph, one level at a time: the workflow's nodes (from the
 * compiled spec) with edges from their bindings, where a subworkflow or a
 * dynamic node is one group node you open to see its own level. A map is one
 * node with item counts. Runtime state (phases, attempts, marks, outputs)
 * comes from the execution's events, by fully qualified node id.
 */

export interface NodeState {
  phase: string;
  attempts: number;
  cached?: boolean;
  recovered?: boolean;
  task?: string;
  kind?: string;
  message?: string;
  error?: any;
  outputs?: unknown;
  items?: { total: number; succeeded: number; failed: number; cached: number };
  expanded?: number;
  childExecution?: string;
  startedAt?: number;
  endedAt?: number;
  /** Every event of the node, in order. */
  events: any[];
}

export interface GNode {
  /** Fully qualified id. */
  id: string;
  /** Id inside its level. */
  local: string;
  label: string;
  kind: string;
  /** Openable: a subworkflow's or a dynamic node's children. */
  group?: "workflow" | "dynamic";
  /** The node's spec, when it comes from the compiled workflow. */
  spec?: any;
  /** Nodes inside a group (known from the spec or seen at run time). */
  size?: number;
}

export interface Level {
  /** Fully qualified id of the opened group ("" for the workflow itself). */
  prefix: string;
  nodes: GNode[];
  /** Pairs of indices into `nodes`. */
  edges: [number, number][];
}

/** Runtime node ids, indexed by the level they belong to. */
export class RuntimeIndex {
  /** Level prefix ("" or "a/b/") → local ids seen at run time. */
  private readonly byPrefix = new Map<string, Set<string>>();
  private readonly known = new Set<string>();

  add(id: string): void {
    if (this.known.has(id)) return;
    this.known.add(id);
    let start = 0;
    for (;;) {
      const slash = id.indexOf("/", start);
      const prefix = id.slice(0, start);
      const head = slash < 0 ? id.slice(start) : id.slice(start, slash);
      let set = this.byPrefix.get(prefix);
      if (!set) this.byPrefix.set(prefix, (set = new Set()));
      set.add(head);
      if (slash < 0) return;
      start = slash + 1;
    }
  }

  children(prefix: string): Set<string> {
    return this.byPrefix.get(prefix) ?? new Set();
  }

  /** Direct children seen below a fully qualified id. */
  childCount(id: string): number {
    return this.byPrefix.get(`${id}/`)?.size ?? 0;
  }
}

const nameOf = (key: string | undefined) => (key ? key.replace(/@[^@]*$/, "") : "");

/** Node ids a binding (or condition) reads. */
export function refsOf(b: any, out: Set<string> = new Set()): Set<string> {
  if (!b || typeof b !== "object") return out;
  if (b.ref && typeof b.ref.node === "string") {
    if (b.ref.node !== "$inputs") out.add(b.ref.node);
    return out;
  }
  if (Array.isArray(b)) {
    for (const x of b) refsOf(x, out);
    return out;
  }
  for (const v of Object.values(b)) refsOf(v, out);
  return out;
}

function describe(spec: any): { label: string; kind: string } {
  switch (spec.kind) {
    case "task":
      return { label: nameOf(spec.task), kind: "task" };
    case "workflow":
      return { label: `workflow ${nameOf(spec.workflow)}`, kind: "workflow" };
    case "launchplan":
      return { label: `launch plan ${nameOf(spec.launchPlan)}`, kind: "launchplan" };
    case "map":
      return { label: `map(${nameOf(spec.target.task ?? spec.target.workflow)})`, kind: "map" };
    case "gate":
      return { label: `gate ${spec.gate.kind}${spec.gate.name ? ` ${spec.gate.name}` : ""}`, kind: "gate" };
    case "branch":
      return { label: "branch", kind: "branch" };
    default:
      return { label: spec.kind, kind: spec.kind };
  }
}

function countSpecNodes(nodes: any[], compiled: any): number {
  let n = 0;
  for (const s of nodes) {
    n++;
    if (s.kind === "workflow") {
      const sub = compiled.subworkflows?.[s.workflow];
      if (sub) n += countSpecNodes(sub.nodes, compiled);
    }
  }
  return n;
}

/**
 * The nodes and edges of one level. `specNodes` is the level's part of the
 * compiled workflow (undefined inside a dynamic node, whose sub-DAG exists only
 * at run time: its children come from `runtime`, without edges).
 */
export function buildLevel(
  compiled: any,
  prefix: string,
  specNodes: any[] | undefined,
  runtime: RuntimeIndex,
  states: Map<string, NodeState>,
): Level {
  const p = prefix ? `${prefix}/` : "";
  const nodes: GNode[] = [];
  const index = new Map<string, number>();
  for (const s of specNodes ?? []) {
    const d = describe(s);
    const id = p + s.id;
    const g: GNode = { id, local: s.id, label: d.label, kind: d.kind, spec: s };
    if (s.kind === "workflow") {
      g.group = "workflow";
      const sub = compiled.subworkflows?.[s.workflow];
      g.size = sub ? countSpecNodes(sub.nodes, compiled) : runtime.childCount(id);
    } else if (runtime.childCount(id) > 0 && s.kind !== "map") {
      g.group = "dynamic";
      g.size = states.get(id)?.expanded ?? runtime.childCount(id);
    }
    index.set(s.id, nodes.length);
    nodes.push(g);
  }
  // Nodes seen at run time that the spec does not list: a dynamic node's sub-DAG, a branch's case.
  const seen = [...runtime.children(p)].filter((l) => !index.has(l) && !l.includes("["));
  seen.sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  for (const local of seen) {
    const id = p + local;
    const st = states.get(id);
    const kids = runtime.childCount(id);
    const g: GNode = {
      id,
      local,
      label: st?.task ?? local,
      kind: st?.kind ?? "task",
      ...(kids > 0 && st?.kind !== "map" ? { group: "dynamic" as const, size: st?.expanded ?? kids } : {}),
    };
    index.set(local, nodes.length);
    nodes.push(g);
  }
  const edges: [number, number][] = [];
  for (const s of specNodes ?? []) {
    const to = index.get(s.id)!;
    const from = new Set<string>([...(s.upstream ?? [])]);
    refsOf(s.inputs, from);
    if (s.kind === "map") refsOf(s.bound, from);
    if (s.kind === "gate") refsOf(s.gate, from);
    if (s.kind === "branch")
      refsOf(
        s.cases?.map((c: any) => c.when),
        from,
      );
    for (const f of from) {
      const i = index.get(f);
      if (i !== undefined && i !== to) edges.push([i, to]);
    }
  }
  return { prefix, nodes, edges };
}

/** The spec nodes inside a group, if the compiled workflow has them. */
export function specChildren(compiled: any, g: GNode): any[] | undefined {
  if (g.group === "workflow" && g.spec) return compiled.subworkflows?.[g.spec.workflow]?.nodes;
  return undefined;
}

/** Apply one event to the node states. Returns the node id it touched, if any. */
export function applyEvent(states: Map<string, NodeState>, e: any): string | undefined {
  if (!e.node) return undefined;
  let s = states.get(e.node);
  if (!s) {
    s = { phase: "not-ready", attempts: 0, events: [] };
    states.set(e.node, s);
  }
  s.events.push(e);
  s.phase = e.phase;
  if (e.attempt) s.attempts = Math.max(s.attempts, e.attempt);
  if (e.cached) s.cached = true;
  if (e.recovered) s.recovered = true;
  if (e.task) s.task = e.task;
  if (e.kind) s.kind = e.kind;
  if (e.message !== undefined) s.message = e.message;
  if (e.error) s.error = e.error;
  if (e.outputs !== undefined) s.outputs = e.outputs;
  if (e.items) s.items = e.items;
  if (e.expanded !== undefined) s.expanded = e.expanded;
  if (e.childExecution) s.childExecution = e.childExecution;
  if (e.phase === "running" && s.startedAt === undefined) s.startedAt = e.at;
  if (["succeeded", "failed", "aborted", "skipped"].includes(e.phase)) {
    s.endedAt = e.at;
    if (s.startedAt === undefined) s.startedAt = e.at;
  }
  return e.node;
}

/**
 * Every node of the execution on one level: each group node stays, followed by
 * its children (an edge from the group to each child without a predecessor,
 * and from each child without a successor to the group's successors).
 */
export function buildFlat(compiled: any, runtime: RuntimeIndex, states: Map<string, NodeState>): Level {
  const nodes: GNode[] = [];
  const edges: [number, number][] = [];
  /** Adds a level and its groups' contents; returns the indices of its sources and sinks. */
  const add = (prefix: string, specNodes: any[] | undefined): { sources: number[]; sinks: number[] } => {
    const lv = buildLevel(compiled, prefix, specNodes, runtime, states);
    const base = nodes.length;
    for (const n of lv.nodes) nodes.push({ ...n, local: n.id });
    const hasIn = new Set<number>();
    const hasOut = new Set<number>();
    for (const [a, b] of lv.edges) {
      edges.push([base + a, base + b]);
      hasOut.add(a);
      hasIn.add(b);
    }
    lv.nodes.forEach((n, i) => {
      if (!n.group) return;
      const inner = add(n.id, specChildren(compiled, n));
      for (const s of inner.sources) edges.push([base + i, s]);
      for (const [a, b] of lv.edges) if (a === i) for (const t of inner.sinks) edges.push([t, base + b]);
    });
    const all = lv.nodes.map((_, i) => i);
    return {
      sources: all.filter((i) => !hasIn.has(i)).map((i) => base + i),
      sinks: all.filter((i) => !hasOut.has(i)).map((i) => base + i),
    };
  };
  add("", compiled.workflow.nodes);
  return { prefix: "*", nodes, edges };
}
