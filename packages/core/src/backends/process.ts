/**
 * `process`: runs TypeScript task bodies in a pool of warm worker processes
 * (`tern-execute --serve`), one attempt at a time per worker. No process is
 * started per task: a worker imports a code bundle once and then runs any number
 * of attempts from it, so dispatch costs one IPC round trip.
 *
 * A worker's crash (process.exit in user code, out of memory, a signal) fails only
 * the attempt it was running, as a system error, and the pool starts a new worker.
 * Abort kills the worker running the attempt.
 *
 * Restart safety: a worker records each attempt in its journal in the blob root
 * before running it, and the result before it replies (outputs over 1 MiB go to
 * `<outputPrefix>/outputs.json` first); journals are later settled into
 * `<outputPrefix>/outputs.json` / `error.json` (see `attempt-journal.ts`). A worker
 * whose engine died finishes its attempt, records the result and exits. So `launch`
 * of an attempt id that already ran (an engine that restarted launches its in-flight
 * attempts again under their own ids) runs nothing: it adopts the stored result, or
 * the worker still running the attempt (whose result it then waits for), or, when
 * that worker is gone without a result, reports the attempt lost (a system error,
 * retried). Checking costs a `stat` and a look at the journal directory per launch.
 *
 * Protocol (Node IPC, see {@link RunMessage} and {@link WorkerMessage}): the parent
 * sends `run`; the worker answers with `log` messages and one `done`. Outputs come
 * back inline when their JSON is at most 1 MiB; bigger ones are read by the engine
 * from `<outputPrefix>/outputs.json`.
 */
import { type ChildProcess, fork } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { inject, injectable } from "tsyringe";
import { bundlePath } from "../bundle.js";
import { ErrorCodes, type ErrorDocument, TernError } from "../errors.js";
import type { ExecuteRequest } from "../execute/run-task.js";
import type { Json } from "../json.js";
import { type BackendPlugin, CONTRACT_VERSION, type TaskContext, type TaskStatus } from "../plugin.js";
import type { TaskSpec } from "../spec.js";
import { createToken, type Token } from "../tokens.js";
import {
  blobRootDir,
  isWorkerAlive,
  type ProcessIdentity,
  processStartTime,
  readResult,
  type StoredResult,
} from "./attempt-files.js";
import { JournalIndex, removeJournals, settleDeadJournals } from "./attempt-journal.js";

/** Configuration of the {@link ProcessBackend}. */
export interface ProcessBackendOptions {
  /** Worker processes in the pool, started as they are needed. @default os.availableParallelism() */
  workers?: number;
  /** Project directory: the workers' current directory; bundles are found under its `.tern/bundles`. */
  workDir: string;
  /**
   * Survive the engine: workers journal each attempt in the blob root and finish it
   * if the engine dies, and `launch` adopts an attempt that ran (or still runs) under
   * an engine that stopped. Costs about 100 µs per attempt; the server's executor
   * turns it on, one-off local runs (never resumed) leave it off. @default false
   */
  durable?: boolean;
}

/** Token under which {@link ProcessBackendOptions} are provided to the container. */
export const PROCESS_BACKEND_OPTIONS: Token<ProcessBackendOptions> = createToken(
  "tern.process-backend.options",
);

/**
 * The persisted plugin state of an attempt: its id, the worker's pid (`null` while it
 * waits for a worker, or when the attempt was completed from a stored result) and that
 * process's start time (so a reused pid is not taken for the worker). `adopted` says
 * that this launch found the attempt's work already done (`result`) or still running
 * in a worker of an engine that stopped (`running`).
 */
export type ProcessState = {
  attempt: string;
  pid: number | null;
  start?: number;
  adopted?: "result" | "running";
};

// ---------------------------------------------------------------------------
// Wire protocol, shared with `bin/tern-execute.ts` (which imports these types only).

/** Level of a log line from a worker (stdout lines are `info`, stderr lines `error`). @internal */
export type WorkerLogLevel = "debug" | "info" | "warn" | "error";

/** Parent → worker: run one attempt. @internal */
export interface RunMessage {
  t: "run";
  /** Attempt id; every message about this attempt carries it. */
  a: string;
  /** Absolute path of the code bundle. */
  bundle: string;
  /** Root URI of the blob store (a `file:` URL). */
  blobRoot: string;
  /** Blob key under which large outputs go (`outputs.json`). */
  outputPrefix: string;
  /**
   * The request, without `task` when this worker already has the spec: specs are
   * sent once per worker and then named by `spec` (they do not change for a key).
   */
  req: Omit<ExecuteRequest, "task"> & { task?: TaskSpec };
  /** Key of the task spec in the worker's cache. */
  spec: number;
  /** A spec key the worker should forget (its cache is bounded by the parent). */
  drop?: number;
  /** Attempts this worker ran whose outcomes are stored elsewhere now (see `recorded`). */
  recorded?: string[];
}

