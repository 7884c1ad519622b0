/**
 * `startFakeRay()`: a loopback fake of the Ray dashboard's Jobs REST API (PROTOCOLS §2) that
 * a real HTTP client (axios, fetch, `ray job submit --address`) talks to on 127.0.0.1.
 *
 * Each submitted job's entrypoint really runs, as `sh -c <entrypoint>` in its own process
 * group, with `runtime_env.env_vars` in its environment and `runtime_env.working_dir` (a local
 * directory) as its working directory. Status moves PENDING → RUNNING → SUCCEEDED | FAILED,
 * or STOPPED after `POST /api/jobs/{id}/stop` (SIGTERM to the process group, SIGKILL after a
 * grace period). stdout and stderr make up the job's log. A duplicate `submission_id` is
 * refused the way current Ray versions do it: HTTP 500 whose text carries the nested
 * `400 … already exists`. Errors are plain text, as the dashboard sends them.
 *
 * The control API (methods of {@link FakeRay}) injects failures (`failNext`, `delay`,
 * `down`/`up`), moves jobs (`setStatus`, `preempt`, `failJob`, `lose`) and records every
 * request (`requests`).
 *
 * Simplifications: there is no Ray cluster behind it, so `pip`, `conda`, `uv`, `py_modules`,
 * `image_uri`… are recorded but not acted on; `working_dir` must be a local directory (an
 * absolute path or a `file://` URI; remote URIs fail runtime_env setup); `entrypoint_*`
 * resources are recorded, never scheduled against; timings are wall-clock and small.
 */
import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ContainerProcess, type ProcessExit } from "../k8s/process.js";
import {
  defaultErrorText,
  matchesRay,
  type RayFailSpec,
  type RayMatchTarget,
  type RayRequestMatch,
  type RayRoute,
  type RayRuleHandle,
  RayRules,
} from "./faults.js";

/** Ray's job statuses. Terminal: STOPPED, SUCCEEDED, FAILED. */
export type RayJobStatus = "PENDING" | "RUNNING" | "STOPPED" | "SUCCEEDED" | "FAILED";

/** `JobDetails` as `GET /api/jobs/{id}` returns it. */
export interface RayJobDetails {
  type: "SUBMISSION";
  job_id: string | null;
  submission_id: string;
  driver_info: { id: string; node_ip_address: string; pid: string } | null;
  status: RayJobStatus;
  entrypoint: string;
  message: string | null;
  error_type: string | null;
  /** Epoch ms. */
  start_time: number | null;
  end_time: number | null;
  metadata: Record<string, string> | null;
  runtime_env: Record<string, unknown> | null;
  driver_agent_http_address: string | null;
  driver_node_id: string | null;
  driver_exit_code: number | null;
  entrypoint_num_cpus: number | null;
  entrypoint_num_gpus: number | null;
  entrypoint_memory: number | null;
  entrypoint_resources: Record<string, number> | null;
}

/** One request as the fake saw it. */
export interface RayRecordedRequest {
  route: RayRoute;
  method: string;
  /** Path without the query string. */
  path: string;
  query: Record<string, string>;
  headers: Record<string, string>;
  /** Parsed JSON body, the raw text when it is not JSON, `undefined` when empty. */
  body: unknown;
  submissionId?: string;
  /** Status the fake answered with. */
  status: number;
  time: Date;
}

export interface FakeRayOptions {
  /** Port on 127.0.0.1. @default 0 (any free port) */
  port?: number;
  /** How long a new job stays PENDING before its entrypoint starts. @default 10 */
  pendingMs?: number;
  /** SIGTERM → SIGKILL grace period of a stopped job (Ray waits 3 s; tests cannot). @default 500 */
  stopGraceMs?: number;
  /** How a duplicate `submission_id` is answered: 500 (current Ray) or 400 (older Ray). @default 500 */
  duplicateStatus?: 400 | 500;
  /** Require `Authorization: Bearer <token>` (as an authenticating proxy in front of the dashboard would). */
  token?: string;
  /** Root of the jobs' scratch working directories. @default a fresh temp dir, removed on close */
  workDir?: string;
  /** Variables passed from this process to every entrypoint. @default PATH, HOME, TMPDIR, LANG, TZ */
  hostEnv?: string[];
  /** Reported by `GET /api/version`. @default "2.41.0" */
  rayVersion?: string;
  /** Requests kept for `requests()`. @default 10000 */
  maxRecordedRequests?: number;
}

