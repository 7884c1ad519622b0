/**
 * A shared list+watch cache (an informer) of one resource in one namespace of one
 * cluster: every pod (or MPIJob) Tern manages there, kept current by a single watch.
 * `check` reads this cache instead of asking the API server about each pod, and the
 * plugin's `notify` callbacks fire when a tracked object changes, so the engine checks
 * at once instead of polling.
 *
 * It lists, then watches from the list's resourceVersion; a BOOKMARK moves the resume
 * point; a 410 (HTTP or ERROR event) re-lists (objects missing from the new list count as
 * deleted); a cleanly closed stream is watched again at once; any other error is
 * retried with backoff while `disconnectedSince` tells callers how stale the cache is.
 */
import type { K8sApi, K8sObject, ResourceRef, WatchEventType, WatchHandle } from "./api.js";
import { isApiError } from "./api.js";

/** Deleted objects remembered (by name) so that `check` can classify a vanished pod. */
const MAX_TOMBSTONES = 10_000;

export class WatchCache {
  private readonly objects = new Map<string, K8sObject>();
  private readonly tombstones = new Map<string, K8sObject>();
  private readonly listeners = new Map<string, () => void>();
  private rv: string | undefined;
  private started = false;
  private stopped = false;
  private handle?: WatchHandle;
  private timer?: NodeJS.Timeout;
  private failures = 0;
  /** 410s in a row with no event in between (a server that expires fresh lists is re-listed with backoff). */
  private expiredStreak = 0;
  private readyWaiters: (() => void)[] = [];
  /** True once the first list has been loaded. */
  synced = false;
  /** When the cache lost contact with the API server (undefined while connected). */
  disconnectedSince: number | undefined;
  /** The last connection error, for messages. */
  lastError: string | undefined;
  /** Lists done (the first, plus re-lists after 410s): for tests and diagnostics. */
  lists = 0;

  constructor(
    private readonly api: K8sApi,
    readonly resource: ResourceRef,
    readonly namespace: string,
    readonly labelSelector: string,
    private readonly retryMaxMs = 5_000,
  ) {}

