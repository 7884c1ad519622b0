/**
 * `tern run --remote`: the same command as a local run, but the execution
 * happens on a Tern server. The file is bundled and compiled here, what the
 * run needs (workflow, tasks, code bundle) is registered, the execution is
 * created, its console URL printed, and its progress followed through the
 * watch stream with the renderers of a local run. `--json` prints the same
 * object as a local run; the exit status means the same (0 succeeded, 1
 * failed or aborted, 2 could not start).
 *
 * Ctrl-C asks the server to terminate the execution and keeps following it to
 * its end; a second Ctrl-C exits at once (the execution is then left to the
 * server).
 */
import * as path from "node:path";
import type { CompiledWorkflow, ExecutionEvent, ExecutionResult, NodeSummary } from "@tern/core";
import { ApiClient, type RemoteFlags } from "../client.js";
import { EXIT_FAILED, EXIT_OK, UsageError } from "../errors.js";
import { checkRequired, parseInputFlags, readInputsFile } from "../inputs.js";
import type { Io } from "../io.js";
import { type Core, loadTarget } from "../load.js";
import { Board } from "../render/board.js";
import { colorEnabled, palette } from "../render/format.js";
import { PlainRenderer } from "../render/plain.js";
import { failureReport, jsonReport, summary } from "../render/report.js";
import { TreeRenderer } from "../render/tree.js";
import type { Timing } from "../timing.js";
import { bundlePart } from "./register.js";
import { signalBody } from "./signal.js";

export interface RemoteRunOptions extends RemoteFlags {
  inputs?: string;
  json: boolean;
  /** `--signal gate=value`: answers top-level gates as soon as the execution exists. */
  signal?: string[];
  /** `--recover <execution>`: recover this execution on the server instead of starting a new one. */
  recover?: string;
}

interface ExecutionRecordJson {
  id: string;
  phase: string;
  outputs?: unknown;
  error?: ExecutionResult["error"];
  createdAt: number;
  startedAt?: number;
  endedAt?: number;
}

const TERMINAL = new Set(["succeeded", "failed", "aborted"]);

