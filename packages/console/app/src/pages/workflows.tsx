/** Workflows, their versions, and the launch form of a version. */
import { get, post } from "../api.js";
import { can } from "../auth.js";
import { href, navigate } from "../router.js";
import { type InputSpec, LaunchForm } from "../schema-form.js";
import { ErrorBox, fmtTime, Json, scopePath, useLoad } from "../util.js";

interface RegistryRecord {
  kind: string;
  id: { project: string; domain: string; name: string; version: string };
  digest: string;
  createdAt: number;
  spec?: any;
}

type Scope = { project: string; domain: string };

export function WorkflowsPage({ project, domain }: Scope) {
  const r = useLoad(
    () => get<{ items: RegistryRecord[] }>(`${scopePath(project, domain)}/workflows?limit=1000`),
    [project, domain],
  );
  // Newest version of each name first.
  const latest = new Map<string, RegistryRecord & { versions: number }>();
  for (const w of r.data?.items ?? []) {
    const seen = latest.get(w.id.name);
    if (seen) seen.versions++;
    else latest.set(w.id.name, { ...w, versions: 1 });
  }
  return (
    <div>
      <h1>Workflows</h1>
      <ErrorBox error={r.error} />
      {r.data && latest.size === 0 && (
        <p class="muted">
          Nothing registered in {project}/{domain} yet: <code>tern register flows.ts</code>.
        </p>
      )}
      <table class="table">
        <thead>
          <tr>
            <th>Name</th>
            <th>Latest version</th>
            <th>Registered</th>
            <th>Versions</th>
          </tr>
        </thead>
        <tbody>
          {[...latest.values()].map((w) => (
            <tr key={w.id.name}>
              <td>
                <a href={href.workflow(project, domain, w.id.name)}>{w.id.name}</a>
              </td>
              <td>
                <a href={href.workflow(project, domain, w.id.name, w.id.version)}>
                  <code>{w.id.version}</code>
                </a>
              </td>
              <td>{fmtTime(w.createdAt)}</td>
              <td>{w.versions}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function WorkflowPage({ project, domain, name, version }: Scope & { name: string; version?: string }) {
  const base = `${scopePath(project, domain)}/workflows/${encodeURIComponent(name)}`;
  const versions = useLoad(() => get<{ items: RegistryRecord[] }>(base), [base]);
  const chosen = version ?? versions.data?.items[0]?.id.version;
  const detail = useLoad(
    () =>
      chosen
        ? get<RegistryRecord>(`${base}/versions/${encodeURIComponent(chosen)}`)
        : Promise.resolve(undefined),
    [base, chosen],
  );
  const spec = detail.data?.spec;
  const inputs: Record<string, InputSpec> | undefined = spec?.interface?.inputs;
  const mayRun = can("runner", project, domain);
  return (
    <div class="split">
      <div class="main-col">
        <p class="small">
          <a href={href.workflows(project, domain)}>Workflows</a> /
        </p>
        <h1>
          {name} {chosen && <code class="small">{chosen}</code>}
        </h1>
        <ErrorBox error={versions.error ?? detail.error} />
        {spec?.description && <p>{spec.description}</p>}
        {inputs && (
          <section class="section">
            <h2>Launch</h2>
            <LaunchForm
              key={chosen}
              inputs={inputs}
              disabled={
                mayRun ? undefined : `your token cannot launch in ${project}/${domain} (needs runner)`
              }
              onLaunch={async (values) => {
                const e = await post(`${scopePath(project, domain)}/executions`, {
                  workflow: { name, version: chosen },
                  inputs: values,
                });
                navigate(href.execution(project, domain, e.id));
              }}
            />
          </section>
        )}
        {spec && (
          <section class="section">
            <h2>Interface</h2>
            <h3>Inputs</h3>
            <Json value={spec.interface.inputs} />
            <h3>Output</h3>
            <Json value={spec.interface.output} />
            <p class="small muted">
              {spec.nodes?.length ?? 0} nodes · failure policy {spec.failurePolicy}
            </p>
          </section>
        )}
      </div>
      <aside class="side-col" aria-label="Versions">
        <h2>Versions</h2>
        <ul class="versions">
          {versions.data?.items.map((v) => (
            <li key={v.id.version} class={v.id.version === chosen ? "active" : ""}>
              <a
                href={href.workflow(project, domain, name, v.id.version)}
                aria-current={v.id.version === chosen ? "page" : undefined}
              >
                <code>{v.id.version}</code>
              </a>
              <div class="small muted">{fmtTime(v.createdAt)}</div>
            </li>
          ))}
        </ul>
      </aside>
    </div>
  );
}
