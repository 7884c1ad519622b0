#!/usr/bin/env node
/**
 * `tern-execute`: the TypeScript task entrypoint. The same code runs one task
 * attempt in a local worker process, a Kubernetes pod and an AWS Batch job.
 *
 * Two modes:
 * - `tern-execute --serve`: the IPC worker loop of the `process` backend's pool.
 *   It runs one attempt at a time; what the task writes to stdout/stderr and
 *   through `ctx.logger` goes back to the parent as that attempt's log. Each
 *   attempt is recorded in this worker's journal in the blob root before it runs,
 *   and its result before the reply (see `backends/attempt-journal.ts`; the results
 *   end up as `<outputPrefix>/outputs.json` or `error.json`): an engine that died
 *   meanwhile is replaced by one that adopts the result, or this still-running
 *   worker. A worker whose parent died finishes its attempt, records the result,
 *   and exits.
 * - one-shot, for pods and batch jobs: read the inputs, run the task, write
 *   `<output-prefix>/outputs.json` or `<output-prefix>/error.json`. Exit code 0 on
 *   success, 1 when the task failed, 2 on a wrong command line.
 *
 * No CLI library: @tern/core stays light, and the command line is small.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import {
  blobRootDir,
  OUTPUTS_FILE,
  type ProcessIdentity,
  processStartTime,
  writeResultFile,
} from "../backends/attempt-files.js";
import { JournalWriter } from "../backends/attempt-journal.js";
import type { RunMessage, WorkerLogLevel, WorkerMessage } from "../backends/process.js";
import { type BlobStore, LocalBlobStore } from "../blob.js";
import { importBundle } from "../bundle.js";
import { DEFAULT_DOMAIN, DEFAULT_PROJECT, interfaceOf } from "../compile.js";
import { type AnyTask, definedTasks, isTaskDef } from "../dsl.js";
import { ErrorCodes, type ErrorDocument, TernError, toErrorDocument } from "../errors.js";
import { type ExecuteRequest, executeTask } from "../execute/run-task.js";
import type { TaskLogger } from "../plugin.js";
import { type TaskSpec, TaskSpecSchema } from "../spec.js";

/** Outputs whose JSON is larger than this are read from `outputs.json`, not sent over the IPC channel. */
const INLINE_OUTPUT_LIMIT = 1024 * 1024;

// ---------------------------------------------------------------------------
// Shared by both modes

/** Bundles imported by this process, in order. */
const loadedBundles = new Set<string>();

/** Several loaded bundles define the task and the one asked for does not export it. */
class AmbiguousAcrossBundles extends Error {}

/**
 * Find a task's definition after importing its bundle. Tasks register by name when
 * their module runs (`definedTasks`); exactly one is expected. When a long-lived
 * worker has imported several versions of the same code, the definition exported
 * by the requested bundle is the one meant.
 */
function findTask(name: string, mod: Record<string, unknown>, bundle: string): AnyTask {
  const defs = definedTasks(name);
  if (defs.length === 1) return defs[0];
  const exported = Object.values(mod).filter((v): v is AnyTask => isTaskDef(v) && v.taskName === name);
  // `defs` is empty when the bundle's @tern/core is another copy than this worker's:
  // its definitions are still usable through the bundle's exports.
  if (exported.length === 1 && (defs.length === 0 || defs.includes(exported[0]))) return exported[0];
  if (defs.length > 1 && loadedBundles.size > 1) throw new AmbiguousAcrossBundles();
  if (defs.length > 1) {
    throw new TernError(
      ErrorCodes.DEFINITION,
      `${defs.length} tasks are named "${name}" in ${bundle}; cannot tell which one to run`,
      {
        hint: "give each task a unique name",
        details: { task: name, bundle },
      },
    );
  }
  throw new TernError(ErrorCodes.SYSTEM, `the code bundle ${bundle} does not define task "${name}"`, {
    kind: "system",
    hint: "the task spec and the bundle do not match: register the workflow again with its current code. If the bundle imports a different copy of @tern/core than this worker, export the task from its module",
    details: { task: name, bundle },
  });
}

