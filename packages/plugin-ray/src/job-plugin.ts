/**
 * `ray-job`: runs `ray` tasks on an existing Ray cluster through its dashboard's Jobs REST API.
 *
 * - `launch` submits `POST /api/jobs/` with a `submission_id` derived from the attempt id,
 *   the templated entrypoint, the task's `runtime_env` (Tern's job variables added to
 *   `env_vars`), the entrypoint's CPUs/GPUs/memory and metadata naming the attempt. A
 *   duplicate id ("already exists", a retry or a re-launch after a restart) adopts the
 *   existing job when its metadata names the same attempt. 5xx, 429 and an unreachable
 *   dashboard are retried with backoff.
 * - `check` reads `GET /api/jobs/{id}`: PENDING → initializing, RUNNING → running, SUCCEEDED
 *   → succeeded (outputs from `outputs.json`), FAILED → a user error (the entrypoint failed,
 *   or its runtime_env could not be set up) or a system error (the job supervisor died or
 *   could not be scheduled), STOPPED → aborted (by Tern) or a system error (by someone else),
 *   404 → lost (system).
 * - `abort` sends `POST /api/jobs/{id}/stop`; `logs` follows `GET /api/jobs/{id}/logs`.
 */
import {
  type BackendLimits,
  type BackendPlugin,
  CONTRACT_VERSION,
  ErrorCodes,
  type ErrorDocument,
  inject,
  injectable,
  jobEnv,
  renderJobTemplate,
  type TaskContext,
  type TaskSpec,
  type TaskStatus,
  TernError,
} from "@tern/core";
import {
  isRayApiError,
  RayApiError,
  type RayJobDetails,
  type RayJobsApi,
  RayJobsClient,
  type RaySubmitRequest,
} from "./client.js";
import { checkRayTask } from "./config.js";
import { submissionId } from "./names.js";
import { RAY_OPTIONS, type ResolvedRayOptions } from "./options.js";
import { withRetry } from "./retry.js";

/** The persisted state of a `ray-job` attempt. */
export type RayJobState = {
  /** The dashboard the job was submitted to. */
  address: string;
  submissionId: string;
};

/** Metadata keys every job carries; `tern.attempt_id` is compared before adopting a job. */
export const RAY_METADATA = {
  attemptId: "tern.attempt_id",
  execution: "tern.execution",
  node: "tern.node",
  task: "tern.task",
  project: "tern.project",
  domain: "tern.domain",
} as const;

/** Error types with which Ray reports infrastructure trouble rather than the job's own failure. */
const SYSTEM_ERROR_TYPES = new Set([
  "JOB_SUPERVISOR_ACTOR_DIED",
  "JOB_SUPERVISOR_ACTOR_UNSCHEDULABLE",
  "JOB_SUPERVISOR_ACTOR_START_TIMEOUT",
  "JOB_SUPERVISOR_ACTOR_START_FAILURE",
  "JOB_SUPERVISOR_ACTOR_UNKNOWN_FAILURE",
]);

/** Reads `<outputPrefix>/error.json`, which a job may write (to `$TERN_ERROR_URI`) when it fails. */
export async function readErrorDocument(ctx: TaskContext): Promise<ErrorDocument | undefined> {
  const uri = ctx.blobs.uri(`${ctx.outputPrefix}/error.json`);
  if (!(await ctx.blobs.exists(uri))) return undefined;
  try {
    const doc = JSON.parse(Buffer.from(await ctx.blobs.get(uri)).toString("utf8")) as ErrorDocument;
    return doc && typeof doc.message === "string" ? doc : undefined;
  } catch {
    return undefined;
  }
}

function firstLines(s: string | null | undefined, n = 3): string {
  return (s ?? "").trim().split("\n").slice(0, n).join("\n");
}

/**
 * A job's details → task status (PROTOCOLS §2). `aborted`: Tern stopped it. A user failure
 * has `userFailure: true` so the caller can prefer the job's own error document.
 */
