/** Projects, and one project's domains. */
import { get } from "../api.js";
import { roleAt } from "../auth.js";
import { href } from "../router.js";
import { ErrorBox, fmtTime, useLoad } from "../util.js";

interface Project {
  name: string;
  description?: string;
  createdAt: number;
  domains: string[];
}

export function ProjectsPage() {
  const r = useLoad(() => get<{ items: Project[] }>("/projects"), []);
  return (
    <div>
      <h1>Projects</h1>
      <ErrorBox error={r.error} />
      {r.data && r.data.items.length === 0 && <p class="muted">No projects this token can see.</p>}
      <ul class="cards">
        {r.data?.items.map((p) => (
          <li key={p.name} class="card">
            <h2>
              <a href={href.project(p.name)}>{p.name}</a>
            </h2>
            {p.description && <p>{p.description}</p>}
            <p class="small muted">created {fmtTime(p.createdAt)}</p>
            <p>
              {p.domains.map((d) => (
                <a key={d} class="chip" href={href.executions(p.name, d)}>
                  {d}
                </a>
              ))}
            </p>
          </li>
        ))}
      </ul>
    </div>
  );
}

export function ProjectPage({ project }: { project: string }) {
  const r = useLoad(() => get<Project>(`/projects/${encodeURIComponent(project)}`), [project]);
  return (
    <div>
      <p class="small">
        <a href={href.projects()}>Projects</a> /
      </p>
      <h1>{project}</h1>
      <ErrorBox error={r.error} />
      {r.data?.description && <p>{r.data.description}</p>}
      <h2>Domains</h2>
      <table class="table">
        <thead>
          <tr>
            <th>Domain</th>
            <th>Your role</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {r.data?.domains.map((d) => (
            <tr key={d}>
              <td>
                <a href={href.executions(project, d)}>{d}</a>
              </td>
              <td>{roleAt(project, d) ?? "none"}</td>
              <td>
                <a href={href.workflows(project, d)}>workflows</a> ·{" "}
                <a href={href.launchplans(project, d)}>launch plans</a>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
