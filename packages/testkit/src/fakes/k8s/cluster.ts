/**
 * The API server's semantics on top of the raw store: defaults, validation, optimistic
 * concurrency, the status subresource, graceful pod deletion, finalizers and owner-reference
 * garbage collection. Both the HTTP router and in-process code (kubelet, controllers, the control
 * API) go through this class, so every write obeys the same rules and produces the same events.
 */
import { randomUUID } from "node:crypto";
import { alreadyExists, badRequest, conflict, invalid, notFound, StatusError } from "./errors.js";
import { applyPatch } from "./patch.js";
import { parseQuantity } from "./quantity.js";
import { apiVersionOf, NAMESPACES, PODS, ResourceRegistry, SECRETS } from "./resources.js";
import { matchesFields, matchesLabels, type Selector } from "./selectors.js";
import { clone, resourceKey, type Store, type StoreEvent } from "./store.js";
import type { KubeObject, Pod, ResourceType } from "./types.js";
import { canonicalJson, isTerminalPhase, randomSuffix, rfc3339 } from "./util.js";
import { isDnsLabel, validateGeneric, validatePod, validatePodUpdate } from "./validation.js";

export interface DeleteOptions {
  gracePeriodSeconds?: number;
  propagationPolicy?: "Background" | "Foreground" | "Orphan";
  preconditions?: { uid?: string; resourceVersion?: string };
  dryRun?: boolean;
}

export interface DeleteResult {
  /** The object as of the deletion, carrying `deletionTimestamp`. */
  object: KubeObject;
  /** True when the object is gone already; false while a kubelet or a finalizer holds it. */
  removed: boolean;
}

export interface ListResult {
  items: KubeObject[];
  resourceVersion: number;
}

export type Subresource = "status" | undefined;

function keyOf(namespace: string | undefined, name: string): string {
  return `${namespace ?? ""}/${name}`;
}

/** Namespaces that exist from the start, as on a fresh cluster. */
const INITIAL_NAMESPACES = ["default", "kube-system", "kube-public", "kube-node-lease"];

export class Cluster {
  readonly store: Store;
  readonly registry = new ResourceRegistry();
  // Owners deleted with propagationPolicy=Orphan: their dependents lose the ownerReference instead.
  readonly #orphanUids = new Set<string>();
  // Pods in graceful deletion whose kubelet has not finished yet; finalizer removal must not drop them early.
  readonly #awaitingKubelet = new Set<string>();

  constructor(store: Store) {
    this.store = store;
    for (const ns of INITIAL_NAMESPACES) this.ensureNamespace(ns);
    store.subscribe((event) => this.#collectGarbage(event));
  }

  /** Namespaces exist implicitly: the first object created in one materialises it. */
  ensureNamespace(namespace: string): void {
    const key = resourceKey("", "namespaces");
    if (this.store.has(key, undefined, namespace)) return;
    if (!isDnsLabel(namespace)) throw notFound(NAMESPACES, namespace);
    this.create(NAMESPACES, undefined, {
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name: namespace },
    });
  }

  get(res: ResourceType, namespace: string | undefined, name: string): KubeObject {
    const obj = this.store.get(resourceKey(res.group, res.plural), nsOf(res, namespace), name);
    if (!obj) throw notFound(res, name);
    return obj;
  }

  tryGet(res: ResourceType, namespace: string | undefined, name: string): KubeObject | undefined {
    return this.store.get(resourceKey(res.group, res.plural), nsOf(res, namespace), name);
  }

  list(res: ResourceType, namespace?: string, labels: Selector = [], fields: Selector = []): ListResult {
    const items = this.store
      .list(resourceKey(res.group, res.plural), res.namespaced ? namespace : undefined)
      .filter((o) => matchesLabels(labels, o.metadata.labels) && matchesFields(fields, o));
    return { items, resourceVersion: this.store.resourceVersion };
  }