function blobStoreFor(root: string): BlobStore {
  if (!root.startsWith("file:")) {
    throw new TernError(ErrorCodes.USAGE, `unsupported blob store root: ${root}`, {
      hint: "this build of tern-execute reads and writes local (file://) blob stores only",
    });
  }
  return new LocalBlobStore(fileURLToPath(root));
}

function safeFields(fields: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  if (fields === undefined) return undefined;
  try {
    return JSON.parse(
      JSON.stringify(fields, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v)),
    ) as Record<string, unknown>;
  } catch (e) {
    return { unserializable: String(e) };
  }
}

// ---------------------------------------------------------------------------
// --serve: the worker loop

interface Current {
  readonly a: string;
  /** The attempt's outputPrefix (a blob key). */
  readonly prefix: string;
  /** Its directory in the blob store. */
  readonly dir: string;
  /** The journal of its blob root. */
  readonly journal: JournalWriter;
  /** Partial lines written to stdout/stderr, waiting for their newline. */
  out: string;
  err: string;
}

let current: Current | undefined;
/** The parent is gone: finish the attempt in hand (its result is written), then exit. */
let orphaned = false;

function send(m: WorkerMessage): void {
  // Nobody listens once the parent is gone; the result is in the blob store.
  if (process.connected) process.send!(m);
}

/** Route stdout/stderr writes made during an attempt into its log, line by line, in order with `done`. */
function captureOutput(stream: NodeJS.WriteStream, key: "out" | "err", level: WorkerLogLevel): void {
  const original = stream.write;
  stream.write = function write(
    this: NodeJS.WriteStream,
    chunk: unknown,
    encoding?: unknown,
    callback?: unknown,
  ): boolean {
    const cur = current;
    if (!cur) return (original as (...args: unknown[]) => boolean).apply(this, [chunk, encoding, callback]);
    const enc = typeof encoding === "string" ? (encoding as BufferEncoding) : undefined;
    const text =
      typeof chunk === "string"
        ? enc && enc !== "utf8" && enc !== "utf-8"
          ? Buffer.from(chunk, enc).toString("utf8")
          : chunk
        : Buffer.from(chunk as Uint8Array).toString("utf8");
    const lines = (cur[key] + text).split("\n");
    cur[key] = lines.pop()!;
    for (const l of lines) send({ t: "log", a: cur.a, level, msg: l.endsWith("\r") ? l.slice(0, -1) : l });
    const cb = typeof encoding === "function" ? encoding : callback;
    if (typeof cb === "function") process.nextTick(cb as () => void);
    return true;
  } as typeof stream.write;
}

function flushOutput(cur: Current): void {
  if (cur.out) send({ t: "log", a: cur.a, level: "info", msg: cur.out });
  if (cur.err) send({ t: "log", a: cur.a, level: "error", msg: cur.err });
  cur.out = cur.err = "";
}

class IpcLogger implements TaskLogger {
  constructor(private readonly a: string) {}
  debug(msg: string, fields?: Record<string, unknown>): void {
    send({ t: "log", a: this.a, level: "debug", msg: String(msg), fields: safeFields(fields) });
  }
  info(msg: string, fields?: Record<string, unknown>): void {
    send({ t: "log", a: this.a, level: "info", msg: String(msg), fields: safeFields(fields) });
  }
  warn(msg: string, fields?: Record<string, unknown>): void {
    send({ t: "log", a: this.a, level: "warn", msg: String(msg), fields: safeFields(fields) });
  }
  error(msg: string, fields?: Record<string, unknown>): void {
    send({ t: "log", a: this.a, level: "error", msg: String(msg), fields: safeFields(fields) });
  }
}

/** A worker of a non-durable pool records nothing: its attempts end with the engine that runs them. */
const NO_JOURNAL = {
  started(): void {},
  result(): void {},
  released(): void {},
  forget(): void {},
  idle: async (): Promise<void> => {},
} as unknown as JournalWriter;