/** Worker → parent. @internal */
export type WorkerMessage =
  | { t: "log"; a: string; level: WorkerLogLevel; msg: string; fields?: Record<string, unknown> }
  | {
      t: "done";
      a: string;
      /** Outputs as JSON text (absent when `stored`, or on failure). */
      json?: string;
      /** Outputs were written to `<outputPrefix>/outputs.json`. */
      stored?: boolean;
      error?: ErrorDocument;
      /**
       * Several loaded bundles define the task's name and this one does not export it:
       * run the attempt again on a fresh worker, which has loaded only this bundle.
       */
      recycle?: boolean;
      /** The worker is exiting after this reply (its state is suspect): do not give it more work. */
      bye?: boolean;
    };

// ---------------------------------------------------------------------------

const MAX_LOG_LINES = 10_000;
/** Task specs a worker keeps (sent once, then named by key). */
const WORKER_SPEC_CACHE = 512;
/** Finished attempts whose log lines `logs()` still serves after `finalize`. */
const FINISHED_LOGS_KEPT = 256;
/** How long `abort`/`close` wait for a killed worker to be reaped. */
const EXIT_WAIT_MS = 5_000;
/** How often adopted attempts (running in a worker of an engine that stopped) are looked at. */
const ADOPTED_POLL_MS = 50;

const RUNNING: TaskStatus = { phase: "running" };
const WAITING: TaskStatus = { phase: "waiting-for-resources", message: "waiting for a free worker process" };

interface Run {
  readonly id: string;
  readonly ctx: TaskContext;
  readonly msg: RunMessage;
  readonly taskSpec: TaskSpec;
  worker?: Worker;
  /** Set once the attempt is over. */
  status?: TaskStatus;
  /** Formatted log lines, for `logs()`. */
  lines?: string[];
  /** `logs()` followers waiting for more lines or the end. */
  waiters?: (() => void)[];
  /** Already re-run once on a fresh worker (see `recycle`). */
  recycled?: boolean;
  /** Set while its worker is being killed (abort, finalize): both wait for the same kill. */
  stopping?: Promise<void>;
}

/** An attempt this backend did not start: its result was found, or another engine's worker runs it. */
interface Adopted {
  readonly id: string;
  readonly ctx: TaskContext;
  /** The attempt's directory (its outputPrefix in the local blob store). */
  readonly dir: string;
  /** The journals of its blob root. */
  readonly journals: JournalIndex;
  /** The worker still running it (none when the result was found at once). */
  readonly worker?: ProcessIdentity;
  status?: TaskStatus;
}

/** Finished attempts remembered for `recorded` at most. */
const FINISHED_ON_MAX = 100_000;

interface Worker {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Start time of the process, recorded in the plugin state against pid reuse. */
  readonly start?: number;
  /** The attempt it runs now. */
  run?: Run;
  /** The attempt it ran last: raw output that arrives late still belongs to it. */
  last?: Run;
  /** Task specs this worker holds, by the key the parent gave them, oldest first. */
  readonly specs: Set<number>;
  /** Attempts it ran whose outcomes were recorded, told with its next attempt. */
  recorded: string[];
  /** Killed by us or about to exit: not to be given work. */
  leaving: boolean;
  alive: boolean;
  readonly exited: Promise<void>;
}

/** Resolve the worker entrypoint: `dist/bin/tern-execute.js`, beside this module once built. */
function workerScript(): string {
  const here = new URL("../bin/tern-execute.js", import.meta.url);
  const candidates = [fileURLToPath(here)];
  // When this module runs from sources (tests transforming src/), use the built copy.
  if (here.pathname.includes("/src/"))
    candidates.push(fileURLToPath(new URL("../../dist/bin/tern-execute.js", import.meta.url)));
  const found = candidates.find((c) => fs.existsSync(c));
  if (!found) {
    throw new TernError(
      ErrorCodes.CONFIG,
      `the process backend's worker entrypoint is missing: ${candidates.join(" or ")}`,
      {
        hint: "build @tern/core (pnpm build) so that dist/bin/tern-execute.js exists",
        kind: "system",
      },
    );
  }
  return found;
}

