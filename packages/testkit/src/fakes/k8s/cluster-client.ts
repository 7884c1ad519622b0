/**
 * In-process access to the fake cluster's objects for tests and fake controllers: the same
 * semantics (validation, resourceVersions, watch events) as the HTTP API, without HTTP.
 */
import type { Cluster } from "./cluster.js";
import { CORE_RESOURCES } from "./resources.js";
import { parseLabelSelector } from "./selectors.js";
import { resourceKey } from "./store.js";
import type { KubeObject, ResourceType } from "./types.js";

/** Names a resource. `group: ""` is core/v1 (pods, secrets…). */
export interface ResourceRef {
  group: string;
  /** Defaults to `v1`. */
  version?: string;
  plural: string;
}

export type ObjectEventType = "ADDED" | "MODIFIED" | "DELETED";

export type ObjectListener = (
  type: ObjectEventType,
  obj: KubeObject,
  previous: KubeObject | undefined,
) => void;

export interface ClusterClient {
  /**
   * Creates an object (the namespace is ignored for cluster-scoped resources); any JSON-shaped
   * object is accepted (client-node's `V1Pod` included) and validated. Throws StatusError.
   */
  create(ref: ResourceRef, namespace: string | undefined, obj: object): KubeObject;
  get(ref: ResourceRef, namespace: string | undefined, name: string): KubeObject | undefined;
  list(ref: ResourceRef, namespace?: string, labelSelector?: string): KubeObject[];
  /** JSON merge patch of the object (spec, metadata). */
  patch(ref: ResourceRef, namespace: string | undefined, name: string, patch: unknown): KubeObject;
  /** JSON merge patch of `status` (wrap nothing: pass `{phase: "Running"}`, not `{status: …}`). */
  patchStatus(ref: ResourceRef, namespace: string | undefined, name: string, status: unknown): KubeObject;
  /** Deletes like a client would (graceful for running pods, honours finalizers, garbage-collects dependents). */
  delete(
    ref: ResourceRef,
    namespace: string | undefined,
    name: string,
    opts?: { gracePeriodSeconds?: number },
  ): void;
  /** Calls `listener` for every change to objects of this resource. Returns an unsubscribe function. */
  on(ref: ResourceRef, listener: ObjectListener): () => void;
}

/** Resolves a ref to the resource descriptor the cluster uses. */
export function resolveRef(cluster: Cluster, ref: ResourceRef, namespaced = true): ResourceType {
  if (!ref.group) {
    const core = CORE_RESOURCES[ref.plural];
    if (!core) throw new Error(`the fake does not serve core resource "${ref.plural}"`);
    return core;
  }
  return cluster.registry.custom(ref.group, ref.version ?? "v1", ref.plural, namespaced);
}

export function clusterClient(cluster: Cluster): ClusterClient {
  return {
    create: (ref, ns, obj) => cluster.create(resolveRef(cluster, ref, ns !== undefined), ns, obj),
    get: (ref, ns, name) => cluster.tryGet(resolveRef(cluster, ref, ns !== undefined), ns, name),
    list: (ref, ns, selector) =>
      cluster.list(resolveRef(cluster, ref), ns, parseLabelSelector(selector)).items,
    patch: (ref, ns, name, patch) =>
      cluster.patch(
        resolveRef(cluster, ref, ns !== undefined),
        ns,
        name,
        patch,
        "application/merge-patch+json",
      ),
    patchStatus: (ref, ns, name, status) =>
      cluster.patch(
        resolveRef(cluster, ref, ns !== undefined),
        ns,
        name,
        { status },
        "application/merge-patch+json",
        "status",
      ),
    delete: (ref, ns, name, opts) => {
      cluster.delete(resolveRef(cluster, ref, ns !== undefined), ns, name, opts);
    },
    on: (ref, listener) => {
      const key = resourceKey(ref.group, ref.plural);
      return cluster.store.subscribe((e) => {
        if (e.resource === key)
          listener(e.type, structuredClone(e.object), e.previous && structuredClone(e.previous));
      });
    },
  };
}