function serve(durable: boolean): void {
  if (!process.send)
    usageError(
      "--serve runs under the process backend, which talks to it over IPC; to run one task, give --bundle and --task",
    );
  process.title = "tern-worker";
  const specs = new Map<number, TaskSpec>();
  const stores = new Map<string, BlobStore>();
  const self: ProcessIdentity = { pid: process.pid, start: processStartTime(process.pid) };
  const roots = new Map<string, { dir: string; journal: JournalWriter }>();
  const rootOf = (m: RunMessage) => {
    let r = roots.get(m.blobRoot);
    if (!r) {
      const dir = blobRootDir(m.blobRoot);
      r = { dir, journal: durable ? new JournalWriter(dir, self) : NO_JOURNAL };
      roots.set(m.blobRoot, r);
    }
    return r;
  };
  captureOutput(process.stdout, "out", "info");
  captureOutput(process.stderr, "err", "error");
  // Writes to the pipes of a parent that died fail with EPIPE: not a reason to crash.
  process.stdout.on("error", () => {});
  process.stderr.on("error", () => {});
  // The parent is gone (exited, crashed, killed). An idle worker leaves now; a busy one
  // finishes its attempt first, so that a restarted engine adopts the result.
  process.on("disconnect", () => {
    orphaned = true;
    if (!current) process.exit(0);
  });
  // User code threw outside the attempt's promise chain (a timer, an event handler).
  // Report it on the running attempt, then leave: this process's state is unknown.
  process.on("uncaughtException", (err) => {
    const cur = current;
    current = undefined;
    if (!cur) {
      process.stderr.write(
        `tern worker ${process.pid}: uncaught exception outside a task: ${err?.stack ?? err}\n`,
      );
      process.exit(70);
    }
    flushOutput(cur);
    const doc = toErrorDocument(err, "user");
    const reply = persist(cur, {
      t: "done",
      a: cur.a,
      error: { ...doc, message: `uncaught exception in task code: ${doc.message}` },
      bye: true,
    });
    if (!process.connected) process.exit(70);
    process.send!(reply, () => process.exit(70));
  });

  /**
   * Write the attempt's result under its outputPrefix before the reply goes out. A
   * result that cannot be written fails the attempt as a system error (retried): a
   * reply alone would be lost with the engine.
   */
  function persist(
    cur: Current,
    reply: Extract<WorkerMessage, { t: "done" }>,
    json?: string,
  ): Extract<WorkerMessage, { t: "done" }> {
    const { dir, prefix, journal } = cur;
    if (reply.recycle) {
      // Not a result: the attempt runs again on a fresh worker.
      try {
        journal.released(reply.a, prefix);
      } catch {
        // the fresh worker's record supersedes this one anyway
      }
      return reply;
    }
    try {
      if (reply.error) journal.result(reply.a, prefix, "e", JSON.stringify(reply.error));
      else if (reply.stored) {
        // Large outputs: the file first, then the journal line that points at it.
        writeResultFile(path.join(dir, OUTPUTS_FILE), json ?? "null");
        journal.result(reply.a, prefix, "f");
      } else journal.result(reply.a, prefix, "o", reply.json ?? "null");
      return reply;
    } catch (e) {
      return {
        t: "done",
        a: reply.a,
        error: {
          code: ErrorCodes.SYSTEM,
          kind: "system",
          message: `worker ${process.pid} could not write the result of attempt ${reply.a} under ${dir}: ${(e as Error).message}`,
          hint: "check that the blob directory is writable and has space",
        },
      };
    }
  }

  async function runAttempt(m: RunMessage, cur: Current): Promise<WorkerMessage> {
    if (m.drop !== undefined) specs.delete(m.drop);
    if (m.req.task) specs.set(m.spec, m.req.task);
    const task = specs.get(m.spec);
    if (!task) {
      return {
        t: "done",
        a: m.a,
        error: {
          code: ErrorCodes.SYSTEM,
          kind: "system",
          message: `worker ${process.pid} has no task spec #${m.spec}`,
        },
      };
    }
    try {
      let blobs = stores.get(m.blobRoot);
      if (!blobs) {
        blobs = blobStoreFor(m.blobRoot);
        stores.set(m.blobRoot, blobs);
      }
      loadedBundles.add(m.bundle);
      const def = findTask(task.id.name, await importBundle(m.bundle), m.bundle);
      const req = m.req as ExecuteRequest;
      req.task = task;
      const res = await executeTask(def, req, {
        blobs,
        logger: new IpcLogger(m.a),
        signal: new AbortController().signal,
      });
      if (!res.ok) return persist(cur, { t: "done", a: m.a, error: res.error });
      const json = JSON.stringify(res.outputs) ?? "null";
      // A UTF-16 unit is at most 3 UTF-8 bytes: most outputs skip the exact byte count.
      if (json.length * 3 <= INLINE_OUTPUT_LIMIT || Buffer.byteLength(json) <= INLINE_OUTPUT_LIMIT)
        return persist(cur, { t: "done", a: m.a, json });
      return persist(cur, { t: "done", a: m.a, stored: true }, json);
    } catch (e) {
      if (e instanceof AmbiguousAcrossBundles)
        return persist(cur, { t: "done", a: m.a, recycle: true, error: toErrorDocument(e, "system") });
      return persist(cur, { t: "done", a: m.a, error: toErrorDocument(e, "system") });
    }
  }

  process.on("message", (m: RunMessage) => {
    if (m?.t !== "run") return;
    if (current) {
      send({
        t: "done",
        a: m.a,
        error: {
          code: ErrorCodes.SYSTEM,
          kind: "system",
          message: `worker ${process.pid} is busy with another attempt`,
        },
      });
      return;
    }
    const root = rootOf(m);
    if (m.recorded) root.journal.forget(m.recorded);
    const dir = path.join(root.dir, m.outputPrefix);
    try {
      // Before anything runs: a restarted engine then knows this process has the attempt.
      root.journal.started(m.a, m.outputPrefix);
    } catch (e) {
      send({
        t: "done",
        a: m.a,
        error: {
          code: ErrorCodes.SYSTEM,
          kind: "system",
          message: `worker ${process.pid} could not record attempt ${m.a} in its journal under ${root.dir}: ${(e as Error).message}`,
          hint: "check that the blob directory is writable and has space",
        },
      });
      return;
    }
    const cur: Current = { a: m.a, prefix: m.outputPrefix, dir, journal: root.journal, out: "", err: "" };
    current = cur;
    void runAttempt(m, cur).then((reply) => {
      if (current !== cur) return; // already answered (uncaught exception)
      flushOutput(cur);
      current = undefined;
      send(reply);
      if (orphaned) process.exit(0);
    });
  });
}

