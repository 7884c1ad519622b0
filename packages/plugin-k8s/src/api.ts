/**
 * `K8sApi`: the narrow Kubernetes client the plugins talk to, and its adapter over
 * `@kubernetes/client-node` (loaded lazily, on the first call that needs a cluster).
 *
 * Everything that crosses this interface is plain JSON (timestamps are strings), and
 * every failure is a {@link K8sApiError} with the HTTP status (0 for a network error),
 * the Status `reason` and the `Retry-After` delay: the plugins never see an SDK type.
 * Tests can hand the plugins a hand-written `K8sApi` through the `api` option.
 */

import { createInterface } from "node:readline";
import { PassThrough } from "node:stream";

/** Names a resource. `group: ""` is core/v1 (pods). */
export interface ResourceRef {
  group: string;
  version: string;
  plural: string;
}

export const PODS: ResourceRef = { group: "", version: "v1", plural: "pods" };
export const MPIJOBS: ResourceRef = { group: "kubeflow.org", version: "v2beta1", plural: "mpijobs" };

/** `metadata` of an object, as far as the plugins read it. */
export interface ObjectMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  [key: string]: unknown;
}

/** Any Kubernetes object in its JSON form. */
export interface K8sObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec?: any;
  status?: any;
  [key: string]: unknown;
}

export type WatchEventType = "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";

export interface WatchHandle {
  /** Ends the stream; `onDone` is not called after this. */
  stop(): void;
}

export interface WatchOptions {
  labelSelector?: string;
  resourceVersion?: string;
}

/** The Kubernetes operations the plugins use. One instance talks to one cluster. */
export interface K8sApi {
  /** Create an object (`PODS` goes through core/v1, anything else through the custom-objects API). */
  create(res: ResourceRef, namespace: string, body: K8sObject): Promise<K8sObject>;
  get(res: ResourceRef, namespace: string, name: string): Promise<K8sObject>;
  list(
    res: ResourceRef,
    namespace: string,
    labelSelector?: string,
  ): Promise<{ items: K8sObject[]; resourceVersion: string }>;
  /** Delete an object; a 404 is an error here (callers that do not care catch it). */
  delete(
    res: ResourceRef,
    namespace: string,
    name: string,
    opts?: { gracePeriodSeconds?: number },
  ): Promise<void>;
  /**
   * Stream changes from `resourceVersion` on. `onDone(undefined)` when the server closes the
   * stream cleanly, `onDone(err)` on an error (a `K8sApiError` with status 410 when the
   * resume point is too old).
   */
  watch(
    res: ResourceRef,
    namespace: string,
    opts: WatchOptions,
    onEvent: (type: WatchEventType, obj: K8sObject) => void,
    onDone: (err?: unknown) => void,
  ): Promise<WatchHandle>;
  /** A container's log, line by line; with `follow` until the container exits; `tailLines`: only the last lines. */
  logs(
    namespace: string,
    pod: string,
    container: string,
    opts?: { follow?: boolean; signal?: AbortSignal; tailLines?: number },
  ): AsyncIterable<string>;
  /** `GET /version`, for health checks. */
  version(): Promise<{ gitVersion?: string }>;
  /** Releases pooled connections. */
  close?(): Promise<void>;
}

/** A failed Kubernetes API call, SDK-independent. */
export class K8sApiError extends Error {
  constructor(
    message: string,
    /** HTTP status; 0 when the server could not be reached. */
    readonly status: number,
    /** The Status `reason` (`AlreadyExists`, `NotFound`, `TooManyRequests`…), or the network error code. */
    readonly reason?: string,
    /** From `Retry-After` (or `details.retryAfterSeconds`). */
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = "K8sApiError";
  }

  /** Worth retrying: throttled, server trouble, or unreachable. */
  get transient(): boolean {
    return this.status === 0 || this.status === 429 || this.status >= 500;
  }

