/**
 * `RayJobsApi`: the narrow Ray Jobs REST API client the `ray-job` plugin talks to
 * (PROTOCOLS §2), and {@link RayJobsClient}, its implementation over axios (loaded on the
 * first request). Every failure is a {@link RayApiError} with the HTTP status (0 when the
 * dashboard could not be reached) and the response text: the dashboard answers errors in
 * plain text, not JSON.
 */
import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import type { AxiosInstance } from "axios";

/** Ray's job statuses. Terminal: STOPPED, SUCCEEDED, FAILED. */
export type RayJobStatus = "PENDING" | "RUNNING" | "STOPPED" | "SUCCEEDED" | "FAILED";

/** The body of `POST /api/jobs/`. */
export interface RaySubmitRequest {
  entrypoint: string;
  submission_id?: string;
  runtime_env?: Record<string, unknown>;
  /** String values only. */
  metadata?: Record<string, string>;
  entrypoint_num_cpus?: number;
  entrypoint_num_gpus?: number;
  /** Bytes (an integer). */
  entrypoint_memory?: number;
  entrypoint_resources?: Record<string, number>;
}

/** `JobDetails`, as far as the plugin reads it. */
export interface RayJobDetails {
  type?: string;
  job_id?: string | null;
  submission_id: string;
  status: RayJobStatus;
  entrypoint?: string;
  message?: string | null;
  /** E.g. `JOB_ENTRYPOINT_COMMAND_ERROR`, `JOB_SUPERVISOR_ACTOR_DIED`, `RUNTIME_ENV_SETUP_FAILURE` (newer Ray). */
  error_type?: string | null;
  start_time?: number | null;
  end_time?: number | null;
  metadata?: Record<string, string> | null;
  runtime_env?: Record<string, unknown> | null;
  driver_exit_code?: number | null;
  [key: string]: unknown;
}

export interface RayVersionInfo {
  version: string;
  ray_version: string;
  ray_commit?: string;
  session_name?: string;
}

/** The Jobs API operations the plugin uses. One instance talks to one dashboard. */
export interface RayJobsApi {
  version(): Promise<RayVersionInfo>;
  /** `POST /api/jobs/`; resolves with the submission id. */
  submit(req: RaySubmitRequest): Promise<{ submission_id: string }>;
  get(submissionId: string): Promise<RayJobDetails>;
  list(): Promise<RayJobDetails[]>;
  /** All log text so far. */
  logs(submissionId: string): Promise<string>;
  /** False when the job was already terminal. */
  stop(submissionId: string): Promise<boolean>;
  /** Only terminal jobs can be deleted. */
  delete(submissionId: string): Promise<boolean>;
  close?(): Promise<void>;
}

/** A failed Jobs API call. */
export class RayApiError extends Error {
  constructor(
    message: string,
    /** HTTP status; 0 when the dashboard could not be reached. */
    readonly status: number,
    /** The response text (a Python traceback for 400/500), or the network error code. */
    readonly body: string,
    /** For network errors: `ECONNREFUSED`, `ECONNRESET`, `ETIMEDOUT`… */
    readonly code?: string,
  ) {
    super(message);
    this.name = "RayApiError";
  }

  /** Worth retrying: unreachable, throttled, or server trouble (but not a duplicate submission). */
  get transient(): boolean {
    return (this.status === 0 || this.status === 429 || this.status >= 500) && !this.alreadyExists;
  }

  /** The dashboard refused a duplicate `submission_id` (400 on older Ray, 500 with the nested 400 on newer). */
  get alreadyExists(): boolean {
    return (this.status === 400 || this.status === 500) && /already exists/i.test(this.body);
  }

  get notFound(): boolean {
    return this.status === 404;
  }
}

export function isRayApiError(e: unknown, status?: number): e is RayApiError {
  return e instanceof RayApiError && (status === undefined || e.status === status);
}

/** Options of {@link RayJobsClient}. */
export interface RayJobsClientOptions {
  /** Dashboard URL, e.g. `http://127.0.0.1:8265`. */
  address: string;
  headers?: Record<string, string>;
  /** @default 10000 */
  timeoutMs?: number;
}

let axiosModule: Promise<typeof import("axios")> | undefined;

/** The first line of a traceback-like text, or the text, shortened for messages. */
function summary(text: string): string {
  const lines = text.trim().split("\n");
  const last = lines.length > 1 && /^Traceback/.test(lines[0]) ? lines[lines.length - 1] : lines[0];
  return (last ?? "").slice(0, 500);
}