  create(
    res: ResourceType,
    namespace: string | undefined,
    body: unknown,
    opts: { dryRun?: boolean } = {},
  ): KubeObject {
    const obj = requireObject(body);
    const ns = nsOf(res, namespace);
    if (ns !== undefined && obj.metadata.namespace !== undefined && obj.metadata.namespace !== ns) {
      throw badRequest(
        "the namespace of the provided object does not match the namespace sent on the request",
      );
    }
    const key = resourceKey(res.group, res.plural);
    if (!obj.metadata.name && obj.metadata.generateName) {
      // Like the API server, retry on the (unlikely) collision instead of failing the create.
      do obj.metadata.name = `${obj.metadata.generateName}${randomSuffix()}`;
      while (this.store.has(key, ns, obj.metadata.name));
    }
    const name = obj.metadata.name ?? "";
    const causes =
      res === PODS
        ? validatePod(obj as Pod)
        : validateGeneric(obj, res === NAMESPACES ? "label" : "subdomain");
    if (causes.length > 0) throw invalid(res, name, causes);
    if (this.store.has(key, ns, name)) throw alreadyExists(res, name);

    if (res.group) this.registry.learnKind(res.group, res.plural, obj.kind);
    obj.apiVersion ??= apiVersionOf(res);
    obj.kind ??= res.kind;
    const meta = obj.metadata;
    delete meta.resourceVersion;
    delete meta.deletionTimestamp;
    delete meta.deletionGracePeriodSeconds;
    meta.uid = randomUUID();
    meta.creationTimestamp = rfc3339();
    meta.generation = 1;
    if (ns !== undefined) meta.namespace = ns;
    else delete meta.namespace;

    if (res === PODS) defaultPod(obj as Pod);
    else if (res === SECRETS) normaliseSecret(obj);
    else if (res === NAMESPACES) {
      meta.labels = { ...(meta.labels ?? {}), "kubernetes.io/metadata.name": name };
      obj.spec = { finalizers: ["kubernetes"], ...(obj.spec ?? {}) };
      obj.status = { phase: "Active" };
    } else if (res.group) delete obj.status; // the status subresource owns status; create drops it
    if (opts.dryRun) return obj;
    if (ns !== undefined) this.ensureNamespace(ns);
    return this.store.create(key, obj);
  }

  /** PUT of the object or of its `status` subresource. */
  update(
    res: ResourceType,
    namespace: string | undefined,
    name: string,
    body: unknown,
    sub?: Subresource,
  ): KubeObject {
    const obj = requireObject(body);
    if (obj.metadata.name !== undefined && obj.metadata.name !== name) {
      throw badRequest(
        `the name of the object (${obj.metadata.name}) does not match the name on the URL (${name})`,
      );
    }
    const current = this.get(res, namespace, name);
    const rv = obj.metadata.resourceVersion;
    if (rv !== undefined && rv !== "" && rv !== current.metadata.resourceVersion) throw conflict(res, name);
    return this.#write(res, current, obj, sub);
  }

  /** PATCH (json, merge or strategic-merge) of the object or of its `status` subresource. */
  patch(
    res: ResourceType,
    namespace: string | undefined,
    name: string,
    body: unknown,
    contentType: string | undefined,
    sub?: Subresource,
  ): KubeObject {
    const current = this.get(res, namespace, name);
    const patched = applyPatch(current, body, contentType) as KubeObject;
    const obj = requireObject(patched);
    // A patch that carries metadata.resourceVersion is a precondition, exactly like a PUT's.
    if (obj.metadata.resourceVersion !== current.metadata.resourceVersion) throw conflict(res, name);
    if (obj.metadata.name !== name) throw badRequest("metadata.name cannot be changed by a patch");
    return this.#write(res, current, obj, sub);
  }