/**
 * The `process` backend: TypeScript (`node`) tasks in a pool of warm worker processes.
 *
 * Tasks must come from a code bundle (`code.bundle` in their spec): `tern run`
 * bundles the project; embedders call `bundleEntry()` and compile with
 * `compile(def, { bundle: digest })`.
 *
 * @example
 * const local = await createEngine({ backend: "process", workers: 4 });
 */
@injectable()
export class ProcessBackend implements BackendPlugin<ProcessState> {
  readonly id = "process";
  readonly taskTypes = ["node"] as const;
  readonly contractVersion = CONTRACT_VERSION;
  /** One attempt per worker: the engine queues beyond the pool size. */
  readonly limits: { maxConcurrent: number };

  private readonly size: number;
  private readonly durable: boolean;
  /** Attempts whose results came back, by the worker that ran them (see `recorded`). */
  private readonly finishedOn = new Map<string, Worker>();
  private readonly workDir: string;
  private script?: string;
  private readonly workers = new Set<Worker>();
  private readonly idle: Worker[] = [];
  /** Attempts launched while every worker was busy (only when more than `size` are in flight). */
  private readonly queue: Run[] = [];
  private readonly runs = new Map<string, Run>();
  /** Attempts adopted from an engine that stopped, by attempt id. */
  private readonly adopted = new Map<string, Adopted>();
  private adoptedTimer?: NodeJS.Timeout;
  /** Local directories of `file:` blob roots, and the journals of other engines' workers there. */
  private readonly roots = new Map<string, { dir: string; journals: JournalIndex }>();
  /** Pids of this pool's live workers (their journals need no reading: their attempts are known). */
  private readonly ownPids = new Set<number>();
  private settlingJournals?: Promise<void>;
  private readonly finishedLogs = new Map<string, string[]>();
  /** Small integer keys for task spec objects, so a worker receives each spec once. */
  private readonly specKeys = new WeakMap<TaskSpec, number>();
  private nextSpecKey = 1;
  /** Bundle files seen to exist, by digest (checked once, not per launch). */
  private readonly knownBundles = new Map<string, { workDir: string; file: string }>();
  private closed = false;

  constructor(@inject(PROCESS_BACKEND_OPTIONS) opts: ProcessBackendOptions) {
    this.durable = opts.durable ?? false;
    const n = opts.workers ?? os.availableParallelism();
    if (!Number.isInteger(n) || n < 1) {
      throw new TernError(
        ErrorCodes.CONFIG,
        `the process backend needs at least one worker (workers: ${n})`,
        {
          hint: "set workers to a positive integer, or leave it out to use one per CPU",
        },
      );
    }
    this.size = n;
    this.workDir = opts.workDir;
    this.limits = { maxConcurrent: n };
  }

  validate(task: TaskSpec): void {
    if (task.type === "node" && !task.code?.bundle) {
      throw new TernError(
        ErrorCodes.CONFIG,
        `task "${task.id.name}" has no code bundle: the process backend runs bundled code in worker processes`,
        {
          hint: "run it with `tern run`, which bundles your code, or bundle it with bundleEntry() and compile with compile(def, { bundle: bundle.digest })",
          details: { task: task.id.name },
        },
      );
    }
  }

  async launch(ctx: TaskContext): Promise<ProcessState> {
    const id = ctx.attempt.id;
    const known = this.runs.get(id);
    if (known) return this.stateOf(known);
    const adoptedBefore = this.adopted.get(id);
    if (adoptedBefore) return adoptedState(adoptedBefore);
    if (this.closed) {
      throw new TernError(ErrorCodes.SYSTEM, "the process backend is closed", { kind: "system" });
    }
    this.validate(ctx.task);
    const file = this.bundleFile(ctx);
    if (!ctx.blobs.root.startsWith("file:")) {
      throw new TernError(
        ErrorCodes.CONFIG,
        `the process backend needs a local blob store, not ${ctx.blobs.root}`,
        {
          hint: 'use the default LocalBlobStore with backend: "process", or a remote backend for remote storage',
        },
      );
    }
    // The attempt may have run already, under an engine that stopped: adopt, never rerun.
    // (A new execution's attempt cannot have: nothing to look for.)
    const adopted = this.durable && !ctx.attempt.firstLaunch ? this.adopt(ctx) : undefined;
    if (adopted) return adoptedState(adopted);
    this.script ??= workerScript();
    const msg: RunMessage = {
      t: "run",
      a: id,
      bundle: file,
      blobRoot: ctx.blobs.root,
      outputPrefix: ctx.outputPrefix,
      spec: this.specKey(ctx.task),
      req: {
        inputs: ctx.inputs,
        execution: ctx.execution,
        node: ctx.node.id,
        attempt: ctx.attempt.number,
        checkpointPrefix: ctx.checkpointPrefix,
        workDir: ctx.workDir,
      },
    };
    const run: Run = { id, ctx, msg, taskSpec: ctx.task };
    // Take the worker first: if a process cannot be started, nothing is left registered.
    const w = this.idle.pop() ?? (this.workers.size < this.size ? this.spawn() : undefined);
    this.runs.set(id, run);
    if (w) this.assign(w, run);
    else this.queue.push(run);
    return this.stateOf(run);
  }

