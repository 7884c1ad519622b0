/**
 * `tern executions list|get|logs|terminate|relaunch|recover`: inspect and
 * steer executions on a Tern server.
 */
import { ApiClient, type RemoteFlags } from "../client.js";
import { EXIT_FAILED, EXIT_OK } from "../errors.js";
import type { Io } from "../io.js";
import {
  boundedJson,
  colorEnabled,
  formatDuration,
  pad,
  palette,
  phaseGlyph,
  phaseStyle,
} from "../render/format.js";

export interface ExecutionJson {
  id: string;
  project: string;
  domain: string;
  workflow: { name: string; version: string };
  launchPlan?: { name: string; version: string };
  phase: string;
  inputs: Record<string, unknown>;
  outputs?: unknown;
  error?: { code: string; message: string; hint?: string; node?: string };
  recoverFrom?: string;
  createdAt: number;
  startedAt?: number;
  endedAt?: number;
}

interface NodeJson {
  nodeId: string;
  phase: string;
  attempts: number;
  cached?: boolean;
  recovered?: boolean;
  startedAt?: number;
  endedAt?: number;
  error?: { code: string; message: string };
}

export interface ListFlags extends RemoteFlags {
  phase?: string;
  workflow?: string;
  limit?: number;
  after?: string;
  before?: string;
  json: boolean;
}

const scope = (f: RemoteFlags) => ({ project: f.project ?? "default", domain: f.domain ?? "development" });

function duration(e: { startedAt?: number; endedAt?: number }): string {
  if (e.startedAt === undefined) return "";
  return formatDuration((e.endedAt ?? Date.now()) - e.startedAt);
}

function phaseText(phase: string, io: Io): string {
  const p = palette(colorEnabled(io.stdout));
  return phaseStyle(phase, p)(`${phaseGlyph(phase)} ${pad(phase, 10)}`);
}

/** `tern executions list` */
export async function listExecutions(flags: ListFlags, io: Io): Promise<number> {
  const client = new ApiClient(flags);
  const { project, domain } = scope(flags);
  const q = new URLSearchParams();
  if (flags.phase) q.set("phase", flags.phase);
  if (flags.workflow) q.set("workflow", flags.workflow);
  if (flags.after) q.set("createdAfter", flags.after);
  if (flags.before) q.set("createdBefore", flags.before);
  q.set("limit", String(flags.limit ?? 20));
  const page = await client.request<{ items: ExecutionJson[]; nextCursor?: string }>(
    "GET",
    `${client.scoped(project, domain, "executions")}?${q}`,
  );
  if (flags.json) {
    await io.json(page);
    return EXIT_OK;
  }
  if (page.items.length === 0) {
    io.out(
      `no executions in ${project}/${domain}${flags.phase || flags.workflow ? " matching the filters" : ""}\n`,
    );
    return EXIT_OK;
  }
  const idW = Math.max(...page.items.map((e) => e.id.length));
  const wfW = Math.min(40, Math.max(8, ...page.items.map((e) => e.workflow.name.length)));
  const lines = page.items.map((e) =>
    `${pad(e.id, idW)}  ${phaseText(e.phase, io)}  ${pad(e.workflow.name, wfW)}  ${new Date(e.createdAt).toISOString().replace(/\.\d+Z$/, "Z")}  ${duration(e)}`.trimEnd(),
  );
  io.out(`${lines.join("\n")}\n`);
  if (page.nextCursor)
    io.out(`(more: raise --limit or narrow with --phase, --workflow, --after, --before)\n`);
  return EXIT_OK;
}