  /** Starts listing and watching (idempotent). */
  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    void this.relist();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.handle?.stop();
    this.handle = undefined;
    for (const w of this.readyWaiters.splice(0)) w();
  }

  /** Resolves true once synced, or false after `timeoutMs`. */
  ready(timeoutMs: number): Promise<boolean> {
    this.start();
    if (this.synced) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(this.synced), timeoutMs);
      t.unref?.();
      this.readyWaiters.push(() => {
        clearTimeout(t);
        resolve(this.synced);
      });
    });
  }

  get(name: string): K8sObject | undefined {
    return this.objects.get(name);
  }

  /** The last state of an object seen deleted. */
  tombstone(name: string): K8sObject | undefined {
    return this.tombstones.get(name);
  }

  /** Adds an object the caller just created, unless the watch already delivered it (or its deletion). */
  prime(obj: K8sObject): void {
    const name = obj.metadata.name;
    if (!name || this.objects.has(name)) return;
    const tomb = this.tombstones.get(name);
    if (tomb && tomb.metadata.uid === obj.metadata.uid) return;
    this.tombstones.delete(name);
    this.objects.set(name, obj);
  }

  /** Calls `fn` whenever the named object changes or disappears (one listener per name). */
  subscribe(name: string, fn: () => void): void {
    this.listeners.set(name, fn);
  }

  /** Stops notifying about `name` and forgets its tombstone. */
  forget(name: string): void {
    this.listeners.delete(name);
    this.tombstones.delete(name);
  }

  /** Milliseconds since the cache lost contact, 0 while connected. */
  staleForMs(now = Date.now()): number {
    return this.disconnectedSince === undefined ? 0 : now - this.disconnectedSince;
  }

  private notify(name: string | undefined): void {
    if (!name) return;
    const fn = this.listeners.get(name);
    if (fn) fn();
  }

  private connected(): void {
    this.failures = 0;
    this.disconnectedSince = undefined;
    this.lastError = undefined;
  }

  private failed(e: unknown): void {
    this.disconnectedSince ??= Date.now();
    this.lastError = (e as Error)?.message ?? String(e);
    this.failures++;
  }

  private later(fn: () => void, ms: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(fn, ms);
    this.timer.unref?.();
  }

  private backoffMs(): number {
    return Math.min(this.retryMaxMs, 100 * 2 ** Math.min(this.failures, 10));
  }

  private async relist(): Promise<void> {
    if (this.stopped) return;
    let list: { items: K8sObject[]; resourceVersion: string };
    try {
      list = await this.api.list(this.resource, this.namespace, this.labelSelector);
    } catch (e) {
      this.failed(e);
      this.later(() => void this.relist(), this.backoffMs());
      return;
    }
    if (this.stopped) return;
    this.lists++;
    this.connected();
    const fresh = new Map(list.items.map((o) => [o.metadata.name ?? "", o]));
    for (const [name, old] of this.objects) {
      if (!fresh.has(name)) {
        this.objects.delete(name);
        this.bury(old);
        this.notify(name);
      }
    }
    for (const [name, obj] of fresh) {
      const old = this.objects.get(name);
      this.objects.set(name, obj);
      if (old?.metadata.resourceVersion !== obj.metadata.resourceVersion) this.notify(name);
    }
    this.rv = list.resourceVersion;
    if (!this.synced) {
      this.synced = true;
      for (const w of this.readyWaiters.splice(0)) w();
    }
    void this.watch();
  }

  private async watch(): Promise<void> {
    if (this.stopped) return;
    let expired = false;
    let done = false;
    const onEvent = (type: WatchEventType, obj: K8sObject) => {
      if (type === "ERROR") {
        const code = (obj as { code?: number }).code;
        if (code === 410) expired = true;
        return;
      }
      this.connected();
      this.expiredStreak = 0;
      const rv = obj?.metadata?.resourceVersion;
      if (rv) this.rv = rv;
      if (type === "BOOKMARK") return;
      const name = obj.metadata.name;
      if (!name) return;
      if (type === "DELETED") {
        this.objects.delete(name);
        this.bury(obj);
      } else {
        this.objects.set(name, obj);
      }
      this.notify(name);
    };
    const onDone = (err?: unknown) => {
      done = true;
      this.handle = undefined;
      if (this.stopped) return;
      if (expired || isApiError(err, 410)) this.expire();
      else if (err) {
        this.failed(err);
        this.later(() => void this.watch(), this.backoffMs());
      } else {
        // A clean close (server timeout, restart): resume at once.
        this.later(() => void this.watch(), 0);
      }
    };
    try {
      this.handle = await this.api.watch(
        this.resource,
        this.namespace,
        { labelSelector: this.labelSelector, resourceVersion: this.rv },
        onEvent,
        onDone,
      );
      if (this.stopped) this.handle.stop();
      // The server accepted the watch: the cache is current again.
      else if (!done) this.connected();
    } catch (e) {
      if (isApiError(e, 410)) return this.expire();
      this.failed(e);
      this.later(() => void this.watch(), this.backoffMs());
    }
  }

  /** The resume point is too old: list again (at once the first time, then with backoff). */
  private expire(): void {
    this.rv = undefined;
    const streak = this.expiredStreak++;
    if (streak === 0) void this.relist();
    else this.later(() => void this.relist(), Math.min(this.retryMaxMs, 50 * 2 ** Math.min(streak, 10)));
  }

  private bury(obj: K8sObject): void {
    const name = obj.metadata.name;
    if (!name) return;
    this.tombstones.delete(name);
    this.tombstones.set(name, obj);
    if (this.tombstones.size > MAX_TOMBSTONES) this.tombstones.delete(this.tombstones.keys().next().value!);
  }
}
