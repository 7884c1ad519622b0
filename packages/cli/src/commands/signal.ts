/**
 * `tern signal <execution> <gate>=<value>`: answer a gate of a running
 * execution. For an approve gate the value is `approve`/`yes`/`true` or
 * `reject`/`no`/`false`; for an input gate it is JSON (or, when it is not
 * valid JSON, the text itself). Signals are set once.
 */
import { ApiClient, type RemoteFlags } from "../client.js";
import { EXIT_OK, UsageError } from "../errors.js";
import type { Io } from "../io.js";
import type { ExecutionJson } from "./executions.js";

const YES = new Set(["approve", "approved", "yes", "y", "true"]);
const NO = new Set(["reject", "rejected", "no", "n", "false"]);

interface GateNode {
  id: string;
  kind: string;
  gate?: { kind: string };
  cases?: { nodes: GateNode[] }[];
  else?: { nodes?: GateNode[] };
}

/** The kind of gate `node` is (approve, input, sleep), looked up in the execution's compiled workflow. */
async function gateKind(
  client: ApiClient,
  project: string,
  domain: string,
  e: ExecutionJson,
  node: string,
): Promise<string | undefined> {
  let compiled: { workflow: { nodes: GateNode[] }; subworkflows?: Record<string, { nodes: GateNode[] }> };
  try {
    compiled = await client.request(
      "GET",
      client.scoped(
        project,
        domain,
        "workflows",
        e.workflow.name,
        "versions",
        e.workflow.version,
        "compiled",
      ),
    );
  } catch {
    return undefined;
  }
  const leaf = node.slice(node.lastIndexOf("/") + 1);
  const find = (nodes: GateNode[]): string | undefined => {
    for (const n of nodes) {
      if (n.kind === "gate" && n.id === leaf) return n.gate?.kind;
      for (const c of n.cases ?? []) {
        const k = find(c.nodes);
        if (k) return k;
      }
      if (n.else?.nodes) {
        const k = find(n.else.nodes);
        if (k) return k;
      }
    }
    return undefined;
  };
  if (!node.includes("/")) return find(compiled.workflow.nodes);
  for (const w of [compiled.workflow, ...Object.values(compiled.subworkflows ?? {})]) {
    const k = find(w.nodes);
    if (k) return k;
  }
  return undefined;
}

/** Turn `<value>` into the signal body for a gate of `kind`. */
export function signalBody(kind: string | undefined, raw: string): { approved?: boolean; value?: unknown } {
  const word = raw.trim().toLowerCase();
  if (kind === "approve" || (kind === undefined && (YES.has(word) || NO.has(word)))) {
    if (YES.has(word)) return { approved: true };
    if (NO.has(word)) return { approved: false };
    throw new UsageError(
      `"${raw}" is not an answer to an approve gate`,
      "use approve (or yes/true) or reject (or no/false)",
    );
  }
  try {
    return { value: JSON.parse(raw) };
  } catch {
    return { value: raw };
  }
}

/** `tern signal <execution> <gate>=<value>` */
export async function signalCommand(
  execution: string,
  assignment: string,
  flags: RemoteFlags & { reason?: string; json: boolean },
  io: Io,
): Promise<number> {
  const eq = assignment.indexOf("=");
  if (eq <= 0)
    throw new UsageError(
      `expected <gate>=<value>, got "${assignment}"`,
      "e.g. tern signal x1a2b3 review=approve",
    );
  const node = assignment.slice(0, eq);
  const raw = assignment.slice(eq + 1);
  const client = new ApiClient(flags);
  const project = flags.project ?? "default";
  const domain = flags.domain ?? "development";
  const e = await client.request<ExecutionJson>(
    "GET",
    client.scoped(project, domain, "executions", execution),
  );
  const body = {
    ...signalBody(await gateKind(client, project, domain, e, node), raw),
    ...(flags.reason ? { reason: flags.reason } : {}),
  };
  const r = await client.request<{ setBy?: string }>(
    "POST",
    client.scoped(project, domain, "executions", execution, "signals", node),
    body,
  );
  if (flags.json) await io.json(r);
  else {
    const what =
      body.approved === true
        ? "approved"
        : body.approved === false
          ? "rejected"
          : `set to ${JSON.stringify(body.value)}`;
    io.out(`gate ${node} of ${execution} ${what}${r.setBy ? ` (as ${r.setBy})` : ""}\n`);
  }
  return EXIT_OK;
}
