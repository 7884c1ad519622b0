/** Executions, newest first, filtered by phase, workflow and time, refreshed live. */
import { useState } from "preact/hooks";
import { get } from "../api.js";
import { EXECUTION_PHASES } from "../phases.js";
import { href, location, navigate } from "../router.js";
import { useSignal } from "../state.js";
import { ErrorBox, fmtDuration, fmtTime, PhaseBadge, scopePath, useLoad } from "../util.js";

export interface Execution {
  id: string;
  project: string;
  domain: string;
  workflow: { name: string; version: string };
  launchPlan?: { name: string; version: string };
  phase: string;
  inputs: Record<string, unknown>;
  outputs?: unknown;
  error?: { code?: string; message?: string; node?: string; kind?: string };
  recoverFrom?: string;
  parent?: { execution: string; node: string };
  createdAt: number;
  startedAt?: number;
  endedAt?: number;
}

const WINDOWS: { label: string; ms?: number }[] = [
  { label: "any time" },
  { label: "last hour", ms: 3600_000 },
  { label: "last 24 hours", ms: 86_400_000 },
  { label: "last 7 days", ms: 7 * 86_400_000 },
];

/** How often the list is read again. */
const LIVE_MS = 2000;

export function ExecutionsPage({ project, domain }: { project: string; domain: string }) {
  const loc = useSignal(location);
  const q = new URLSearchParams(loc.search);
  const phase = q.get("phase") ?? "";
  const workflow = q.get("workflow") ?? "";
  const since = q.get("since") ?? "";
  const launchPlan = q.get("launchPlan") ?? "";
  const [limit, setLimit] = useState(50);
  const scope = scopePath(project, domain);
  const workflows = useLoad(() => get<{ items: any[] }>(`${scope}/workflows?limit=1000`), [scope]);
  const names = [...new Set((workflows.data?.items ?? []).map((w) => w.id.name as string))].sort();
  const r = useLoad(
    () => {
      const p = new URLSearchParams({ limit: String(limit) });
      if (phase) p.set("phase", phase);
      if (workflow) p.set("workflow", workflow);
      const win = WINDOWS.find((w) => w.label === since);
      if (win?.ms) p.set("createdAfter", String(Date.now() - win.ms));
      return get<{ items: Execution[]; nextCursor?: string }>(`${scope}/executions?${p}`);
    },
    [scope, phase, workflow, since, limit],
    LIVE_MS,
  );
  const setFilter = (key: string, value: string) => {
    const next = new URLSearchParams(loc.search);
    if (value) next.set(key, value);
    else next.delete(key);
    navigate(`${href.executions(project, domain)}${next.size ? `?${next}` : ""}`, true);
  };
  const items = (r.data?.items ?? []).filter((e) => !launchPlan || e.launchPlan?.name === launchPlan);
  return (
    <div>
      <h1>Executions</h1>
      <form class="filters" aria-label="Filters" onSubmit={(e) => e.preventDefault()}>
        <label>
          Phase{" "}
          <select
            value={phase}
            onChange={(e) => setFilter("phase", (e.currentTarget as HTMLSelectElement).value)}
          >
            <option value="">any</option>
            {EXECUTION_PHASES.map((p) => (
              <option key={p} value={p}>
                {p}
              </option>
            ))}
          </select>
        </label>
        <label>
          Workflow{" "}
          <select
            value={workflow}
            onChange={(e) => setFilter("workflow", (e.currentTarget as HTMLSelectElement).value)}
          >
            <option value="">any</option>
            {names.map((n) => (
              <option key={n} value={n}>
                {n}
              </option>
            ))}
          </select>
        </label>
        <label>
          Created{" "}
          <select
            value={since}
            onChange={(e) => setFilter("since", (e.currentTarget as HTMLSelectElement).value)}
          >
            {WINDOWS.map((w) => (
              <option key={w.label} value={w.ms ? w.label : ""}>
                {w.label}
              </option>
            ))}
          </select>
        </label>
        {launchPlan && (
          <span class="chip">
            launch plan {launchPlan}{" "}
            <button type="button" class="link" onClick={() => setFilter("launchPlan", "")}>
              clear
            </button>
          </span>
        )}
        <span class="small muted" aria-live="polite">
          live · {items.length} shown
        </span>
      </form>
      <ErrorBox error={r.error} />
      <table class="table executions">
        <thead>
          <tr>
            <th>Execution</th>
            <th>Workflow</th>
            <th>Phase</th>
            <th>Created</th>
            <th>Duration</th>
          </tr>
        </thead>
        <tbody>
          {items.map((e) => (
            <tr key={e.id} data-execution={e.id}>
              <td>
                <a href={href.execution(project, domain, e.id)}>
                  <code>{e.id}</code>
                </a>
              </td>
              <td>
                {e.workflow.name}
                {e.launchPlan && <span class="small muted"> via {e.launchPlan.name}</span>}
              </td>
              <td>
                <PhaseBadge phase={e.phase} small />
              </td>
              <td>{fmtTime(e.createdAt)}</td>
              <td>{fmtDuration(e.startedAt ? (e.endedAt ?? Date.now()) - e.startedAt : undefined)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {r.data?.nextCursor && (
        <button type="button" onClick={() => setLimit((l) => Math.min(500, l + 50))} disabled={limit >= 500}>
          Show more
        </button>
      )}
    </div>
  );
}
