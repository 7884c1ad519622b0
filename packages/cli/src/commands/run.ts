/**
 * `tern run <file> <workflow-or-task> [--<input> value ...]`: bundle and load
 * the file, compile the definition, parse inputs against its interface, run it
 * on a local engine, show progress, record the execution under
 * `.tern/executions/<id>/` and report the outcome.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { ExecutionHandle, ExecutionResult } from "@tern/core";
import { EXIT_FAILED, EXIT_OK } from "../errors.js";
import { checkRequired, parseInputFlags, readInputsFile } from "../inputs.js";
import type { Io } from "../io.js";
import { executionDir, Journal, type Recovery, readRecovery } from "../journal.js";
import { type Core, loadTarget } from "../load.js";
import { Board } from "../render/board.js";
import { colorEnabled, palette } from "../render/format.js";
import { PlainRenderer } from "../render/plain.js";
import { failureReport, jsonReport, summary } from "../render/report.js";
import { TreeRenderer } from "../render/tree.js";
import { parseSignalFlags, signalProvider } from "../signals.js";
import { Timing } from "../timing.js";

export interface RunOptions {
  /** JSON file with base inputs. */
  inputs?: string;
  /** inline (default), process, or a plugin from the config (`k8s`). */
  backend?: string;
  /** tern.config.ts to load plugins from; default: the project root's, if any. */
  config?: string;
  json: boolean;
  /** False with `--no-cache`. */
  cache: boolean;
  workers?: number;
  /** The CLI's version, recorded in `run.json`. */
  version?: string;
  /** `--signal gate=value`, repeatable: answers gates up front. */
  signal?: string[];
  /** Recover this local execution: reuse its succeeded nodes, run the rest. */
  recover?: string;
  /** `--remote` (with `--server`, `--token`, `--project`, `--domain`): run on a Tern server, see ./remote.ts. */
  remote?: boolean;
  server?: string;
  token?: string;
  project?: string;
  domain?: string;
}

/** Run a workflow or task; resolves to the exit status. Errors before the execution starts are thrown. */
export async function runCommand(
  file: string,
  target: string | undefined,
  flags: readonly string[],
  opts: RunOptions,
  io: Io,
  timing = new Timing(),
): Promise<number> {
  timing.mark("boot+cli");
  if (opts.remote) return (await import("./remote.js")).runRemote(file, target, flags, opts, io, timing);
  const core: Core = await import("@tern/core");
  timing.mark("import core");
  const t = await loadTarget(core, file, target);
  timing.mark("bundle+load");
  const projectRoot = t.bundle.projectRoot;
  const compiled = core.compile(t.def, { bundle: t.bundle.digest, projectRoot });
  timing.mark("compile");
  const ctx = {
    owner: `${t.kind} "${t.name}"`,
    declared: compiled.spec.workflow.interface.inputs,
    refs: { file: (p: string) => core.file(p), dir: (p: string) => core.dir(p) },
  };
  const recovery = opts.recover
    ? recoveryOf(core, projectRoot, opts.recover, compiled.spec.workflow.id.name)
    : undefined;
  const base = { ...(recovery?.inputs ?? {}), ...(opts.inputs ? readInputsFile(opts.inputs, ctx) : {}) };
  const inputs = parseInputFlags(flags, ctx, base);
  checkRequired(inputs, ctx);
  const given = parseSignalFlags(core, opts.signal ?? []);
  const config = await loadLocalConfig(projectRoot, opts.config);
  timing.mark("config");
  const local = await core.createEngine({
    workDir: projectRoot,
    ...(opts.backend ? { backend: opts.backend } : config.backend ? { backend: config.backend } : {}),
    ...(config.plugins ? { plugins: config.plugins } : {}),
    ...(config.backendConfig ? { backendConfig: config.backendConfig } : {}),
    catalog: opts.cache ? "disk" : false,
    ...(opts.workers ? { workers: opts.workers } : {}),
  });
  timing.mark("engine");
  try {
    local.definitions.add(compiled);
    const id = core.newExecutionId();
    const journal = new Journal(executionDir(projectRoot, id));
    const board = new Board(compiled.spec);
    const p = palette(!opts.json && colorEnabled(io.stdout));
    const tty = !opts.json && io.stdout.isTTY === true;
    const tree = tty ? new TreeRenderer(board, io.stdout, p, id) : undefined;
    const plain = !tty && !opts.json ? new PlainRenderer(board, { write: io.out }, p) : undefined;
    // The tree takes over the terminal first: the engine may run task code before start() returns.
    tree?.start();
    let handle: ExecutionHandle;
    try {
      const interactive = !opts.json && process.stdin.isTTY === true && io.stdout.isTTY === true;
      handle = local.engine.start(compiled, inputs, {
        id,
        signals: signalProvider(core, given, {
          interactive,
          pause: () => tree?.pause(),
          resume: () => tree?.resume(),
        }),
        ...(recovery ? { reuse: (node: string) => recovery.succeeded.get(node) } : {}),
        onEvent: (e) => {
          journal.record(e);
          if (tree) tree.onEvent(e);
          else if (plain) plain.onEvent(e);
          else board.apply(e);
        },
      });
    } catch (e) {
      tree?.discard();
      throw e;
    }
    journal.begin({
      spec: compiled.spec,
      inputs,
      run: {
        execution: id,
        file: path.relative(projectRoot, t.bundle.entry),
        target: t.name,
        kind: t.kind,
        export: t.exportName,
        bundle: t.bundle.digest,
        backend: opts.backend ?? config.backend ?? "inline",
        cache: opts.cache,
        workers: opts.workers ?? null,
        argv: process.argv.slice(2),
        cwd: process.cwd(),
        startedAt: new Date().toISOString(),
        tern: opts.version ?? null,
        ...(recovery ? { recoveredFrom: recovery.id } : {}),
      },
    });
    const stopSignals = onInterrupt(handle, journal, io, tree);
    let result: ExecutionResult;
    try {
      result = await handle.result;
    } finally {
      stopSignals();
      tree?.finish();
    }
    timing.mark("execute");
    journal.finish(result, (n, a) => handle.logs(n, a));
    const records = path.relative(process.cwd(), journal.dir) || ".";
    if (opts.json) {
      await io.json(jsonReport(result));
    } else {
      io.out(summary(result, { workflow: t.name, recordsDir: records }, p));
      if (result.phase !== "succeeded") io.err(failureText(result, handle, journal, projectRoot, io));
    }
    if (journal.error)
      io.err(`warning: could not write the execution records in ${records}: ${journal.error.message}\n`);
    return result.phase === "succeeded" ? EXIT_OK : EXIT_FAILED;
  } finally {
    await local.close();
    timing.mark("close");
    if (timing.enabled) io.err(timing.report());
  }
}

