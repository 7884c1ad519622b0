/**
 * One attempt of one node (or map item): launch through the plugin, then check
 * until terminal; a per-attempt timeout, fail-fast and abort stop it. The plugin
 * gets an {@link AttemptContext}.
 */
import type { BlobStore } from "./blob.js";
import { stripLocal } from "./catalog.js";
import { ErrorCodes, type ErrorDocument, TernError, toErrorDocument } from "./errors.js";
import type { Json } from "./json.js";
import type { BackendPlugin, TaskContext, TaskLogger, TaskPhase, TaskStatus } from "./plugin.js";
import type { TaskSpec } from "./spec.js";

/** What an attempt needs of its node (a workflow node or a map item). */
export interface AttemptNode {
  /** Node id as events name it (`sub/train`, `map_square[17]`). */
  readonly fqId: string;
  task: TaskSpec;
  plugin: BackendPlugin<any>;
  /** Attempts started so far, this one included. */
  attempts: number;
  /** Blob prefix of the node's attempts and checkpoint. */
  readonly prefix: string;
  /** `ctx.node`, shared by the node's attempts. */
  readonly ctxNode: { readonly id: string };
  /** Log lines by attempt; created on the first line. */
  logs?: Map<number, string[]>;
}

/** What an attempt needs of the engine and execution around it. */
export interface AttemptHost {
  readonly blobs: BlobStore;
  readonly workDir: string;
  readonly pollMinMs: number;
  readonly pollMaxMs: number;
  readonly maxCheckErrors: number;
  readonly execution: TaskContext["execution"];
  /** The execution started fresh here (see `TaskContext.attempt.firstLaunch`). */
  readonly fresh: boolean;
  /** Wait for a plugin slot (`limits`); `onWait` reports waiting-for-resources. */
  acquireSlot(p: BackendPlugin<any>, onWait: () => void, signal?: AbortSignal): Promise<() => void>;
  /** A phase the plugin reported (not terminal ones: the caller records those). */
  report(n: AttemptNode, phase: NodePhaseLike, extra?: Record<string, unknown>): void;
}

type NodePhaseLike = TaskPhase | "waiting-for-resources" | "initializing";

export const MAX_LOG_LINES = 10_000;

/**
 * The id of attempt `attempt` (1-based) of node `node` (its full id, as in events) of an
 * execution: stable across engine restarts (see `TaskContext.attempt.id`).
 */
export function attemptId(execution: string, node: string, attempt: number): string {
  return `${execution}-${node}-${attempt}`;
}
const noop = () => {};

/**
 * What a plugin gets for one attempt. A class (not a literal with closures): one is made
 * per attempt, so the logger and the AbortSignal are only made when used.
 */
export class AttemptContext implements TaskContext {
  readonly node: { readonly id: string };
  readonly attempt: TaskContext["attempt"];
  readonly task: TaskSpec;
  readonly outputPrefix: string;
  readonly checkpointPrefix: string;
  readonly blobs: BlobStore;
  readonly workDir: string;
  readonly notify: () => void;
  private inputsUriP?: Promise<string>;
  private log?: TaskLogger;

  readonly execution: TaskContext["execution"];

  constructor(
    host: AttemptHost,
    private readonly n: AttemptNode,
    readonly inputs: Readonly<Record<string, Json>>,
    interruptible: boolean,
    private readonly owner: Attempt,
  ) {
    const attemptNo = n.attempts;
    this.execution = host.execution;
    this.node = n.ctxNode;
    this.attempt = {
      id: attemptId(host.execution.id, n.fqId, attemptNo),
      number: attemptNo,
      interruptible,
      ...(host.fresh ? { firstLaunch: true } : {}),
    };
    this.task = n.task;
    this.checkpointPrefix = n.prefix;
    this.outputPrefix = `${n.prefix}/${attemptNo}`;
    this.blobs = host.blobs;
    this.workDir = host.workDir;
    this.notify = owner.notify;
  }

  inputsUri(): Promise<string> {
    return (this.inputsUriP ??= this.blobs.put(
      `${this.outputPrefix}/inputs.json`,
      JSON.stringify(stripLocal(this.inputs)),
    ));
  }

  /** Made on first use: most plugins never look (an AbortSignal costs microseconds on Node 20). */
  get signal(): AbortSignal {
    return this.owner.signal;
  }