// ---------------------------------------------------------------------------
// One-shot mode

const USAGE = `usage: tern-execute --bundle <path|file-uri> --task <name> --output-prefix <key> --blob-root <uri>
                    [--inputs <uri>] [--task-spec <uri>] [--work-dir <dir>] [--checkpoint-prefix <key>]
                    [--execution <id>] [--project <p>] [--domain <d>] [--node <n>] [--attempt <k>]
       tern-execute --serve        (the worker loop of the process backend; started by it over IPC)`;

interface OneShotArgs {
  bundle: string;
  task?: string;
  inputs?: string;
  outputPrefix: string;
  blobRoot: string;
  taskSpec?: string;
  workDir?: string;
  checkpointPrefix?: string;
  execution: string;
  project?: string;
  domain?: string;
  node?: string;
  attempt: number;
}

const FLAGS: Record<string, keyof OneShotArgs> = {
  "--bundle": "bundle",
  "--task": "task",
  "--inputs": "inputs",
  "--output-prefix": "outputPrefix",
  "--blob-root": "blobRoot",
  "--task-spec": "taskSpec",
  "--work-dir": "workDir",
  "--checkpoint-prefix": "checkpointPrefix",
  "--execution": "execution",
  "--project": "project",
  "--domain": "domain",
  "--node": "node",
  "--attempt": "attempt",
};

class UsageError extends Error {}

