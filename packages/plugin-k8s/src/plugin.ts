/**
 * `k8s-pod`: runs `node` tasks (TypeScript bodies through `tern-execute`) and `container`
 * tasks (any image and command) as one pod per attempt.
 *
 * - `launch` creates the pod (named after the attempt id; see `launch.ts` for adoption and
 *   failover) and returns `{cluster, namespace, pod, uid, failover?}`.
 * - `check` reads the shared watch cache (one watch per cluster and namespace, not a GET per
 *   pod) and maps the pod per PROTOCOLS §1.6 (`status.ts`); it registers `ctx.notify` so the
 *   engine checks as soon as the pod changes.
 * - `abort` deletes the pod (a 404 is fine), `finalize` deletes finished pods unless
 *   `keepPods`, `logs` follows the container's log.
 */
import {
  type BackendLimits,
  type BackendPlugin,
  CONTRACT_VERSION,
  ErrorCodes,
  type ErrorDocument,
  inject,
  injectable,
  type TaskContext,
  type TaskSpec,
  type TaskStatus,
  TernError,
} from "@tern/core";
import { isApiError, type K8sObject, PODS } from "./api.js";
import { type ClusterPool, K8S_CLUSTERS } from "./clusters.js";
import { type Failover, launchObject } from "./launch.js";
import { objectName } from "./names.js";
import { K8S_OPTIONS, type ResolvedK8sOptions } from "./options.js";
import { buildPod, validateTask } from "./pod-spec.js";
import { withRetry } from "./retry.js";
import {
  CONFIG_REASONS,
  deletedPodStatus,
  IMAGE_PULL_REASONS,
  missingPodStatus,
  type PodVerdict,
  podStatus,
  type StatusContext,
  waitingReason,
} from "./status.js";

/** The persisted state of a pod attempt. */
export type PodState = {
  cluster: string;
  namespace: string;
  pod: string;
  uid?: string;
  /** Clusters that refused the launch before this one took it. */
  failover?: Failover[];
};

/** How long a check waits for a fresh watch cache to load before asking for the pod directly. */
const SYNC_WAIT_MS = 3_000;

function isTerminal(pod: K8sObject): boolean {
  const p = pod.status?.phase;
  return p === "Succeeded" || p === "Failed";
}

/** Reads `<outputPrefix>/error.json`, which `tern-execute` (or a container) writes when the task fails. */
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

