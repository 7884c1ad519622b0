/**
 * `k8s-mpi`: runs `mpi` tasks as Kubeflow MPIJobs (`kubeflow.org/v2beta1`): one launcher
 * pod running the user's command (`mpirun …`) and `workers` worker pods with the GPUs.
 *
 * The task's `custom` is a {@link MpiTaskConfig}. Outputs travel like a `container` task's:
 * the launcher writes its output value as JSON to `$TERN_OUTPUTS_URI` (`$TERN_OUTPUTS_PATH`
 * for a local blob store). Status comes from `status.conditions` (Created, Running,
 * Restarting, Succeeded, Failed) through the same shared watch cache as pods.
 */
import {
  type BackendLimits,
  type BackendPlugin,
  CONTRACT_VERSION,
  ErrorCodes,
  inject,
  injectable,
  type Resources,
  type TaskContext,
  type TaskSpec,
  type TaskStatus,
  TernError,
} from "@tern/core";
import { isApiError, type K8sObject, MPIJOBS } from "./api.js";
import { type ClusterPool, K8S_CLUSTERS } from "./clusters.js";
import { type Failover, followPodLogs, launchObject, lostObject } from "./launch.js";
import { attemptAnnotations, attemptLabels, objectName } from "./names.js";
import { K8S_OPTIONS, type ResolvedK8sOptions } from "./options.js";
import { readErrorDocument } from "./plugin.js";
import { envOf, mergeEnv, placement, podResources, renderTemplate, secretsOf, ternEnv } from "./pod-spec.js";
import { withRetry } from "./retry.js";

/**
 * `custom` of an `mpi` task.
 *
 * @example
 * task({ name: "allreduce", type: "mpi", output: z.number(), custom: {
 *   workers: 2, slotsPerWorker: 1,
 *   launcher: { image: "mpioperator/openmpi:0.6.0", command: ["mpirun", "-n", "2", "python", "train.py"] },
 *   worker: { image: "mpioperator/openmpi:0.6.0", resources: { gpu: 1, accelerator: "a100" } },
 * } }, async () => 0)
 */
export interface MpiTaskConfig {
  /** Worker replicas (≥ 1). */
  workers: number;
  /** MPI slots per worker. @default 1 */
  slotsPerWorker?: number;
  launcher: { image?: string; command: string[]; args?: string[]; env?: Record<string, string> };
  worker?: { image?: string; command?: string[]; args?: string[]; resources?: Resources };
  /** Which pods the operator deletes when the job ends. @default "Running" */
  cleanPodPolicy?: "All" | "Running" | "None";
  /** Launcher restarts the operator makes before the job fails (Tern's own retries come on top). @default 0 */
  backoffLimit?: number;
  /** @default "OpenMPI" */
  mpiImplementation?: "OpenMPI" | "Intel" | "MPICH";
}

/** The persisted state of an MPI attempt. */
export type MpiState = {
  cluster: string;
  namespace: string;
  mpijob: string;
  uid?: string;
  failover?: Failover[];
};

const JOB_NAME = "training.kubeflow.org/job-name";
const JOB_ROLE = "training.kubeflow.org/job-role";

function specError(task: TaskSpec, field: string, message: string, hint: string): TernError {
  return new TernError(ErrorCodes.SPEC_INVALID, `task "${task.id.name}": custom.${field} ${message}`, {
    hint,
    kind: "user",
    details: { task: task.id.name, field: `custom.${field}` },
  });
}

