/**
 * `ray-kuberay`: runs `kuberay` tasks as one KubeRay `RayJob` (`ray.io/v1`) per attempt:
 * KubeRay brings up a Ray cluster for the job (`rayClusterSpec`: a head group and the task's
 * worker groups), submits the entrypoint, and with `shutdownAfterJobFinishes: true` tears the
 * cluster down when the job ends.
 *
 * It talks to Kubernetes through `@tern/plugin-k8s`'s client layer: its `ClusterPool`
 * (routing, health checks, one shared list+watch cache per cluster and namespace) and
 * `K8sApi`. The RayJob is named after the attempt (a second launch meets it: 409 → adopt when
 * its `tern.dev/attempt-id` annotation matches). Status comes from `.status.jobDeploymentStatus`
 * and `.status.jobStatus` (PROTOCOLS §1.8); `abort` deletes the RayJob (KubeRay deletes its
 * cluster and submitter with it); `logs` follows the submitter pod, whose log is the job's.
 */
import {
  type BackendLimits,
  type BackendPlugin,
  CONTRACT_VERSION,
  createToken,
  ErrorCodes,
  inject,
  injectable,
  jobEnv,
  renderJobTemplate,
  type TaskContext,
  type TaskSpec,
  type TaskStatus,
  TernError,
  type Token,
} from "@tern/core";
import {
  ANNOTATIONS,
  ClusterPool,
  followPodLogs,
  isApiError,
  type K8sObject,
  LABELS,
  labelValue,
  launchObject,
  lostObject,
  type ResolvedK8sOptions,
  type ResourceRef,
  withRetry,
} from "@tern/plugin-k8s";
import { checkRayTask, type RayNodeConfig } from "./config.js";
import { readErrorDocument } from "./job-plugin.js";
import { rayJobName } from "./names.js";
import { RAY_OPTIONS, type ResolvedRayOptions } from "./options.js";

/** KubeRay's RayJob resource. */
export const RAYJOBS: ResourceRef = { group: "ray.io", version: "v1", plural: "rayjobs" };

/** The persisted state of a `ray-kuberay` attempt. */
export type KubeRayState = {
  cluster: string;
  namespace: string;
  rayjob: string;
  uid?: string;
  /** Clusters that refused the launch before this one took it. */
  failover?: { from: string; to: string; reason: string }[];
};

/** The plugin-k8s options of the KubeRay cluster pool, resolved. */
export const KUBERAY_K8S_OPTIONS: Token<ResolvedK8sOptions> = createToken(
  "tern.plugin-ray.kuberay-k8s-options",
);
/** The KubeRay plugin's own cluster pool (separate from `@tern/plugin-k8s`'s, whose options may differ). */
export const KUBERAY_CLUSTERS: Token<ClusterPool> = createToken("tern.plugin-ray.kuberay-clusters");

/** `ClusterPool` under the KubeRay plugin's own options token. */
@injectable()
export class KubeRayClusterPool extends ClusterPool {
  constructor(@inject(KUBERAY_K8S_OPTIONS) options: ResolvedK8sOptions) {
    super(options);
  }
}

/** Selects the pods of a RayJob's submitter (a Kubernetes Job named after the RayJob). */
const SUBMITTER_LABEL = "batch.kubernetes.io/job-name";
/** How long a check waits for a fresh watch cache before asking for the RayJob directly. */
const SYNC_WAIT_MS = 3_000;

function resourcesOf(n: RayNodeConfig | undefined, gpuResource = "nvidia.com/gpu"): Record<string, unknown> {
  const q: Record<string, string> = {};
  if (n?.cpu !== undefined) q.cpu = String(n.cpu);
  if (n?.memory !== undefined) q.memory = n.memory;
  const limits: Record<string, string> = { ...q };
  if (n?.gpu) limits[gpuResource] = String(n.gpu);
  if (Object.keys(limits).length === 0) return {};
  return { resources: { ...(Object.keys(q).length ? { requests: q } : {}), limits } };
}

const TERMINAL_DEPLOYMENT = new Set(["Complete", "Failed"]);

