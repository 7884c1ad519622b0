/**
 * The state of every node of a running execution, folded from its events.
 * Both renderers (the live tree and the plain progress lines) read it.
 *
 * Nodes of nested scopes (subworkflows, branch cases, dynamic sub-DAGs, map
 * items) have `/`-qualified ids (`sub/train`); they join the board when their
 * first event arrives and sit right after their parent's other descendants.
 */
import type { CompiledWorkflow, ExecutionEvent, MapItems } from "@tern/core";

/** One node as the renderers show it. */
export interface NodeView {
  /** Fully qualified id: `train`, or `sub/train` inside node `sub`. */
  id: string;
  /** Enclosing node's id, for nested nodes. */
  parent?: string;
  /** Nesting level: 0 for the workflow's own nodes. */
  depth: number;
  /** Task name, or what a control node is (`map(square)`, `branch`, `gate:approve`…). */
  task: string;
  /** Progress of a map node. */
  items?: MapItems;
  phase: string;
  attempt: number;
  cached: boolean;
  recovered: boolean;
  startedAt?: number;
  endedAt?: number;
  message?: string;
  /** When the current phase began (for ordering the most recent changes). */
  changedAt: number;
}

/** What an event changed, so the plain renderer prints only real changes. */
export interface Change {
  node?: NodeView;
  phaseChanged: boolean;
  attemptChanged: boolean;
  newMessage: boolean;
}

const TERMINAL = new Set(["succeeded", "failed", "skipped", "aborted"]);
const ACTIVE = new Set(["queued", "waiting-for-resources", "initializing", "running", "retrying"]);

/** True for a phase a node cannot leave. */
export const isTerminal = (phase: string): boolean => TERMINAL.has(phase);
/** True while a node holds (or waits for) a slot. */
export const isActive = (phase: string): boolean => ACTIVE.has(phase);

/** Every node's current state, in graph order, plus the execution's own phase. */
export class Board {
  readonly nodes: NodeView[] = [];
  readonly byId = new Map<string, NodeView>();
  readonly workflow: string;
  phase = "running";
  startedAt = Date.now();
  endedAt?: number;

  constructor(spec: CompiledWorkflow) {
    this.workflow = spec.workflow.id.name;
    for (const n of spec.workflow.nodes) this.add(n.id, nodeLabel(n as SpecNode, spec));
  }

  private add(id: string, task: string): NodeView {
    const cut = id.lastIndexOf("/");
    const parent = cut > 0 ? id.slice(0, cut) : undefined;
    const v: NodeView = {
      id,
      parent,
      depth: id.split("/").length - 1,
      task,
      phase: "not-ready",
      attempt: 0,
      cached: false,
      recovered: false,
      changedAt: 0,
    };
    // Keep the order a tree reads in: a nested node goes after its parent's subtree.
    let at = this.nodes.length;
    if (parent !== undefined && this.byId.has(parent)) {
      at = this.nodes.indexOf(this.byId.get(parent)!) + 1;
      while (at < this.nodes.length && this.nodes[at].id.startsWith(`${parent}/`)) at++;
    }
    this.nodes.splice(at, 0, v);
    this.byId.set(id, v);
    return v;
  }

  /** Fold one event in. */
  apply(e: ExecutionEvent): Change {
    if (e.node === undefined) {
      const phaseChanged = e.phase !== this.phase || e.seq === 1;
      if (e.seq === 1) this.startedAt = e.at;
      this.phase = e.phase;
      if (isTerminal(e.phase)) this.endedAt = e.at;
      return { phaseChanged, attemptChanged: false, newMessage: false };
    }
    // Nodes made at execution time (dynamic sub-DAGs, map items, branch cases) join as they appear.
    const n = this.byId.get(e.node) ?? this.add(e.node, "");
    const phaseChanged = n.phase !== e.phase;
    const attempt = e.attempt ?? n.attempt;
    const attemptChanged = attempt !== n.attempt;
    const newMessage = e.message !== undefined && e.message !== n.message;
    if (phaseChanged) n.changedAt = e.at;
    n.phase = e.phase;
    n.attempt = attempt;
    if (e.message !== undefined) n.message = e.message;
    else if (phaseChanged) n.message = undefined;
    if (e.task) n.task = e.task;
    if (e.items) n.items = e.items;
    if (e.cached) n.cached = true;
    if (e.recovered) n.recovered = true;
    if (e.phase === "queued" && n.startedAt === undefined) n.startedAt = e.at;
    if (isTerminal(e.phase)) {
      n.endedAt = e.at;
      n.startedAt ??= e.at;
    }
    return { node: n, phaseChanged, attemptChanged, newMessage };
  }

  /** How many nodes are in each phase. */
  counts(): Map<string, number> {
    const m = new Map<string, number>();
    for (const n of this.nodes) m.set(n.phase, (m.get(n.phase) ?? 0) + 1);
    return m;
  }
}

/** The fields of a spec node the label needs; every node kind has `id` and `kind`. */
interface SpecNode {
  id: string;
  kind: string;
  task?: string;
  workflow?: string;
  launchPlan?: string;
  target?: { task?: string; workflow?: string };
  gate?: { kind: string };
}

/**
 * What a node runs, before its first event says so: the task name, or what a
 * control node is, in the engine's own words (`map(square)`, `workflow(sub)`).
 */
function nodeLabel(n: SpecNode, spec: CompiledWorkflow): string {
  const name = (key: string | undefined) => (key ? key.replace(/@[^@]*$/, "") : "");
  switch (n.kind) {
    case "task":
      return spec.tasks[n.task ?? ""]?.id.name ?? name(n.task);
    case "workflow":
      return `workflow(${name(n.workflow)})`;
    case "launchplan":
      return `launchplan(${name(n.launchPlan)})`;
    case "map":
      return `map(${name(n.target?.task ?? n.target?.workflow)})`;
    case "gate":
      return `gate:${n.gate?.kind ?? ""}`;
    default:
      return n.kind;
  }
}

/** `12/40 done, 1 failed, 3 cached` for a map node. */
export function itemsText(items: MapItems | undefined): string | undefined {
  if (!items) return undefined;
  const parts = [`${items.succeeded + items.failed}/${items.total} done`];
  if (items.failed) parts.push(`${items.failed} failed`);
  if (items.cached) parts.push(`${items.cached} cached`);
  return parts.join(", ");
}

/** How long a node has run (so far, while it runs). */
export function nodeDuration(n: NodeView, now = Date.now()): number | undefined {
  if (n.startedAt === undefined) return undefined;
  return (n.endedAt ?? now) - n.startedAt;
}