/** `tern executions get <id>` */
export async function getExecution(
  id: string,
  flags: RemoteFlags & { json: boolean },
  io: Io,
): Promise<number> {
  const client = new ApiClient(flags);
  const { project, domain } = scope(flags);
  const e = await client.request<ExecutionJson>("GET", client.scoped(project, domain, "executions", id));
  const nodes = await client.request<{ items: NodeJson[] }>(
    "GET",
    client.scoped(project, domain, "executions", id, "nodes"),
  );
  if (flags.json) {
    await io.json({ ...e, nodes: nodes.items });
    return EXIT_OK;
  }
  const lines = [
    `${phaseText(e.phase, io)} ${e.workflow.name}@${e.workflow.version}  execution ${e.id}  ${duration(e)}`,
    `  console: ${client.consoleUrl(project, domain, e.id)}`,
    `  created: ${new Date(e.createdAt).toISOString()}`,
  ];
  if (e.launchPlan) lines.push(`  launch plan: ${e.launchPlan.name}@${e.launchPlan.version}`);
  if (e.recoverFrom) lines.push(`  recovers: ${e.recoverFrom}`);
  lines.push(`  inputs: ${boundedJson(e.inputs, 10, 1000).text.replace(/\n/g, "\n  ")}`);
  if (e.phase === "succeeded")
    lines.push(`  outputs: ${boundedJson(e.outputs ?? null, 20, 2000).text.replace(/\n/g, "\n  ")}`);
  if (e.error)
    lines.push(
      `  error[${e.error.code}]: ${e.error.message}${e.error.node ? ` (node ${e.error.node})` : ""}`,
    );
  if (nodes.items.length) {
    lines.push("  nodes:");
    const w = Math.max(...nodes.items.map((n) => n.nodeId.length));
    for (const n of nodes.items) {
      const extra = [
        n.attempts > 1 ? `attempt ${n.attempts}` : "",
        n.cached ? "cached" : "",
        n.recovered ? "recovered" : "",
        duration(n),
        n.error ? `${n.error.code}: ${n.error.message.split("\n")[0]}` : "",
      ].filter(Boolean);
      lines.push(`    ${phaseText(n.phase, io)} ${pad(n.nodeId, w)}  ${extra.join("  ")}`.trimEnd());
    }
  }
  io.out(`${lines.join("\n")}\n`);
  return EXIT_OK;
}

/** `tern executions logs <id> <node>` */
export async function executionLogs(
  id: string,
  node: string,
  flags: RemoteFlags & { attempt?: number; json: boolean },
  io: Io,
): Promise<number> {
  const client = new ApiClient(flags);
  const { project, domain } = scope(flags);
  const q = flags.attempt ? `?attempt=${flags.attempt}` : "";
  const r = await client.request<{ lines: string[]; attempt?: number }>(
    "GET",
    `${client.scoped(project, domain, "executions", id, "nodes", node, "logs")}${q}`,
  );
  if (flags.json) await io.json(r);
  else if (r.lines.length) io.out(`${r.lines.join("\n")}\n`);
  else io.err(`(node ${node}${r.attempt ? `, attempt ${r.attempt},` : ""} logged nothing)\n`);
  return EXIT_OK;
}

/** `tern executions terminate <id>` */
export async function terminateExecution(
  id: string,
  flags: RemoteFlags & { reason?: string; json: boolean },
  io: Io,
): Promise<number> {
  const client = new ApiClient(flags);
  const { project, domain } = scope(flags);
  const e = await client.request<ExecutionJson>(
    "POST",
    client.scoped(project, domain, "executions", id, "terminate"),
    flags.reason ? { reason: flags.reason } : {},
  );
  if (flags.json) await io.json(e);
  else io.out(`execution ${e.id} is ${e.phase}\n`);
  return EXIT_OK;
}

/** `tern executions relaunch|recover <id>`: a new execution; prints its id and console URL. */
export async function rerunExecution(
  how: "relaunch" | "recover",
  id: string,
  flags: RemoteFlags & { json: boolean },
  io: Io,
): Promise<number> {
  const client = new ApiClient(flags);
  const { project, domain } = scope(flags);
  const e = await client.request<ExecutionJson>(
    "POST",
    client.scoped(project, domain, "executions", id, how),
    {},
  );
  if (flags.json) await io.json(e);
  else
    io.out(
      `execution ${e.id} (${how === "recover" ? `recovering ${id}` : `relaunch of ${id}`}): ${client.consoleUrl(project, domain, e.id)}\n`,
    );
  return e.phase === "failed" ? EXIT_FAILED : EXIT_OK;
}