/** The pod plugin (`k8s-pod`, task types `node` and `container`). */
@injectable()
export class PodPlugin implements BackendPlugin<PodState> {
  readonly id: string = "k8s-pod";
  readonly taskTypes: readonly string[] = ["node", "container"];
  readonly contractVersion = CONTRACT_VERSION;
  readonly limits?: BackendLimits;
  /** Launches of this process, by attempt id: a second launch of an attempt returns the first one's state. */
  private readonly launches = new Map<string, Promise<PodState>>();
  /** When a pod's current waiting reason (image pull, config error) was first seen. */
  private readonly waiting = new Map<string, { reason: string; since: number }>();
  /** Pods this process deleted through `abort`. */
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
    validateTask(task, this.options);
  }

  launch(ctx: TaskContext): Promise<PodState> {
    const known = this.launches.get(ctx.attempt.id);
    if (known) return known;
    const p = this.create(ctx);
    this.launches.set(ctx.attempt.id, p);
    p.catch(() => this.launches.delete(ctx.attempt.id));
    return p;
  }

  private async create(ctx: TaskContext): Promise<PodState> {
    validateTask(ctx.task, this.options);
    const name = objectName(ctx.attempt.id);
    const out = await launchObject(this.clusters, ctx, PODS, "pod", name, (ns) =>
      buildPod(ctx, name, ns, this.options, this.id),
    );
    const state: PodState = { cluster: out.cluster, namespace: out.namespace, pod: out.name };
    if (out.uid) state.uid = out.uid;
    if (out.failover) state.failover = out.failover;
    return state;
  }

  private statusContext(ctx: TaskContext, state: PodState): StatusContext {
    return {
      where: `${state.cluster}/${state.namespace}/${state.pod}`,
      task: ctx.task.id.name,
      now: Date.now(),
      imagePullGraceMs: this.options.imagePullGraceMs,
      configErrorGraceMs: this.options.configErrorGraceMs,
      unschedulableTimeoutMs: this.options.unschedulableTimeoutMs,
    };
  }

  /** Remembers when the pod's current waiting problem started (grace periods). */
  private waitingSince(key: string, pod: K8sObject, now: number): number | undefined {
    const reason = waitingReason(pod);
    const cls =
      reason && IMAGE_PULL_REASONS.has(reason)
        ? "image"
        : reason && CONFIG_REASONS.has(reason)
          ? `config:${reason}`
          : undefined;
    if (!cls) {
      this.waiting.delete(key);
      return undefined;
    }
    const seen = this.waiting.get(key);
    if (seen?.reason === cls) return seen.since;
    this.waiting.set(key, { reason: cls, since: now });
    return now;
  }

  async check(ctx: TaskContext, state: PodState): Promise<TaskStatus> {
    const key = `${state.cluster}/${state.namespace}/${state.pod}`;
    const cache = await this.clusters.cache(state.cluster, state.namespace, PODS);
    cache.subscribe(state.pod, ctx.notify);
    const sc = this.statusContext(ctx, state);
    let pod = cache.get(state.pod);
    if (!pod) {
      const gone = () => {
        const t = cache.tombstone(state.pod);
        return t && (!state.uid || t.metadata.uid === state.uid) ? t : undefined;
      };
      let tomb = gone();
      if (!tomb && !cache.synced) {
        await cache.ready(SYNC_WAIT_MS);
        pod = cache.get(state.pod);
        tomb = gone();
      }
      if (tomb) return this.complete(ctx, deletedPodStatus(tomb, sc, this.aborted.has(key)));
      if (!pod) {
        // Not in the cache (a restarted engine before the first list, or a pod deleted while
        // nobody watched): ask for it directly.
        const api = await this.clusters.api(state.cluster);
        try {
          pod = await api.get(PODS, state.namespace, state.pod);
        } catch (e) {
          if (isApiError(e, 404)) {
            return this.aborted.has(key)
              ? { phase: "aborted", message: `pod ${key} was deleted (aborted)` }
              : missingPodStatus(sc);
          }
          throw new TernError(ErrorCodes.SYSTEM, `cannot read pod ${key}: ${(e as Error).message}`, {
            kind: "system",
          });
        }
      }
    }
    if (this.aborted.has(key) && pod.metadata.deletionTimestamp)
      return { phase: "aborted", message: `pod ${key} is being deleted (aborted)` };
    const stale = cache.staleForMs(sc.now);
    if (!isTerminal(pod) && stale > this.options.watchStaleMs) {
      throw new TernError(
        ErrorCodes.SYSTEM,
        `lost contact with cluster "${state.cluster}" ${Math.round(stale / 1000)} s ago (${cache.lastError ?? "watch down"}); pod ${key} cannot be followed`,
        {
          kind: "system",
          hint: "running pods are not moved to another cluster; when the engine gives up on this attempt it is retried, on a healthy cluster",
          details: { cluster: state.cluster },
        },
      );
    }
    return this.complete(ctx, podStatus(pod, { ...sc, waitingSince: this.waitingSince(key, pod, sc.now) }));
  }

  /** A failed container may have left the task's own error document: it says more than an exit code. */
  private async complete(ctx: TaskContext, v: PodVerdict): Promise<TaskStatus> {
    const { exitFailure, ...status } = v;
    if (exitFailure) {
      const doc = await readErrorDocument(ctx);
      if (doc) return { phase: "failed", message: doc.message, error: doc };
    }
    return status;
  }

  async abort(ctx: TaskContext, state: PodState): Promise<void> {
    const key = `${state.cluster}/${state.namespace}/${state.pod}`;
    this.aborted.add(key);
    await this.remove(ctx, state, this.options.abortGracePeriodSeconds);
  }

  async finalize(ctx: TaskContext, state: PodState): Promise<void> {
    const key = `${state.cluster}/${state.namespace}/${state.pod}`;
    this.launches.delete(ctx.attempt.id);
    this.waiting.delete(key);
    const cache = await this.clusters.cache(state.cluster, state.namespace, PODS);
    const pod = cache.get(state.pod);
    cache.forget(state.pod);
    this.aborted.delete(key);
    const keep = this.options.keepPods;
    if (keep === true || (keep === "failed" && pod?.status?.phase === "Failed")) return;
    await this.remove(ctx, state, pod && isTerminal(pod) ? 0 : this.options.abortGracePeriodSeconds);
  }

  private async remove(ctx: TaskContext, state: PodState, gracePeriodSeconds: number): Promise<void> {
    const api = await this.clusters.api(state.cluster);
    try {
      await withRetry(
        `delete pod ${state.pod}`,
        () => api.delete(PODS, state.namespace, state.pod, { gracePeriodSeconds }),
        this.clusters.options.apiRetry,
      );
    } catch (e) {
      if (isApiError(e, 404)) return;
      ctx.logger.warn(
        `could not delete pod ${state.cluster}/${state.namespace}/${state.pod}: ${(e as Error).message}`,
      );
      throw e;
    }
  }

  /** The container's log, following it until the container exits. */
  async *logs(ctx: TaskContext, state: PodState): AsyncIterable<string> {
    const api = await this.clusters.api(state.cluster);
    for (let tries = 0; ; tries++) {
      let yielded = 0;
      try {
        for await (const line of api.logs(state.namespace, state.pod, "main", {
          follow: true,
          signal: ctx.signal,
        })) {
          yielded++;
          yield line;
        }
        return;
      } catch (e) {
        if (isApiError(e, 404)) return;
        // 400: the container has not started yet. Wait for it (a few minutes at most).
        if (!isApiError(e, 400) || yielded > 0 || tries > 600 || ctx.signal.aborted) throw e;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  }

  async close(): Promise<void> {
    await this.clusters.close();
  }
}