export function rayJobStatus(
  job: RayJobDetails,
  where: string,
  task: string,
  aborted: boolean,
): TaskStatus & { userFailure?: boolean } {
  switch (job.status) {
    case "PENDING":
      return { phase: "initializing", message: job.message ?? "Ray job pending" };
    case "RUNNING":
      return { phase: "running", message: job.message ?? undefined };
    case "SUCCEEDED":
      return { phase: "succeeded" };
    case "STOPPED": {
      if (aborted) return { phase: "aborted", message: `Ray job ${where} was stopped (aborted)` };
      const message = `Ray job ${where} was stopped outside Tern`;
      return {
        phase: "failed",
        message,
        error: {
          code: ErrorCodes.SYSTEM,
          kind: "system",
          message,
          hint: "someone ran `ray job stop` (or the dashboard API) on it; the attempt is retried as a system error",
        },
      };
    }
    case "FAILED": {
      const type = job.error_type ?? undefined;
      const text = firstLines(job.message);
      // Older Ray has no error_type: a failure without an exit code is the supervisor's.
      const system =
        (type !== undefined && SYSTEM_ERROR_TYPES.has(type)) ||
        (type === undefined &&
          (job.driver_exit_code === null || job.driver_exit_code === undefined) &&
          /supervisor|node .*(died|dead|preempt)|actor died/i.test(text));
      if (system) {
        const message = `Ray job ${where} failed for reasons outside the task (${type ?? "no error type"}): ${text}`;
        return {
          phase: "failed",
          message,
          preempted: /preempt|spot/i.test(job.message ?? ""),
          error: {
            code: ErrorCodes.SYSTEM,
            kind: "system",
            message,
            hint: "the attempt is retried as a system error",
            details: { submissionId: job.submission_id, errorType: type },
          },
        };
      }
      const envSetup = type === "RUNTIME_ENV_SETUP_FAILURE";
      const code = job.driver_exit_code;
      const message = envSetup
        ? `task "${task}": the runtime_env of Ray job ${where} could not be set up: ${text}`
        : `task "${task}" failed: Ray job ${where} failed${code !== null && code !== undefined ? ` (exit code ${code})` : ""}: ${text}`;
      return {
        phase: "failed",
        message,
        userFailure: !envSetup,
        error: {
          code: ErrorCodes.TASK_FAILED,
          kind: "user",
          message,
          hint: envSetup
            ? "check custom.runtimeEnv (working_dir, pip, conda…) against what the cluster can reach"
            : "see the job's log (tern logs, or the Ray dashboard)",
          details: { submissionId: job.submission_id, errorType: type, exitCode: code },
        },
      };
    }
    default:
      return { phase: "running", message: `Ray job ${where} reports status ${String(job.status)}` };
  }
}

/** The Jobs API plugin (`ray-job`, task type `ray` unless configured otherwise). */
@injectable()
export class RayJobPlugin implements BackendPlugin<RayJobState> {
  readonly id: string = "ray-job";
  readonly taskTypes: readonly string[];
  readonly contractVersion = CONTRACT_VERSION;
  readonly limits?: BackendLimits;
  private readonly clients = new Map<string, RayJobsApi>();
  private readonly launches = new Map<string, Promise<RayJobState>>();
  /** Jobs this process stopped through `abort`. */
  private readonly aborted = new Set<string>();

  constructor(@inject(RAY_OPTIONS) private readonly options: ResolvedRayOptions) {
    this.taskTypes = options.taskTypes;
    if (options.maxConcurrent || options.launchesPerSecond)
      this.limits = { maxConcurrent: options.maxConcurrent, launchesPerSecond: options.launchesPerSecond };
  }

  /** The client of a dashboard (one per address, created on first use). */
  client(address: string): RayJobsApi {
    let c = this.clients.get(address);
    if (!c) {
      c = this.options.client
        ? this.options.client(address)
        : new RayJobsClient({
            address,
            headers: this.options.headers,
            timeoutMs: this.options.requestTimeoutMs,
          });
      this.clients.set(address, c);
    }
    return c;
  }

  validate(task: TaskSpec): void {
    checkRayTask(task, "jobs");
  }

  launch(ctx: TaskContext): Promise<RayJobState> {
    const known = this.launches.get(ctx.attempt.id);
    if (known) return known;
    const p = this.submit(ctx);
    this.launches.set(ctx.attempt.id, p);
    p.catch(() => this.launches.delete(ctx.attempt.id));
    return p;
  }

