/**
 * Options of `spark()`, their defaults, and the typed tokens the plugin is built from.
 *
 * Clusters: `spark()` either shares the cluster pool of a `k8s()` listed in the same
 * `plugins` (one set of API clients, watches and health checks for pods, MPIJobs and
 * SparkApplications), or, given `clusters`, keeps a pool of its own (Spark-only set-ups).
 */
import {
  createToken,
  type DependencyContainer,
  ErrorCodes,
  isProvided,
  resolve,
  TernError,
  type Token,
} from "@tern/core";
import {
  type ApiRetryOptions,
  type ClusterOptions,
  ClusterPool,
  K8S_CLUSTERS,
  type K8sOptions,
  type RoutingOptions,
  resolveOptions,
} from "@tern/plugin-k8s";

/** Options of `spark()`. */
export interface SparkOptions {
  /**
   * Clusters of a pool of the Spark plugin's own. Leave out to share the clusters of the
   * `k8s()` plugin listed in the same `plugins` (its routing, health checks and watches).
   */
  clusters?: ClusterOptions[];
  /** Routing of the own pool (see `k8s()`); ignored when sharing. */
  routing?: RoutingOptions;
  /** Retries of API calls of the own pool; ignored when sharing. */
  apiRetry?: ApiRetryOptions;
  /** Health probes of the own pool. @default 10000 */
  healthCheckIntervalMs?: number;
  /** @default 5000 */
  healthCheckTimeoutMs?: number;
  /** The Kubernetes client of a cluster of the own pool (tests). @default the `@kubernetes/client-node` adapter */
  api?: K8sOptions["api"];
  /**
   * `check` fails the attempt (a system error) when the cluster's watch has been down this
   * long. @default the shared pool's `watchStaleMs`, else 30000
   */
  watchStaleMs?: number;
  /** Image of Spark tasks that name none (`custom.image`, then the task's `image`, then this). */
  defaultImage?: string;
  /** `spec.sparkVersion` of tasks that name none. @default "3.5.1" */
  sparkVersion?: string;
  /** `spec.imagePullPolicy`. */
  imagePullPolicy?: "Always" | "IfNotPresent" | "Never";
  /** Service account of driver pods (it must be allowed to create executor pods). */
  serviceAccount?: string;
  /** `sparkConf` every application gets (the task's own entries win). */
  sparkConf?: Record<string, string>;
  /** `hadoopConf` every application gets (the task's own entries win). */
  hadoopConf?: Record<string, string>;
  /** Environment of every driver and executor (the task's env wins). */
  env?: Record<string, string>;
  /** Extra labels and annotations of every SparkApplication (and its pods). */
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  /**
   * Keep finished SparkApplications (and so their driver pods and logs): `true`, or
   * `"failed"` for failed ones only. @default false
   */
  keepApplications?: boolean | "failed";
  /** Attempts in flight at once (the engine queues the rest). */
  maxConcurrent?: number;
  /** SparkApplication creations per second. */
  launchesPerSecond?: number;
}

/** Options with their defaults applied. */
export interface ResolvedSparkOptions {
  /** The own pool's options (undefined when sharing the pool of `k8s()`). */
  pool?: ReturnType<typeof resolveOptions>;
  watchStaleMs?: number;
  defaultImage?: string;
  sparkVersion: string;
  imagePullPolicy?: "Always" | "IfNotPresent" | "Never";
  serviceAccount?: string;
  sparkConf: Record<string, string>;
  hadoopConf: Record<string, string>;
  env: Record<string, string>;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  keepApplications: boolean | "failed";
  maxConcurrent?: number;
  launchesPerSecond?: number;
}

/** The plugin's options, as provided to the container. */
export const SPARK_OPTIONS: Token<ResolvedSparkOptions> = createToken("tern.plugin-spark.options");
/** The cluster pool the plugin runs on (its own, or the one of `k8s()`). */
export const SPARK_CLUSTERS: Token<ClusterPool> = createToken("tern.plugin-spark.clusters");