function usageError(message: string): never {
  process.stderr.write(`tern-execute: ${message}\n${USAGE}\n`);
  process.exit(2);
}

function parseArgs(argv: string[]): OneShotArgs {
  const raw: Partial<Record<keyof OneShotArgs, string>> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const eq = arg.indexOf("=");
    const flag = arg.startsWith("--") && eq > 0 ? arg.slice(0, eq) : arg;
    const key = FLAGS[flag];
    if (!key)
      throw new UsageError(arg.startsWith("-") ? `unknown option ${flag}` : `unexpected argument "${arg}"`);
    const value = eq > 0 && arg.startsWith("--") ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined || value === "") throw new UsageError(`${flag} needs a value`);
    if (raw[key] !== undefined) throw new UsageError(`${flag} is given twice`);
    raw[key] = value;
  }
  for (const f of ["--bundle", "--output-prefix", "--blob-root"] as const) {
    if (raw[FLAGS[f]] === undefined) throw new UsageError(`${f} is required`);
  }
  if (raw.task === undefined && raw.taskSpec === undefined)
    throw new UsageError("--task (or --task-spec) is required");
  const attempt = raw.attempt === undefined ? 1 : Number(raw.attempt);
  if (!Number.isInteger(attempt) || attempt < 1)
    throw new UsageError(`--attempt must be a positive integer, not "${raw.attempt}"`);
  if (!raw.blobRoot!.startsWith("file:"))
    throw new UsageError(`--blob-root ${raw.blobRoot}: only file:// blob stores are supported by this build`);
  return {
    ...(raw as Omit<OneShotArgs, "attempt" | "execution">),
    bundle: raw.bundle!.startsWith("file:") ? fileURLToPath(raw.bundle!) : path.resolve(raw.bundle!),
    execution: raw.execution ?? "local",
    attempt,
  };
}

/** Read a document named by a path, a `file:` URL or a URI of the blob store. */
async function readDocument(ref: string, blobs: BlobStore): Promise<unknown> {
  const text =
    /^[a-z][a-z0-9+.-]+:/i.test(ref) && !ref.startsWith("file:")
      ? Buffer.from(await blobs.get(ref)).toString("utf8")
      : await fs.promises
          .readFile(ref.startsWith("file:") ? fileURLToPath(ref) : ref, "utf8")
          .catch((e: NodeJS.ErrnoException) => {
            if (e.code === "ENOENT")
              throw new TernError(ErrorCodes.BLOB_NOT_FOUND, `not found: ${ref}`, { kind: "system" });
            throw e;
          });
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new TernError(ErrorCodes.SPEC_INVALID, `${ref} is not valid JSON: ${(e as Error).message}`, {
      kind: "system",
    });
  }
}

/** Log lines for a pod's log: info and debug on stdout, warnings and errors on stderr. */
const streamLogger: TaskLogger = (() => {
  const line =
    (stream: NodeJS.WriteStream, level: string) => (msg: string, fields?: Record<string, unknown>) => {
      const f = safeFields(fields);
      stream.write(`${new Date().toISOString()} ${level} ${msg}${f ? ` ${JSON.stringify(f)}` : ""}\n`);
    };
  return {
    debug: line(process.stdout, "DEBUG"),
    info: line(process.stdout, "INFO"),
    warn: line(process.stderr, "WARN"),
    error: line(process.stderr, "ERROR"),
  };
})();

