/**
 * `spark`: runs `spark` tasks as spark-operator `SparkApplication`s, one per attempt.
 *
 * - `launch` checks the task, then creates the application (named after the attempt id, so
 *   a second launch meets the first one and adopts it) through plugin-k8s's shared
 *   `launchObject` (routing, retries of throttled calls, failover), and returns
 *   `{cluster, namespace, application, uid?}`: all a restarted engine needs to re-attach.
 * - `check` reads the shared watch cache of SparkApplications and maps
 *   `status.applicationState` (see `status.ts`); it registers `ctx.notify`, so the engine
 *   checks as soon as the operator moves the application. When the driver failed, the
 *   driver pod's last state tells an eviction or preemption (system) from the
 *   application's own failure (user), and the application's `error.json`, when it wrote one,
 *   gives the message.
 * - `abort` deletes the application (the operator's owner references take the driver and
 *   executor pods with it); `finalize` deletes finished applications unless kept; `logs`
 *   follows the driver pod's log.
 */
import {
  type BackendLimits,
  type BackendPlugin,
  CONTRACT_VERSION,
  ErrorCodes,
  inject,
  injectable,
  type TaskContext,
  type TaskSpec,
  type TaskStatus,
  TernError,
} from "@tern/core";
import {
  type ClusterPool,
  deletedPodStatus,
  type Failover,
  isApiError,
  type K8sObject,
  launchObject,
  lostObject,
  objectName,
  PODS,
  podStatus,
  readErrorDocument,
  type StatusContext,
  withRetry,
} from "@tern/plugin-k8s";
import { buildSparkApplication, DRIVER_CONTAINER, driverPodName, SPARK_APPLICATIONS } from "./application.js";
import { sparkConfig } from "./config.js";
import { type ResolvedSparkOptions, SPARK_CLUSTERS, SPARK_OPTIONS } from "./options.js";
import { applicationState, type SparkVerdict, sparkApplicationStatus } from "./status.js";

/** The persisted state of a Spark attempt. */
export type SparkState = {
  cluster: string;
  namespace: string;
  application: string;
  uid?: string;
  /** Clusters that refused the launch before this one took it. */
  failover?: Failover[];
};

const TERMINAL = new Set(["COMPLETED", "FAILED"]);

/** Pod phases after which its status no longer changes. */
const POD_ENDED = new Set(["Succeeded", "Failed"]);

/** Lines of a failed driver's log added to its error. */
const LOG_TAIL_LINES = 20;

/** The Spark plugin (`spark`, task type `spark`). */
@injectable()
export class SparkPlugin implements BackendPlugin<SparkState> {
  readonly id: string = "spark";
  readonly taskTypes: readonly string[] = ["spark"];
  readonly contractVersion = CONTRACT_VERSION;
  readonly limits?: BackendLimits;
  private readonly launches = new Map<string, Promise<SparkState>>();
  private readonly aborted = new Set<string>();

  constructor(
    @inject(SPARK_OPTIONS) private readonly options: ResolvedSparkOptions,
    @inject(SPARK_CLUSTERS) private readonly clusters: ClusterPool,
  ) {
    if (options.maxConcurrent || options.launchesPerSecond) {
      this.limits = { maxConcurrent: options.maxConcurrent, launchesPerSecond: options.launchesPerSecond };
    }
  }

  validate(task: TaskSpec): void {
    sparkConfig(task, this.options);
  }

  launch(ctx: TaskContext): Promise<SparkState> {
    const known = this.launches.get(ctx.attempt.id);
    if (known) return known;
    const p = this.create(ctx);
    this.launches.set(ctx.attempt.id, p);
    p.catch(() => this.launches.delete(ctx.attempt.id));
    return p;
  }

  private async create(ctx: TaskContext): Promise<SparkState> {
    // Everything that can be wrong with the task is found before a cluster is touched.
    sparkConfig(ctx.task, this.options);
    const name = objectName(ctx.attempt.id);
    const out = await launchObject(this.clusters, ctx, SPARK_APPLICATIONS, "SparkApplication", name, (ns) =>
      buildSparkApplication(ctx, name, ns, this.options, this.id),
    );
    // Watch the driver pods too, so an evicted or preempted driver can be told apart later.
    await this.clusters.cache(out.cluster, out.namespace, PODS);
    const state: SparkState = { cluster: out.cluster, namespace: out.namespace, application: out.name };
    if (out.uid) state.uid = out.uid;
    if (out.failover) state.failover = out.failover;
    return state;
  }

