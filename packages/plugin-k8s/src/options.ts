/**
 * Options of the Kubernetes plugins, their defaults, and the typed token they are
 * provided under.
 */
import { createToken, ErrorCodes, TernError, type Token } from "@tern/core";
import type { K8sApi, KubeConfigObject } from "./api.js";

/** One Kubernetes cluster the plugins may run on. */
export interface ClusterOptions {
  /** Unique name, used in plugin state, logs and failover messages. */
  name: string;
  /** A kubeconfig file path, YAML text, or the object `KubeConfig.loadFromOptions` takes. */
  kubeconfig: string | KubeConfigObject;
  /** Kubeconfig context. @default the kubeconfig's `current-context` */
  context?: string;
  /** Namespace the pods and MPIJobs are created in. */
  namespace: string;
  /** Labels routing rules select clusters by, e.g. `{ gpu: "a100", region: "eu" }`. */
  labels?: Record<string, string>;
}

/**
 * Which clusters may run a task. Each matching rule adds labels a cluster must have;
 * among the clusters that have them all, the first healthy one (in `clusters` order) is used.
 */
export interface RoutingOptions {
  /** Project → required cluster labels. */
  byProject?: Record<string, Record<string, string>>;
  /** Domain → required cluster labels. */
  byDomain?: Record<string, Record<string, string>>;
  /**
   * Routing label → required cluster labels. A task names its routing label with
   * `custom: { clusterLabel: "gpu" }` (Flyte's execution cluster label).
   */
  byLabel?: Record<string, Record<string, string>>;
}

/** A pod toleration. */
export interface Toleration {
  key?: string;
  operator?: "Exists" | "Equal";
  value?: string;
  effect?: "NoSchedule" | "PreferNoSchedule" | "NoExecute";
  tolerationSeconds?: number;
}

/** Retries of API calls made by `launch`, `abort` and `finalize` (429, 5xx, unreachable). */
export interface ApiRetryOptions {
  /** Tries in all. @default 5 */
  attempts?: number;
  /** First delay; doubles per retry. @default 200 */
  baseMs?: number;
  /** Longest delay (a `Retry-After` is honoured up to this). @default 5000 */
  maxMs?: number;
}

/** Options of `k8s()`. */
export interface K8sOptions {
  /** The clusters; the first eligible healthy one gets a task. At least one. */
  clusters: ClusterOptions[];
  routing?: RoutingOptions;
  /**
   * The argv prefix that runs `tern-execute` inside the image of a `node` task.
   * @default ["tern-execute"]
   */
  nodeCommand?: string[];
  /** Image of tasks that name none. Required for `node` tasks without `image`. */
  defaultImage?: string;
  /** Extended resource GPUs are requested as. @default "nvidia.com/gpu" */
  gpuResource?: string;
  /** Node label that names the GPU model. @default "nvidia.com/gpu.product" */
  acceleratorLabel?: string;
  /**
   * Accelerators tasks may ask for: a list of allowed label values, or a map from the name a
   * task uses to the node label value (`{ a100: "NVIDIA-A100-SXM4-80GB" }`). Any name when absent.
   */
  accelerators?: string[] | Record<string, string>;
  /** Tolerations of interruptible attempts (spot/preemptible nodes). @default [] */
  interruptibleTolerations?: Toleration[];
  /** Node selector of interruptible attempts. @default {} */
  interruptibleNodeSelector?: Record<string, string>;
  /** How often each cluster's `/version` is probed. @default 10000 */
  healthCheckIntervalMs?: number;
  /** A probe slower than this fails. @default 5000 */
  healthCheckTimeoutMs?: number;
  /** A pod unschedulable for longer than this fails (a user-visible error). @default 600000 */
  unschedulableTimeoutMs?: number;
  /** ErrImagePull/ImagePullBackOff are given this long before the task fails. @default 60000 */
  imagePullGraceMs?: number;
  /** CreateContainerConfigError (missing Secret/ConfigMap) is given this long. @default 0 */
  configErrorGraceMs?: number;
  /** `check` throws when a cluster's watch has been down this long (the engine then fails the attempt as a system error). @default 30000 */
  watchStaleMs?: number;
  /** Keep pods after they finish (`"failed"`: keep failed ones only). @default false */
  keepPods?: boolean | "failed";
  /** Grace period of pods deleted by `abort`. @default 30 */
  abortGracePeriodSeconds?: number;
  apiRetry?: ApiRetryOptions;
  /** Service account of the pods. */
  serviceAccountName?: string;
  /** Environment of every pod (task `env` wins). */
  env?: Record<string, string>;
  /** Extra labels and annotations of every pod. */
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  /** Attempts in flight at once per plugin (the engine queues the rest). */
  maxConcurrent?: number;
  /** Pod creations per second per plugin. */
  launchesPerSecond?: number;
  /** The Kubernetes client of a cluster. @default the `@kubernetes/client-node` adapter */
  api?: (cluster: ClusterOptions) => K8sApi | Promise<K8sApi>;
}

