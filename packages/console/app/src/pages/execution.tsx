/**
 * One execution: its DAG with live node phases (server-sent events), group
 * nodes for subworkflows and dynamic nodes, a node panel (inputs, outputs,
 * attempts, log, timeline, gate answers), a list of every node with its
 * timeline, and the actions terminate, relaunch and recover.
 */
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { download, get, post, watch } from "../api.js";
import { can } from "../auth.js";
import { layoutInWorker } from "../graph/layout.js";
import {
  applyEvent,
  buildFlat,
  buildLevel,
  type GNode,
  type Level,
  type NodeState,
  RuntimeIndex,
  specChildren,
} from "../graph/model.js";
import { blobRefs, nodeInputs, PENDING, specAt } from "../graph/resolve.js";
import { GraphView } from "../graph/view.js";
import { LogView } from "../log-view.js";
import { phaseStyle, TERMINAL } from "../phases.js";
import { href, navigate } from "../router.js";
import { ErrorBox, fmtDuration, fmtTime, Json, PhaseBadge, scopePath, useLoad } from "../util.js";
import type { Execution } from "./executions.js";

declare global {
  interface Window {
    /** What the browser tests read: the graph view and load timings. */
    __tern?: {
      graph?: GraphView;
      metrics: Record<string, number | string>;
      states?: Map<string, NodeState>;
    };
  }
}

const EXEC_TERMINAL = new Set(["succeeded", "failed", "aborted"]);

interface Props {
  project: string;
  domain: string;
  id: string;
}