  /**
   * An attempt this backend knows: its status. One it does not know (the state of an
   * engine that stopped) is looked up in the blob store: its stored result, or the
   * worker still running it, else it was lost (a system error, retried).
   */
  async check(ctx: TaskContext, state: ProcessState): Promise<TaskStatus> {
    const run = this.runs.get(state.attempt);
    if (run) return run.status ?? (run.worker ? RUNNING : WAITING);
    const adopted =
      this.adopted.get(state.attempt) ?? (ctx?.outputPrefix ? this.adopt(ctx, state) : undefined);
    if (adopted) return adopted.status ?? RUNNING;
    return lostStatus(state.attempt, state.pid);
  }

  async abort(_ctx: TaskContext, state: ProcessState): Promise<void> {
    const run = this.runs.get(state.attempt);
    if (run) {
      await this.stop(run, "aborted: its worker process was killed");
      return;
    }
    const adopted = this.adopted.get(state.attempt);
    if (adopted && !adopted.status) {
      adopted.status = {
        phase: "aborted",
        message: "aborted: the worker process running the adopted attempt was killed",
      };
      // Another engine's worker: signal it only while it is still that process.
      if (adopted.worker && isWorkerAlive(adopted.worker)) {
        try {
          process.kill(adopted.worker.pid, "SIGKILL");
        } catch {
          // gone meanwhile
        }
      }
    }
  }

  /**
   * The outcomes of these attempts are stored by the engine's caller: each worker that ran
   * one hears it with its next attempt, and settles no result file for it (see
   * `JournalWriter.forget`).
   */
  recorded(attempts: readonly string[]): void {
    for (const a of attempts) {
      const w = this.finishedOn.get(a);
      if (!w) continue;
      this.finishedOn.delete(a);
      if (w.alive && !w.leaving) w.recorded.push(a);
    }
  }

  /** Remember which worker returned an attempt's result, until the result is recorded. */
  private ranOn(attempt: string, w: Worker): void {
    // Bounded: an engine whose caller never records (or records elsewhere) must not grow this.
    if (this.finishedOn.size >= FINISHED_ON_MAX)
      this.finishedOn.delete(this.finishedOn.keys().next().value as string);
    this.finishedOn.set(attempt, w);
  }

  async finalize(_ctx: TaskContext, state: ProcessState): Promise<void> {
    if (this.adopted.delete(state.attempt) && this.adopted.size === 0) this.stopAdoptedTimer();
    const run = this.runs.get(state.attempt);
    if (!run) return;
    // The engine is done with the attempt. If it still runs (the engine may finalize
    // a timed-out or aborted attempt before it calls abort), stop it now: nothing
    // would stop it later.
    await this.stop(run, "stopped: the engine finalized the attempt while it was running");
    this.runs.delete(state.attempt);
    if (run.lines?.length) {
      this.finishedLogs.set(run.id, run.lines);
      if (this.finishedLogs.size > FINISHED_LOGS_KEPT)
        this.finishedLogs.delete(this.finishedLogs.keys().next().value!);
    }
    wake(run);
  }

  /** The attempt's log lines; follows a running attempt until it ends. */
  async *logs(_ctx: TaskContext, state: ProcessState): AsyncIterable<string> {
    const run = this.runs.get(state.attempt);
    if (!run) {
      yield* this.finishedLogs.get(state.attempt) ?? [];
      return;
    }
    let i = 0;
    for (;;) {
      const lines = run.lines ?? [];
      while (i < lines.length) yield lines[i++];
      if (run.status || !this.runs.has(run.id)) return;
      await new Promise<void>((r) => {
        run.waiters ??= [];
        run.waiters.push(r);
      });
    }
  }