/** RayJob status → task status (PROTOCOLS §1.8). A user failure is flagged so the caller can prefer error.json. */
export function rayJobCrStatus(
  job: K8sObject,
  where: string,
  task: string,
  aborted: boolean,
): TaskStatus & { userFailure?: boolean } {
  const s = (job.status ?? {}) as Record<string, any>;
  const deployment: string = s.jobDeploymentStatus ?? "";
  const jobStatus: string = s.jobStatus ?? "";
  const reason: string | undefined = s.reason;
  const text: string =
    typeof s.message === "string" ? s.message.trim().split("\n").slice(0, 3).join("\n") : "";
  const externalUrl = s.dashboardURL
    ? `http://${s.dashboardURL}/#/jobs/${encodeURIComponent(s.jobId ?? "")}`
    : undefined;
  const base = externalUrl ? { externalUrl } : {};
  if (deployment === "Complete" || (deployment === "Failed" && jobStatus === "SUCCEEDED")) {
    if (jobStatus === "SUCCEEDED") return { ...base, phase: "succeeded" };
  }
  if (TERMINAL_DEPLOYMENT.has(deployment)) {
    if (jobStatus === "STOPPED" && aborted) return { ...base, phase: "aborted" };
    const userSide =
      reason === "AppFailed" ||
      reason === "ValidationFailed" ||
      reason === "DeadlineExceeded" ||
      (reason === undefined && jobStatus === "FAILED");
    if (userSide) {
      const why =
        reason === "DeadlineExceeded"
          ? "ran past activeDeadlineSeconds"
          : reason === "ValidationFailed"
            ? "was refused by KubeRay's validation"
            : "failed";
      const message = `task "${task}" failed: RayJob ${where} ${why}${text ? `: ${text}` : ""}`;
      return {
        ...base,
        phase: "failed",
        message,
        userFailure: reason !== "ValidationFailed" && reason !== "DeadlineExceeded",
        error: {
          code:
            reason === "ValidationFailed"
              ? ErrorCodes.SPEC_INVALID
              : reason === "DeadlineExceeded"
                ? ErrorCodes.TIMEOUT
                : ErrorCodes.TASK_FAILED,
          kind: "user",
          message,
          hint:
            reason === "ValidationFailed"
              ? "fix the field KubeRay names (custom.cluster, custom.runtimeEnv…)"
              : "see the job's log (the RayJob's submitter pod, or the Ray dashboard)",
          details: { reason, jobStatus },
        },
      };
    }
    const message = `RayJob ${where} failed for reasons outside the task (${reason ?? jobStatus ?? deployment})${text ? `: ${text}` : ""}`;
    return {
      ...base,
      phase: "failed",
      message,
      preempted: /preempt/i.test(text),
      error: {
        code: ErrorCodes.SYSTEM,
        kind: "system",
        message,
        hint: "the attempt is retried as a system error",
        details: { reason, jobStatus },
      },
    };
  }
  if (deployment === "Suspended" || deployment === "Suspending")
    return { ...base, phase: "waiting-for-resources", message: `RayJob ${where} is suspended (queued)` };
  if (deployment === "Running" || deployment === "Retrying") {
    if (jobStatus === "RUNNING")
      return { ...base, phase: "running", message: deployment === "Retrying" ? "retrying" : undefined };
    return {
      ...base,
      phase: "initializing",
      message: `Ray job ${jobStatus || "being submitted"} on cluster ${s.rayClusterName ?? ""}`,
    };
  }
  return {
    ...base,
    phase: "initializing",
    message: s.rayClusterName ? `creating Ray cluster ${s.rayClusterName}` : "RayJob submitted",
  };
}

/** The KubeRay plugin (`ray-kuberay`, task type `kuberay` unless configured otherwise). */
@injectable()
export class KubeRayPlugin implements BackendPlugin<KubeRayState> {
  readonly id: string = "ray-kuberay";
  readonly taskTypes: readonly string[];
  readonly contractVersion = CONTRACT_VERSION;
  readonly limits?: BackendLimits;
  private readonly launches = new Map<string, Promise<KubeRayState>>();
  private readonly aborted = new Set<string>();

  constructor(
    @inject(RAY_OPTIONS) private readonly options: ResolvedRayOptions,
    @inject(KUBERAY_CLUSTERS) private readonly clusters: ClusterPool,
  ) {
    this.taskTypes = options.kuberay!.taskTypes;
    if (options.maxConcurrent || options.launchesPerSecond)
      this.limits = { maxConcurrent: options.maxConcurrent, launchesPerSecond: options.launchesPerSecond };
  }

  validate(task: TaskSpec): void {
    checkRayTask(task, "kuberay");
  }