export function ExecutionPage({ project, domain, id }: Props) {
  const scope = scopePath(project, domain);
  const base = `${scope}/executions/${encodeURIComponent(id)}`;
  const exec = useLoad(() => get<Execution>(base), [base]);
  const wf = exec.data?.workflow;
  const compiled = useLoad(
    () =>
      wf
        ? get(
            `${scope}/workflows/${encodeURIComponent(wf.name)}/versions/${encodeURIComponent(wf.version)}/compiled`,
          )
        : Promise.resolve(undefined),
    [scope, wf?.name, wf?.version],
  );
  const states = useRef(new Map<string, NodeState>()).current;
  const runtime = useRef(new RuntimeIndex()).current;
  const [version, setVersion] = useState(0);
  const [phase, setPhase] = useState<string | undefined>();
  const [path, setPath] = useState<GNode[]>([]);
  const [selected, setSelected] = useState<string | undefined>();
  const [tab, setTab] = useState<"graph" | "nodes">("graph");
  const [flat, setFlat] = useState(false);
  const [actionError, setActionError] = useState<unknown>();
  const [confirmTerminate, setConfirmTerminate] = useState(false);
  const host = useRef<HTMLDivElement>(null);
  const view = useRef<GraphView | undefined>(undefined);
  const level = useRef<Level | undefined>(undefined);
  /** Ids of the shown level's nodes → their group kind ("" when not a group). */
  const levelIds = useRef(new Map<string, string>());
  const rebuild = useRef<() => void>(() => {});

  window.__tern ??= { metrics: {} };
  window.__tern.states = states;

  // Events: replayed from the start, then live; the graph redraws per batch, the rest at most 4 times a second.
  useEffect(() => {
    let tick: ReturnType<typeof setTimeout> | undefined;
    let structure: ReturnType<typeof setTimeout> | undefined;
    const bump = () => {
      tick ??= setTimeout(() => {
        tick = undefined;
        setVersion((v) => v + 1);
      }, 250);
    };
    const stop = watch(scope, encodeURIComponent(id), {
      events(items) {
        let changed = false;
        for (const e of items) {
          if (!e.node) {
            setPhase(e.phase);
            continue;
          }
          const fresh = !states.has(e.node);
          applyEvent(states, e);
          if (fresh) {
            runtime.add(e.node);
            // A node the level does not show yet (a dynamic node's child, a branch's case) changes its structure.
            const cut = e.node.lastIndexOf("/");
            const parent = cut < 0 ? "" : e.node.slice(0, cut);
            // Children of a subworkflow node are known from its spec: they change nothing here.
            const parentKind = levelIds.current.get(parent);
            if (
              !levelIds.current.has(e.node) &&
              ((parentKind !== undefined && parentKind !== "workflow") ||
                parent === (level.current?.prefix ?? ""))
            )
              changed = true;
          }
        }
        view.current?.refresh();
        if (changed)
          structure ??= setTimeout(() => {
            structure = undefined;
            rebuild.current();
          }, 300);
        bump();
      },
      end(p) {
        if (p) setPhase(p);
        exec.reload();
        bump();
      },
    });
    return () => {
      stop();
      clearTimeout(tick);
      clearTimeout(structure);
    };
  }, [scope, id]);

  // The graph view lives as long as the page.
  useEffect(() => {
    if (!host.current) return;
    const v = new GraphView(host.current, {
      select: (nodeId) => setSelected(nodeId),
      open: (n) => {
        setFlat(false);
        setPath((p) => [...p, n]);
      },
    });
    view.current = v;
    window.__tern!.graph = v;
    return () => {
      v.destroy();
      view.current = undefined;
    };
  }, []);

  // Lay the opened level out (in the worker) whenever it or its structure changes.
  useEffect(() => {
    const c = compiled.data;
    if (!c) return;
    let current = true;
    const top = path[path.length - 1];
    const prefix = flat ? "*" : (top?.id ?? "");
    const specNodes = top ? specChildren(c, top) : c.workflow.nodes;
    rebuild.current = () => {
      const lv = flat ? buildFlat(c, runtime, states) : buildLevel(c, prefix, specNodes, runtime, states);
      const t0 = performance.now();
      void layoutInWorker(lv.nodes.length, lv.edges).then((r) => {
        if (!current || !view.current) return;
        level.current = lv;
        levelIds.current = new Map(lv.nodes.map((n) => [n.id, n.group ?? ""]));
        view.current.setLevel(lv, r.xy, r.width, r.height, states);
        requestAnimationFrame(() => {
          const m = window.__tern!.metrics;
          if (m.firstGraphMs === undefined) m.firstGraphMs = performance.now();
          m.lastLayoutMs = r.ms;
          m.lastLayoutRoundTripMs = performance.now() - t0;
          m.lastLayoutEngine = r.engine;
          m.levelNodes = lv.nodes.length;
          m.levelEdges = lv.edges.length;
          host.current?.setAttribute("data-ready", flat ? "flat" : prefix || "root");
        });
      });
    };
    rebuild.current();
    return () => {
      current = false;
    };
  }, [compiled.data, path, flat]);

  useEffect(() => view.current?.select(selected, false), [selected]);

  // Escape closes the node panel, then goes up one graph level.
  useEffect(() => {
    const onKey = (ev: KeyboardEvent) => {
      if (ev.key !== "Escape" || (ev.target as HTMLElement).closest?.("input,textarea,select")) return;
      if (selected) setSelected(undefined);
      else if (path.length) setPath((p) => p.slice(0, -1));
    };
    document.addEventListener("keydown", onKey);
    return () => document.removeEventListener("keydown", onKey);
  }, [selected, path.length]);

  const e = exec.data;
  const livePhase = phase ?? e?.phase;
  const mayRun = can("runner", project, domain);
  const act = async (fn: () => Promise<void>) => {
    setActionError(undefined);
    try {
      await fn();
    } catch (err) {
      setActionError(err);
    }
  };
  const selectedState = selected ? states.get(selected) : undefined;
  const selectedNode = selected ? level.current?.nodes.find((n) => n.id === selected) : undefined;
  const counts = useMemo(() => {
    const c: Record<string, number> = {};
    for (const s of states.values()) c[s.phase] = (c[s.phase] ?? 0) + 1;
    return c;
  }, [version]);

  return (
    <div class="execution">
      <div class="exec-head">
        <div>
          <p class="small">
            <a href={href.executions(project, domain)}>Executions</a> /
          </p>
          <h1>
            <code>{id}</code> <PhaseBadge phase={livePhase} />
          </h1>
          {e && (
            <p class="small">
              <a href={href.workflow(project, domain, e.workflow.name, e.workflow.version)}>
                {e.workflow.name} <code>{e.workflow.version}</code>
              </a>
              {e.launchPlan && <> · launch plan {e.launchPlan.name}</>}
              {e.recoverFrom && (
                <>
                  {" "}
                  · recovers <a href={href.execution(project, domain, e.recoverFrom)}>{e.recoverFrom}</a>
                </>
              )}{" "}
              · created {fmtTime(e.createdAt)} · duration{" "}
              {fmtDuration(e.startedAt ? (e.endedAt ?? Date.now()) - e.startedAt : undefined)}
            </p>
          )}
        </div>
        <div class="actions">
          {!mayRun && <span class="small muted">read-only: your token cannot run here</span>}
          {mayRun && livePhase && !EXEC_TERMINAL.has(livePhase) && (
            <button
              type="button"
              class="danger"
              onClick={() =>
                confirmTerminate
                  ? act(async () => {
                      setConfirmTerminate(false);
                      await post(`${base}/terminate`, { reason: "terminated from the console" });
                    })
                  : setConfirmTerminate(true)
              }
            >
              {confirmTerminate ? "Confirm terminate" : "Terminate"}
            </button>
          )}
          {mayRun && e && (
            <button
              type="button"
              onClick={() =>
                act(async () => {
                  const n = await post<Execution>(`${base}/relaunch`);
                  navigate(href.execution(project, domain, n.id));
                })
              }
            >
              Relaunch
            </button>
          )}
          {mayRun && (livePhase === "failed" || livePhase === "aborted") && (
            <button
              type="button"
              onClick={() =>
                act(async () => {
                  const n = await post<Execution>(`${base}/recover`);
                  navigate(href.execution(project, domain, n.id));
                })
              }
            >
              Recover
            </button>
          )}
        </div>
      </div>
      <ErrorBox error={exec.error ?? compiled.error ?? actionError} />
      {e?.error && (
        <div class="errorbox" role="status">
          <strong>{e.error.code}</strong>
          {e.error.node ? ` in node ${e.error.node}` : ""}: {e.error.message}
        </div>
      )}
      <p class="counts small" aria-live="polite">
        {Object.entries(counts).map(([p, n]) => (
          <span key={p} class="count">
            <PhaseBadge phase={p} small /> {n}
          </span>
        ))}
      </p>
      <div class="tabs" role="tablist">
        <button type="button" role="tab" aria-selected={tab === "graph"} onClick={() => setTab("graph")}>
          Graph
        </button>
        <button type="button" role="tab" aria-selected={tab === "nodes"} onClick={() => setTab("nodes")}>
          Nodes and timeline
        </button>
      </div>
      <div class="exec-body">
        <div class="exec-main">
          <div hidden={tab !== "graph"}>
            <nav class="crumbs small" aria-label="Graph level">
              <button type="button" class="link" onClick={() => setPath([])} disabled={!path.length || flat}>
                {e?.workflow.name ?? "workflow"}
              </button>
              {path.map((g, i) => (
                <span key={g.id}>
                  {" › "}
                  <button
                    type="button"
                    class="link"
                    onClick={() => setPath(path.slice(0, i + 1))}
                    disabled={i === path.length - 1}
                  >
                    {g.local}
                  </button>
                </span>
              ))}
              <span class="muted">
                {" "}
                · drag to pan, wheel to zoom, arrows to move, Enter to open, Esc to go up ·{" "}
              </span>
              <button type="button" class="link" aria-pressed={flat} onClick={() => setFlat((f) => !f)}>
                {flat
                  ? "Show groups collapsed"
                  : `Show every node${states.size ? ` (${states.size} seen)` : ""}`}
              </button>
            </nav>
            <div class="graph-host" ref={host} />
          </div>
          {tab === "nodes" && (
            <NodeList
              states={states}
              version={version}
              start={e?.startedAt}
              onSelect={(nodeId) => setSelected(nodeId)}
              selected={selected}
            />
          )}
          {e && (
            <div class="io">
              <section class="section">
                <h3>Inputs</h3>
                <Json value={e.inputs} />
              </section>
              <section class="section">
                <h3>Outputs</h3>
                <Outputs value={e.outputs} scope={scope} execution={id} />
              </section>
            </div>
          )}
        </div>
        {selected && (
          <NodePanel
            key={selected}
            id={selected}
            node={selectedNode}
            state={selectedState}
            version={version}
            compiled={compiled.data}
            execution={e}
            executionPhase={livePhase}
            states={states}
            scope={scope}
            base={base}
            mayRun={mayRun}
            onClose={() => setSelected(undefined)}
            onOpen={(n) => {
              setPath((p) => [...p, n]);
              setSelected(undefined);
            }}
          />
        )}
      </div>
    </div>
  );
}