/** Checks `custom` of an `mpi` task. */
export function mpiConfig(task: TaskSpec, opts: ResolvedK8sOptions): MpiTaskConfig {
  const c = (task.custom ?? {}) as Partial<MpiTaskConfig>;
  if (!Number.isInteger(c.workers) || (c.workers as number) < 1)
    throw specError(
      task,
      "workers",
      `must be a whole number ≥ 1, not ${c.workers}`,
      "e.g. custom: { workers: 2, … }",
    );
  if (c.slotsPerWorker !== undefined && (!Number.isInteger(c.slotsPerWorker) || c.slotsPerWorker < 1))
    throw specError(task, "slotsPerWorker", "must be a whole number ≥ 1", "e.g. slotsPerWorker: 1");
  if (
    !c.launcher ||
    !Array.isArray(c.launcher.command) ||
    c.launcher.command.length === 0 ||
    c.launcher.command.some((s) => typeof s !== "string")
  ) {
    throw specError(
      task,
      "launcher.command",
      "must be a non-empty list of strings",
      'e.g. launcher: { command: ["mpirun", "-n", "2", "python", "train.py"] }',
    );
  }
  if (c.cleanPodPolicy !== undefined && !["All", "Running", "None"].includes(c.cleanPodPolicy))
    throw specError(
      task,
      "cleanPodPolicy",
      `"${c.cleanPodPolicy}" is not All, Running or None`,
      "use one of All, Running, None",
    );
  if (c.backoffLimit !== undefined && (!Number.isInteger(c.backoffLimit) || c.backoffLimit < 0))
    throw specError(task, "backoffLimit", "must be a whole number ≥ 0", "e.g. backoffLimit: 0");
  const image = c.launcher.image ?? task.metadata.image ?? opts.defaultImage;
  if (!image)
    throw specError(
      task,
      "launcher.image",
      "is not set and the k8s plugin has no defaultImage",
      "give launcher.image, the task's image, or defaultImage",
    );
  podResources(task, c.worker?.resources, opts, "custom.worker.resources");
  podResources(task, task.metadata.resources, opts);
  secretsOf(task);
  return c as MpiTaskConfig;
}

/** The MPIJob of one attempt. */
export async function buildMpiJob(
  ctx: TaskContext,
  name: string,
  namespace: string,
  opts: ResolvedK8sOptions,
): Promise<K8sObject> {
  const task = ctx.task;
  const cfg = mpiConfig(task, opts);
  const inputsUri = await ctx.inputsUri();
  const labels = attemptLabels(ctx, "k8s-mpi", opts.labels);
  const image = cfg.launcher.image ?? task.metadata.image ?? opts.defaultImage!;
  const secrets = secretsOf(task);
  const launcherRes = podResources(task, task.metadata.resources, opts);
  const workerRes = podResources(task, cfg.worker?.resources, opts, "custom.worker.resources");
  const env = mergeEnv(
    ternEnv(ctx, inputsUri),
    envOf(opts.env),
    envOf(task.metadata.env),
    envOf(cfg.launcher.env ?? {}),
    secrets.env,
  );
  const launcher: Record<string, unknown> = {
    name: "launcher",
    image,
    command: cfg.launcher.command.map((s) => renderTemplate(s, ctx, inputsUri)),
    env,
  };
  if (cfg.launcher.args) launcher.args = cfg.launcher.args.map((s) => renderTemplate(s, ctx, inputsUri));
  if (Object.keys(launcherRes.requirements).length) launcher.resources = launcherRes.requirements;
  if (secrets.mounts.length) launcher.volumeMounts = secrets.mounts;
  const worker: Record<string, unknown> = { name: "worker", image: cfg.worker?.image ?? image };
  if (cfg.worker?.command) worker.command = cfg.worker.command;
  if (cfg.worker?.args) worker.args = cfg.worker.args;
  if (Object.keys(workerRes.requirements).length) worker.resources = workerRes.requirements;
  const podSpec = (container: Record<string, unknown>, r: typeof workerRes) => ({
    containers: [container],
    ...placement(r, ctx.attempt.interruptible, opts),
    ...(secrets.volumes.length && container === launcher ? { volumes: secrets.volumes } : {}),
    ...(opts.serviceAccountName ? { serviceAccountName: opts.serviceAccountName } : {}),
  });
  return {
    apiVersion: "kubeflow.org/v2beta1",
    kind: "MPIJob",
    metadata: { name, namespace, labels, annotations: attemptAnnotations(ctx, opts.annotations) },
    spec: {
      slotsPerWorker: cfg.slotsPerWorker ?? 1,
      mpiImplementation: cfg.mpiImplementation ?? "OpenMPI",
      runPolicy: { cleanPodPolicy: cfg.cleanPodPolicy ?? "Running", backoffLimit: cfg.backoffLimit ?? 0 },
      mpiReplicaSpecs: {
        Launcher: {
          replicas: 1,
          restartPolicy: "Never",
          template: { metadata: { labels }, spec: podSpec(launcher, launcherRes) },
        },
        Worker: {
          replicas: cfg.workers,
          restartPolicy: "Never",
          template: { metadata: { labels }, spec: podSpec(worker, workerRes) },
        },
      },
    },
  };
}