  /** The RayJob of one attempt. */
  async build(ctx: TaskContext, name: string, namespace: string): Promise<K8sObject> {
    const k = this.options.kuberay!;
    const cfg = checkRayTask(ctx.task, "kuberay");
    const inputsUri = await ctx.inputsUri();
    const runtimeEnv = {
      ...cfg.runtimeEnv,
      env_vars: {
        ...this.options.env,
        ...ctx.task.metadata.env,
        ...(cfg.runtimeEnv.env_vars ?? {}),
        ...jobEnv(ctx, inputsUri),
      },
    };
    const image = cfg.cluster.image ?? ctx.task.metadata.image ?? k.image;
    const r = ctx.task.metadata.resources;
    const head: RayNodeConfig = cfg.cluster.head ?? {
      cpu: r?.requests?.cpu ?? r?.limits?.cpu,
      memory:
        r?.requests?.memory ??
        r?.limits?.memory ??
        (cfg.memoryBytes !== undefined ? String(cfg.memoryBytes) : undefined),
      gpu: r?.gpu ?? r?.limits?.gpu ?? r?.requests?.gpu,
    };
    const podSpec = (name: string, n: RayNodeConfig | undefined, ports?: unknown[]) => ({
      ...(k.serviceAccountName ? { serviceAccountName: k.serviceAccountName } : {}),
      containers: [{ name, image, ...resourcesOf(n), ...(ports ? { ports } : {}) }],
    });
    const labels: Record<string, string> = {
      ...k.labels,
      [LABELS.managedBy]: "tern",
      [LABELS.plugin]: this.id,
      [LABELS.project]: labelValue(ctx.execution.project),
      [LABELS.domain]: labelValue(ctx.execution.domain),
      [LABELS.execution]: labelValue(ctx.execution.id),
      [LABELS.node]: labelValue(ctx.node.id),
      [LABELS.attempt]: String(ctx.attempt.number),
      [LABELS.task]: labelValue(ctx.task.id.name),
    };
    const spec: Record<string, unknown> = {
      entrypoint: renderJobTemplate(cfg.entrypoint, ctx, inputsUri),
      // JSON is YAML: KubeRay parses this string with a YAML parser.
      runtimeEnvYAML: JSON.stringify(runtimeEnv, null, 2),
      metadata: { ...cfg.metadata, "tern.attempt_id": ctx.attempt.id, "tern.task": ctx.task.id.name },
      submissionMode: "K8sJobMode",
      shutdownAfterJobFinishes: true,
      ttlSecondsAfterFinished: k.ttlSecondsAfterFinished,
      // Tern retries attempts itself.
      backoffLimit: 0,
      rayClusterSpec: {
        rayVersion: cfg.cluster.rayVersion ?? k.rayVersion,
        headGroupSpec: {
          rayStartParams: { "dashboard-host": "0.0.0.0", ...(head.rayStartParams ?? {}) },
          template: {
            metadata: { labels: { [LABELS.managedBy]: "tern" } },
            spec: podSpec("ray-head", head, [
              { containerPort: 6379, name: "gcs-server" },
              { containerPort: 8265, name: "dashboard" },
              { containerPort: 10001, name: "client" },
            ]),
          },
        },
        workerGroupSpecs: (cfg.cluster.workers ?? []).map((w, i) => ({
          groupName: w.groupName ?? (i === 0 ? "workers" : `workers-${i + 1}`),
          replicas: w.replicas,
          minReplicas: w.minReplicas ?? w.replicas,
          maxReplicas: w.maxReplicas ?? w.replicas,
          rayStartParams: w.rayStartParams ?? {},
          template: { metadata: { labels: { [LABELS.managedBy]: "tern" } }, spec: podSpec("ray-worker", w) },
        })),
      },
    };
    if (cfg.numCpus !== undefined) spec.entrypointNumCpus = cfg.numCpus;
    if (cfg.numGpus !== undefined) spec.entrypointNumGpus = cfg.numGpus;
    // A RayJob has no entrypoint memory field: memory sizes the head pod instead (see `head`).
    if (cfg.resources && Object.keys(cfg.resources).length)
      spec.entrypointResources = JSON.stringify(cfg.resources);
    if (cfg.cluster.activeDeadlineSeconds !== undefined)
      spec.activeDeadlineSeconds = cfg.cluster.activeDeadlineSeconds;
    return {
      apiVersion: "ray.io/v1",
      kind: "RayJob",
      metadata: {
        name,
        namespace,
        labels,
        annotations: {
          ...k.annotations,
          [ANNOTATIONS.attemptId]: ctx.attempt.id,
          [ANNOTATIONS.taskVersion]: ctx.task.id.version,
        },
      },
      spec,
    };
  }

  launch(ctx: TaskContext): Promise<KubeRayState> {
    const known = this.launches.get(ctx.attempt.id);
    if (known) return known;
    const p = this.create(ctx);
    this.launches.set(ctx.attempt.id, p);
    p.catch(() => this.launches.delete(ctx.attempt.id));
    return p;
  }

