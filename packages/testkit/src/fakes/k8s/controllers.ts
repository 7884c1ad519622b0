/**
 * The hook fake operators (Spark, Ray, MPI…) plug into: `registerController(group, plural, c)`.
 *
 * Like a real controller, a fake one reacts to changes *after* the API call that caused them has
 * been answered (hooks run on a later tick), and works through the same API (`ctx.cluster`), so
 * its status writes reach watchers as ordinary MODIFIED events. Hooks for one object run one at a
 * time and in order; `ctx.signal` is aborted when the object is deleted or the fake closes, so a
 * controller's timers and loops can stop.
 */
import type { Cluster } from "./cluster.js";
import { type ClusterClient, clusterClient, type ResourceRef } from "./cluster-client.js";
import { resourceKey, type StoreEvent } from "./store.js";
import type { KubeObject } from "./types.js";

export interface ControllerContext {
  /** In-process API of the fake cluster (create pods owned by this object, read secrets…). */
  readonly cluster: ClusterClient;
  /** Resource of the object this call is about (group, version from its apiVersion, plural). */
  readonly ref: ResourceRef;
  /** Aborted when the object is deleted or the fake closes. */
  readonly signal: AbortSignal;
  /** The object's current stored state (undefined once deleted). */
  current(): KubeObject | undefined;
  /** Merge-patches the object's `status`; returns undefined (and does nothing) once it is gone. */
  patchStatus(status: Record<string, unknown>): KubeObject | undefined;
  /** Resolves after `ms`, or early (with false) when `signal` aborts. */
  sleep(ms: number): Promise<boolean>;
}

/**
 * A fake operator for one custom resource. Every hook is optional and may be async; errors are
 * reported as process warnings and do not stop the fake.
 */
export interface CustomResourceController {
  created?(obj: KubeObject, ctx: ControllerContext): void | Promise<void>;
  /** Any change, status writes included (compare `metadata.generation` to react to spec changes only). */
  updated?(obj: KubeObject, previous: KubeObject, ctx: ControllerContext): void | Promise<void>;
  deleted?(obj: KubeObject, ctx: ControllerContext): void | Promise<void>;
}

interface Registration {
  group: string;
  plural: string;
  controller: CustomResourceController;
}

interface PerObject {
  abort: AbortController;
  /** Serialises hook calls for one object. */
  chain: Promise<void>;
}

export class Controllers {
  readonly #registrations: Registration[] = [];
  readonly #objects = new Map<string, PerObject>();
  readonly #client: ClusterClient;
  readonly #pending = new Set<Promise<void>>();
  #closed = false;
  readonly #unsubscribe: () => void;

  constructor(readonly cluster: Cluster) {
    this.#client = clusterClient(cluster);
    this.#unsubscribe = cluster.store.subscribe((e) => this.#onEvent(e));
  }

  register(group: string, plural: string, controller: CustomResourceController): { unregister(): void } {
    const reg = { group, plural, controller };
    this.#registrations.push(reg);
    return {
      unregister: () => {
        const i = this.#registrations.indexOf(reg);
        if (i >= 0) this.#registrations.splice(i, 1);
      },
    };
  }

  /** Aborts every object's signal and waits (briefly) for running hooks to settle. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#unsubscribe();
    for (const o of this.#objects.values()) o.abort.abort();
    const settle = Promise.allSettled([...this.#pending]);
    await Promise.race([settle, new Promise((r) => setTimeout(r, 2000).unref())]);
  }

  #onEvent(e: StoreEvent): void {
    if (this.#closed) return;
    const regs = this.#registrations.filter((r) => resourceKey(r.group, r.plural) === e.resource);
    if (regs.length === 0) return;
    const obj = e.object;
    const uid = obj.metadata.uid ?? `${obj.metadata.namespace}/${obj.metadata.name}`;
    let per = this.#objects.get(uid);
    if (!per) {
      per = { abort: new AbortController(), chain: Promise.resolve() };
      this.#objects.set(uid, per);
    }
    const version = (obj.apiVersion ?? "").split("/")[1] ?? "v1";
    const [group, plural] = [regs[0].group, regs[0].plural];
    const ref: ResourceRef = { group, version, plural };
    const ctx = this.#context(ref, obj, per.abort.signal);
    const snapshot = structuredClone(obj);
    const previous = e.previous && structuredClone(e.previous);
    const state = per;
    if (e.type === "DELETED") this.#objects.delete(uid);

    for (const { controller } of regs) {
      const call = async () => {
        if (e.type === "ADDED") await controller.created?.(snapshot, ctx);
        else if (e.type === "MODIFIED") await controller.updated?.(snapshot, previous!, ctx);
        else {
          state.abort.abort();
          await controller.deleted?.(snapshot, ctx);
        }
      };
      const run = state.chain
        .then(() => new Promise<void>((r) => setImmediate(r)))
        .then(call)
        .catch((err) => {
          process.emitWarning(
            `fake kubernetes: controller for ${plural}.${group} failed: ${(err as Error)?.stack ?? err}`,
          );
        });
      state.chain = run;
      this.#pending.add(run);
      void run.finally(() => this.#pending.delete(run));
    }
  }

  #context(ref: ResourceRef, obj: KubeObject, signal: AbortSignal): ControllerContext {
    const ns = obj.metadata.namespace;
    const name = obj.metadata.name!;
    const client = this.#client;
    return {
      cluster: client,
      ref,
      signal,
      current: () => client.get(ref, ns, name),
      patchStatus: (status) => {
        if (signal.aborted || !client.get(ref, ns, name)) return undefined;
        return client.patchStatus(ref, ns, name, status);
      },
      sleep: (ms) =>
        new Promise<boolean>((resolve) => {
          if (signal.aborted) return resolve(false);
          const t = setTimeout(() => {
            signal.removeEventListener("abort", onAbort);
            resolve(true);
          }, ms);
          const onAbort = () => {
            clearTimeout(t);
            resolve(false);
          };
          signal.addEventListener("abort", onAbort, { once: true });
        }),
    };
  }
}