  /**
   * Stop using the pool without stopping its work: busy workers are disconnected and
   * finish their attempt (writing its result) before they exit; idle ones exit now. An
   * engine that is handing its executions over (to a restart, or another replica) calls
   * this; the next engine adopts the results. Afterwards the backend is closed.
   */
  async handOver(): Promise<void> {
    this.closed = true;
    this.stopAdoptedTimer();
    for (const r of this.roots.values()) r.journals.close();
    for (const run of this.queue.splice(0))
      this.end(run, { phase: "aborted", message: "the process backend was handed over" });
    const exits: Promise<void>[] = [];
    for (const w of [...this.workers]) {
      w.leaving = true;
      this.workers.delete(w);
      const run = w.run;
      w.run = undefined;
      if (run)
        this.end(run, {
          phase: "aborted",
          message: "the process backend was handed over; the worker finishes the attempt",
        });
      if (w.alive && w.child.connected) w.child.disconnect();
      // Idle workers exit at once; busy ones when their attempt is done (not waited for).
      if (!run) exits.push(w.exited);
    }
    this.idle.length = 0;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(exits), new Promise<void>((r) => (timer = setTimeout(r, EXIT_WAIT_MS)))]);
    clearTimeout(timer);
  }

  /** Kill every worker; attempts still running end as aborted. */
  async close(): Promise<void> {
    this.closed = true;
    this.stopAdoptedTimer();
    for (const r of this.roots.values()) r.journals.close();
    const closing: TaskStatus = { phase: "aborted", message: "the process backend was closed" };
    for (const run of this.queue.splice(0)) this.end(run, closing);
    for (const w of this.workers) if (w.run) this.end(w.run, closing);
    const killed = new Set([...this.workers].map((w) => w.pid));
    await Promise.all([...this.workers].map((w) => this.kill(w)));
    // The engine is done with every attempt these workers ran: nothing will adopt them.
    await Promise.all([...this.roots.values()].map((r) => removeJournals(r.dir, killed)));
  }

  /** Pids of the pool's workers, not counting those being retired (for tests and diagnostics). */
  get pids(): number[] {
    const out: number[] = [];
    for (const w of this.workers) if (!w.leaving) out.push(w.pid);
    return out;
  }

  // -------------------------------------------------------------------------

  private stateOf(run: Run): ProcessState {
    const w = run.worker;
    if (!w) return { attempt: run.id, pid: null };
    return w.start === undefined
      ? { attempt: run.id, pid: w.pid }
      : { attempt: run.id, pid: w.pid, start: w.start };
  }

  /** A `file:` blob root's directory and journal index, or undefined for a remote blob store. */
  private rootOf(ctx: TaskContext): { dir: string; journals: JournalIndex } | undefined {
    const root = ctx.blobs.root;
    let r = this.roots.get(root);
    if (!r) {
      if (!root.startsWith("file:")) return undefined;
      const dir = blobRootDir(root);
      r = { dir, journals: new JournalIndex(dir, (pid) => this.ownPids.has(pid)) };
      this.roots.set(root, r);
      this.settleJournals();
    }
    return r;
  }

  /** Settle (in the background) the journals of workers that are gone: theirs and other engines'. */
  private settleJournals(): void {
    if (this.settlingJournals) return;
    const dirs = [...this.roots.values()].map((r) => r.dir);
    this.settlingJournals = (async () => {
      for (const d of dirs) await settleDeadJournals(d);
    })().finally(() => {
      this.settlingJournals = undefined;
    });
  }

  /**
   * Adopt an attempt that ran (or runs) outside this backend: its stored result (under
   * its outputPrefix, or in a worker's journal), or the live worker that took it.
   * Undefined when it never started, so `launch` starts it. `prior` is a persisted
   * state, naming the worker (for `check` after a restart).
   */
  private adopt(ctx: TaskContext, prior?: ProcessState): Adopted | undefined {
    const root = this.rootOf(ctx);
    if (!root) return undefined;
    const dir = path.join(root.dir, ctx.outputPrefix);
    const id = ctx.attempt.id;
    const found = lookup(dir, root.journals, id);
    let adopted: Adopted;
    if (found.result) {
      adopted = { id, ctx, dir, journals: root.journals, status: resultStatus(found.result) };
      ctx.logger.info(`adopted the stored result of attempt ${id} (it ran before the engine restarted)`);
    } else {
      const workers = found.workers.length
        ? found.workers
        : prior?.pid
          ? [{ pid: prior.pid, ...(prior.start === undefined ? {} : { start: prior.start }) }]
          : [];
      if (!workers.length) return undefined;
      const live = workers.find(isWorkerAlive);
      if (live) {
        adopted = { id, ctx, dir, journals: root.journals, worker: live };
        ctx.logger.info(
          `adopted attempt ${id}, still running in worker process ${live.pid} of an engine that stopped`,
        );
      } else {
        // Look again: the worker may have recorded its result and exited in between.
        const late = lookup(dir, root.journals, id).result;
        const worker = workers[workers.length - 1];
        adopted = {
          id,
          ctx,
          dir,
          journals: root.journals,
          worker,
          status: late ? resultStatus(late) : lostStatus(id, worker.pid),
        };
      }
    }
    this.adopted.set(id, adopted);
    if (!adopted.status) this.startAdoptedTimer();
    return adopted;
  }

  /** Poll adopted attempts that still run elsewhere: their result, or their worker's end. */
  private startAdoptedTimer(): void {
    if (this.adoptedTimer) return;
    this.adoptedTimer = setInterval(() => {
      let waiting = 0;
      for (const a of this.adopted.values()) {
        if (a.status) continue;
        const result = lookup(a.dir, a.journals, a.id).result;
        if (result) a.status = resultStatus(result);
        else if (!isWorkerAlive(a.worker!)) {
          const late = lookup(a.dir, a.journals, a.id).result;
          a.status = late ? resultStatus(late) : lostStatus(a.id, a.worker!.pid);
        }
        if (a.status) a.ctx.notify();
        else waiting++;
      }
      if (waiting === 0) this.stopAdoptedTimer();
    }, ADOPTED_POLL_MS);
    this.adoptedTimer.unref();
  }

  private stopAdoptedTimer(): void {
    if (this.adoptedTimer) clearInterval(this.adoptedTimer);
    this.adoptedTimer = undefined;
  }

  private bundleFile(ctx: TaskContext): string {
    const digest = ctx.task.code!.bundle!;
    const known = this.knownBundles.get(digest);
    if (known?.workDir === ctx.workDir) return known.file;
    const file = bundlePath(ctx.workDir, digest);
    if (!fs.existsSync(file)) {
      throw new TernError(
        ErrorCodes.FILE_NOT_FOUND,
        `the code bundle ${digest} of task "${ctx.task.id.name}" is not at ${file}`,
        {
          hint: "bundles are written by `tern run` and bundleEntry() under <project>/.tern/bundles; run from the project that built it (workDir), or bundle the code again",
          details: { task: ctx.task.id.name, bundle: digest, file },
        },
      );
    }
    this.knownBundles.set(digest, { workDir: ctx.workDir, file });
    return file;
  }

  private specKey(spec: TaskSpec): number {
    let k = this.specKeys.get(spec);
    if (k === undefined) {
      k = this.nextSpecKey++;
      this.specKeys.set(spec, k);
    }
    return k;
  }

  private spawn(): Worker {
    const child = fork(this.script!, this.durable ? ["--serve", "--journal"] : ["--serve"], {
      cwd: this.workDir,
      // stdout/stderr are piped: output that bypasses the worker's capture (raw fd
      // writes, child processes of the task) still reaches the attempt's log.
      stdio: ["ignore", "pipe", "pipe", "ipc"],
      serialization: "json",
      // Not the parent's flags: a test runner's loaders or --inspect would break workers.
      execArgv: [],
    });
    let resolveExit!: () => void;
    const start = child.pid === undefined ? undefined : processStartTime(child.pid);
    const w: Worker = {
      child,
      pid: child.pid ?? -1,
      ...(start === undefined ? {} : { start }),
      specs: new Set(),
      recorded: [],
      leaving: false,
      alive: true,
      exited: new Promise<void>((r) => (resolveExit = r)),
    };
    this.workers.add(w);
    this.ownPids.add(w.pid);
    child.on("message", (m: WorkerMessage) => this.onMessage(w, m));
    child.on("exit", (code, signal) => {
      resolveExit();
      this.onExit(w, code, signal);
    });
    child.on("error", (e) => {
      // A process that never started gets no `exit` event. Other errors (a failed
      // send or kill) mean the process is going away, and `exit` follows.
      if (w.alive && child.pid === undefined) {
        resolveExit();
        this.onExit(w, null, null, e);
      }
    });
    this.pipeOutput(w, child.stdout, "info");
    this.pipeOutput(w, child.stderr, "error");
    // An idle pool must not keep the parent alive; the IPC channel is referenced
    // only while the worker runs an attempt (see assign/release).
    child.unref();
    child.channel?.unref();
    return w;
  }

  private pipeOutput(w: Worker, stream: NodeJS.ReadableStream | null, level: "info" | "error"): void {
    if (!stream) return;
    (stream as unknown as { unref?: () => void }).unref?.();
    stream.setEncoding("utf8");
    let partial = "";
    const emit = (line: string) => {
      const run = w.run ?? (w.last && this.runs.has(w.last.id) ? w.last : undefined);
      if (run) this.log(run, level, line);
      else process.stderr.write(`[tern worker ${w.pid}] ${line}\n`);
    };
    stream.on("data", (chunk: string) => {
      const parts = (partial + chunk).split("\n");
      partial = parts.pop()!;
      for (const p of parts) emit(p.endsWith("\r") ? p.slice(0, -1) : p);
    });
    stream.on("end", () => {
      if (partial) emit(partial);
      partial = "";
    });
  }

  private assign(w: Worker, run: Run): void {
    w.run = run;
    run.worker = w;
    const msg = run.msg;
    const sendSpec = !w.specs.has(msg.spec);
    msg.req.task = sendSpec ? run.taskSpec : undefined;
    // The worker's spec cache is bounded; the parent decides what it forgets.
    msg.drop = sendSpec && w.specs.size >= WORKER_SPEC_CACHE ? w.specs.values().next().value : undefined;
    // Free to send: the attempts whose journal results it need not settle into files.
    msg.recorded = w.recorded.length ? w.recorded : undefined;
    w.recorded = [];
    w.child.channel?.ref();
    try {
      w.child.send(msg);
      if (sendSpec) {
        if (msg.drop !== undefined) w.specs.delete(msg.drop);
        w.specs.add(msg.spec);
      }
    } catch (e) {
      // A value JSON cannot carry (a BigInt, a cycle) in the inputs.
      w.run = undefined;
      this.release(w);
      this.end(run, {
        phase: "failed",
        error: {
          code: ErrorCodes.INPUT_INVALID,
          kind: "user",
          message: `the inputs of task "${run.taskSpec.id.name}" cannot be sent to a worker process: ${(e as Error).message}`,
          hint: "task inputs must be JSON values or file/dir/dataframe references",
        },
      });
    }
  }

  /** The worker finished an attempt: give it the next waiting one, or park it. */
  private release(w: Worker): void {
    if (w.leaving || !w.alive) return;
    const next = this.queue.shift();
    if (next) {
      this.assign(w, next);
      return;
    }
    w.child.channel?.unref();
    this.idle.push(w);
  }

  private onMessage(w: Worker, m: WorkerMessage): void {
    if (m.t === "log") {
      const run = this.runs.get(m.a);
      if (run) this.log(run, m.level, m.msg, m.fields);
      return;
    }
    const run = w.run;
    if (!run || run.id !== m.a) return;
    w.run = undefined;
    w.last = run;
    if (this.durable) this.ranOn(run.id, w);
    if (m.bye) w.leaving = true;
    if (m.recycle && !run.recycled && !run.status) {
      // See WorkerMessage.recycle: retire this worker, run the attempt on a fresh one.
      run.recycled = true;
      void this.kill(w);
      if (this.closed) this.end(run, { phase: "aborted", message: "the process backend was closed" });
      else this.assign(this.spawn(), run);
      return;
    }
    this.release(w);
    if (w.leaving) void this.kill(w).then(() => this.refill());
    if (run.status) return;
    if (m.error) this.end(run, { phase: "failed", error: m.error });
    else if (m.stored) this.end(run, { phase: "succeeded" });
    else this.end(run, { phase: "succeeded", outputs: JSON.parse(m.json ?? "null") as Json });
  }

  private onExit(w: Worker, code: number | null, signal: NodeJS.Signals | null, error?: Error): void {
    w.alive = false;
    this.workers.delete(w);
    this.ownPids.delete(w.pid);
    // Its journal: results under their outputPrefix, then the file removed (unless closing: see close).
    if (!this.closed) this.settleJournals();
    const i = this.idle.indexOf(w);
    if (i >= 0) this.idle.splice(i, 1);
    const run = w.run;
    w.run = undefined;
    if (run && !run.status) {
      const how = error
        ? `could not start (${error.message})`
        : signal
          ? `was killed by ${signal}`
          : `exited with code ${code}`;
      this.end(run, {
        phase: "failed",
        error: {
          code: ErrorCodes.SYSTEM,
          kind: "system",
          message: `the worker process (pid ${w.pid}) running task "${run.taskSpec.id.name}" ${how}`,
          hint:
            signal === "SIGKILL" || signal === "SIGABRT" || code === 134
              ? "the process may have run out of memory: use less, or raise the limit with NODE_OPTIONS=--max-old-space-size=<MiB>"
              : "a task must not call process.exit(); return or throw instead",
          details: { task: run.taskSpec.id.name, pid: w.pid, exitCode: code, signal },
        },
      });
    }
    if (!w.leaving) this.refill();
  }

  /** Start workers for waiting attempts, and replace a lost worker so the pool stays warm. */
  private refill(): void {
    if (this.closed) return;
    while (this.queue.length > 0 && this.workers.size < this.size)
      this.assign(this.spawn(), this.queue.shift()!);
    if (this.workers.size < this.size) this.idle.push(this.spawn());
  }

  /** SIGKILL a worker and wait until it is reaped. */
  private async kill(w: Worker): Promise<void> {
    w.leaving = true;
    const i = this.idle.indexOf(w);
    if (i >= 0) this.idle.splice(i, 1);
    if (w.alive) w.child.kill("SIGKILL");
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([w.exited, new Promise<void>((r) => (timer = setTimeout(r, EXIT_WAIT_MS)))]);
    clearTimeout(timer);
  }

  /** Stop an attempt that has not ended: drop it from the queue, or kill its worker. Idempotent. */
  private stop(run: Run, message: string): Promise<void> {
    if (run.stopping) return run.stopping;
    if (run.status) return Promise.resolve();
    this.end(run, { phase: "aborted", message });
    const q = this.queue.indexOf(run);
    if (q >= 0) this.queue.splice(q, 1);
    const w = run.worker;
    run.stopping = w && w.run === run ? this.kill(w).then(() => this.refill()) : Promise.resolve();
    return run.stopping;
  }

  private end(run: Run, status: TaskStatus): void {
    if (run.status) return;
    run.status = status;
    wake(run);
    run.ctx.notify();
  }

  private log(run: Run, level: WorkerLogLevel, msg: string, fields?: Record<string, unknown>): void {
    run.ctx.logger[level](msg, fields);
    run.lines ??= [];
    const lines = run.lines;
    if (lines.length > MAX_LOG_LINES) return;
    lines.push(
      lines.length === MAX_LOG_LINES
        ? `… log truncated after ${MAX_LOG_LINES} lines`
        : `${new Date().toISOString()} ${level.toUpperCase()} ${msg}${fields ? ` ${JSON.stringify(fields)}` : ""}`,
    );
    wake(run);
  }
}