export interface RayWaitOptions {
  /** @default 10000 */
  timeoutMs?: number;
  /** Polling period on top of waking at every change. @default 25 */
  intervalMs?: number;
  message?: string;
}

/** How the dashboard is made unreachable: connections refused, or 503 to everything. */
export type RayDownMode = "refuse" | "503";

interface FakeJob {
  details: RayJobDetails;
  log: string;
  proc?: ContainerProcess;
  startTimer?: NodeJS.Timeout;
  killTimer?: NodeJS.Timeout;
  stopping: boolean;
  /** The terminal status to report when the process exits (set by preempt/failJob). */
  forced?: { status: RayJobStatus; message: string; errorType: string | null };
  ownDir?: string;
}

const TERMINAL = new Set<RayJobStatus>(["STOPPED", "SUCCEEDED", "FAILED"]);
/** Ray keeps the last 20,000 characters of the log in a failed job's message. */
const MESSAGE_LOG_CHARS = 20_000;
/** A job's log is capped (oldest text dropped) so a chatty entrypoint cannot exhaust memory. */
const MAX_LOG_CHARS = 8 * 1024 * 1024;

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly text: string,
  ) {
    super(text);
  }
}

function hex(bytes: number): string {
  return randomBytes(bytes).toString("hex");
}

function generatedSubmissionId(): string {
  const chars = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ123456789";
  const b = randomBytes(16);
  return `raysubmit_${Array.from(b, (x) => chars[x % chars.length]).join("")}`;
}

/** A Python-looking 400 body, as the dashboard returns for a malformed submit request. */
function badRequest(message: string): HttpError {
  return new HttpError(
    400,
    `Traceback (most recent call last):\n  File "job_head.py", in submit_job\n    submit_request = JobSubmitRequest(**json_data)\nTypeError: ${message}`,
  );
}

function isStringMap(v: unknown): v is Record<string, string> {
  return (
    typeof v === "object" &&
    v !== null &&
    !Array.isArray(v) &&
    Object.values(v).every((x) => typeof x === "string")
  );
}

function isNumber(v: unknown): v is number {
  return typeof v === "number" && Number.isFinite(v);
}

/** A running fake Ray dashboard. */
export class FakeRay {
  readonly #options: FakeRayOptions;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  readonly #jobs = new Map<string, FakeJob>();
  readonly #failures = new RayRules<RayFailSpec>();
  readonly #delays = new RayRules<number>();
  readonly #requests: RayRecordedRequest[] = [];
  readonly #events = new EventEmitter();
  readonly #workDir: string;
  readonly #ownWorkDir: boolean;
  readonly #sessionName = `session_${new Date().toISOString().replace(/[-:.TZ]/g, "_")}_${process.pid}`;
  #port = 0;
  #down: RayDownMode | undefined;
  #closed: Promise<void> | undefined;