function Outputs({ value, scope, execution }: { value: unknown; scope: string; execution: string }) {
  const refs = blobRefs(value);
  const [error, setError] = useState<unknown>();
  return (
    <div>
      <Json value={value} />
      {refs.map((r) => (
        <div key={r.uri}>
          {r.kind === "dir" ? (
            <span class="small muted">directory {r.uri}</span>
          ) : (
            <button
              type="button"
              class="download"
              onClick={() =>
                download(scope, execution, r.uri, r.name ?? r.uri.split("/").pop() ?? "value").catch(setError)
              }
            >
              Download {r.kind} {r.name ?? r.uri.split("/").pop()}
            </button>
          )}
        </div>
      ))}
      <ErrorBox error={error} />
    </div>
  );
}

interface PanelProps {
  id: string;
  node?: GNode;
  state?: NodeState;
  version: number;
  compiled: any;
  execution?: Execution;
  executionPhase?: string;
  states: Map<string, NodeState>;
  scope: string;
  base: string;
  mayRun: boolean;
  onClose(): void;
  onOpen(n: GNode): void;
}

function NodePanel(p: PanelProps) {
  const { id, state, compiled, execution } = p;
  const found = compiled ? specAt(compiled, id) : undefined;
  const spec = found?.spec;
  const [attempt, setAttempt] = useState<number | undefined>();
  const [error, setError] = useState<unknown>();
  const [answered, setAnswered] = useState<string | undefined>();
  const [gateValue, setGateValue] = useState("");
  const inputs = compiled && execution ? nodeInputs(compiled, execution.inputs, p.states, id) : undefined;
  const events = state?.events ?? [];
  const attempts = useMemo(() => {
    const by = new Map<number, any[]>();
    for (const e of events) {
      const a = e.attempt ?? 0;
      if (!by.has(a)) by.set(a, []);
      by.get(a)!.push(e);
    }
    return by;
  }, [events.length]);
  const waitingGate =
    spec?.kind === "gate" &&
    spec.gate.kind !== "sleep" &&
    state?.phase === "running" &&
    !EXEC_TERMINAL.has(p.executionPhase ?? "");
  const signal = async (body: unknown, what: string) => {
    setError(undefined);
    try {
      await post(`${p.base}/signals/${encodeURIComponent(id)}`, body);
      setAnswered(what);
    } catch (e) {
      setError(e);
    }
  };
  const t0 = events[0]?.at ?? 0;
  const t1 = Math.max(events[events.length - 1]?.at ?? t0, t0 + 1);
  const isTask = !spec || spec.kind === "task" || spec.kind === "map";
  const live = !!state && !TERMINAL.has(state.phase);
  return (
    <aside class="panel" aria-label={`Node ${id}`}>
      <div class="panel-head">
        <h2>
          <code>{id}</code>
        </h2>
        <button type="button" class="link" onClick={p.onClose} aria-label="Close node panel">
          ✕
        </button>
      </div>
      <p>
        <PhaseBadge phase={state?.phase} /> {state?.cached && <span class="mark">cached</span>}{" "}
        {state?.recovered && <span class="mark">recovered</span>}
      </p>
      <p class="small">
        {state?.task ?? p.node?.label ?? spec?.kind} · {state?.kind ?? spec?.kind ?? "task"}
        {state?.attempts ? ` · ${state.attempts} attempt${state.attempts > 1 ? "s" : ""}` : ""} · duration{" "}
        {fmtDuration(state?.startedAt ? (state.endedAt ?? Date.now()) - state.startedAt : undefined)}
      </p>
      {state?.message && <p class="small muted">{state.message}</p>}
      {p.node?.group && (
        <button type="button" onClick={() => p.onOpen(p.node!)}>
          Open {p.node.group === "workflow" ? "subworkflow" : "dynamic sub-DAG"} ({p.node.size ?? "?"} nodes)
        </button>
      )}
      {state?.items && (
        <p class="small">
          items: {state.items.succeeded} succeeded, {state.items.failed} failed, {state.items.cached} cached
          of {state.items.total}
        </p>
      )}
      {state?.childExecution && (
        <p>
          child execution:{" "}
          <a href={href.execution(execution!.project, execution!.domain, state.childExecution)}>
            {state.childExecution}
          </a>
        </p>
      )}
      {waitingGate && (
        <section class="section gate" aria-label="Gate">
          <h3>
            Waiting for {spec.gate.kind === "approve" ? "approval" : "input"}: {spec.gate.name}
          </h3>
          {answered ? (
            <p role="status">Sent: {answered}</p>
          ) : !p.mayRun ? (
            <p class="muted small">Your token cannot answer gates here (needs runner).</p>
          ) : spec.gate.kind === "approve" ? (
            <p>
              <button type="button" onClick={() => signal({ approved: true }, "approved")}>
                Approve
              </button>{" "}
              <button type="button" class="danger" onClick={() => signal({ approved: false }, "rejected")}>
                Reject
              </button>
            </p>
          ) : (
            <form
              onSubmit={(ev) => {
                ev.preventDefault();
                try {
                  void signal({ value: JSON.parse(gateValue) }, gateValue);
                } catch {
                  setError(new Error("the value must be JSON"));
                }
              }}
            >
              <label for="gate-value">Value (JSON)</label>
              <textarea
                id="gate-value"
                rows={2}
                value={gateValue}
                onInput={(ev) => setGateValue((ev.currentTarget as HTMLTextAreaElement).value)}
              />
              <button type="submit">Send</button>
            </form>
          )}
          <ErrorBox error={error} />
        </section>
      )}
      {state?.error && (
        <section class="section">
          <h3>Error</h3>
          <div class="errorbox">
            <strong>{state.error.code}</strong> ({state.error.kind}): {state.error.message}
            {state.error.hint && <div class="small">{state.error.hint}</div>}
          </div>
        </section>
      )}
      <section class="section">
        <h3>Inputs</h3>
        {inputs === undefined ? (
          <p class="small muted">Not known here: this node was built at run time by a dynamic node.</p>
        ) : (
          <pre class="json">
            {JSON.stringify(inputs, (_k, v) => (v === PENDING ? "(not produced yet)" : v), 2)}
          </pre>
        )}
      </section>
      <section class="section">
        <h3>Outputs</h3>
        {state?.outputs !== undefined ? (
          <Outputs value={state.outputs} scope={p.scope} execution={execution?.id ?? ""} />
        ) : (
          <p class="small muted">None yet.</p>
        )}
      </section>
      {attempts.size > 0 && (
        <section class="section">
          <h3>Attempts</h3>
          <ol class="attempts">
            {[...attempts.entries()]
              .filter(([a]) => a > 0)
              .map(([a, evs]) => {
                const last = evs[evs.length - 1];
                const err = evs.find((x) => x.error)?.error;
                return (
                  <li key={a}>
                    attempt {a}: <PhaseBadge phase={last.phase} small />{" "}
                    {err && (
                      <span class="error small">
                        {err.code} ({err.kind}): {err.message}
                      </span>
                    )}
                  </li>
                );
              })}
          </ol>
        </section>
      )}
      {isTask && (
        <section class="section">
          <h3>
            Log{" "}
            {state && state.attempts > 1 && (
              <select
                aria-label="Attempt"
                value={attempt ?? ""}
                onChange={(ev) => {
                  const v = (ev.currentTarget as HTMLSelectElement).value;
                  setAttempt(v ? Number(v) : undefined);
                }}
              >
                <option value="">latest attempt</option>
                {Array.from({ length: state.attempts }, (_, i) => (
                  <option key={i} value={i + 1}>
                    attempt {i + 1}
                  </option>
                ))}
              </select>
            )}
          </h3>
          <LogView path={`${p.base}/nodes/${encodeURIComponent(id)}/logs`} attempt={attempt} live={live} />
        </section>
      )}
      <section class="section">
        <h3>Timeline</h3>
        <ol class="timeline">
          {events.map((ev) => {
            const ph = phaseStyle(ev.phase);
            return (
              <li key={ev.seq}>
                <span
                  class="tl-bar"
                  style={{ marginLeft: `${((ev.at - t0) / (t1 - t0)) * 60}%`, background: ph.color }}
                />
                <span class="small">
                  +{fmtDuration(ev.at - t0)} {ph.label}
                  {ev.attempt ? ` (attempt ${ev.attempt})` : ""}
                  {ev.message ? ` — ${ev.message}` : ""}
                </span>
              </li>
            );
          })}
        </ol>
      </section>
    </aside>
  );
}