  #write(res: ResourceType, current: KubeObject, incoming: KubeObject, sub: Subresource): KubeObject {
    let next: KubeObject;
    if (sub === "status") {
      next = clone(current);
      next.status = incoming.status;
    } else {
      next = clone(incoming);
      // Server-owned metadata can't be changed by clients; status belongs to the subresource.
      const keep = current.metadata;
      next.metadata = {
        ...incoming.metadata,
        uid: keep.uid,
        creationTimestamp: keep.creationTimestamp,
        generation: keep.generation,
        namespace: keep.namespace,
        name: keep.name,
      };
      if (keep.deletionTimestamp) {
        next.metadata.deletionTimestamp = keep.deletionTimestamp;
        next.metadata.deletionGracePeriodSeconds = keep.deletionGracePeriodSeconds;
      } else {
        delete next.metadata.deletionTimestamp;
        delete next.metadata.deletionGracePeriodSeconds;
      }
      if (!keep.namespace) delete next.metadata.namespace;
      next.apiVersion ??= current.apiVersion;
      next.kind ??= current.kind;
      if (current.status !== undefined) next.status = current.status;
      else delete next.status;
      if (canonicalJson(current.spec) !== canonicalJson(next.spec)) {
        next.metadata.generation = (keep.generation ?? 1) + 1;
      }
      const name = keep.name!;
      const causes =
        res === PODS
          ? [...validatePod(next as Pod), ...validatePodUpdate(current as Pod, next as Pod)]
          : validateGeneric(next, res === NAMESPACES ? "label" : "subdomain");
      if (causes.length > 0) throw invalid(res, name, causes);
    }
    const key = resourceKey(res.group, res.plural);
    const stored = this.store.update(key, next);
    if (!stored) throw notFound(res, current.metadata.name!);
    this.#maybeFinishDeletion(res, stored);
    return this.store.get(key, stored.metadata.namespace, stored.metadata.name!) ?? stored;
  }

  /**
   * In-process read-modify-write (kubelet, controllers, control API). `mutate` edits a copy;
   * returning `false` skips the write. Returns the stored object, or undefined if it is gone.
   */
  mutate(
    res: ResourceType,
    namespace: string | undefined,
    name: string,
    mutate: (obj: KubeObject) => void | false,
  ): KubeObject | undefined {
    const key = resourceKey(res.group, res.plural);
    const current = this.store.get(key, nsOf(res, namespace), name);
    if (!current) return undefined;
    if (mutate(current) === false) return current;
    const stored = this.store.update(key, current);
    if (stored) this.#maybeFinishDeletion(res, stored);
    return stored;
  }

  delete(
    res: ResourceType,
    namespace: string | undefined,
    name: string,
    opts: DeleteOptions = {},
  ): DeleteResult {
    const current = this.get(res, namespace, name);
    const pre = opts.preconditions;
    if (pre?.uid && pre.uid !== current.metadata.uid) throw conflict(res, name);
    if (pre?.resourceVersion && pre.resourceVersion !== current.metadata.resourceVersion)
      throw conflict(res, name);
    if (opts.propagationPolicy === "Orphan" && current.metadata.uid)
      this.#orphanUids.add(current.metadata.uid);

    const key = resourceKey(res.group, res.plural);
    const ns = current.metadata.namespace;
    const grace = res === PODS ? podGracePeriod(current as Pod, opts) : 0;
    const now = new Date();
    // Like the API server: unscheduled and finished pods go at once; running ones wait for their
    // kubelet. A pod bound to a node that does not exist has no kubelet: it goes at once too (on a
    // real cluster the pod garbage collector would remove it).
    const nodeName = (current as Pod).spec?.nodeName;
    const graceful =
      res === PODS &&
      grace > 0 &&
      Boolean(nodeName && this.store.has(resourceKey("", "nodes"), undefined, nodeName)) &&
      !isTerminalPhase((current as Pod).status?.phase);

    if (current.metadata.deletionTimestamp && !(grace === 0 && res === PODS)) {
      // Already terminating: a second DELETE just reports the state (the real server may shorten the grace).
      return { object: current, removed: false };
    }
    const marked = clone(current);
    marked.metadata.deletionTimestamp = rfc3339(new Date(now.getTime() + (graceful ? grace * 1000 : 0)));
    marked.metadata.deletionGracePeriodSeconds = graceful ? grace : 0;
    if (opts.dryRun) return { object: marked, removed: false };

    if (graceful) {
      // The kubelet sees deletionTimestamp (MODIFIED), stops the containers, then calls finishPodDeletion.
      this.#awaitingKubelet.add(keyOf(ns, name));
      return { object: this.store.update(key, marked) ?? marked, removed: false };
    }
    this.#awaitingKubelet.delete(keyOf(ns, name));
    if ((current.metadata.finalizers ?? []).length > 0) {
      return { object: this.store.update(key, marked) ?? marked, removed: false };
    }
    this.store.remove(key, ns, name);
    return { object: marked, removed: true };
  }

  /** Called by the kubelet when a gracefully deleted pod's containers have all stopped. */
  finishPodDeletion(namespace: string, name: string): void {
    this.#awaitingKubelet.delete(keyOf(namespace, name));
    const pod = this.tryGet(PODS, namespace, name);
    if (pod) this.#maybeFinishDeletion(PODS, pod);
  }

  /** Removes an object at once, bypassing grace periods and finalizers (the control API's `lose`). */
  removeNow(res: ResourceType, namespace: string | undefined, name: string): KubeObject | undefined {
    this.#awaitingKubelet.delete(keyOf(namespace, name));
    return this.store.remove(resourceKey(res.group, res.plural), nsOf(res, namespace), name);
  }

  #maybeFinishDeletion(res: ResourceType, obj: KubeObject): void {
    const meta = obj.metadata;
    if (!meta.deletionTimestamp || (meta.finalizers ?? []).length > 0) return;
    if (res === PODS && this.#awaitingKubelet.has(keyOf(meta.namespace, meta.name!))) return;
    this.store.remove(resourceKey(res.group, res.plural), meta.namespace, meta.name!);
  }

  /**
   * Owner-reference garbage collection: when an owner disappears, delete its dependents
   * (Background and Foreground are treated alike), or strip the reference for Orphan.
   */
  #collectGarbage(event: StoreEvent): void {
    if (event.type !== "DELETED") return;
    if (event.resource === resourceKey("", "namespaces")) {
      this.#emptyNamespace(event.object.metadata.name!);
      return;
    }
    const uid = event.object.metadata.uid;
    if (!uid) return;
    const orphan = this.#orphanUids.delete(uid);
    for (const resource of this.store.resources()) {
      for (const dep of this.store.list(resource)) {
        const refs = dep.metadata.ownerReferences ?? [];
        if (!refs.some((r) => r.uid === uid)) continue;
        const res = this.#resourceFor(resource, dep);
        if (orphan) {
          this.mutate(res, dep.metadata.namespace, dep.metadata.name!, (o) => {
            o.metadata.ownerReferences = refs.filter((r) => r.uid !== uid);
          });
        } else if (!dep.metadata.deletionTimestamp) {
          try {
            this.delete(res, dep.metadata.namespace, dep.metadata.name!, { propagationPolicy: "Background" });
          } catch (err) {
            if (!(err instanceof StatusError && err.code === 404)) throw err;
          }
        }
      }
    }
  }

  /** A deleted namespace takes everything in it along (at once; the fake skips the Terminating phase). */
  #emptyNamespace(namespace: string): void {
    for (const resource of this.store.resources()) {
      for (const obj of this.store.list(resource, namespace)) {
        this.#awaitingKubelet.delete(keyOf(namespace, obj.metadata.name!));
        this.store.remove(resource, namespace, obj.metadata.name!);
      }
    }
  }

  #resourceFor(key: string, obj: KubeObject): ResourceType {
    const [group, plural] = key.split("/");
    if (group === "core") {
      return {
        ...(key === resourceKey("", "pods")
          ? PODS
          : { group: "", version: "v1", plural, kind: obj.kind ?? plural, namespaced: true }),
      };
    }
    const version = (obj.apiVersion ?? "").split("/")[1] ?? "v1";
    return this.registry.custom(group, version, plural, Boolean(obj.metadata.namespace));
  }
}