/**
 * The Jobs REST API over axios, with keep-alive connections.
 *
 * @example
 * const ray = new RayJobsClient({ address: "http://127.0.0.1:8265" });
 * const { submission_id } = await ray.submit({ entrypoint: "python -c 'print(1)'" });
 */
export class RayJobsClient implements RayJobsApi {
  readonly address: string;
  private http?: Promise<AxiosInstance>;
  private readonly agent: HttpAgent | HttpsAgent;

  constructor(private readonly options: RayJobsClientOptions) {
    this.address = options.address.replace(/\/+$/, "");
    this.agent = this.address.startsWith("https:")
      ? new HttpsAgent({ keepAlive: true })
      : new HttpAgent({ keepAlive: true });
  }

  private instance(): Promise<AxiosInstance> {
    this.http ??= (async () => {
      axiosModule ??= import("axios");
      const axios = (await axiosModule).default;
      return axios.create({
        baseURL: this.address,
        timeout: this.options.timeoutMs ?? 10_000,
        headers: { ...(this.options.headers ?? {}) },
        httpAgent: this.agent,
        httpsAgent: this.agent,
        // Errors are plain text; parse JSON ourselves and judge every status ourselves.
        responseType: "text",
        transformResponse: [(d: unknown) => d],
        validateStatus: () => true,
        proxy: false,
      });
    })();
    return this.http;
  }

  private async call<T>(
    what: string,
    method: "GET" | "POST" | "DELETE",
    url: string,
    data?: unknown,
  ): Promise<T> {
    const http = await this.instance();
    let res: { status: number; data: unknown };
    try {
      res = await http.request({
        method,
        url,
        data: data === undefined ? undefined : JSON.stringify(data),
        headers: data === undefined ? undefined : { "Content-Type": "application/json" },
      });
    } catch (e) {
      const err = e as { code?: string; message?: string; cause?: { code?: string } };
      const code = err.code ?? err.cause?.code ?? "NETWORK";
      throw new RayApiError(
        `${what}: cannot reach the Ray dashboard at ${this.address} (${code}: ${err.message ?? e})`,
        0,
        String(err.message ?? e),
        code,
      );
    }
    const text = typeof res.data === "string" ? res.data : String(res.data ?? "");
    if (res.status < 200 || res.status >= 300)
      throw new RayApiError(`${what}: HTTP ${res.status}: ${summary(text)}`, res.status, text);
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new RayApiError(
        `${what}: the dashboard answered ${res.status} with a body that is not JSON`,
        res.status,
        text,
      );
    }
  }

  version(): Promise<RayVersionInfo> {
    return this.call("GET /api/version", "GET", "/api/version");
  }

  async submit(req: RaySubmitRequest): Promise<{ submission_id: string }> {
    const out = await this.call<{ submission_id?: string; job_id?: string }>(
      "submit job",
      "POST",
      "/api/jobs/",
      req,
    );
    const id = out.submission_id ?? out.job_id;
    if (!id) throw new RayApiError("submit job: the answer has no submission_id", 200, JSON.stringify(out));
    return { submission_id: id };
  }

  get(id: string): Promise<RayJobDetails> {
    return this.call(`get job ${id}`, "GET", `/api/jobs/${encodeURIComponent(id)}`);
  }

  async list(): Promise<RayJobDetails[]> {
    const out = await this.call<RayJobDetails[] | Record<string, RayJobDetails>>(
      "list jobs",
      "GET",
      "/api/jobs/",
    );
    // Old dashboards answered a map of id → details.
    return Array.isArray(out) ? out : Object.values(out);
  }

  async logs(id: string): Promise<string> {
    const out = await this.call<{ logs?: string }>(
      `logs of job ${id}`,
      "GET",
      `/api/jobs/${encodeURIComponent(id)}/logs`,
    );
    return out.logs ?? "";
  }

  async stop(id: string): Promise<boolean> {
    const out = await this.call<{ stopped?: boolean }>(
      `stop job ${id}`,
      "POST",
      `/api/jobs/${encodeURIComponent(id)}/stop`,
    );
    return out.stopped === true;
  }

  async delete(id: string): Promise<boolean> {
    const out = await this.call<{ deleted?: boolean }>(
      `delete job ${id}`,
      "DELETE",
      `/api/jobs/${encodeURIComponent(id)}`,
    );
    return out.deleted === true;
  }

  async close(): Promise<void> {
    this.agent.destroy();
  }
}
