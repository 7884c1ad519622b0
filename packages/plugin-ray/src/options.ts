/**
 * Options of `ray()`, their defaults, and the typed tokens they are provided under.
 */
import { createToken, ErrorCodes, TernError, type Token } from "@tern/core";
import type { ClusterOptions, K8sApi, K8sOptions, RoutingOptions } from "@tern/plugin-k8s";
import type { RayJobsApi } from "./client.js";

/** Retries of API calls made by `launch` and `abort` (5xx, 429, unreachable). */
export interface RetryOptions {
  /** Tries in all. @default 5 */
  attempts?: number;
  /** First delay; doubles per retry. @default 200 */
  baseMs?: number;
  /** Longest delay. @default 5000 */
  maxMs?: number;
}

/** The KubeRay half: a `RayJob` (ray.io/v1) per attempt, each with its own Ray cluster. */
export interface KubeRayOptions {
  /** The Kubernetes clusters (the same shape as `@tern/plugin-k8s`'s). At least one. */
  clusters: ClusterOptions[];
  routing?: RoutingOptions;
  /** Ray image of head and worker pods (and the submitter). @default "rayproject/ray:2.41.0" */
  image?: string;
  /** `rayClusterSpec.rayVersion`. @default "2.41.0" */
  rayVersion?: string;
  /** Task types this plugin runs. @default ["kuberay"] */
  taskTypes?: string[];
  /** Seconds KubeRay keeps the Ray cluster after the job ends (`ttlSecondsAfterFinished`). @default 0 */
  ttlSecondsAfterFinished?: number;
  /** Keep RayJobs after they finish (`"failed"`: keep failed ones only); otherwise `finalize` deletes them. @default false */
  keepRayJobs?: boolean | "failed";
  /** Service account of the Ray pods. */
  serviceAccountName?: string;
  /** Extra labels and annotations of every RayJob. */
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  /** How often each cluster's `/version` is probed. @default 10000 */
  healthCheckIntervalMs?: number;
  /** A probe slower than this fails. @default 5000 */
  healthCheckTimeoutMs?: number;
  /** `check` throws when a cluster's watch has been down this long. @default 30000 */
  watchStaleMs?: number;
  /** The Kubernetes client of a cluster. @default the `@tern/plugin-k8s` client-node adapter */
  api?: (cluster: ClusterOptions) => K8sApi | Promise<K8sApi>;
}

/** Options of `ray()`: an existing cluster's dashboard (`address`), KubeRay (`kuberay`), or both. */
export interface RayOptions {
  /**
   * The Ray dashboard of an existing cluster, e.g. `"http://ray-head:8265"`: registers the
   * `ray-job` plugin, which submits through the Jobs REST API.
   */
  address?: string;
  /** Headers of every Jobs API request (e.g. `Authorization` for a dashboard behind a proxy). */
  headers?: Record<string, string>;
  /** Timeout of one Jobs API request. @default 10000 */
  requestTimeoutMs?: number;
  /** Task types `ray-job` runs. @default ["ray"] */
  taskTypes?: string[];
  /** Delete finished jobs from the dashboard in `finalize` (their logs go with them). @default false */
  deleteFinishedJobs?: boolean;
  /** Registers the `ray-kuberay` plugin. */
  kuberay?: KubeRayOptions;
  /** Variables in every job's `runtime_env.env_vars` (the task's `env` and `custom.runtimeEnv.env_vars` win). */
  env?: Record<string, string>;
  /** Retries of submit, stop and create calls. */
  apiRetry?: RetryOptions;
  /** Attempts in flight at once per plugin (the engine queues the rest). */
  maxConcurrent?: number;
  /** Launches per second per plugin. */
  launchesPerSecond?: number;
  /** The Jobs API client. @default a {@link RayJobsClient} on `address` */
  client?: (address: string) => RayJobsApi;
}

/** Options with their defaults applied. */
export interface ResolvedRayOptions {
  address?: string;
  headers: Record<string, string>;
  requestTimeoutMs: number;
  taskTypes: string[];
  deleteFinishedJobs: boolean;
  env: Record<string, string>;
  apiRetry: Required<RetryOptions>;
  maxConcurrent?: number;
  launchesPerSecond?: number;
  client?: (address: string) => RayJobsApi;
  kuberay?: {
    image: string;
    rayVersion: string;
    taskTypes: string[];
    ttlSecondsAfterFinished: number;
    keepRayJobs: boolean | "failed";
    serviceAccountName?: string;
    labels: Record<string, string>;
    annotations: Record<string, string>;
    /** What `@tern/plugin-k8s`'s `resolveOptions` takes for the cluster pool. */
    k8s: K8sOptions;
  };
}

/** The plugins' options, as provided to the container. */
export const RAY_OPTIONS: Token<ResolvedRayOptions> = createToken("tern.plugin-ray.options");