/** Run one attempt; returns the exit code. */
async function oneShot(args: OneShotArgs): Promise<number> {
  const blobs = blobStoreFor(args.blobRoot);
  const ac = new AbortController();
  // Kubernetes and Batch stop a job with SIGTERM, then SIGKILL after a grace period:
  // give the task its abort signal in between.
  process.once("SIGTERM", () => ac.abort("terminated (SIGTERM)"));
  let spec: TaskSpec | undefined;
  try {
    if (args.taskSpec) {
      const parsed = TaskSpecSchema.safeParse(await readDocument(args.taskSpec, blobs));
      if (!parsed.success) {
        throw new TernError(
          ErrorCodes.SPEC_INVALID,
          `${args.taskSpec} is not a valid task spec: ${parsed.error.issues[0]?.message}`,
          {
            kind: "system",
          },
        );
      }
      spec = parsed.data;
      if (args.task && args.task !== spec.id.name) {
        throw new TernError(
          ErrorCodes.SPEC_INVALID,
          `--task ${args.task} does not match the task spec, which is for "${spec.id.name}"`,
          {
            kind: "system",
          },
        );
      }
    }
    const name = args.task ?? spec!.id.name;
    const inputs = args.inputs ? await readDocument(args.inputs, blobs) : {};
    if (inputs === null || typeof inputs !== "object" || Array.isArray(inputs)) {
      throw new TernError(
        ErrorCodes.INPUT_INVALID,
        `${args.inputs} must hold a JSON object of input values`,
        { kind: "system" },
      );
    }
    loadedBundles.add(args.bundle);
    const def = findTask(name, await importBundle(args.bundle), args.bundle);
    const project = args.project ?? spec?.id.project ?? DEFAULT_PROJECT;
    const domain = args.domain ?? spec?.id.domain ?? DEFAULT_DOMAIN;
    const node = args.node ?? name;
    spec ??= specFor(def, project, domain);
    const req: ExecuteRequest = {
      task: spec,
      inputs: inputs as Record<string, unknown>,
      execution: { id: args.execution, project, domain },
      node,
      attempt: args.attempt,
      checkpointPrefix: args.checkpointPrefix ?? `executions/${project}/${domain}/${args.execution}/${node}`,
      workDir: path.resolve(args.workDir ?? process.cwd()),
    };
    const res = await executeTask(def, req, { blobs, logger: streamLogger, signal: ac.signal });
    if (res.ok) {
      await blobs.put(`${args.outputPrefix}/outputs.json`, JSON.stringify(res.outputs) ?? "null");
      return 0;
    }
    return await writeError(blobs, args.outputPrefix, res.error);
  } catch (e) {
    return await writeError(blobs, args.outputPrefix, toErrorDocument(e, "system"));
  }
}

/** A spec for a task run without `--task-spec`: only its name is used while running. */
function specFor(def: AnyTask, project: string, domain: string): TaskSpec {
  return {
    kind: "task",
    specVersion: 1,
    id: { project, domain, name: def.taskName, version: "unversioned" },
    type: "node",
    interface: interfaceOf(def.inputSchemas, def.outputSchema, `task "${def.taskName}"`),
    metadata: {
      retries: { user: 0, system: 0, backoff: { baseMs: 0, maxMs: 0, factor: 1, jitter: 0 } },
      interruptible: false,
      secrets: [],
      env: {},
    },
  };
}

async function writeError(blobs: BlobStore, prefix: string, doc: ErrorDocument): Promise<number> {
  // A user's exception keeps its stack for the log; Tern's own errors print message and hint only.
  const text =
    doc.stack && doc.code === ErrorCodes.TASK_FAILED
      ? doc.stack
      : `${doc.message}${doc.hint ? `\n  hint: ${doc.hint}` : ""}`;
  process.stderr.write(`tern-execute: ${text}\n`);
  try {
    await blobs.put(`${prefix}/error.json`, JSON.stringify(doc));
  } catch (e) {
    process.stderr.write(`tern-execute: could not write ${prefix}/error.json: ${(e as Error).message}\n`);
  }
  return 1;
}

// ---------------------------------------------------------------------------

function main(argv: string[]): void {
  if (argv[0] === "--serve") {
    serve(argv.includes("--journal"));
    return;
  }
  if (argv.length === 0 || argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(argv.length === 0 ? 2 : 0);
  }
  let args: OneShotArgs;
  try {
    args = parseArgs(argv);
  } catch (e) {
    if (e instanceof UsageError) usageError(e.message);
    throw e;
  }
  void oneShot(args).then((code) => {
    // Exit now: a task may leave timers or sockets open, and the job is done.
    process.exit(code);
  });
}

main(process.argv.slice(2));