  private async create(ctx: TaskContext): Promise<KubeRayState> {
    checkRayTask(ctx.task, "kuberay");
    const name = rayJobName(ctx.attempt.id);
    const out = await launchObject(this.clusters, ctx, RAYJOBS, "RayJob", name, (ns) =>
      this.build(ctx, name, ns),
    );
    const state: KubeRayState = { cluster: out.cluster, namespace: out.namespace, rayjob: out.name };
    if (out.uid) state.uid = out.uid;
    if (out.failover) state.failover = out.failover;
    return state;
  }

  async check(ctx: TaskContext, state: KubeRayState): Promise<TaskStatus> {
    const where = `${state.cluster}/${state.namespace}/${state.rayjob}`;
    const aborted = this.aborted.has(where);
    const cache = await this.clusters.cache(state.cluster, state.namespace, RAYJOBS);
    cache.subscribe(state.rayjob, ctx.notify);
    if (!cache.synced) await cache.ready(SYNC_WAIT_MS);
    let job = cache.get(state.rayjob);
    if (!job) {
      const tomb = cache.tombstone(state.rayjob);
      if (tomb && (!state.uid || tomb.metadata.uid === state.uid)) {
        const last = rayJobCrStatus(tomb, where, ctx.task.id.name, aborted);
        if (last.phase === "succeeded" || last.phase === "failed") return this.complete(ctx, last);
        return aborted
          ? { phase: "aborted", message: `RayJob ${where} was deleted (aborted)` }
          : lostObject("RayJob", where);
      }
      const api = await this.clusters.api(state.cluster);
      try {
        job = await api.get(RAYJOBS, state.namespace, state.rayjob);
      } catch (e) {
        if (isApiError(e, 404))
          return aborted
            ? { phase: "aborted", message: `RayJob ${where} was deleted (aborted)` }
            : lostObject("RayJob", where);
        throw new TernError(ErrorCodes.SYSTEM, `cannot read RayJob ${where}: ${(e as Error).message}`, {
          kind: "system",
        });
      }
    }
    const status = rayJobCrStatus(job, where, ctx.task.id.name, aborted);
    // `abort` deleted it (the cache may not have seen the deletion yet).
    if (aborted && status.phase !== "succeeded" && status.phase !== "failed")
      return { phase: "aborted", message: `RayJob ${where} was deleted (aborted)` };
    const stale = cache.staleForMs();
    const k8s = this.clusters.options;
    if (status.phase !== "succeeded" && status.phase !== "failed" && stale > k8s.watchStaleMs) {
      throw new TernError(
        ErrorCodes.SYSTEM,
        `lost contact with cluster "${state.cluster}" ${Math.round(stale / 1000)} s ago; RayJob ${where} cannot be followed`,
        { kind: "system" },
      );
    }
    return this.complete(ctx, status);
  }

  private async complete(ctx: TaskContext, s: TaskStatus & { userFailure?: boolean }): Promise<TaskStatus> {
    const { userFailure, ...status } = s;
    if (userFailure) {
      const doc = await readErrorDocument(ctx);
      if (doc) return { ...status, message: doc.message, error: doc };
    }
    return status;
  }

  async abort(_ctx: TaskContext, state: KubeRayState): Promise<void> {
    this.aborted.add(`${state.cluster}/${state.namespace}/${state.rayjob}`);
    await this.remove(state);
  }

  async finalize(ctx: TaskContext, state: KubeRayState): Promise<void> {
    const where = `${state.cluster}/${state.namespace}/${state.rayjob}`;
    this.launches.delete(ctx.attempt.id);
    const cache = await this.clusters.cache(state.cluster, state.namespace, RAYJOBS);
    const job = cache.get(state.rayjob);
    cache.forget(state.rayjob);
    this.aborted.delete(where);
    const failed = job ? rayJobCrStatus(job, "", "", false).phase === "failed" : false;
    const keep = this.options.kuberay!.keepRayJobs;
    if (keep === true || (keep === "failed" && failed)) return;
    await this.remove(state);
  }

  private async remove(state: KubeRayState): Promise<void> {
    const api = await this.clusters.api(state.cluster);
    try {
      await withRetry(
        `delete RayJob ${state.rayjob}`,
        () => api.delete(RAYJOBS, state.namespace, state.rayjob),
        this.clusters.options.apiRetry,
      );
    } catch (e) {
      if (!isApiError(e, 404)) throw e;
    }
  }

  /** The submitter pod's log (the driver's output), followed until it exits. */
  async *logs(ctx: TaskContext, state: KubeRayState): AsyncIterable<string> {
    const api = await this.clusters.api(state.cluster);
    const submitter = `${SUBMITTER_LABEL}=${state.rayjob}`;
    yield* followPodLogs(api, state.namespace, submitter, "ray-job-submitter", ctx.signal);
  }

  async close(): Promise<void> {
    await this.clusters.close();
  }
}