interface JobCondition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}

/** MPIJob conditions → task status. */
export function mpiJobStatus(
  job: K8sObject,
  where: string,
  task: string,
): TaskStatus & { launcherFailed?: boolean } {
  const conds = (job.status?.conditions ?? []) as JobCondition[];
  const on = (t: string) => conds.find((c) => c.type === t && c.status === "True");
  if (on("Succeeded")) return { phase: "succeeded" };
  const failed = on("Failed");
  if (failed) {
    const text = `${failed.reason ?? "Failed"}${failed.message ? `: ${failed.message}` : ""}`;
    const infra = /evict|preempt|node|disrupt|shutdown/i.test(text);
    const message = infra
      ? `MPIJob ${where} was stopped by the cluster (${text})`
      : `task "${task}" failed: MPIJob ${where} failed (${text})`;
    return {
      phase: "failed",
      message,
      error: {
        code: infra ? ErrorCodes.SYSTEM : ErrorCodes.TASK_FAILED,
        kind: infra ? "system" : "user",
        message,
        details: { reason: failed.reason },
      },
      launcherFailed: !infra,
    };
  }
  const restarting = on("Restarting");
  if (restarting)
    return { phase: "running", message: `restarting: ${restarting.message ?? restarting.reason ?? ""}` };
  if (on("Running")) return { phase: "running" };
  if (on("Created")) return { phase: "initializing", message: "MPIJob created; waiting for its pods" };
  return { phase: "initializing", message: "MPIJob submitted" };
}

/** The MPI plugin (`k8s-mpi`, task type `mpi`). */
@injectable()
export class MpiPlugin implements BackendPlugin<MpiState> {
  readonly id: string = "k8s-mpi";
  readonly taskTypes: readonly string[] = ["mpi"];
  readonly contractVersion = CONTRACT_VERSION;
  readonly limits?: BackendLimits;
  private readonly launches = new Map<string, Promise<MpiState>>();
  private readonly aborted = new Set<string>();

  constructor(
    @inject(K8S_OPTIONS) private readonly options: ResolvedK8sOptions,
    @inject(K8S_CLUSTERS) private readonly clusters: ClusterPool,
  ) {
    if (options.maxConcurrent || options.launchesPerSecond) {
      this.limits = { maxConcurrent: options.maxConcurrent, launchesPerSecond: options.launchesPerSecond };
    }
  }

  validate(task: TaskSpec): void {
    mpiConfig(task, this.options);
  }

  launch(ctx: TaskContext): Promise<MpiState> {
    const known = this.launches.get(ctx.attempt.id);
    if (known) return known;
    const p = (async () => {
      const name = objectName(ctx.attempt.id);
      const out = await launchObject(this.clusters, ctx, MPIJOBS, "MPIJob", name, (ns) =>
        buildMpiJob(ctx, name, ns, this.options),
      );
      const state: MpiState = { cluster: out.cluster, namespace: out.namespace, mpijob: out.name };
      if (out.uid) state.uid = out.uid;
      if (out.failover) state.failover = out.failover;
      return state;
    })();
    this.launches.set(ctx.attempt.id, p);
    p.catch(() => this.launches.delete(ctx.attempt.id));
    return p;
  }