/** The status of a stored result. */
/**
 * An attempt's result and the workers that took it: under its outputPrefix, or in the
 * journals. The directory is read again after the journals: a journal settled (its
 * results moved under their outputPrefix, the file deleted) between the two looks
 * still counts.
 */
function lookup(
  dir: string,
  journals: JournalIndex,
  id: string,
): { result?: StoredResult; workers: ProcessIdentity[] } {
  const direct = readResult(dir);
  if (direct) return { result: direct, workers: [] };
  const entry = journals.lookup(id);
  if (entry?.result) return { result: entry.result, workers: entry.workers };
  const late = entry?.settledMeanwhile ? readResult(dir) : undefined;
  return late ? { result: late, workers: [] } : { workers: entry?.workers ?? [] };
}

function resultStatus(r: StoredResult): TaskStatus {
  return r.kind === "succeeded"
    ? { phase: "succeeded", outputs: r.outputs, message: "adopted the stored result" }
    : { phase: "failed", error: r.error, message: "adopted the stored result" };
}

/** Adopted from a stored result (no worker), or from a worker of an engine that stopped. */
function adoptedState(a: Adopted): ProcessState {
  const w = a.worker;
  if (!w) return { attempt: a.id, pid: null, adopted: "result" };
  return {
    attempt: a.id,
    pid: w.pid,
    ...(w.start === undefined ? {} : { start: w.start }),
    adopted: "running",
  };
}

function lostStatus(attempt: string, pid: number | null | undefined): TaskStatus {
  return {
    phase: "failed",
    error: {
      code: ErrorCodes.SYSTEM,
      kind: "system",
      message: `the attempt ${attempt} was lost: its worker process${pid ? ` (pid ${pid})` : ""} is gone and left no result`,
      hint: "the worker was killed with (or after) the engine that started it; the attempt is retried",
    },
  };
}

function wake(run: Run): void {
  const ws = run.waiters;
  if (!ws) return;
  run.waiters = undefined;
  for (const w of ws) w();
}