/** Options with their defaults applied. */
export interface ResolvedK8sOptions
  extends Required<
    Omit<
      K8sOptions,
      | "routing"
      | "defaultImage"
      | "accelerators"
      | "serviceAccountName"
      | "maxConcurrent"
      | "launchesPerSecond"
      | "api"
      | "apiRetry"
    >
  > {
  routing: RoutingOptions;
  defaultImage?: string;
  accelerators?: string[] | Record<string, string>;
  serviceAccountName?: string;
  maxConcurrent?: number;
  launchesPerSecond?: number;
  api?: K8sOptions["api"];
  apiRetry: Required<ApiRetryOptions>;
}

/** The plugins' options, as provided to the container. */
export const K8S_OPTIONS: Token<ResolvedK8sOptions> = createToken("tern.plugin-k8s.options");

function configError(message: string, hint: string): TernError {
  return new TernError(ErrorCodes.CONFIG, `@tern/plugin-k8s: ${message}`, { hint, kind: "system" });
}

/** Checks the options and fills in defaults. Throws a `TERN_E_CONFIG` error naming the problem. */
export function resolveOptions(o: K8sOptions): ResolvedK8sOptions {
  if (!o || !Array.isArray(o.clusters) || o.clusters.length === 0) {
    throw configError(
      "no clusters configured",
      'give clusters: [{ name: "main", kubeconfig: "~/.kube/config", namespace: "tern" }]',
    );
  }
  const names = new Set<string>();
  for (const c of o.clusters) {
    if (!c?.name) throw configError("a cluster has no name", "give every cluster a unique name");
    if (names.has(c.name))
      throw configError(`two clusters are named "${c.name}"`, "give every cluster a unique name");
    names.add(c.name);
    if (!c.namespace)
      throw configError(
        `cluster "${c.name}" has no namespace`,
        `add namespace: "tern" (or another) to cluster "${c.name}"`,
      );
    if (!c.kubeconfig)
      throw configError(
        `cluster "${c.name}" has no kubeconfig`,
        "give a kubeconfig path, YAML text, or loadFromOptions object",
      );
  }
  if (
    o.nodeCommand !== undefined &&
    (!Array.isArray(o.nodeCommand) ||
      o.nodeCommand.length === 0 ||
      o.nodeCommand.some((a) => typeof a !== "string"))
  ) {
    throw configError(
      "nodeCommand must be a non-empty list of strings",
      'e.g. nodeCommand: ["tern-execute"]',
    );
  }
  const positive = (v: number | undefined, name: string, dflt: number): number => {
    if (v === undefined) return dflt;
    if (typeof v !== "number" || !(v >= 0))
      throw configError(`${name} must be a non-negative number, not ${v}`, `set ${name} in milliseconds`);
    return v;
  };
  return {
    clusters: o.clusters,
    routing: o.routing ?? {},
    nodeCommand: o.nodeCommand ?? ["tern-execute"],
    defaultImage: o.defaultImage,
    gpuResource: o.gpuResource ?? "nvidia.com/gpu",
    acceleratorLabel: o.acceleratorLabel ?? "nvidia.com/gpu.product",
    accelerators: o.accelerators,
    interruptibleTolerations: o.interruptibleTolerations ?? [],
    interruptibleNodeSelector: o.interruptibleNodeSelector ?? {},
    healthCheckIntervalMs: positive(o.healthCheckIntervalMs, "healthCheckIntervalMs", 10_000) || 10_000,
    healthCheckTimeoutMs: positive(o.healthCheckTimeoutMs, "healthCheckTimeoutMs", 5_000) || 5_000,
    unschedulableTimeoutMs: positive(o.unschedulableTimeoutMs, "unschedulableTimeoutMs", 600_000),
    imagePullGraceMs: positive(o.imagePullGraceMs, "imagePullGraceMs", 60_000),
    configErrorGraceMs: positive(o.configErrorGraceMs, "configErrorGraceMs", 0),
    watchStaleMs: positive(o.watchStaleMs, "watchStaleMs", 30_000),
    keepPods: o.keepPods ?? false,
    abortGracePeriodSeconds: o.abortGracePeriodSeconds ?? 30,
    apiRetry: {
      attempts: Math.max(1, o.apiRetry?.attempts ?? 5),
      baseMs: o.apiRetry?.baseMs ?? 200,
      maxMs: o.apiRetry?.maxMs ?? 5_000,
    },
    serviceAccountName: o.serviceAccountName,
    env: o.env ?? {},
    labels: o.labels ?? {},
    annotations: o.annotations ?? {},
    maxConcurrent: o.maxConcurrent,
    launchesPerSecond: o.launchesPerSecond,
    api: o.api,
  };
}