  async check(ctx: TaskContext, state: MpiState): Promise<TaskStatus> {
    const where = `${state.cluster}/${state.namespace}/${state.mpijob}`;
    const cache = await this.clusters.cache(state.cluster, state.namespace, MPIJOBS);
    cache.subscribe(state.mpijob, ctx.notify);
    if (!cache.synced) await cache.ready(3_000);
    let job = cache.get(state.mpijob);
    if (!job) {
      const tomb = cache.tombstone(state.mpijob);
      if (tomb) {
        const last = mpiJobStatus(tomb, where, ctx.task.id.name);
        if (last.phase === "succeeded" || last.phase === "failed") return this.complete(ctx, last);
        if (this.aborted.has(where))
          return { phase: "aborted", message: `MPIJob ${where} was deleted (aborted)` };
        return lostObject("MPIJob", where);
      }
      const api = await this.clusters.api(state.cluster);
      try {
        job = await api.get(MPIJOBS, state.namespace, state.mpijob);
      } catch (e) {
        if (isApiError(e, 404))
          return this.aborted.has(where) ? { phase: "aborted" } : lostObject("MPIJob", where);
        throw new TernError(ErrorCodes.SYSTEM, `cannot read MPIJob ${where}: ${(e as Error).message}`, {
          kind: "system",
        });
      }
    }
    const status = mpiJobStatus(job, where, ctx.task.id.name);
    const stale = cache.staleForMs();
    if (status.phase !== "succeeded" && status.phase !== "failed" && stale > this.options.watchStaleMs) {
      throw new TernError(
        ErrorCodes.SYSTEM,
        `lost contact with cluster "${state.cluster}" ${Math.round(stale / 1000)} s ago; MPIJob ${where} cannot be followed`,
        { kind: "system" },
      );
    }
    return this.complete(ctx, status);
  }

  private async complete(
    ctx: TaskContext,
    s: TaskStatus & { launcherFailed?: boolean },
  ): Promise<TaskStatus> {
    const { launcherFailed, ...status } = s;
    if (launcherFailed) {
      const doc = await readErrorDocument(ctx);
      if (doc) return { phase: "failed", message: doc.message, error: doc };
    }
    return status;
  }

  async abort(_ctx: TaskContext, state: MpiState): Promise<void> {
    this.aborted.add(`${state.cluster}/${state.namespace}/${state.mpijob}`);
    await this.remove(state);
  }

  async finalize(ctx: TaskContext, state: MpiState): Promise<void> {
    this.launches.delete(ctx.attempt.id);
    const cache = await this.clusters.cache(state.cluster, state.namespace, MPIJOBS);
    const job = cache.get(state.mpijob);
    cache.forget(state.mpijob);
    this.aborted.delete(`${state.cluster}/${state.namespace}/${state.mpijob}`);
    const failed = job ? mpiJobStatus(job, "", "").phase === "failed" : false;
    const keep = this.options.keepPods;
    if (keep === true || (keep === "failed" && failed)) return;
    await this.remove(state);
  }

  private async remove(state: MpiState): Promise<void> {
    const api = await this.clusters.api(state.cluster);
    try {
      await withRetry(
        `delete MPIJob ${state.mpijob}`,
        () => api.delete(MPIJOBS, state.namespace, state.mpijob),
        this.options.apiRetry,
      );
    } catch (e) {
      if (!isApiError(e, 404)) throw e;
    }
  }

  /** The launcher's log. */
  async *logs(ctx: TaskContext, state: MpiState): AsyncIterable<string> {
    const api = await this.clusters.api(state.cluster);
    const launcher = `${JOB_NAME}=${state.mpijob},${JOB_ROLE}=launcher`;
    yield* followPodLogs(api, state.namespace, launcher, "launcher", ctx.signal);
  }

  async close(): Promise<void> {
    await this.clusters.close();
  }
}
