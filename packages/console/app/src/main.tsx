/** The console's shell: header, token prompt, scope navigation, and the page for the URL. */
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { get } from "./api.js";
import { can, roleAt, setToken, tokenPrompt, type Whoami, whoami } from "./auth.js";
import { ExecutionPage } from "./pages/execution.js";
import { ExecutionsPage } from "./pages/executions.js";
import { LaunchPlansPage } from "./pages/launchplans.js";
import { ProjectPage, ProjectsPage } from "./pages/projects.js";
import { WorkflowPage, WorkflowsPage } from "./pages/workflows.js";
import { href, location, parse, type Route } from "./router.js";
import { useSignal } from "./state.js";
import "./styles.css";

async function loadWhoami(): Promise<void> {
  try {
    whoami.set(await get<Whoami>("/whoami"));
  } catch {
    whoami.set(undefined);
  }
}

function TokenDialog({ message }: { message: string }) {
  const [value, setValue] = useState("");
  const save = (e: Event) => {
    e.preventDefault();
    if (!value.trim()) return;
    setToken(value.trim());
    tokenPrompt.set(undefined);
    void loadWhoami();
    navigateReload();
  };
  return (
    <div class="overlay" role="dialog" aria-modal="true" aria-labelledby="token-title">
      <form class="dialog" onSubmit={save}>
        <h2 id="token-title">This server needs a token</h2>
        <p class="muted">{message}</p>
        <label for="token-input">API token</label>
        <input
          id="token-input"
          type="password"
          autoComplete="off"
          // biome-ignore lint/a11y/noAutofocus: the dialog's only field, and the dialog blocks the page
          autoFocus
          value={value}
          onInput={(e) => setValue((e.currentTarget as HTMLInputElement).value)}
        />
        <p class="small muted">
          Kept for this browser tab only (session storage) and sent as a Bearer header.
        </p>
        <button type="submit">Use token</button>
      </form>
    </div>
  );
}

/** Pages re-read their data when the token changes: remount them. */
let remount = 0;
function navigateReload() {
  remount++;
  location.set({ ...location.value });
}

function ScopeNav({ project, domain, page }: { project: string; domain: string; page: string }) {
  const domains = ["development", "staging", "production"];
  const link = (to: string, label: string, active: boolean) => (
    <a href={to} aria-current={active ? "page" : undefined} class={active ? "active" : ""}>
      {label}
    </a>
  );
  return (
    <nav class="scopenav" aria-label="Project sections">
      <div class="scope">
        <a href={href.project(project)}>{project}</a> /{" "}
        <select
          aria-label="Domain"
          value={domain}
          onChange={(e) => {
            const d = (e.currentTarget as HTMLSelectElement).value;
            window.history.pushState(null, "", href.executions(project, d));
            location.set({ path: window.location.pathname, search: "" });
          }}
        >
          {(domains.includes(domain) ? domains : [...domains, domain]).map((d) => (
            <option key={d} value={d}>
              {d}
            </option>
          ))}
        </select>
      </div>
      {link(href.executions(project, domain), "Executions", page === "executions" || page === "execution")}
      {link(href.workflows(project, domain), "Workflows", page === "workflows" || page === "workflow")}
      {link(href.launchplans(project, domain), "Launch plans", page === "launchplans")}
      <span class="role small" data-role={roleAt(project, domain) ?? "none"}>
        role: {roleAt(project, domain) ?? "none"}
        {!can("runner", project, domain) ? " (read-only)" : ""}
      </span>
    </nav>
  );
}

function Page({ route }: { route: Route }) {
  switch (route.page) {
    case "projects":
      return <ProjectsPage />;
    case "project":
      return <ProjectPage project={route.project} />;
    case "workflows":
      return <WorkflowsPage {...route} />;
    case "workflow":
      return <WorkflowPage {...route} />;
    case "executions":
      return <ExecutionsPage {...route} />;
    case "execution":
      return <ExecutionPage {...route} />;
    case "launchplans":
      return <LaunchPlansPage {...route} />;
    default:
      return (
        <div>
          <h1>Not found</h1>
          <p>
            No console page at <code>{route.path}</code>. <a href={href.projects()}>Projects</a>
          </p>
        </div>
      );
  }
}

function App() {
  const loc = useSignal(location);
  const prompt = useSignal(tokenPrompt);
  const me = useSignal(whoami);
  useEffect(() => void loadWhoami(), []);
  const route = parse(loc.path);
  const scoped = "domain" in route ? route : undefined;
  return (
    <div class="app">
      <header class="top">
        <a class="brand" href={href.projects()}>
          Tern
        </a>
        <span class="spacer" />
        {me && (
          <span class="who small">
            {me.authRequired ? `signed in as ${me.name}` : "open sandbox (no tokens)"}
            {me.authRequired && (
              <button
                type="button"
                class="link"
                onClick={() => {
                  setToken(undefined);
                  whoami.set(undefined);
                  tokenPrompt.set("Signed out: paste a token to continue.");
                }}
              >
                sign out
              </button>
            )}
          </span>
        )}
      </header>
      {scoped && <ScopeNav project={scoped.project} domain={scoped.domain} page={route.page} />}
      <main id="main" key={`${remount}`}>
        {prompt === undefined ? <Page route={route} /> : null}
      </main>
      {prompt !== undefined && <TokenDialog message={prompt} />}
    </div>
  );
}

render(<App />, document.getElementById("app")!);