/** Run `target` of `file` on a server; resolves to the exit status. */
export async function runRemote(
  file: string,
  target: string | undefined,
  flags: readonly string[],
  opts: RemoteRunOptions,
  io: Io,
  timing?: Timing,
): Promise<number> {
  const client = new ApiClient(opts);
  const project = opts.project ?? "default";
  const domain = opts.domain ?? "development";
  const core: Core = await import("@tern/core");
  const t = await loadTarget(core, file, target);
  const compiled = core.compile(t.def, {
    bundle: t.bundle.digest,
    projectRoot: t.bundle.projectRoot,
    project,
    domain,
  });
  timing?.mark("compile");
  const ctx = {
    owner: `${t.kind} "${t.name}"`,
    declared: compiled.spec.workflow.interface.inputs,
    // The server reads file inputs by path: a server on this machine (the sandbox) can.
    refs: { file: (p: string) => core.file(path.resolve(p)), dir: (p: string) => core.dir(path.resolve(p)) },
  };
  const inputs = parseInputFlags(flags, ctx, opts.inputs ? readInputsFile(opts.inputs, ctx) : {});
  checkRequired(inputs, ctx);

  const signals = gateAnswers(compiled.spec, opts.signal ?? []);
  await client.request("POST", "/api/v1/register", {
    workflows: [compiled.spec],
    launchPlans: [],
    bundles: [bundlePart(t.bundle)],
  });
  const wf = compiled.spec.workflow.id;
  const rec = opts.recover
    ? await client.request<ExecutionRecordJson>(
        "POST",
        client.scoped(project, domain, "executions", opts.recover, "recover"),
        {},
      )
    : await client.request<ExecutionRecordJson>("POST", client.scoped(project, domain, "executions"), {
        workflow: { name: wf.name, version: wf.version },
        inputs,
      });
  for (const [gate, body] of signals) {
    await client.request("POST", client.scoped(project, domain, "executions", rec.id, "signals", gate), body);
  }
  timing?.mark("register+launch");
  const url = client.consoleUrl(project, domain, rec.id);
  if (opts.json) io.err(`execution ${rec.id}: ${url}\n`);
  else io.out(`execution ${rec.id}: ${url}\n`);

  const board = new Board(compiled.spec);
  const p = palette(!opts.json && colorEnabled(io.stdout));
  const tty = !opts.json && io.stdout.isTTY === true;
  const tree = tty ? new TreeRenderer(board, io.stdout, p, rec.id) : undefined;
  const plain = !tty && !opts.json ? new PlainRenderer(board, { write: io.out }, p) : undefined;
  const kinds = new Map<string, NodeSummary["kind"]>();
  let terminal: ExecutionEvent | undefined;
  let endPhase: string | null = null;
  const noticed = new Set<string>();
  tree?.start();
  const abort = new AbortController();
  const stopSignals = onInterrupt(client, project, domain, rec.id, io, abort, tree);
  try {
    for await (const item of client.watch(project, domain, rec.id, { signal: abort.signal })) {
      if (item.kind === "end") {
        endPhase = item.phase;
        break;
      }
      const e = item.event as unknown as ExecutionEvent;
      if (e.node && e.kind) kinds.set(e.node, e.kind);
      if (
        e.node &&
        e.phase === "running" &&
        kinds.get(e.node) === "gate" &&
        !signals.has(e.node) &&
        !noticed.has(e.node)
      ) {
        noticed.add(e.node);
        const msg = `gate ${e.node} is waiting: answer it with \`tern signal ${rec.id} ${e.node}=<value>\``;
        if (tree) tree.notice(msg);
        else io.err(`${msg}\n`);
      }
      if (!e.node && TERMINAL.has(e.phase)) terminal = e;
      if (tree) tree.onEvent(e);
      else if (plain) plain.onEvent(e);
      else board.apply(e);
    }
  } finally {
    stopSignals();
    tree?.finish();
  }
  timing?.mark("execute");

  const result = await resultOf(client, project, domain, rec, board, kinds, terminal, endPhase);
  if (opts.json) {
    await io.json(jsonReport(result));
  } else {
    io.out(summary(result, { workflow: t.name }, p));
    if (result.phase !== "succeeded") {
      const node = result.error?.node;
      const log = node ? await nodeLog(client, project, domain, rec.id, node) : [];
      io.err(
        failureReport(
          result,
          { log, projectRoot: t.bundle.projectRoot, cwd: process.cwd() },
          palette(colorEnabled(io.stderr)),
        ),
      );
      io.err(`console: ${url}\n`);
    }
  }
  return result.phase === "succeeded" ? EXIT_OK : EXIT_FAILED;
}

/**
 * `--signal gate=value` pairs as signal bodies, checked against the workflow's
 * top-level gates (nested gates are answered with `tern signal` once they wait).
 */
function gateAnswers(
  spec: CompiledWorkflow,
  pairs: readonly string[],
): Map<string, { approved?: boolean; value?: unknown }> {
  const out = new Map<string, { approved?: boolean; value?: unknown }>();
  const gates = new Map<string, string>();
  for (const n of spec.workflow.nodes) if (n.kind === "gate") gates.set(n.id, n.gate.kind);
  for (const pair of pairs) {
    const i = pair.indexOf("=");
    if (i <= 0)
      throw new UsageError(
        `--signal ${JSON.stringify(pair)} is not <gate>=<value>`,
        "e.g. --signal review=true",
      );
    const gate = pair.slice(0, i);
    const kind = gates.get(gate);
    if (!kind) {
      throw new UsageError(
        `workflow "${spec.workflow.id.name}" has no top-level gate "${gate}"`,
        gates.size
          ? `its gates are: ${[...gates.keys()].join(", ")}; answer nested gates with \`tern signal\` once they wait`
          : "it has no gates",
      );
    }
    out.set(gate, signalBody(kind, pair.slice(i + 1)));
  }
  return out;
}