  get logger(): TaskLogger {
    if (this.log) return this.log;
    const n = this.n;
    const attemptNo = this.attempt.number;
    // Created with the first line: most attempts log nothing.
    let lines: string[] | undefined;
    const log =
      (level: string): TaskLogger["info"] =>
      (msg, fields) => {
        if (!lines) (n.logs ??= new Map()).set(attemptNo, (lines = []));
        if (lines.length >= MAX_LOG_LINES) {
          if (lines.length === MAX_LOG_LINES) lines.push(`… log truncated after ${MAX_LOG_LINES} lines`);
          return;
        }
        lines.push(
          `${new Date().toISOString()} ${level} ${msg}${fields ? ` ${JSON.stringify(fields)}` : ""}`,
        );
      };
    this.log = { debug: log("DEBUG"), info: log("INFO"), warn: log("WARN"), error: log("ERROR") };
    return this.log;
  }
}

/** One attempt of one node: launch, then check until terminal; timeout and abort stop it. */
export class Attempt {
  /** Made on first use of `signal` (an AbortController costs microseconds on Node 20). */
  private ac?: AbortController;
  private wake?: () => void;
  private pending = false;
  private stopped?: { phase: "failed" | "aborted"; error?: ErrorDocument; message: string };
  /** Stopped by `detach`: the work is left running, neither aborted nor finalized. */
  private detached = false;
  /** The plugin's `abort` of a stopped attempt; `finalize` and the slot release wait for it. */
  private stopping?: Promise<void>;
  private state?: Json;
  private ctx!: TaskContext;
  private launched?: Promise<unknown>;

  constructor(
    private readonly host: AttemptHost,
    private readonly n: AttemptNode,
    private readonly inputs: Record<string, unknown>,
    private readonly interruptible: boolean,
  ) {}

  private report(phase: NodePhaseLike, extra?: Record<string, unknown>): void {
    this.host.report(this.n, phase, extra);
  }

  readonly notify = (): void => {
    if (this.wake) {
      const w = this.wake;
      this.wake = undefined;
      w();
    } else this.pending = true;
  };

  /** Aborted when the attempt is stopped (timeout, abort, fail-fast). */
  get signal(): AbortSignal {
    if (!this.ac) {
      this.ac = new AbortController();
      if (this.stopped) this.ac.abort(this.stopped.message);
    }
    return this.ac.signal;
  }

  /** Stop from outside (abort, fail-fast, timeout). The plugin's `abort` is called once, if launched. */
  stop(phase: "failed" | "aborted", message: string, error?: ErrorDocument): Promise<void> {
    if (this.stopped) return this.stopping ?? Promise.resolve();
    this.stopped = { phase, message, error };
    this.ac?.abort(message);
    this.notify();
    this.stopping = (async () => {
      // A launch in flight still produces the state to abort.
      const state = this.launched
        ? await this.launched.then(
            (st) => st as Json,
            () => undefined,
          )
        : this.state;
      if (state === undefined) return;
      try {
        await this.n.plugin.abort(this.ctx, state);
      } catch {
        // Best effort: the attempt is over for the engine either way.
      }
    })();
    return this.stopping;
  }

  /** Stop following the attempt and leave its work running (the execution is handed over). */
  detach(message: string): void {
    if (this.stopped) return;
    this.detached = true;
    this.stopped = { phase: "aborted", message };
    this.ac?.abort(message);
    this.notify();
  }

