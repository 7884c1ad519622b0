/**
 * The clusters the plugins run on: one API client and one set of watch caches per
 * cluster, a health probe (`GET /version`) every `healthCheckIntervalMs`, and routing.
 *
 * Routing: the rules that match a task (project, domain, routing label) each add labels a
 * cluster must carry; the eligible clusters are tried in the order they are configured,
 * skipping those whose last probe failed. A cluster that refuses a launch (unreachable,
 * 5xx or 429 after retries) is marked unhealthy at once and the launch fails over to the
 * next eligible one (see `PodPlugin.launch`). Work already running on a cluster is never
 * moved: if its cluster goes away, `check` starts failing and the engine retries the
 * attempt as a system error, which launches it on a healthy cluster.
 *
 * Nothing starts until the first launch or check: constructing the pool has no effects.
 */
import {
  createToken,
  ErrorCodes,
  inject,
  injectable,
  type TaskContext,
  TernError,
  type Token,
} from "@tern/core";
import { clientNodeApi, type K8sApi, type ResourceRef } from "./api.js";
import { type ClusterOptions, K8S_OPTIONS, type ResolvedK8sOptions } from "./options.js";
import { WatchCache } from "./watch-cache.js";

/** Selects the objects Tern manages (every pod and MPIJob it creates carries this label). */
export const MANAGED_SELECTOR = "app.kubernetes.io/managed-by=tern";

interface ClusterEntry {
  readonly config: ClusterOptions;
  api?: Promise<K8sApi>;
  healthy: boolean;
  reason?: string;
  checkedAt?: number;
  readonly caches: Map<string, WatchCache>;
}

/** Health of one cluster, as last probed. */
export interface ClusterHealth {
  healthy: boolean;
  /** Why it is unhealthy. */
  reason?: string;
  /** Epoch ms of the last probe. */
  checkedAt?: number;
}

function describeLabels(l: Record<string, string>): string {
  return Object.entries(l)
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
}

/** The shared cluster pool; one per container, used by the pod and MPI plugins. */
@injectable()
export class ClusterPool {
  private readonly entries = new Map<string, ClusterEntry>();
  private firstProbe?: Promise<void>;
  private timer?: NodeJS.Timeout;
  private closed = false;

  constructor(@inject(K8S_OPTIONS) readonly options: ResolvedK8sOptions) {
    for (const c of options.clusters)
      this.entries.set(c.name, { config: c, healthy: true, caches: new Map() });
  }

  private entry(name: string): ClusterEntry {
    const e = this.entries.get(name);
    if (!e) {
      throw new TernError(ErrorCodes.CONFIG, `cluster "${name}" is not configured in @tern/plugin-k8s`, {
        kind: "system",
        hint: `configured clusters: ${[...this.entries.keys()].join(", ")}; an attempt launched on a cluster that was removed from the configuration cannot be followed`,
        details: { cluster: name },
      });
    }
    return e;
  }

  config(name: string): ClusterOptions {
    return this.entry(name).config;
  }

  /** The API client of a cluster (created on first use). */
  api(name: string): Promise<K8sApi> {
    const e = this.entry(name);
    if (!e.api) {
      const make = this.options.api;
      e.api = Promise.resolve(make ? make(e.config) : clientNodeApi(e.config));
      e.api.catch(() => {
        e.api = undefined;
      });
    }
    return e.api;
  }

  /** The shared, started watch cache of a resource in a cluster's namespace. */
  async cache(cluster: string, namespace: string, res: ResourceRef): Promise<WatchCache> {
    const e = this.entry(cluster);
    const key = `${res.group}/${res.plural}/${namespace}`;
    let c = e.caches.get(key);
    if (!c) {
      const api = await this.api(cluster);
      c = e.caches.get(key);
      if (!c) {
        c = new WatchCache(
          api,
          res,
          namespace,
          MANAGED_SELECTOR,
          Math.min(5_000, this.options.healthCheckIntervalMs),
        );
        e.caches.set(key, c);
        if (!this.closed) c.start();
      }
    }
    return c;
  }

  /** The caches created so far (for diagnostics and tests). */
  caches(cluster: string): WatchCache[] {
    return [...this.entry(cluster).caches.values()];
  }

  isHealthy(name: string): boolean {
    return this.entry(name).healthy;
  }

  health(): Record<string, ClusterHealth> {
    const out: Record<string, ClusterHealth> = {};
    for (const [name, e] of this.entries)
      out[name] = { healthy: e.healthy, reason: e.reason, checkedAt: e.checkedAt };
    return out;
  }