/** The execution's result, as a local run would have returned it, from what the watch stream showed. */
async function resultOf(
  client: ApiClient,
  project: string,
  domain: string,
  rec: ExecutionRecordJson,
  board: Board,
  kinds: Map<string, NodeSummary["kind"]>,
  terminal: ExecutionEvent | undefined,
  endPhase: string | null,
): Promise<ExecutionResult> {
  let phase = terminal?.phase ?? endPhase;
  let outputs = terminal?.outputs;
  let error = terminal?.error as ExecutionResult["error"];
  let endedAt = terminal?.at ?? board.endedAt;
  if (!terminal) {
    // Ended without a terminal event (e.g. terminated while still queued): the record says how.
    const final = await client.request<ExecutionRecordJson>(
      "GET",
      client.scoped(project, domain, "executions", rec.id),
    );
    phase = final.phase;
    outputs = final.outputs;
    error = final.error;
    endedAt = final.endedAt;
  }
  const now = Date.now();
  const nodes: NodeSummary[] = board.nodes.map((n) => ({
    id: n.id,
    task: n.task,
    kind: kinds.get(n.id) ?? "task",
    phase: n.phase as NodeSummary["phase"],
    attempts: n.attempt,
    cached: n.cached,
    recovered: n.recovered,
    durationMs: n.startedAt !== undefined ? (n.endedAt ?? endedAt ?? now) - n.startedAt : 0,
  }));
  const finalPhase = (phase && TERMINAL.has(phase) ? phase : "failed") as ExecutionResult["phase"];
  return {
    id: rec.id,
    phase: finalPhase,
    ...(finalPhase === "succeeded" ? { outputs } : {}),
    ...(error
      ? { error }
      : finalPhase !== "succeeded"
        ? {
            error: {
              code: "TERN_E_SYSTEM",
              kind: "system" as const,
              message: `the execution ended ${phase ?? "without a phase"}`,
            },
          }
        : {}),
    nodes,
    startedAt: board.startedAt,
    endedAt: endedAt ?? now,
  };
}

async function nodeLog(
  client: ApiClient,
  project: string,
  domain: string,
  id: string,
  node: string,
): Promise<string[]> {
  // The server stores a node's log as the node ends; just after the execution ended it may still be on its way.
  for (let attempt = 0; attempt < 10; attempt++) {
    try {
      const r = await client.request<{ lines: string[] }>(
        "GET",
        client.scoped(project, domain, "executions", id, "nodes", node, "logs"),
      );
      if (r.lines.length) return r.lines;
    } catch {
      return [];
    }
    await new Promise((res) => setTimeout(res, 100));
  }
  return [];
}

/** Ctrl-C: terminate on the server and keep following; twice: stop following at once. */
function onInterrupt(
  client: ApiClient,
  project: string,
  domain: string,
  id: string,
  io: Io,
  abort: AbortController,
  tree?: TreeRenderer,
): () => void {
  let count = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    count++;
    if (count === 1) {
      const msg = `${sig === "SIGINT" ? "Ctrl-C" : sig}: terminating execution ${id} on the server… (press Ctrl-C again to stop following it)`;
      if (tree) tree.notice(msg);
      else io.err(`${msg}\n`);
      void client
        .request("POST", client.scoped(project, domain, "executions", id, "terminate"), {
          reason: `interrupted (${sig})`,
        })
        .catch((e: Error) => io.err(`could not terminate: ${e.message}\n`));
      return;
    }
    tree?.finish();
    io.err(`stopped following ${id}; it continues on the server\n`);
    abort.abort();
    process.exit(130);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  return () => {
    process.removeListener("SIGINT", onSignal);
    process.removeListener("SIGTERM", onSignal);
  };
}