function configError(message: string, hint: string): TernError {
  return new TernError(ErrorCodes.CONFIG, `@tern/plugin-spark: ${message}`, { hint, kind: "system" });
}

function stringMap(v: unknown, name: string): Record<string, string> {
  if (v === undefined) return {};
  if (typeof v !== "object" || v === null || Array.isArray(v))
    throw configError(`${name} must map names to strings`, `e.g. ${name}: { "key": "value" }`);
  for (const [k, x] of Object.entries(v))
    if (typeof x !== "string")
      throw configError(`${name}["${k}"] must be a string, not ${JSON.stringify(x)}`, `write it as "${x}"`);
  return { ...(v as Record<string, string>) };
}

/** Checks the options and fills in defaults. Throws a `TERN_E_CONFIG` error naming the problem. */
export function resolveSparkOptions(o: SparkOptions = {}): ResolvedSparkOptions {
  if (typeof o !== "object" || o === null) throw configError("options must be an object", "e.g. spark({})");
  let pool: ResolvedSparkOptions["pool"];
  if (o.clusters !== undefined) {
    try {
      pool = resolveOptions({
        clusters: o.clusters,
        routing: o.routing,
        apiRetry: o.apiRetry,
        healthCheckIntervalMs: o.healthCheckIntervalMs,
        healthCheckTimeoutMs: o.healthCheckTimeoutMs,
        watchStaleMs: o.watchStaleMs,
        api: o.api,
      });
    } catch (e) {
      if (e instanceof TernError)
        throw new TernError(e.code, e.message.replace("@tern/plugin-k8s", "@tern/plugin-spark"), {
          hint: e.hint,
          kind: e.kind,
        });
      throw e;
    }
  } else if (o.routing || o.api || o.apiRetry) {
    throw configError(
      "routing, api and apiRetry belong to a pool of the plugin's own, but no clusters are given",
      "give clusters to spark(), or set these on k8s(), whose clusters spark() shares",
    );
  }
  if (o.watchStaleMs !== undefined && !(typeof o.watchStaleMs === "number" && o.watchStaleMs >= 0))
    throw configError(`watchStaleMs must be a non-negative number, not ${o.watchStaleMs}`, "in milliseconds");
  if (o.sparkVersion !== undefined && (typeof o.sparkVersion !== "string" || !o.sparkVersion))
    throw configError("sparkVersion must be a version string", 'e.g. sparkVersion: "3.5.1"');
  if (o.keepApplications !== undefined && ![true, false, "failed"].includes(o.keepApplications))
    throw configError('keepApplications must be true, false or "failed"', 'e.g. keepApplications: "failed"');
  const sparkConf = stringMap(o.sparkConf, "sparkConf");
  return {
    pool,
    watchStaleMs: o.watchStaleMs,
    defaultImage: o.defaultImage,
    sparkVersion: o.sparkVersion ?? "3.5.1",
    imagePullPolicy: o.imagePullPolicy,
    serviceAccount: o.serviceAccount,
    sparkConf,
    hadoopConf: stringMap(o.hadoopConf, "hadoopConf"),
    env: stringMap(o.env, "env"),
    labels: stringMap(o.labels, "labels"),
    annotations: stringMap(o.annotations, "annotations"),
    keepApplications: o.keepApplications ?? false,
    maxConcurrent: o.maxConcurrent,
    launchesPerSecond: o.launchesPerSecond,
  };
}

/**
 * The pool a container's Spark plugin uses: its own (from `clusters`), or the one `k8s()`
 * registered in the same container. Called when the plugin is first resolved, i.e. at
 * engine start-up, so a missing cluster configuration fails there.
 */
export function sparkClusters(c: DependencyContainer, opts: ResolvedSparkOptions): ClusterPool {
  if (opts.pool) return new ClusterPool(opts.pool);
  if (isProvided(c, K8S_CLUSTERS)) return resolve(c, K8S_CLUSTERS);
  throw configError(
    "no Kubernetes cluster to run Spark applications on",
    "list k8s({ clusters: [...] }) next to spark() in plugins (spark() then shares its clusters), or give spark({ clusters: [...] })",
  );
}