  /** The submit request of an attempt (exported for tests and for reading). */
  async request(ctx: TaskContext, id: string): Promise<RaySubmitRequest> {
    const cfg = checkRayTask(ctx.task, "jobs");
    const inputsUri = await ctx.inputsUri();
    const req: RaySubmitRequest = {
      submission_id: id,
      entrypoint: renderJobTemplate(cfg.entrypoint, ctx, inputsUri),
      runtime_env: {
        ...cfg.runtimeEnv,
        env_vars: {
          ...this.options.env,
          ...ctx.task.metadata.env,
          ...(cfg.runtimeEnv.env_vars ?? {}),
          ...jobEnv(ctx, inputsUri),
        },
      },
      metadata: {
        ...cfg.metadata,
        [RAY_METADATA.attemptId]: ctx.attempt.id,
        [RAY_METADATA.execution]: ctx.execution.id,
        [RAY_METADATA.node]: ctx.node.id,
        [RAY_METADATA.task]: ctx.task.id.name,
        [RAY_METADATA.project]: ctx.execution.project,
        [RAY_METADATA.domain]: ctx.execution.domain,
      },
    };
    if (cfg.numCpus !== undefined) req.entrypoint_num_cpus = cfg.numCpus;
    if (cfg.numGpus !== undefined) req.entrypoint_num_gpus = cfg.numGpus;
    if (cfg.memoryBytes !== undefined) req.entrypoint_memory = cfg.memoryBytes;
    if (cfg.resources) req.entrypoint_resources = cfg.resources;
    return req;
  }

  private async submit(ctx: TaskContext): Promise<RayJobState> {
    const address = this.options.address!;
    const id = submissionId(ctx.attempt.id);
    const req = await this.request(ctx, id);
    const api = this.client(address);
    const retry = <T>(what: string, fn: () => Promise<T>) =>
      withRetry(fn, (e) => isRayApiError(e) && e.transient, this.options.apiRetry, {
        signal: ctx.signal,
        onRetry: (e, ms) =>
          ctx.logger.debug(`${what}: ${(e as Error).message}; retrying in ${Math.round(ms)} ms`),
      });
    try {
      await retry(`submit Ray job ${id}`, () => api.submit(req));
    } catch (e) {
      if (!isRayApiError(e) || !e.alreadyExists) throw this.launchError(ctx, e, id, address);
      let job: RayJobDetails;
      try {
        job = await retry(`get Ray job ${id}`, () => api.get(id));
      } catch (g) {
        throw this.launchError(ctx, g, id, address);
      }
      if (job.metadata?.[RAY_METADATA.attemptId] !== ctx.attempt.id) {
        throw new TernError(
          ErrorCodes.CONFLICT,
          `a Ray job with submission_id "${id}" already exists on ${address} and was not made for attempt ${ctx.attempt.id}`,
          {
            kind: "system",
            hint: `delete it (ray job delete ${id}) if it is left over from elsewhere`,
            details: { address, submissionId: id },
          },
        );
      }
      ctx.logger.info(`adopted the existing Ray job ${id} on ${address}`);
    }
    return { address, submissionId: id };
  }

  private launchError(ctx: TaskContext, e: unknown, id: string, address: string): TernError {
    if (e instanceof TernError) return e;
    const details = { task: ctx.task.id.name, address, submissionId: id };
    if (e instanceof RayApiError && e.status >= 400 && e.status < 500 && e.status !== 429) {
      return new TernError(
        e.status === 400 ? ErrorCodes.SPEC_INVALID : ErrorCodes.SYSTEM,
        `the Ray dashboard at ${address} refused job ${id} of task "${ctx.task.id.name}": ${e.message}`,
        {
          kind: e.status === 400 ? "user" : "system",
          hint:
            e.status === 401 || e.status === 403
              ? "check the headers (credentials) given to ray()"
              : "the request the task's custom produced was refused; fix the field the message names",
          details: { ...details, status: e.status },
        },
      );
    }
    return new TernError(
      ErrorCodes.SYSTEM,
      `could not submit Ray job ${id} of task "${ctx.task.id.name}" to ${address}: ${(e as Error)?.message ?? e}`,
      { kind: "system", hint: "the attempt is retried as a system error", details },
    );
  }