function nsOf(res: ResourceType, namespace: string | undefined): string | undefined {
  return res.namespaced ? namespace : undefined;
}

function requireObject(body: unknown): KubeObject {
  if (!body || typeof body !== "object" || Array.isArray(body)) {
    throw badRequest("the request body must be a JSON object");
  }
  const obj = clone(body) as KubeObject;
  if (!obj.metadata || typeof obj.metadata !== "object") obj.metadata = {};
  return obj;
}

function podGracePeriod(pod: Pod, opts: DeleteOptions): number {
  const g = opts.gracePeriodSeconds ?? pod.spec.terminationGracePeriodSeconds ?? 30;
  return Math.max(0, Math.floor(Number(g) || 0));
}

/** Defaults the API server (and its admission plugins) fill into a new pod. */
function defaultPod(pod: Pod): void {
  const spec = pod.spec;
  spec.restartPolicy ??= "Always";
  spec.terminationGracePeriodSeconds ??= 30;
  spec.schedulerName ??= "default-scheduler";
  spec.dnsPolicy ??= "ClusterFirst";
  for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
    const tagged = /:[^/]+$/.test(c.image ?? "") || (c.image ?? "").includes("@");
    c.imagePullPolicy ??= !tagged || (c.image ?? "").endsWith(":latest") ? "Always" : "IfNotPresent";
    c.terminationMessagePath ??= "/dev/termination-log";
    c.terminationMessagePolicy ??= "File";
    // Requests default to limits when only limits are given.
    if (c.resources?.limits) {
      c.resources.requests = { ...c.resources.limits, ...(c.resources.requests ?? {}) };
    }
  }
  pod.status = { phase: "Pending", qosClass: qosClass(pod) };
}

function qosClass(pod: Pod): string {
  const containers = [...(pod.spec.initContainers ?? []), ...pod.spec.containers];
  const any = containers.some(
    (c) =>
      Object.keys(c.resources?.requests ?? {}).length + Object.keys(c.resources?.limits ?? {}).length > 0,
  );
  if (!any) return "BestEffort";
  const guaranteed = containers.every((c) =>
    ["cpu", "memory"].every((r) => {
      const limit = c.resources?.limits?.[r];
      const request = c.resources?.requests?.[r] ?? limit;
      return limit !== undefined && parseQuantity(limit) === parseQuantity(request);
    }),
  );
  return guaranteed ? "Guaranteed" : "Burstable";
}

/** Secrets: `stringData` is write-only sugar the server folds into base64 `data`. */
function normaliseSecret(secret: KubeObject): void {
  const data: Record<string, string> = { ...((secret.data as Record<string, string>) ?? {}) };
  for (const [k, v] of Object.entries((secret.stringData as Record<string, string>) ?? {})) {
    data[k] = Buffer.from(String(v)).toString("base64");
  }
  secret.data = data;
  delete secret.stringData;
  secret.type ??= "Opaque";
}
