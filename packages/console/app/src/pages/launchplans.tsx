/** Launch plans with their schedules; activate and deactivate (admin). */
import { useState } from "preact/hooks";
import { get, post } from "../api.js";
import { can } from "../auth.js";
import { href } from "../router.js";
import { ErrorBox, fmtDuration, fmtTime, scopePath, useLoad } from "../util.js";

interface Plan {
  id: { name: string; version: string };
  createdAt: number;
  active?: boolean;
  schedule?: { cron?: string; timezone?: string; everyMs?: number };
}

function describeSchedule(s: Plan["schedule"]): string {
  if (!s) return "none";
  if (s.cron) return `cron ${s.cron}${s.timezone ? ` (${s.timezone})` : " (UTC)"}`;
  if (s.everyMs) return `every ${fmtDuration(s.everyMs)}`;
  return JSON.stringify(s);
}

export function LaunchPlansPage({ project, domain }: { project: string; domain: string }) {
  const base = `${scopePath(project, domain)}/launchplans`;
  const r = useLoad(() => get<{ items: Plan[] }>(`${base}?limit=1000`), [base]);
  const [error, setError] = useState<unknown>();
  const admin = can("admin", project, domain);
  const act = async (fn: () => Promise<unknown>) => {
    setError(undefined);
    try {
      await fn();
      r.reload();
    } catch (e) {
      setError(e);
    }
  };
  return (
    <div>
      <h1>Launch plans</h1>
      <ErrorBox error={r.error ?? error} />
      {r.data && r.data.items.length === 0 && (
        <p class="muted">
          No launch plans in {project}/{domain}.
        </p>
      )}
      <table class="table">
        <thead>
          <tr>
            <th>Name</th>
            <th>Version</th>
            <th>Schedule</th>
            <th>State</th>
            <th>Registered</th>
            <th>Actions</th>
          </tr>
        </thead>
        <tbody>
          {r.data?.items.map((p) => (
            <tr key={`${p.id.name}@${p.id.version}`} data-plan={p.id.name}>
              <td>{p.id.name}</td>
              <td>
                <code>{p.id.version}</code>
              </td>
              <td>{describeSchedule(p.schedule)}</td>
              <td>{p.active ? <strong>active</strong> : <span class="muted">inactive</span>}</td>
              <td>{fmtTime(p.createdAt)}</td>
              <td>
                {admin ? (
                  p.active ? (
                    <button
                      type="button"
                      onClick={() => act(() => post(`${base}/${encodeURIComponent(p.id.name)}/deactivate`))}
                    >
                      Deactivate
                    </button>
                  ) : (
                    <button
                      type="button"
                      onClick={() =>
                        act(() =>
                          post(
                            `${base}/${encodeURIComponent(p.id.name)}/versions/${encodeURIComponent(p.id.version)}/activate`,
                          ),
                        )
                      }
                    >
                      Activate
                    </button>
                  )
                ) : (
                  <span class="muted small">admin only</span>
                )}{" "}
                <a href={`${href.executions(project, domain)}?launchPlan=${encodeURIComponent(p.id.name)}`}>
                  executions
                </a>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