  private where(s: SparkState): string {
    return `${s.cluster}/${s.namespace}/${s.application}`;
  }

  async check(ctx: TaskContext, state: SparkState): Promise<TaskStatus> {
    const where = this.where(state);
    const cache = await this.clusters.cache(state.cluster, state.namespace, SPARK_APPLICATIONS);
    cache.subscribe(state.application, ctx.notify);
    if (!cache.synced) await cache.ready(3_000);
    const sameApp = (o: K8sObject | undefined) =>
      o && (!state.uid || !o.metadata.uid || o.metadata.uid === state.uid) ? o : undefined;
    let app = sameApp(cache.get(state.application));
    if (!app) {
      const tomb = sameApp(cache.tombstone(state.application));
      if (tomb && TERMINAL.has(applicationState(tomb))) return this.complete(ctx, state, tomb);
      if (this.aborted.has(where))
        return { phase: "aborted", message: `SparkApplication ${where} was deleted (aborted)` };
      if (tomb) return lostObject("SparkApplication", where);
      const api = await this.clusters.api(state.cluster);
      try {
        app = await api.get(SPARK_APPLICATIONS, state.namespace, state.application);
      } catch (e) {
        if (isApiError(e, 404)) return lostObject("SparkApplication", where);
        throw new TernError(
          ErrorCodes.SYSTEM,
          `cannot read SparkApplication ${where}: ${(e as Error).message}`,
          {
            kind: "system",
            hint: "the engine checks again; if the cluster stays unreachable the attempt fails as a system error",
          },
        );
      }
    }
    if (this.aborted.has(where) && app.metadata.deletionTimestamp)
      return { phase: "aborted", message: `SparkApplication ${where} is being deleted (aborted)` };
    if (!TERMINAL.has(applicationState(app))) {
      const stale = cache.staleForMs();
      const limit = this.options.watchStaleMs ?? this.clusters.options.watchStaleMs;
      if (stale > limit) {
        throw new TernError(
          ErrorCodes.SYSTEM,
          `lost contact with cluster "${state.cluster}" ${Math.round(stale / 1000)} s ago (${cache.lastError ?? "watch down"}); SparkApplication ${where} cannot be followed`,
          {
            kind: "system",
            hint: "the attempt is retried as a system error",
            details: { cluster: state.cluster },
          },
        );
      }
    }
    return this.complete(ctx, state, app);
  }

  /** The application's verdict, refined by the driver pod's last state and the task's own `error.json`. */
  private async complete(ctx: TaskContext, state: SparkState, app: K8sObject): Promise<TaskStatus> {
    const where = this.where(state);
    const verdict: SparkVerdict = sparkApplicationStatus(app, where, ctx.task.id.name);
    const lostDriver =
      verdict.phase === "failed" && verdict.error?.details?.errorMessage === "driver pod not found";
    if (!verdict.driverFailed && !lostDriver) {
      const { driverFailed: _, ...status } = verdict;
      return withLinks(status, app);
    }
    const pod = await this.driverPod(state, app);
    if (pod) {
      const sc: StatusContext = {
        where: `${state.cluster}/${state.namespace}/${pod.obj.metadata.name}`,
        task: ctx.task.id.name,
        now: Date.now(),
        imagePullGraceMs: 0,
        configErrorGraceMs: 0,
        unschedulableTimeoutMs: 0,
      };
      const p = pod.deleted ? deletedPodStatus(pod.obj, sc, false) : podStatus(pod.obj, sc);
      if (p.phase === "failed" && (p.preempted || p.error?.kind === "system")) {
        const { exitFailure: _, ...status } = p;
        return withLinks(status, app);
      }
    }
    if (lostDriver) return withLinks(omitDriverFailed(verdict), app);
    const doc = await readErrorDocument(ctx);
    if (doc) return withLinks({ phase: "failed", message: doc.message, error: doc }, app);
    return withLinks(
      await this.withLogTail(omitDriverFailed(verdict), state, pod?.deleted ? undefined : app),
      app,
    );
  }