  async check(ctx: TaskContext, state: RayJobState): Promise<TaskStatus> {
    const where = `${state.submissionId} on ${state.address}`;
    let job: RayJobDetails;
    try {
      job = await this.client(state.address).get(state.submissionId);
    } catch (e) {
      if (isRayApiError(e, 404)) {
        if (this.aborted.has(state.submissionId))
          return { phase: "aborted", message: `Ray job ${where} is gone (aborted)` };
        const message = `Ray job ${where} no longer exists (lost: the head node restarted, or the job was deleted)`;
        return {
          phase: "failed",
          message,
          error: {
            code: ErrorCodes.SYSTEM,
            kind: "system",
            message,
            hint: "the attempt is retried as a system error",
          },
        };
      }
      throw new TernError(ErrorCodes.SYSTEM, `cannot read Ray job ${where}: ${(e as Error).message}`, {
        kind: "system",
      });
    }
    const { userFailure, ...status } = rayJobStatus(
      job,
      where,
      ctx.task.id.name,
      this.aborted.has(state.submissionId),
    );
    status.externalUrl = `${state.address}/#/jobs/${encodeURIComponent(state.submissionId)}`;
    status.logLinks = [
      {
        name: "Ray job log",
        url: `${state.address}/api/jobs/${encodeURIComponent(state.submissionId)}/logs`,
      },
    ];
    if (userFailure) {
      const doc = await readErrorDocument(ctx);
      if (doc) return { ...status, message: doc.message, error: doc };
    }
    return status;
  }

  async abort(ctx: TaskContext, state: RayJobState): Promise<void> {
    this.aborted.add(state.submissionId);
    const api = this.client(state.address);
    try {
      await withRetry(
        () => api.stop(state.submissionId),
        (e) => isRayApiError(e) && e.transient,
        this.options.apiRetry,
      );
    } catch (e) {
      if (isRayApiError(e, 404)) return;
      ctx.logger.warn(
        `could not stop Ray job ${state.submissionId} on ${state.address}: ${(e as Error).message}`,
      );
      throw e;
    }
  }

  async finalize(ctx: TaskContext, state: RayJobState): Promise<void> {
    this.launches.delete(ctx.attempt.id);
    this.aborted.delete(state.submissionId);
    if (!this.options.deleteFinishedJobs) return;
    const api = this.client(state.address);
    try {
      const job = await api.get(state.submissionId);
      if (["SUCCEEDED", "FAILED", "STOPPED"].includes(job.status)) await api.delete(state.submissionId);
    } catch (e) {
      if (!isRayApiError(e, 404))
        ctx.logger.warn(`could not delete Ray job ${state.submissionId}: ${(e as Error).message}`);
    }
  }

  /**
   * The job's log, line by line, following it until the job ends (the Jobs API serves the
   * whole text so far; new text is polled for).
   */
  async *logs(ctx: TaskContext, state: RayJobState): AsyncIterable<string> {
    const api = this.client(state.address);
    let seen = 0;
    let pending = "";
    for (let wait = 100; !ctx.signal.aborted; wait = Math.min(wait * 2, 1000)) {
      const text = await api.logs(state.submissionId).catch((e) => {
        if (isRayApiError(e, 404)) return undefined;
        throw e;
      });
      if (text === undefined) return;
      const terminal = await api
        .get(state.submissionId)
        .then((j) => ["SUCCEEDED", "FAILED", "STOPPED"].includes(j.status))
        .catch(() => true);
      // Re-read after learning the job is over, so its last lines are not missed.
      const all = terminal ? ((await api.logs(state.submissionId).catch(() => text)) ?? text) : text;
      if (all.length > seen) {
        pending += all.slice(seen);
        seen = all.length;
        wait = 50;
        const lines = pending.split("\n");
        pending = lines.pop() ?? "";
        for (const l of lines) yield l;
      }
      if (terminal) {
        if (pending) yield pending;
        return;
      }
      await new Promise((r) => setTimeout(r, wait));
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.clients.values()].map((c) => c.close?.().catch(() => undefined)));
    this.clients.clear();
  }
}