  async run(): Promise<TaskStatus> {
    const n = this.n;
    const plugin = n.plugin;
    this.ctx = new AttemptContext(
      this.host,
      n,
      this.inputs as Record<string, Json>,
      this.interruptible,
      this,
    );
    const release = plugin.limits
      ? await this.host.acquireSlot(plugin, () => this.report("waiting-for-resources"), this.signal)
      : noop;
    let timer: NodeJS.Timeout | undefined;
    try {
      if (this.stopped) return this.stoppedStatus();
      const timeoutMs = n.task.metadata.timeoutMs;
      if (timeoutMs) {
        timer = setTimeout(() => {
          void this.stop("failed", `timed out after ${timeoutMs} ms`, {
            code: ErrorCodes.TIMEOUT,
            kind: "user",
            message: `task "${n.task.id.name}" (node "${n.fqId}") timed out after ${timeoutMs} ms (attempt ${n.attempts})`,
            hint: "raise the task's timeout, or make it faster",
          });
        }, timeoutMs);
      }
      const launch = plugin.launch(this.ctx);
      this.launched = launch;
      try {
        this.state = (await launch) as Json;
      } catch (e) {
        const doc = toErrorDocument(e, "system");
        if (!(e instanceof TernError)) doc.kind = "system";
        return {
          phase: "failed",
          error: { ...doc, message: `plugin "${plugin.id}" could not launch: ${doc.message}` },
        };
      }
      if (this.stopped) return this.stoppedStatus(); // stop() aborts the launched work
      this.report("initializing", { plugin: plugin.id, pluginState: this.state });
      let last: TaskPhase = "initializing";
      let checkErrors = 0;
      let pollMs = this.host.pollMinMs;
      for (;;) {
        let status: TaskStatus | undefined;
        try {
          status = await plugin.check(this.ctx, this.state);
          checkErrors = 0;
        } catch (e) {
          if (++checkErrors >= this.host.maxCheckErrors) {
            const doc = toErrorDocument(e, "system");
            return {
              phase: "failed",
              error: {
                ...doc,
                kind: "system",
                message: `plugin "${plugin.id}" check failed: ${doc.message}`,
              },
            };
          }
        }
        if (this.stopped) return this.stoppedStatus();
        if (status) {
          if (status.phase === "succeeded" || status.phase === "failed" || status.phase === "aborted") {
            const done = this.complete(status);
            return done instanceof Promise ? await done : done;
          }
          if (status.phase !== last) {
            last = status.phase;
            this.report(status.phase, status.message ? { message: status.message } : undefined);
          }
        }
        if (this.pending) {
          this.pending = false;
          continue;
        }
        await new Promise<void>((resolve) => {
          this.wake = resolve;
          // Not unref'd: between polls this timer may be all that keeps the process alive.
          const t = setTimeout(this.notify, pollMs);
          const orig = resolve;
          this.wake = () => {
            clearTimeout(t);
            orig();
          };
        });
        this.pending = false;
        pollMs = Math.min(pollMs * 2, this.host.pollMaxMs);
      }
    } finally {
      if (timer) clearTimeout(timer);
      // A stopped attempt's work is aborted before its slot is freed and it is finalized.
      if (this.stopping) await this.stopping;
      release();
      if (this.state !== undefined && plugin.finalize && !this.detached) {
        try {
          await plugin.finalize(this.ctx, this.state);
        } catch {
          // finalize is cleanup; its failure does not change the outcome
        }
      }
    }
  }

  private stoppedStatus(): TaskStatus {
    const s = this.stopped!;
    return s.phase === "aborted"
      ? { phase: "aborted", message: s.message }
      : { phase: "failed", error: s.error, message: s.message };
  }

  /** Turn a terminal status into outputs or an error, reading `outputs.json`/`error.json` when needed. */
  private complete(status: TaskStatus): TaskStatus | Promise<TaskStatus> {
    if (status.phase !== "succeeded") return status;
    if (status.outputs !== undefined && !isLiteralRef(status.outputs)) return status;
    return this.completeAsync(status);
  }

  private async completeAsync(status: TaskStatus): Promise<TaskStatus> {
    if (status.outputs !== undefined)
      return { ...status, outputs: (await resolveLiteral(status.outputs, this.ctx.blobs)) as Json };
    const blobs = this.ctx.blobs;
    const outUri = blobs.uri(`${this.ctx.outputPrefix}/outputs.json`);
    if (await blobs.exists(outUri)) {
      const text = Buffer.from(await blobs.get(outUri)).toString("utf8");
      return { ...status, outputs: JSON.parse(text) as Json };
    }
    const errUri = blobs.uri(`${this.ctx.outputPrefix}/error.json`);
    if (await blobs.exists(errUri)) {
      const doc = JSON.parse(Buffer.from(await blobs.get(errUri)).toString("utf8")) as ErrorDocument;
      return { phase: "failed", error: doc };
    }
    if (isNullOutput(this.n.task)) return { ...status, outputs: null };
    return {
      phase: "failed",
      error: {
        code: ErrorCodes.SYSTEM,
        kind: "system",
        message: `plugin "${this.n.plugin.id}" reported success but wrote no outputs.json under ${this.ctx.outputPrefix}`,
      },
    };
  }
}

function isNullOutput(t: TaskSpec): boolean {
  const o = t.interface.output as { type?: unknown };
  return typeof o === "object" && o?.type === "null";
}

function isLiteralRef(v: unknown): boolean {
  return v !== null && typeof v === "object" && (v as { $tern?: unknown }).$tern === "literal";
}

/** A large output may come back as a reference to a literal in blob storage. */
export async function resolveLiteral(v: unknown, blobs: BlobStore): Promise<unknown> {
  if (isLiteralRef(v)) {
    const uri = (v as { uri: string }).uri;
    return JSON.parse(Buffer.from(await blobs.get(uri)).toString("utf8"));
  }
  return v;
}