  /** A driver that failed without saying why: the end of its log says it (a missing file, a stack trace). */
  private async withLogTail(
    status: TaskStatus,
    state: SparkState,
    app: K8sObject | undefined,
  ): Promise<TaskStatus> {
    if (status.phase !== "failed" || !status.error || !app) return status;
    const lines: string[] = [];
    try {
      const api = await this.clusters.api(state.cluster);
      for await (const line of api.logs(state.namespace, driverPodName(app), DRIVER_CONTAINER, {
        tailLines: LOG_TAIL_LINES,
      }))
        lines.push(line);
    } catch {
      return status; // the log is a courtesy: the verdict stands without it
    }
    const tail = lines.filter((l) => l.trim()).slice(-LOG_TAIL_LINES);
    if (tail.length === 0) return status;
    const message = `${status.error.message}; driver log ends with:\n${tail.join("\n")}`;
    return {
      ...status,
      message,
      error: { ...status.error, message, details: { ...status.error.details, logTail: tail } },
    };
  }

  /** The driver pod from the shared pod cache: alive, or its last state if it was deleted. */
  private async driverPod(
    state: SparkState,
    app: K8sObject,
  ): Promise<{ obj: K8sObject; deleted: boolean } | undefined> {
    const pods = await this.clusters.cache(state.cluster, state.namespace, PODS);
    if (!pods.synced) await pods.ready(3_000);
    const name = driverPodName(app);
    const live = pods.get(name);
    if (live && !POD_ENDED.has(live.status?.phase as string)) {
      // The application's watch said the driver failed before the pod's watch caught up:
      // read the pod itself, so an eviction is not mistaken for the application's failure.
      try {
        const api = await this.clusters.api(state.cluster);
        return { obj: await api.get(PODS, state.namespace, name), deleted: false };
      } catch (e) {
        if (!isApiError(e, 404)) return { obj: live, deleted: false };
      }
    }
    if (live) return { obj: live, deleted: false };
    const tomb = pods.tombstone(name);
    return tomb ? { obj: tomb, deleted: true } : undefined;
  }

  async abort(_ctx: TaskContext, state: SparkState): Promise<void> {
    this.aborted.add(this.where(state));
    await this.remove(state);
  }

  async finalize(ctx: TaskContext, state: SparkState): Promise<void> {
    this.launches.delete(ctx.attempt.id);
    const where = this.where(state);
    const cache = await this.clusters.cache(state.cluster, state.namespace, SPARK_APPLICATIONS);
    const app = cache.get(state.application);
    cache.forget(state.application);
    this.aborted.delete(where);
    const keep = this.options.keepApplications;
    if (keep === true || (keep === "failed" && app && applicationState(app) === "FAILED")) return;
    await this.remove(state);
  }

  private async remove(state: SparkState): Promise<void> {
    const api = await this.clusters.api(state.cluster);
    try {
      await withRetry(
        `delete SparkApplication ${state.application}`,
        () => api.delete(SPARK_APPLICATIONS, state.namespace, state.application),
        this.clusters.options.apiRetry,
      );
    } catch (e) {
      if (!isApiError(e, 404)) throw e;
    }
  }

  /** The driver's log, following it until the driver exits. */
  async *logs(ctx: TaskContext, state: SparkState): AsyncIterable<string> {
    const api = await this.clusters.api(state.cluster);
    for (let tries = 0; tries < 1200 && !ctx.signal.aborted; tries++) {
      let app: K8sObject | undefined;
      try {
        app = await api.get(SPARK_APPLICATIONS, state.namespace, state.application);
      } catch (e) {
        if (isApiError(e, 404)) return;
        throw e;
      }
      try {
        for await (const line of api.logs(state.namespace, driverPodName(app), DRIVER_CONTAINER, {
          follow: true,
          signal: ctx.signal,
        }))
          yield line;
        return;
      } catch (e) {
        // 404: no driver pod (yet, or ever when the submission failed); 400: not started yet.
        if (!isApiError(e, 404) && !isApiError(e, 400)) throw e;
        if (isApiError(e, 404) && TERMINAL.has(applicationState(app))) return;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  async close(): Promise<void> {
    await this.clusters.close();
  }
}

function omitDriverFailed(v: SparkVerdict): TaskStatus {
  const { driverFailed: _, ...status } = v;
  return status;
}

/** Adds the Spark UI address, when the operator published one. */
function withLinks(status: TaskStatus, app: K8sObject): TaskStatus {
  const ui = app.status?.driverInfo?.webUIIngressAddress ?? app.status?.driverInfo?.webUIAddress;
  if (typeof ui === "string" && ui) {
    const url = /^https?:\/\//.test(ui) ? ui : `http://${ui}`;
    return { ...status, logLinks: [...(status.logLinks ?? []), { name: "Spark UI", url }] };
  }
  return status;
}