const CONFIG_NAMES = ["tern.config.ts", "tern.config.mts", "tern.config.js", "tern.config.mjs"];

/** Plugins and backend mapping from tern.config.ts: the file given, else the project root's, else none. */
async function loadLocalConfig(
  projectRoot: string,
  file?: string,
): Promise<import("@tern/server/config").ServerConfig> {
  const found = file ?? CONFIG_NAMES.map((n) => path.join(projectRoot, n)).find((p) => fs.existsSync(p));
  if (!found) return {};
  const { loadServerConfig } = await import("@tern/server/config");
  return loadServerConfig(path.resolve(found));
}

/** The records of the execution to recover; a usage error when there are none or they are of another workflow. */
function recoveryOf(core: Core, projectRoot: string, id: string, workflow: string): Recovery {
  const r = readRecovery(projectRoot, id);
  if (!r) {
    throw new core.TernError(
      core.ErrorCodes.USAGE,
      `no local execution "${id}" to recover under ${path.join(projectRoot, ".tern", "executions")}`,
      {
        hint: "give the id a previous `tern run` printed (ls .tern/executions)",
      },
    );
  }
  if (r.workflow && r.workflow !== workflow) {
    throw new core.TernError(
      core.ErrorCodes.USAGE,
      `execution "${id}" ran workflow "${r.workflow}", not "${workflow}"`,
      {
        hint: `recover it with the same workflow: tern run <file> ${r.workflow} --recover ${id}`,
      },
    );
  }
  return r;
}

/** The failure report, with the failing node's log tail and where its full log was written. */
function failureText(
  result: ExecutionResult,
  handle: ExecutionHandle,
  journal: Journal,
  projectRoot: string,
  io: Io,
): string {
  const node = result.error?.node;
  const failed = node ? result.nodes.find((x) => x.id === node) : undefined;
  const log = node ? handle.logs(node) : [];
  const logFile =
    failed && failed.attempts > 0 && log.length
      ? path.relative(process.cwd(), journal.logPath(failed.id, failed.attempts))
      : undefined;
  return failureReport(
    result,
    { log, logFile, projectRoot, cwd: process.cwd() },
    palette(colorEnabled(io.stderr)),
  );
}

/**
 * Ctrl-C (or SIGTERM) aborts the execution cleanly: running work is stopped
 * and the run ends as `aborted` (exit 1). A second one exits at once, after
 * writing what the journal has buffered.
 */
function onInterrupt(handle: ExecutionHandle, journal: Journal, io: Io, tree?: TreeRenderer): () => void {
  let count = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    count++;
    if (count === 1) {
      const msg = `${sig === "SIGINT" ? "Ctrl-C" : sig}: aborting the execution… (press Ctrl-C again to exit at once)`;
      if (tree) tree.notice(msg);
      else io.err(`${msg}\n`);
      void handle.abort(`interrupted (${sig})`);
      return;
    }
    journal.flush();
    tree?.finish();
    io.err("exiting without waiting for running work to stop\n");
    process.exit(130);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  return () => {
    process.removeListener("SIGINT", onSignal);
    process.removeListener("SIGTERM", onSignal);
  };
}