  /** The request certainly did not create anything (refused connection, throttled, 5xx). */
  get notApplied(): boolean {
    if (this.status === 429 || this.status >= 500) return true;
    return (
      this.status === 0 &&
      ["ECONNREFUSED", "ENOTFOUND", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN"].includes(this.reason ?? "")
    );
  }
}

export function isApiError(e: unknown, status?: number): e is K8sApiError {
  return e instanceof K8sApiError && (status === undefined || e.status === status);
}

/** A kubeconfig given as options: the object `KubeConfig.loadFromOptions` takes. */
export interface KubeConfigObject {
  clusters: { name: string; server: string; skipTLSVerify?: boolean; caData?: string; caFile?: string }[];
  users: { name: string; token?: string; certData?: string; keyData?: string; [k: string]: unknown }[];
  contexts: { name: string; cluster: string; user: string; namespace?: string }[];
  currentContext: string;
}

/** Where a cluster's credentials come from. */
export interface KubeconfigSource {
  /** A file path, YAML text, or a `loadFromOptions` object. */
  kubeconfig: string | KubeConfigObject;
  /** Context to use instead of the kubeconfig's `current-context`. */
  context?: string;
}

type ClientNode = typeof import("@kubernetes/client-node");
let clientNode: Promise<ClientNode> | undefined;

/** Imports `@kubernetes/client-node` once, on first use (it takes ~150 ms to load). */
function loadClientNode(): Promise<ClientNode> {
  clientNode ??= import("@kubernetes/client-node");
  return clientNode;
}

/** Plain JSON of an SDK object (its Dates become RFC 3339 strings). */
function plain<T>(v: unknown): T {
  return JSON.parse(JSON.stringify(v)) as T;
}

function retryAfter(
  headers: Record<string, string> | undefined,
  status: Record<string, unknown> | undefined,
): number | undefined {
  const h = headers?.["retry-after"] ?? headers?.["Retry-After"];
  const secs =
    h !== undefined
      ? Number(h)
      : Number((status?.details as { retryAfterSeconds?: unknown } | undefined)?.retryAfterSeconds);
  return Number.isFinite(secs) && secs >= 0 ? secs * 1000 : undefined;
}

/** Turns whatever client-node threw into a {@link K8sApiError}. */
export function toApiError(e: unknown, what: string): K8sApiError {
  if (e instanceof K8sApiError) return e;
  const err = e as {
    code?: unknown;
    body?: unknown;
    headers?: Record<string, string>;
    message?: string;
    cause?: { code?: string; message?: string };
    statusCode?: number;
  };
  const code =
    typeof err?.code === "number"
      ? err.code
      : typeof err?.statusCode === "number"
        ? err.statusCode
        : undefined;
  if (code !== undefined) {
    let status: Record<string, unknown> | undefined;
    if (typeof err.body === "string") {
      try {
        status = JSON.parse(err.body) as Record<string, unknown>;
      } catch {
        status = undefined;
      }
    } else if (err.body && typeof err.body === "object") status = err.body as Record<string, unknown>;
    const msg = typeof status?.message === "string" ? status.message : `HTTP ${code}`;
    return new K8sApiError(
      `${what}: ${msg}`,
      code,
      status?.reason as string | undefined,
      retryAfter(err.headers, status),
    );
  }
  const netCode = err?.cause?.code ?? (typeof err?.code === "string" ? err.code : undefined);
  const detail = err?.cause?.message ?? err?.message ?? String(e);
  return new K8sApiError(`${what}: ${detail}`, 0, netCode ?? "NETWORK");
}

/**
 * client-node 2.0.1 builds a new undici `Agent` for every request (see `KubeConfig.createDispatcher`),
 * so no connection is ever reused: each call pays a TCP connect, and on a real cluster a TLS
 * handshake. One dispatcher per TLS identity is kept instead. `createDispatcher` is private in
 * the typings, hence the guarded patch; without it the client works as shipped.
 */
function reuseConnections(kc: object): { close(): Promise<void> } {
  type Dispatcher = { close?(): Promise<void> } | undefined;
  const target = kc as {
    createDispatcher?: (cluster: { server?: string } | null, opts: Record<string, unknown>) => Dispatcher;
  };
  const original = target.createDispatcher;
  const cache = new Map<string, Dispatcher>();
  if (typeof original === "function") {
    target.createDispatcher = function (this: unknown, cluster, opts) {
      const key = JSON.stringify([
        cluster?.server,
        opts?.ca,
        opts?.cert,
        opts?.key,
        opts?.pfx,
        opts?.rejectUnauthorized,
        opts?.servername,
      ]);
      if (!cache.has(key)) cache.set(key, original.call(this, cluster, opts));
      return cache.get(key);
    };
  }
  return {
    async close() {
      await Promise.all([...cache.values()].map((d) => d?.close?.().catch(() => undefined)));
      cache.clear();
    },
  };
}

/**
 * The `K8sApi` over `@kubernetes/client-node` 2.x for one cluster.
 *
 * @example
 * const api = await clientNodeApi({ kubeconfig: "~/.kube/config", context: "prod" });
 */
export async function clientNodeApi(source: KubeconfigSource): Promise<K8sApi> {
  const k8s = await loadClientNode();
  const kc = new k8s.KubeConfig();
  const cfg = source.kubeconfig;
  if (typeof cfg === "object") kc.loadFromOptions(cfg);
  else if (/\n/.test(cfg) || /^\s*(apiVersion|kind|clusters)\s*:/.test(cfg)) kc.loadFromString(cfg);
  else kc.loadFromFile(cfg.startsWith("~/") ? `${process.env.HOME ?? ""}${cfg.slice(1)}` : cfg);
  if (source.context) kc.setCurrentContext(source.context);
  const connections = reuseConnections(kc);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const custom = kc.makeApiClient(k8s.CustomObjectsApi);
  const versionApi = kc.makeApiClient(k8s.VersionApi);
  const watcher = new k8s.Watch(kc);
  const logger = new k8s.Log(kc);
  const isPods = (r: ResourceRef) => r.group === "" && r.plural === "pods";
  const crd = (r: ResourceRef, namespace: string) => ({
    group: r.group,
    version: r.version,
    plural: r.plural,
    namespace,
  });
  const call = async <T>(what: string, f: () => Promise<unknown>): Promise<T> => {
    try {
      return plain<T>(await f());
    } catch (e) {
      throw toApiError(e, what);
    }
  };
  return {
    create: (res, namespace, body) =>
      call(`create ${res.plural} ${namespace}/${body.metadata.name}`, () =>
        isPods(res)
          ? core.createNamespacedPod({ namespace, body: body as never })
          : custom.createNamespacedCustomObject({ ...crd(res, namespace), body }),
      ),
    get: (res, namespace, name) =>
      call(`get ${res.plural} ${namespace}/${name}`, () =>
        isPods(res)
          ? core.readNamespacedPod({ name, namespace })
          : custom.getNamespacedCustomObject({ ...crd(res, namespace), name }),
      ),
    list: async (res, namespace, labelSelector) => {
      const out = await call<{ items: K8sObject[]; metadata?: { resourceVersion?: string } }>(
        `list ${res.plural} in ${namespace}`,
        () =>
          isPods(res)
            ? core.listNamespacedPod({ namespace, labelSelector })
            : custom.listNamespacedCustomObject({ ...crd(res, namespace), labelSelector }),
      );
      return { items: out.items ?? [], resourceVersion: out.metadata?.resourceVersion ?? "" };
    },
    delete: async (res, namespace, name, opts = {}) => {
      const what = `delete ${res.plural} ${namespace}/${name}`;
      try {
        // The answer (the object being deleted) is not needed.
        await (isPods(res)
          ? core.deleteNamespacedPod({
              name,
              namespace,
              gracePeriodSeconds: opts.gracePeriodSeconds,
              propagationPolicy: "Background",
            })
          : custom.deleteNamespacedCustomObject({
              ...crd(res, namespace),
              name,
              gracePeriodSeconds: opts.gracePeriodSeconds,
              propagationPolicy: "Background",
            }));
      } catch (e) {
        throw toApiError(e, what);
      }
    },
    watch: async (res, namespace, opts, onEvent, onDone) => {
      const path =
        res.group === ""
          ? `/api/${res.version}/namespaces/${namespace}/${res.plural}`
          : `/apis/${res.group}/${res.version}/namespaces/${namespace}/${res.plural}`;
      let stopped = false;
      let ac: AbortController | undefined;
      try {
        ac = await watcher.watch(
          path,
          {
            labelSelector: opts.labelSelector,
            resourceVersion: opts.resourceVersion,
            allowWatchBookmarks: true,
          },
          (type, obj) => {
            if (!stopped) onEvent(type as WatchEventType, obj as K8sObject);
          },
          (err) => {
            if (stopped) return;
            stopped = true;
            onDone(err ? toApiError(err, `watch ${res.plural} in ${namespace}`) : undefined);
          },
        );
      } catch (e) {
        stopped = true;
        throw toApiError(e, `watch ${res.plural} in ${namespace}`);
      }
      return {
        stop: () => {
          stopped = true;
          ac?.abort();
        },
      };
    },
    logs: (namespace, pod, container, opts = {}) => ({
      async *[Symbol.asyncIterator]() {
        const out = new PassThrough();
        let ac: AbortController;
        try {
          ac = await logger.log(namespace, pod, container, out, {
            follow: opts.follow ?? false,
            ...(opts.tailLines !== undefined ? { tailLines: opts.tailLines } : {}),
          });
        } catch (e) {
          out.destroy();
          throw toApiError(e, `logs of pod ${namespace}/${pod}`);
        }
        const onAbort = () => {
          ac.abort();
          out.end();
        };
        opts.signal?.addEventListener("abort", onAbort, { once: true });
        try {
          for await (const line of createInterface({ input: out, crlfDelay: Number.POSITIVE_INFINITY }))
            yield line;
        } finally {
          opts.signal?.removeEventListener("abort", onAbort);
          ac.abort();
        }
      },
    }),
    version: () => call(`GET /version`, () => versionApi.getCode()),
    close: () => connections.close(),
  };
}