  /** @internal Use {@link startFakeRay}. */
  constructor(options: FakeRayOptions = {}) {
    this.#options = options;
    this.#ownWorkDir = !options.workDir;
    this.#workDir = options.workDir ?? mkdtempSync(path.join(os.tmpdir(), "tern-fake-ray-"));
    this.#events.setMaxListeners(0);
    this.#server = createServer((req, res) => {
      void this.#handle(req, res);
    });
    this.#server.keepAliveTimeout = 5000;
    this.#server.on("connection", (s) => {
      this.#sockets.add(s);
      s.on("close", () => this.#sockets.delete(s));
    });
  }

  /** @internal */
  async listen(port = this.#options.port ?? 0): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.#server.once("error", onError);
      this.#server.listen(port, "127.0.0.1", () => {
        this.#server.off("error", onError);
        resolve();
      });
    });
    const addr = this.#server.address();
    if (addr && typeof addr === "object") this.#port = addr.port;
  }

  /** The port on 127.0.0.1. */
  get port(): number {
    return this.#port;
  }

  /** The dashboard address, `http://127.0.0.1:PORT` (what `RAY_ADDRESS` / `--address` takes). */
  get url(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  /** Stops the server, kills every job's process group (and waits), removes scratch dirs. Idempotent. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      await this.#stopListening();
      const exits: Promise<unknown>[] = [];
      for (const job of this.#jobs.values()) {
        clearTimeout(job.startTimer);
        clearTimeout(job.killTimer);
        if (job.proc?.running) {
          job.forced ??= { status: "FAILED", message: "The fake Ray dashboard was closed.", errorType: null };
          job.proc.kill("SIGKILL");
          exits.push(job.proc.exited);
        }
      }
      await Promise.race([Promise.all(exits), new Promise((r) => setTimeout(r, 2000).unref())]);
      for (const job of this.#jobs.values())
        if (job.ownDir) rmSync(job.ownDir, { recursive: true, force: true });
      if (this.#ownWorkDir) rmSync(this.#workDir, { recursive: true, force: true });
    })();
    return this.#closed;
  }

  async #stopListening(): Promise<void> {
    const closed = this.#server.listening
      ? new Promise<void>((resolve) => this.#server.close(() => resolve()))
      : Promise.resolve();
    for (const s of this.#sockets) s.destroy();
    await closed;
  }

  // ------------------------------------------------------------------ fault injection

  /** Fails the next `spec.count` (default 1) matching requests with `spec.status` and a text body. */
  failNext(match: RayRequestMatch, spec: RayFailSpec): RayRuleHandle {
    return this.#failures.add(match, spec, spec.count ?? 1);
  }

  /** Adds `ms` of latency to matching requests (all of them, or the next `count`). */
  delay(match: RayRequestMatch, ms: number, count = Number.POSITIVE_INFINITY): RayRuleHandle {
    return this.#delays.add(match, ms, count);
  }

  /**
   * Makes the dashboard unreachable (a head node restarting): `"refuse"` closes the listener
   * and every connection (ECONNREFUSED); `"503"` answers every request with 503. Jobs keep
   * running meanwhile.
   */
  async down(mode: RayDownMode = "refuse"): Promise<void> {
    this.#down = mode;
    if (mode === "refuse") await this.#stopListening();
  }

  /** Brings the dashboard back on the same port. */
  async up(): Promise<void> {
    const mode = this.#down;
    this.#down = undefined;
    if (mode === "refuse") await this.listen(this.#port);
  }

  // ------------------------------------------------------------------ jobs

  /** Every job (copies), oldest first. */
  jobs(): RayJobDetails[] {
    return [...this.#jobs.values()].map((j) => structuredClone(j.details));
  }

  /** One job (a copy), or undefined. */
  job(submissionId: string): RayJobDetails | undefined {
    const j = this.#jobs.get(submissionId);
    return j && structuredClone(j.details);
  }

  /** The job's log so far. */
  logs(submissionId: string): string | undefined {
    return this.#jobs.get(submissionId)?.log;
  }

  /** Whether the job's entrypoint process is alive. */
  isRunning(submissionId: string): boolean {
    return this.#jobs.get(submissionId)?.proc?.running ?? false;
  }

  /** Entrypoint processes alive right now. */
  processes(): { submissionId: string; pid: number | undefined }[] {
    return [...this.#jobs.values()]
      .filter((j) => j.proc?.running)
      .map((j) => ({ submissionId: j.details.submission_id, pid: j.proc!.pid }));
  }

  /**
   * Moves a job to `status` (with optional `message`, `error_type`, `driver_exit_code`). A
   * terminal status kills the entrypoint's process group; the status then stays as set.
   */
  setStatus(
    submissionId: string,
    status: RayJobStatus,
    extras: Partial<Pick<RayJobDetails, "message" | "error_type" | "driver_exit_code">> = {},
  ): RayJobDetails {
    const job = this.#need(submissionId);
    if (TERMINAL.has(status)) {
      clearTimeout(job.startTimer);
      job.forced = {
        status,
        message: extras.message ?? job.details.message ?? "",
        errorType: extras.error_type ?? null,
      };
      job.proc?.kill("SIGKILL");
    }
    this.#update(job, { status, ...extras, ...(TERMINAL.has(status) ? { end_time: Date.now() } : {}) });
    return structuredClone(job.details);
  }

  /**
   * The node running the job's supervisor goes away (spot reclaim, preemption): the job ends
   * FAILED with `error_type: JOB_SUPERVISOR_ACTOR_DIED`, as Ray reports it.
   */
  preempt(submissionId: string, message?: string): void {
    this.failJob(submissionId, {
      errorType: "JOB_SUPERVISOR_ACTOR_DIED",
      message:
        message ??
        "Job supervisor actor died: The actor died unexpectedly before finishing this task. The node 127.0.0.1 running the actor was preempted (spot instance reclaimed).",
    });
  }

  /** Ends a job FAILED with this `error_type` and message (its process group is killed). */
  failJob(submissionId: string, opts: { errorType?: string | null; message?: string } = {}): void {
    const job = this.#need(submissionId);
    if (TERMINAL.has(job.details.status)) return;
    const forced = {
      status: "FAILED" as const,
      message: opts.message ?? "Job failed.",
      errorType: opts.errorType === undefined ? "JOB_SUPERVISOR_ACTOR_UNKNOWN_FAILURE" : opts.errorType,
    };
    job.forced = forced;
    if (job.proc?.running) job.proc.kill("SIGKILL");
    else this.#finish(job, forced.status, forced.message, forced.errorType, null);
  }

  /** Loses a job: its process group is killed and the id stops resolving (404), as after a head-node restart. */
  lose(submissionId: string): void {
    const job = this.#need(submissionId);
    clearTimeout(job.startTimer);
    job.forced = { status: "FAILED", message: "lost", errorType: null };
    job.proc?.kill("SIGKILL");
    this.#jobs.delete(submissionId);
    this.#events.emit("change");
  }

  #need(id: string): FakeJob {
    const job = this.#jobs.get(id);
    if (!job) throw new Error(`fake Ray: no job with submission_id "${id}"`);
    return job;
  }

  // ------------------------------------------------------------------ requests

  /** Every request received so far (optionally only matching ones), oldest first. */
  requests(match?: RayRequestMatch): RayRecordedRequest[] {
    return this.#requests
      .filter((r) => !match || matchesRay(match, r as RayMatchTarget))
      .map((r) => ({ ...r }));
  }

  resetRequests(): void {
    this.#requests.length = 0;
  }

  /** Resolves with the first truthy value of `predicate`, re-checked at every change and every `intervalMs`. */
  waitFor<T>(predicate: () => T | undefined | null | false, opts: RayWaitOptions = {}): Promise<T> {
    const timeoutMs = opts.timeoutMs ?? 10_000;
    return new Promise<T>((resolve, reject) => {
      const check = () => {
        try {
          const v = predicate();
          if (v) {
            done();
            resolve(v);
          }
        } catch (e) {
          done();
          reject(e);
        }
      };
      const interval = setInterval(check, opts.intervalMs ?? 25);
      const timer = setTimeout(() => {
        done();
        reject(
          new Error(`waitFor timed out after ${timeoutMs} ms${opts.message ? `: ${opts.message}` : ""}`),
        );
      }, timeoutMs);
      const done = () => {
        clearInterval(interval);
        clearTimeout(timer);
        this.#events.off("change", check);
      };
      this.#events.on("change", check);
      check();
    });
  }

  // ------------------------------------------------------------------ HTTP

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const raw = await new Promise<string>((resolve) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
      req.on("error", () => resolve(""));
    });
    let body: unknown;
    if (raw.length > 0) {
      try {
        body = JSON.parse(raw);
      } catch {
        body = raw;
      }
    }
    const { route, id } = routeOf(req.method ?? "GET", url.pathname);
    const record: RayRecordedRequest = {
      route,
      method: req.method ?? "GET",
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      headers: Object.fromEntries(
        Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(", ") : (v ?? "")]),
      ),
      body,
      submissionId:
        id ??
        (route === "submit" && typeof (body as { submission_id?: unknown })?.submission_id === "string"
          ? (body as { submission_id: string }).submission_id
          : undefined),
      status: 0,
      time: new Date(),
    };
    this.#requests.push(record);
    const max = this.#options.maxRecordedRequests ?? 10_000;
    if (this.#requests.length > max) this.#requests.splice(0, this.#requests.length - max);

    const send = (status: number, payload: unknown, headers: Record<string, string> = {}) => {
      record.status = status;
      const text = typeof payload === "string" ? payload : JSON.stringify(payload);
      res.writeHead(status, {
        "content-type": typeof payload === "string" ? "text/plain; charset=utf-8" : "application/json",
        "content-length": String(Buffer.byteLength(text)),
        ...headers,
      });
      res.end(text);
      this.#events.emit("change");
    };

    if (this.#down === "503") return send(503, "503: Service Unavailable");
    const target: RayMatchTarget = {
      route,
      method: record.method,
      path: url.pathname,
      submissionId: record.submissionId,
    };
    const wait = this.#delays.takeAll(target).reduce((a, b) => a + b, 0);
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    if (this.#options.token && req.headers.authorization !== `Bearer ${this.#options.token}`)
      return send(401, "401: Unauthorized");
    const fail = this.#failures.take(target);
    if (fail) return send(fail.status, fail.body ?? defaultErrorText(fail.status), fail.headers);
    try {
      const [status, payload] = this.#route(route, id, body);
      send(status, payload);
    } catch (e) {
      if (e instanceof HttpError) send(e.status, e.text);
      else send(500, `Traceback (most recent call last):\n${(e as Error)?.stack ?? e}`);
    }
  }

  #route(route: RayRoute, id: string | undefined, body: unknown): [number, unknown] {
    switch (route) {
      case "version":
        return [
          200,
          {
            version: "4",
            ray_version: this.#options.rayVersion ?? "2.41.0",
            ray_commit: "fakefakefakefakefakefakefakefakefake0000",
            session_name: this.#sessionName,
          },
        ];
      case "submit":
        return [200, this.#submit(body)];
      case "list":
        return [200, this.jobs()];
      case "get":
        return [200, this.#get(id!).details];
      case "logs":
        return [200, { logs: this.#get(id!).log }];
      case "stop":
        return [200, { stopped: this.#stop(this.#get(id!)) }];
      case "delete": {
        const job = this.#get(id!);
        if (!TERMINAL.has(job.details.status))
          throw new HttpError(
            400,
            `Attempted to delete job with submission_id ${id}, but it is in a non-terminal state ${job.details.status}. Stop the job first.`,
          );
        this.#jobs.delete(id!);
        if (job.ownDir) rmSync(job.ownDir, { recursive: true, force: true });
        return [200, { deleted: true }];
      }
      default:
        throw new HttpError(404, "404: Not Found");
    }
  }

  #get(id: string): FakeJob {
    const job = this.#jobs.get(id);
    if (!job) throw new HttpError(404, `Job ${id} does not exist`);
    return job;
  }

  #submit(body: unknown): { job_id: string; submission_id: string } {
    if (typeof body !== "object" || body === null || Array.isArray(body))
      throw new HttpError(400, "Failed to parse request body as JSON.");
    const b = body as Record<string, unknown>;
    const known = new Set([
      "entrypoint",
      "submission_id",
      "job_id",
      "runtime_env",
      "metadata",
      "entrypoint_num_cpus",
      "entrypoint_num_gpus",
      "entrypoint_memory",
      "entrypoint_resources",
      "entrypoint_label_selector",
    ]);
    for (const k of Object.keys(b))
      if (!known.has(k)) throw badRequest(`__init__() got an unexpected keyword argument '${k}'`);
    if (typeof b.entrypoint !== "string")
      throw badRequest("entrypoint must be a string, got " + typeof b.entrypoint);
    if (b.entrypoint.trim() === "") throw badRequest("entrypoint must be a non-empty string");
    const given = b.submission_id ?? b.job_id;
    if (given !== undefined && given !== null && typeof given !== "string")
      throw badRequest("submission_id must be a string if provided");
    if (b.runtime_env !== undefined && b.runtime_env !== null) {
      if (typeof b.runtime_env !== "object" || Array.isArray(b.runtime_env))
        throw badRequest("runtime_env must be a dict");
      const ev = (b.runtime_env as Record<string, unknown>).env_vars;
      if (ev !== undefined && !isStringMap(ev))
        throw badRequest("runtime_env['env_vars'] must be of type Dict[str, str]");
    }
    if (b.metadata !== undefined && b.metadata !== null && !isStringMap(b.metadata))
      throw badRequest("metadata values must be strings");
    for (const k of ["entrypoint_num_cpus", "entrypoint_num_gpus", "entrypoint_memory"] as const) {
      const v = b[k];
      if (v === undefined || v === null) continue;
      if (!isNumber(v) || v < 0)
        throw badRequest(`${k} must be a non-negative number, got ${JSON.stringify(v)}`);
      if (k === "entrypoint_memory" && !Number.isInteger(v))
        throw badRequest("entrypoint_memory must be an integer");
    }
    if (b.entrypoint_resources !== undefined && b.entrypoint_resources !== null) {
      const r = b.entrypoint_resources;
      if (
        typeof r !== "object" ||
        Array.isArray(r) ||
        Object.values(r as object).some((x) => !isNumber(x) || (x as number) < 0)
      )
        throw badRequest("entrypoint_resources must be a dict of str to non-negative numbers");
    }
    const id = (given as string | undefined) ?? generatedSubmissionId();
    if (this.#jobs.has(id)) {
      const inner = `Job with submission_id ${id} already exists. Please use a different submission_id.`;
      if ((this.#options.duplicateStatus ?? 500) === 400) throw new HttpError(400, inner);
      throw new HttpError(
        500,
        `Traceback (most recent call last):\n  File "job_head.py", in submit_job\nray.dashboard.modules.job.job_head.JobAgentSubmissionError: Failure in calling the job agent: 400 Bad Request: Traceback (most recent call last):\n  File "job_agent.py", in submit_job\nValueError: ${inner}`,
      );
    }
    const details: RayJobDetails = {
      type: "SUBMISSION",
      job_id: null,
      submission_id: id,
      driver_info: null,
      status: "PENDING",
      entrypoint: b.entrypoint,
      message:
        "Job has not started yet. It may be waiting for resources (CPUs, GPUs, memory, custom resources) to become available.",
      error_type: null,
      start_time: Date.now(),
      end_time: null,
      metadata: (b.metadata as Record<string, string> | undefined) ?? {},
      runtime_env: (b.runtime_env as Record<string, unknown> | undefined) ?? {},
      driver_agent_http_address: "http://127.0.0.1:52365",
      driver_node_id: hex(28),
      driver_exit_code: null,
      entrypoint_num_cpus: (b.entrypoint_num_cpus as number | undefined) ?? null,
      entrypoint_num_gpus: (b.entrypoint_num_gpus as number | undefined) ?? null,
      entrypoint_memory: (b.entrypoint_memory as number | undefined) ?? null,
      entrypoint_resources: (b.entrypoint_resources as Record<string, number> | undefined) ?? null,
    };
    const job: FakeJob = { details, log: "", stopping: false };
    this.#jobs.set(id, job);
    job.startTimer = setTimeout(() => this.#start(job), this.#options.pendingMs ?? 10);
    return { job_id: id, submission_id: id };
  }

  /** Where the entrypoint runs: `working_dir` when it is a local directory, else a scratch dir. */
  #cwd(job: FakeJob): string | { error: string } {
    const wd = (job.details.runtime_env as { working_dir?: unknown } | null)?.working_dir;
    if (wd === undefined || wd === null) {
      const dir = path.join(this.#workDir, job.details.submission_id.replace(/[^A-Za-z0-9._-]/g, "_"));
      mkdirSync(dir, { recursive: true });
      job.ownDir = dir;
      return dir;
    }
    if (typeof wd !== "string") return { error: "working_dir must be a string" };
    let dir: string;
    if (wd.startsWith("file://")) dir = fileURLToPath(wd);
    else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(wd))
      return {
        error: `Failed to download working_dir ${wd}: the fake Ray dashboard only uses local directories (an absolute path or a file:// URI)`,
      };
    else if (path.isAbsolute(wd)) dir = wd;
    else
      return {
        error: `working_dir "${wd}" is a relative path: through the REST API it must be a URI the cluster can fetch (the fake also takes absolute local paths)`,
      };
    if (!existsSync(dir) || !statSync(dir).isDirectory())
      return { error: `working_dir ${wd} does not exist or is not a directory` };
    return dir;
  }

  #start(job: FakeJob) {
    job.startTimer = undefined;
    if (this.#closed || TERMINAL.has(job.details.status) || !this.#jobs.has(job.details.submission_id))
      return;
    if (job.stopping) return this.#finish(job, "STOPPED", "Job was intentionally stopped.", null, null);
    const cwd = this.#cwd(job);
    if (typeof cwd === "object") {
      return this.#finish(
        job,
        "FAILED",
        `runtime_env setup failed: ${cwd.error}`,
        "RUNTIME_ENV_SETUP_FAILURE",
        null,
      );
    }
    const env: Record<string, string> = {};
    for (const k of this.#options.hostEnv ?? ["PATH", "HOME", "TMPDIR", "LANG", "TZ"]) {
      const v = process.env[k];
      if (v !== undefined) env[k] = v;
    }
    Object.assign(
      env,
      (job.details.runtime_env as { env_vars?: Record<string, string> } | null)?.env_vars ?? {},
    );
    env.RAY_ADDRESS ??= "127.0.0.1:6379";
    const proc = new ContainerProcess({
      argv: ["sh", "-c", job.details.entrypoint],
      env,
      cwd,
      onOutput: (_stream, text) => {
        job.log += text;
        if (job.log.length > MAX_LOG_CHARS) job.log = job.log.slice(job.log.length - MAX_LOG_CHARS);
        this.#events.emit("change");
      },
      onExit: (exit) => this.#exited(job, exit),
    });
    job.proc = proc;
    if (proc.pid !== undefined) {
      this.#update(job, {
        status: "RUNNING",
        message: "Job is currently running.",
        driver_info: { id: hex(4), node_ip_address: "127.0.0.1", pid: String(proc.pid) },
      });
    }
  }

  #exited(job: FakeJob, exit: ProcessExit) {
    clearTimeout(job.killTimer);
    if (TERMINAL.has(job.details.status)) return;
    // Python's returncode: negative signal numbers for a killed process.
    const code = exit.signal !== undefined ? -exit.signal : exit.exitCode;
    if (job.forced)
      return this.#finish(job, job.forced.status, job.forced.message, job.forced.errorType, code);
    if (job.stopping) return this.#finish(job, "STOPPED", "Job was intentionally stopped.", null, code);
    if (exit.startError)
      return this.#finish(
        job,
        "FAILED",
        `Job entrypoint command failed to start: ${exit.startError}`,
        "JOB_ENTRYPOINT_COMMAND_START_ERROR",
        null,
      );
    if (code === 0) return this.#finish(job, "SUCCEEDED", "Job finished successfully.", null, 0);
    const tail = job.log.slice(-MESSAGE_LOG_CHARS);
    this.#finish(
      job,
      "FAILED",
      `Job entrypoint command failed with exit code ${code}, last available logs (truncated to 20,000 chars):\n${tail}`,
      "JOB_ENTRYPOINT_COMMAND_ERROR",
      code,
    );
  }

  #finish(
    job: FakeJob,
    status: RayJobStatus,
    message: string,
    errorType: string | null,
    exitCode: number | null,
  ): void {
    clearTimeout(job.startTimer);
    this.#update(job, {
      status,
      message,
      error_type: errorType,
      driver_exit_code: exitCode,
      end_time: Date.now(),
    });
  }

  #stop(job: FakeJob): boolean {
    if (TERMINAL.has(job.details.status)) return false;
    if (job.stopping) return true;
    job.stopping = true;
    if (!job.proc) {
      this.#finish(job, "STOPPED", "Job was intentionally stopped.", null, null);
      return true;
    }
    job.proc.kill("SIGTERM");
    job.killTimer = setTimeout(() => job.proc?.kill("SIGKILL"), this.#options.stopGraceMs ?? 500);
    job.killTimer.unref();
    return true;
  }

  #update(job: FakeJob, patch: Partial<RayJobDetails>): void {
    Object.assign(job.details, patch);
    this.#events.emit("change");
  }
}

