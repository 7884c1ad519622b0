/**
 * Creating an attempt's object (a pod, an MPIJob, a SparkApplication, a RayJob) on a
 * cluster, shared by every plugin that runs on Kubernetes:
 * routing, retries of throttled or failing API calls, adoption of an object that already
 * exists under the attempt's name (409 → GET → same attempt id → adopt), and failover to
 * the next eligible healthy cluster when one refuses the request outright.
 *
 * Failover happens only when the request certainly created nothing (connection refused,
 * 429 or 5xx after retries). It is logged as `failover: cluster a → b: reason` and
 * recorded in the returned state, which the engine keeps in the `initializing` event.
 */
import { ErrorCodes, type TaskContext, type TaskStatus, TernError } from "@tern/core";
import { isApiError, type K8sApi, K8sApiError, type K8sObject, PODS, type ResourceRef } from "./api.js";
import type { ClusterPool } from "./clusters.js";
import { belongsTo } from "./names.js";
import { withRetry } from "./retry.js";

/** One move from a refusing cluster to the next. */
export type Failover = {
  from: string;
  to: string;
  reason: string;
};

export interface Launched {
  cluster: string;
  namespace: string;
  name: string;
  uid?: string;
  failover?: Failover[];
}

function launchError(
  e: unknown,
  ctx: TaskContext,
  res: ResourceRef,
  what: string,
  cluster: string,
): TernError {
  if (e instanceof TernError) return e;
  if (e instanceof K8sApiError) {
    const details = { task: ctx.task.id.name, cluster, status: e.status, reason: e.reason };
    if (e.status === 404 && res.group) {
      // A custom resource the cluster does not know: its operator is not installed.
      return new TernError(
        ErrorCodes.CONFIG,
        `cluster "${cluster}" does not serve ${res.plural}.${res.group}/${res.version}: ${e.message}`,
        {
          kind: "system",
          hint: `install the operator that provides ${what} (its CRDs) on the cluster`,
          details,
        },
      );
    }
    if (e.status === 422 || e.status === 400) {
      return new TernError(
        ErrorCodes.SPEC_INVALID,
        `cluster "${cluster}" rejected the ${what} of task "${ctx.task.id.name}": ${e.message}`,
        {
          kind: "user",
          hint: "the task's configuration produced an object the API server refuses; fix the field it names",
          details,
        },
      );
    }
    return new TernError(
      ErrorCodes.SYSTEM,
      `could not create the ${what} of task "${ctx.task.id.name}" on cluster "${cluster}": ${e.message}`,
      {
        kind: "system",
        hint:
          e.status === 401 || e.status === 403
            ? "check the kubeconfig's credentials and RBAC (create/get/list/watch/delete on the resource)"
            : "the attempt is retried as a system error",
        details,
      },
    );
  }
  return new TernError(
    ErrorCodes.SYSTEM,
    `could not create the ${what} of task "${ctx.task.id.name}" on cluster "${cluster}": ${(e as Error)?.message ?? e}`,
    {
      kind: "system",
      details: { task: ctx.task.id.name, cluster },
    },
  );
}

/**
 * Creates (or adopts) the object named `name` for this attempt on the first eligible
 * healthy cluster, failing over as described above. `build` makes the body for a namespace.
 */
export async function launchObject(
  pool: ClusterPool,
  ctx: TaskContext,
  res: ResourceRef,
  what: string,
  name: string,
  build: (namespace: string) => Promise<K8sObject>,
): Promise<Launched> {
  const candidates = await pool.route(ctx);
  const failover: Failover[] = [];
  const policy = pool.options.apiRetry;
  for (let i = 0; i < candidates.length; i++) {
    const c = candidates[i];
    try {
      const api = await pool.api(c.name);
      // Watch before creating, so the object's first events are not missed.
      const cache = await pool.cache(c.name, c.namespace, res);
      const body = await build(c.namespace);
      const giveUp = () => !pool.isHealthy(c.name);
      let obj: K8sObject;
      try {
        obj = await withRetry(`create ${what} ${name}`, () => api.create(res, c.namespace, body), policy, {
          signal: ctx.signal,
          giveUp,
          onRetry: (err, ms) =>
            ctx.logger.debug(
              `create ${what} ${name} on cluster ${c.name}: ${err.message}; retrying in ${Math.round(ms)} ms`,
            ),
        });
      } catch (e) {
        if (!isApiError(e, 409)) throw e;
        obj = await withRetry(`get ${what} ${name}`, () => api.get(res, c.namespace, name), policy, {
          signal: ctx.signal,
          giveUp,
        });
        if (!belongsTo(obj, ctx)) {
          throw new TernError(
            ErrorCodes.CONFLICT,
            `a ${what} named "${name}" already exists on cluster "${c.name}" and was not made for attempt ${ctx.attempt.id}`,
            {
              kind: "system",
              hint: `delete it (kubectl -n ${c.namespace} delete ${res.plural} ${name}) if it is left over from elsewhere`,
              details: { cluster: c.name, namespace: c.namespace, name },
            },
          );
        }
        ctx.logger.info(`adopted the existing ${what} ${c.namespace}/${name} on cluster ${c.name}`);
      }
      cache.prime(obj);
      const out: Launched = { cluster: c.name, namespace: c.namespace, name, uid: obj.metadata.uid };
      if (failover.length) out.failover = failover;
      return out;
    } catch (e) {
      const next = candidates[i + 1];
      if (e instanceof K8sApiError && e.notApplied && next) {
        // Out of rotation until its next good health check; the last candidate stays in
        // (the engine's retry of this attempt will try it again).
        pool.markUnhealthy(c.name, e.message);
        ctx.logger.warn(`failover: cluster ${c.name} → ${next.name}: ${e.message}`, {
          from: c.name,
          to: next.name,
          task: ctx.task.id.name,
        });
        failover.push({ from: c.name, to: next.name, reason: e.message });
        continue;
      }
      throw launchError(e, ctx, res, what, c.name);
    }
  }
  // route() never returns an empty list.
  throw new TernError(ErrorCodes.SYSTEM, `no cluster could run task "${ctx.task.id.name}"`, {
    kind: "system",
  });
}

/**
 * The status of an attempt whose object (`kind`, e.g. "MPIJob", at `where`) was deleted
 * before it finished: a system failure, so the engine retries the attempt.
 */
export function lostObject(kind: string, where: string): TaskStatus {
  const message = `${kind} ${where} was deleted before it finished (lost)`;
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

/**
 * Follow the log of the newest pod that `selector` matches in `namespace` (its first
 * container, else `container`), waiting for the pod to appear and start (every 250 ms,
 * at most `tries` times) until `signal` aborts. Ends when the pod's log ends or the pod is gone.
 */
export async function* followPodLogs(
  api: K8sApi,
  namespace: string,
  selector: string,
  container: string,
  signal: AbortSignal,
  tries = 600,
): AsyncIterable<string> {
  for (let i = 0; i < tries && !signal.aborted; i++) {
    const pods = await api.list(PODS, namespace, selector);
    const pod = pods.items.sort((a, b) =>
      String(b.metadata.creationTimestamp).localeCompare(String(a.metadata.creationTimestamp)),
    )[0];
    if (pod?.metadata.name) {
      try {
        for await (const line of api.logs(
          namespace,
          pod.metadata.name,
          pod.spec?.containers?.[0]?.name ?? container,
          {
            follow: true,
            signal,
          },
        ))
          yield line;
        return;
      } catch (e) {
        // 404: the pod is gone; 400: its container has not started yet.
        if (isApiError(e, 404)) return;
        if (!isApiError(e, 400)) throw e;
      }
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}
