/**
 * History routing under `/console/`: every page has a real URL, so deep links
 * (`/console/projects/<p>/domains/<d>/executions/<id>`) open on a fresh load;
 * the server answers every such path with index.html.
 */
import { signal } from "./state.js";

export const BASE = "/console";

export type Route =
  | { page: "projects" }
  | { page: "project"; project: string }
  | { page: "workflows"; project: string; domain: string }
  | { page: "workflow"; project: string; domain: string; name: string; version?: string }
  | { page: "executions"; project: string; domain: string }
  | { page: "execution"; project: string; domain: string; id: string }
  | { page: "launchplans"; project: string; domain: string }
  | { page: "notfound"; path: string };

export function parse(pathname: string): Route {
  const rest = pathname.startsWith(BASE) ? pathname.slice(BASE.length) : pathname;
  const parts = rest
    .split("/")
    .filter(Boolean)
    .map((p) => decodeURIComponent(p));
  if (parts.length === 0) return { page: "projects" };
  if (parts[0] !== "projects") return { page: "notfound", path: pathname };
  const project = parts[1];
  if (!project) return { page: "projects" };
  if (parts.length === 2) return { page: "project", project };
  if (parts[2] !== "domains" || !parts[3]) return { page: "notfound", path: pathname };
  const domain = parts[3];
  const scope = { project, domain };
  switch (parts[4]) {
    case undefined:
    case "executions":
      if (parts[5]) return { page: "execution", ...scope, id: parts[5] };
      return { page: "executions", ...scope };
    case "workflows":
      if (!parts[5]) return { page: "workflows", ...scope };
      if (parts[6] === "versions" && parts[7])
        return { page: "workflow", ...scope, name: parts[5], version: parts[7] };
      return { page: "workflow", ...scope, name: parts[5] };
    case "launchplans":
      return { page: "launchplans", ...scope };
    default:
      return { page: "notfound", path: pathname };
  }
}

const enc = encodeURIComponent;
export const href = {
  projects: () => `${BASE}/`,
  project: (p: string) => `${BASE}/projects/${enc(p)}`,
  scope: (p: string, d: string) => `${BASE}/projects/${enc(p)}/domains/${enc(d)}`,
  workflows: (p: string, d: string) => `${href.scope(p, d)}/workflows`,
  workflow: (p: string, d: string, name: string, version?: string) =>
    `${href.scope(p, d)}/workflows/${enc(name)}${version ? `/versions/${enc(version)}` : ""}`,
  executions: (p: string, d: string) => `${href.scope(p, d)}/executions`,
  execution: (p: string, d: string, id: string) => `${href.scope(p, d)}/executions/${enc(id)}`,
  launchplans: (p: string, d: string) => `${href.scope(p, d)}/launchplans`,
};

export const location = signal({ path: window.location.pathname, search: window.location.search });

export function navigate(to: string, replace = false): void {
  const url = new URL(to, window.location.href);
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  location.set({ path: url.pathname, search: url.search });
  window.scrollTo(0, 0);
}

window.addEventListener("popstate", () =>
  location.set({ path: window.location.pathname, search: window.location.search }),
);

// Same-origin links under /console are handled here, without a page load.
document.addEventListener("click", (e) => {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = (e.target as Element | null)?.closest?.("a");
  if (!a || a.target || a.hasAttribute("download")) return;
  const url = new URL(a.href, window.location.href);
  if (url.origin !== window.location.origin || !url.pathname.startsWith(BASE)) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
});