function configError(message: string, hint: string): TernError {
  return new TernError(ErrorCodes.CONFIG, `@tern/plugin-ray: ${message}`, { hint, kind: "system" });
}

function taskTypesOf(v: unknown, name: string, dflt: string[]): string[] {
  if (v === undefined) return dflt;
  if (!Array.isArray(v) || v.length === 0 || v.some((t) => typeof t !== "string" || !t))
    throw configError(
      `${name} must be a non-empty list of task type names`,
      `e.g. ${name}: ${JSON.stringify(dflt)}`,
    );
  return v as string[];
}

function nonNegative(v: number | undefined, name: string, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== "number" || !(v >= 0))
    throw configError(`${name} must be a number ≥ 0, not ${v}`, `set ${name}`);
  return v;
}

/** Checks the options and fills in defaults. Throws a `TERN_E_CONFIG` error naming the problem. */
export function resolveRayOptions(o: RayOptions): ResolvedRayOptions {
  if (!o || (o.address === undefined && o.kuberay === undefined)) {
    throw configError(
      "neither address nor kuberay is configured",
      'give address: "http://<ray-head>:8265" to run on an existing cluster, kuberay: { clusters: [...] } to run RayJobs, or both',
    );
  }
  if (o.address !== undefined) {
    let url: URL;
    try {
      url = new URL(o.address);
    } catch {
      throw configError(`address "${o.address}" is not a URL`, 'e.g. address: "http://127.0.0.1:8265"');
    }
    if (url.protocol !== "http:" && url.protocol !== "https:")
      throw configError(
        `address "${o.address}" must be http:// or https://`,
        'e.g. address: "http://127.0.0.1:8265"',
      );
  }
  if (o.headers !== undefined && Object.values(o.headers).some((v) => typeof v !== "string"))
    throw configError("headers must map names to strings", 'e.g. headers: { Authorization: "Bearer …" }');
  if (o.env !== undefined && Object.values(o.env).some((v) => typeof v !== "string"))
    throw configError("env must map names to strings", 'e.g. env: { MODE: "fast" }');
  const taskTypes = taskTypesOf(o.taskTypes, "taskTypes", ["ray"]);
  const out: ResolvedRayOptions = {
    address: o.address?.replace(/\/+$/, ""),
    headers: o.headers ?? {},
    requestTimeoutMs: nonNegative(o.requestTimeoutMs, "requestTimeoutMs", 10_000) || 10_000,
    taskTypes,
    deleteFinishedJobs: o.deleteFinishedJobs ?? false,
    env: o.env ?? {},
    apiRetry: {
      attempts: Math.max(1, o.apiRetry?.attempts ?? 5),
      baseMs: nonNegative(o.apiRetry?.baseMs, "apiRetry.baseMs", 200),
      maxMs: nonNegative(o.apiRetry?.maxMs, "apiRetry.maxMs", 5_000),
    },
    maxConcurrent: o.maxConcurrent,
    launchesPerSecond: o.launchesPerSecond,
    client: o.client,
  };
  const k = o.kuberay;
  if (k) {
    const types = taskTypesOf(k.taskTypes, "kuberay.taskTypes", ["kuberay"]);
    if (o.address !== undefined) {
      const shared = types.filter((t) => taskTypes.includes(t));
      if (shared.length)
        throw configError(
          `task type "${shared[0]}" is given to both ray-job (taskTypes) and ray-kuberay (kuberay.taskTypes)`,
          "give each plugin its own task types, e.g. ray for the existing cluster and kuberay for RayJobs",
        );
    }
    if (!Array.isArray(k.clusters) || k.clusters.length === 0)
      throw configError(
        "kuberay.clusters is empty",
        'give kuberay: { clusters: [{ name: "main", kubeconfig: "~/.kube/config", namespace: "ray" }] }',
      );
    if (k.keepRayJobs !== undefined && ![true, false, "failed"].includes(k.keepRayJobs))
      throw configError('kuberay.keepRayJobs must be true, false or "failed"', 'e.g. keepRayJobs: "failed"');
    out.kuberay = {
      image: k.image ?? "rayproject/ray:2.41.0",
      rayVersion: k.rayVersion ?? "2.41.0",
      taskTypes: types,
      ttlSecondsAfterFinished: nonNegative(k.ttlSecondsAfterFinished, "kuberay.ttlSecondsAfterFinished", 0),
      keepRayJobs: k.keepRayJobs ?? false,
      serviceAccountName: k.serviceAccountName,
      labels: k.labels ?? {},
      annotations: k.annotations ?? {},
      k8s: {
        clusters: k.clusters,
        routing: k.routing,
        api: k.api,
        apiRetry: out.apiRetry,
        healthCheckIntervalMs: k.healthCheckIntervalMs,
        healthCheckTimeoutMs: k.healthCheckTimeoutMs,
        watchStaleMs: k.watchStaleMs,
      },
    };
  }
  return out;
}
