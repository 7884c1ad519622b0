/**
 * In-memory versioned object store: the fake's etcd.
 *
 * One global resourceVersion counter is bumped on every write and stamped on the written object,
 * exactly as PROTOCOLS §1.2 asks. Every write is also appended to a bounded event history so a
 * watch can resume from an older resourceVersion; once history has been dropped past a
 * resourceVersion, resuming from it is "too old" (410), which is what forces informers to re-list.
 *
 * The store has no Kubernetes semantics (validation, grace periods, GC): see cluster.ts.
 */
import type { KubeObject } from "./types.js";

export type WatchEventType = "ADDED" | "MODIFIED" | "DELETED";

/** One write, as seen by watchers and in-process listeners. Objects are frozen snapshots. */
export interface StoreEvent {
  type: WatchEventType;
  /** Resource key, see {@link resourceKey}. */
  resource: string;
  rv: number;
  object: KubeObject;
  /** The object before a MODIFIED write (lets label-filtered watches turn it into ADDED/DELETED). */
  previous?: KubeObject;
}

export type StoreListener = (event: StoreEvent) => void;

/** `group/plural`, with `core` for the core group: the key objects are stored under. */
export function resourceKey(group: string, plural: string): string {
  return `${group || "core"}/${plural}`;
}

function objectKey(namespace: string | undefined, name: string): string {
  return `${namespace ?? ""}/${name}`;
}

/** Deep clone so no caller can mutate stored state behind the store's back. */
export function clone<T>(value: T): T {
  return structuredClone(value);
}

export class Store {
  #rv = 0;
  #compactedRv = 0;
  readonly #objects = new Map<string, Map<string, KubeObject>>();
  #history: StoreEvent[] = [];
  readonly #listeners = new Set<StoreListener>();
  // Events raised while listeners run are queued, so every listener sees events in RV order even
  // when a listener writes to the store synchronously.
  readonly #pending: StoreEvent[] = [];
  #dispatching = false;

  constructor(
    /** How many events to keep for watch resumption. */
    private readonly historyLimit = 1000,
  ) {}

  /** Latest resourceVersion handed out. */
  get resourceVersion(): number {
    return this.#rv;
  }

  /** Watches (and continue tokens) resuming from a resourceVersion below this get 410 Expired. */
  get compactedResourceVersion(): number {
    return this.#compactedRv;
  }

  get(resource: string, namespace: string | undefined, name: string): KubeObject | undefined {
    const obj = this.#objects.get(resource)?.get(objectKey(namespace, name));
    return obj ? clone(obj) : undefined;
  }

  has(resource: string, namespace: string | undefined, name: string): boolean {
    return this.#objects.get(resource)?.has(objectKey(namespace, name)) ?? false;
  }

  /** Objects of a resource, optionally in one namespace, sorted by namespace then name (stable pages). */
  list(resource: string, namespace?: string): KubeObject[] {
    const all = [...(this.#objects.get(resource)?.entries() ?? [])];
    all.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return all
      .map(([, obj]) => obj)
      .filter((obj) => namespace === undefined || obj.metadata.namespace === namespace)
      .map(clone);
  }

  /** Every resource key that holds (or held) objects. */
  resources(): string[] {
    return [...this.#objects.keys()];
  }

  /** Stores a new object; the caller has checked the name is free. Returns the stored copy. */
  create(resource: string, obj: KubeObject): KubeObject {
    const stored = clone(obj);
    stored.metadata.resourceVersion = String(++this.#rv);
    let bucket = this.#objects.get(resource);
    if (!bucket) {
      bucket = new Map();
      this.#objects.set(resource, bucket);
    }
    bucket.set(objectKey(stored.metadata.namespace, stored.metadata.name!), stored);
    this.#emit({ type: "ADDED", resource, rv: this.#rv, object: stored });
    return clone(stored);
  }

  /** Replaces an existing object. Returns the stored copy, or undefined when it no longer exists. */
  update(resource: string, obj: KubeObject): KubeObject | undefined {
    const key = objectKey(obj.metadata.namespace, obj.metadata.name!);
    const bucket = this.#objects.get(resource);
    const previous = bucket?.get(key);
    if (!bucket || !previous) return undefined;
    const stored = clone(obj);
    stored.metadata.resourceVersion = String(++this.#rv);
    bucket.set(key, stored);
    this.#emit({ type: "MODIFIED", resource, rv: this.#rv, object: stored, previous });
    return clone(stored);
  }

  /**
   * Removes an object. Like etcd, the DELETED event carries the final state stamped with the
   * deletion's own resourceVersion, so a watcher's resume point moves past the deletion.
   */
  remove(resource: string, namespace: string | undefined, name: string): KubeObject | undefined {
    const key = objectKey(namespace, name);
    const bucket = this.#objects.get(resource);
    const previous = bucket?.get(key);
    if (!bucket || !previous) return undefined;
    bucket.delete(key);
    const last = clone(previous);
    last.metadata.resourceVersion = String(++this.#rv);
    this.#emit({ type: "DELETED", resource, rv: this.#rv, object: last });
    return clone(last);
  }

  /**
   * Events after `rv`, oldest first, or `undefined` when some of them were already dropped
   * (the caller must answer 410 Expired).
   */
  eventsSince(rv: number): StoreEvent[] | undefined {
    if (rv < this.#compactedRv) return undefined;
    return this.#history.filter((e) => e.rv > rv);
  }

  /**
   * Drops the whole event history and declares every resourceVersion handed out so far too old:
   * a watch or `continue` token resuming from any of them gets 410, which forces clients to re-list.
   */
  compact(): void {
    this.#history = [];
    this.#compactedRv = this.#rv + 1;
  }

  /** In-process subscription to every write. Returns an unsubscribe function. */
  subscribe(listener: StoreListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #emit(event: StoreEvent): void {
    Object.freeze(event);
    this.#history.push(event);
    if (this.#history.length > this.historyLimit) {
      const dropped = this.#history.splice(0, this.#history.length - this.historyLimit);
      this.#compactedRv = Math.max(this.#compactedRv, dropped[dropped.length - 1].rv);
    }
    this.#pending.push(event);
    if (this.#dispatching) return;
    this.#dispatching = true;
    try {
      while (this.#pending.length > 0) {
        const next = this.#pending.shift()!;
        for (const listener of [...this.#listeners]) {
          try {
            listener(next);
          } catch (err) {
            // A broken listener (e.g. a test's controller) must not corrupt the store or starve others.
            process.emitWarning(`fake kubernetes: store listener threw: ${(err as Error)?.stack ?? err}`);
          }
        }
      }
    } finally {
      this.#dispatching = false;
    }
  }
}