  /** Takes a cluster out of rotation until its next successful probe. */
  markUnhealthy(name: string, reason: string): void {
    const e = this.entry(name);
    e.healthy = false;
    e.reason = reason;
  }

  /** Labels a cluster must have to run this task. */
  requiredLabels(ctx: Pick<TaskContext, "execution" | "task">): Record<string, string> {
    const r = this.options.routing;
    const routingLabel = ctx.task.custom?.clusterLabel;
    const rules: (Record<string, string> | undefined)[] = [
      r.byProject?.[ctx.execution.project],
      r.byDomain?.[ctx.execution.domain],
      typeof routingLabel === "string" ? r.byLabel?.[routingLabel] : undefined,
    ];
    if (typeof routingLabel === "string" && !r.byLabel?.[routingLabel]) {
      throw new TernError(
        ErrorCodes.CONFIG,
        `task "${ctx.task.id.name}" asks for cluster label "${routingLabel}", which routing.byLabel does not define`,
        {
          hint: `add routing: { byLabel: { ${JSON.stringify(routingLabel)}: { … cluster labels … } } } to the k8s() options, or remove custom.clusterLabel`,
          details: { task: ctx.task.id.name, clusterLabel: routingLabel },
        },
      );
    }
    return Object.assign({}, ...rules.filter(Boolean));
  }

  /**
   * The clusters that may run this task, healthy ones first in configured order. Throws when
   * no configured cluster has the required labels (a configuration error) or when none of
   * those is healthy (a system error: the engine retries later).
   */
  async route(ctx: Pick<TaskContext, "execution" | "task">): Promise<ClusterOptions[]> {
    const need = this.requiredLabels(ctx);
    const eligible = [...this.entries.values()].filter((e) =>
      Object.entries(need).every(([k, v]) => e.config.labels?.[k] === v),
    );
    if (eligible.length === 0) {
      throw new TernError(
        ErrorCodes.CONFIG,
        `no configured cluster has the labels ${describeLabels(need)} that task "${ctx.task.id.name}" needs`,
        {
          hint: "label a cluster with them in the k8s() options (clusters[].labels), or change the routing rules",
          details: { task: ctx.task.id.name, labels: need },
        },
      );
    }
    await this.startHealthChecks();
    const healthy = eligible.filter((e) => e.healthy);
    if (healthy.length === 0) {
      throw new TernError(
        ErrorCodes.SYSTEM,
        `no healthy cluster can run task "${ctx.task.id.name}": ${eligible.map((e) => `${e.config.name} (${e.reason ?? "unhealthy"})`).join(", ")}`,
        {
          kind: "system",
          hint: "the attempt is retried as a system error; check the clusters' API servers",
          details: { labels: need },
        },
      );
    }
    return healthy.map((e) => e.config);
  }

  /** Probes every cluster once now (awaited by the first launch), then every `healthCheckIntervalMs`. */
  startHealthChecks(): Promise<void> {
    if (this.firstProbe) return this.firstProbe;
    this.firstProbe = this.probeAll();
    if (!this.closed) {
      this.timer = setInterval(() => void this.probeAll(), this.options.healthCheckIntervalMs);
      this.timer.unref();
    }
    return this.firstProbe;
  }

  private async probeAll(): Promise<void> {
    await Promise.all([...this.entries.keys()].map((n) => this.probe(n)));
  }

  private async probe(name: string): Promise<void> {
    const e = this.entry(name);
    let timer: NodeJS.Timeout | undefined;
    try {
      const api = await this.api(name);
      await Promise.race([
        api.version(),
        new Promise((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`no answer within ${this.options.healthCheckTimeoutMs} ms`)),
            this.options.healthCheckTimeoutMs,
          );
        }),
      ]);
      e.healthy = true;
      e.reason = undefined;
    } catch (err) {
      e.healthy = false;
      e.reason = `health check failed: ${(err as Error)?.message ?? err}`;
    } finally {
      clearTimeout(timer);
      e.checkedAt = Date.now();
    }
  }

  /** Stops the health checks and every watch (idempotent). Running pods are left alone. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    for (const e of this.entries.values()) for (const c of e.caches.values()) c.stop();
    await Promise.all(
      [...this.entries.values()].map((e) => e.api?.then((a) => a.close?.()).catch(() => undefined)),
    );
  }
}

/** The pool, registered once per container and shared by the pod and MPI plugins. */
export const K8S_CLUSTERS: Token<ClusterPool> = createToken("tern.plugin-k8s.clusters");