const ROW = 30;
const LIST_H = 520;

function NodeList(p: {
  states: Map<string, NodeState>;
  version: number;
  start?: number;
  selected?: string;
  onSelect(id: string): void;
}) {
  const [top, setTop] = useState(0);
  const [filter, setFilter] = useState("");
  const rows = useMemo(() => {
    const all = [...p.states.entries()].filter(
      ([id, s]) => !filter || id.includes(filter) || s.phase === filter,
    );
    all.sort(
      (a, b) => (a[1].startedAt ?? Number.MAX_SAFE_INTEGER) - (b[1].startedAt ?? Number.MAX_SAFE_INTEGER),
    );
    return all;
  }, [p.version, filter]);
  const t0 = p.start ?? rows[0]?.[1].startedAt ?? 0;
  let t1 = t0 + 1;
  for (const [, s] of rows) t1 = Math.max(t1, s.endedAt ?? Date.now());
  const first = Math.max(0, Math.floor(top / ROW) - 10);
  const last = Math.min(rows.length, Math.ceil((top + LIST_H) / ROW) + 10);
  return (
    <div class="nodelist">
      <input
        type="search"
        placeholder="Filter by node id or phase"
        aria-label="Filter nodes"
        value={filter}
        onInput={(e) => setFilter((e.currentTarget as HTMLInputElement).value)}
      />{" "}
      <span class="small muted">{rows.length} nodes</span>
      <div
        class="nodelist-rows"
        style={{ height: `${LIST_H}px` }}
        onScroll={(e) => setTop((e.currentTarget as HTMLDivElement).scrollTop)}
      >
        <div style={{ height: `${rows.length * ROW}px`, position: "relative" }}>
          {rows.slice(first, last).map(([id, s], k) => {
            const i = first + k;
            const ph = phaseStyle(s.phase);
            const a = s.startedAt ?? t0;
            const b = s.endedAt ?? Date.now();
            return (
              <button
                type="button"
                key={id}
                class={`nodelist-row${id === p.selected ? " selected" : ""}`}
                style={{ top: `${i * ROW}px` }}
                onClick={() => p.onSelect(id)}
              >
                <span class="nl-id">{id}</span>
                <PhaseBadge phase={s.phase} small />
                <span class="nl-dur small">{fmtDuration(s.startedAt ? b - a : undefined)}</span>
                <span class="nl-track" aria-hidden="true">
                  <span
                    class="nl-bar"
                    style={{
                      left: `${((a - t0) / (t1 - t0)) * 100}%`,
                      width: `${Math.max(0.5, ((b - a) / (t1 - t0)) * 100)}%`,
                      background: ph.color,
                    }}
                  />
                </span>
              </button>
            );
          })}
        </div>
      </div>
    </div>
  );
}