/** The route (and job id) of a request. Both `/api/jobs` and `/api/jobs/` are accepted. */
function routeOf(method: string, pathname: string): { route: RayRoute; id?: string } {
  const p = pathname.length > 1 ? pathname.replace(/\/+$/, "") : pathname;
  const m = method.toUpperCase();
  if (p === "/api/version" && m === "GET") return { route: "version" };
  if (p === "/api/jobs") {
    if (m === "POST") return { route: "submit" };
    if (m === "GET") return { route: "list" };
    return { route: "unknown" };
  }
  const job = /^\/api\/jobs\/([^/]+)(\/logs|\/stop)?$/.exec(p);
  if (!job) return { route: "unknown" };
  const id = decodeURIComponent(job[1]);
  if (!job[2] && m === "GET") return { route: "get", id };
  if (!job[2] && m === "DELETE") return { route: "delete", id };
  if (job[2] === "/logs" && m === "GET") return { route: "logs", id };
  if (job[2] === "/stop" && m === "POST") return { route: "stop", id };
  return { route: "unknown", id };
}

/** Starts a fake Ray dashboard on 127.0.0.1 (see {@link FakeRayOptions}). */
export async function startFakeRay(opts: FakeRayOptions = {}): Promise<FakeRay> {
  const fake = new FakeRay(opts);
  try {
    await fake.listen();
  } catch (e) {
    await fake.close();
    throw e;
  }
  return fake;
}
