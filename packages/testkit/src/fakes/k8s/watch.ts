/**
 * Watch streams (PROTOCOLS §1.3): HTTP 200, chunked, one `{"type","object"}` JSON document per line.
 *
 * - No resourceVersion (or "0"): synthetic ADDED events for the current objects, then live events.
 * - resourceVersion=N: replay of the retained history after N, then live events; when that history
 *   has been dropped the answer is 410 — as an HTTP status or as a 200 stream carrying one ERROR
 *   event, whichever `expiredMode` says (real servers do both; informers must handle both).
 * - Idle streams get a BOOKMARK (when `allowWatchBookmarks=true`) or a bare newline (which every
 *   JSON-lines client skips) every `heartbeatMs`, because client-node aborts a watch after 30 s
 *   without a byte.
 * - Label/field-filtered watches turn a MODIFIED that enters or leaves the selection into
 *   ADDED/DELETED, as the API server does.
 */
import type { ServerResponse } from "node:http";
import type { Cluster } from "./cluster.js";
import { expired } from "./errors.js";
import { apiVersionOf } from "./resources.js";
import { matchesFields, matchesLabels, type Selector } from "./selectors.js";
import { resourceKey, type StoreEvent } from "./store.js";
import type { KubeObject, ResourceType } from "./types.js";

export type ExpiredMode = "http" | "event";

export interface WatchRequest {
  res: ResourceType;
  namespace?: string;
  labels: Selector;
  fields: Selector;
  resourceVersion?: string;
  allowBookmarks: boolean;
  timeoutSeconds?: number;
}

export interface WatchSettings {
  heartbeatMs: number;
  expiredMode: ExpiredMode;
}

type WireEvent = { type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR"; object: unknown };

/** Keeps track of open watch streams so tests can cut them (`closeWatches()`). */
export class WatchHub {
  readonly #open = new Set<() => void>();

  constructor(
    private readonly cluster: Cluster,
    private readonly settings: WatchSettings,
  ) {}

  /** Number of watch streams currently open. */
  get openCount(): number {
    return this.#open.size;
  }

  /** Ends every open watch stream cleanly (clients see the server close the stream). */
  closeAll(): void {
    for (const close of [...this.#open]) close();
  }

  /**
   * Answers a watch request. Throws a StatusError (→ HTTP error) only before the stream starts.
   * Returns the HTTP status sent.
   */
  serve(res: ServerResponse, w: WatchRequest): number {
    const store = this.cluster.store;
    const key = resourceKey(w.res.group, w.res.plural);
    const matches = (obj: KubeObject) =>
      (!w.res.namespaced || w.namespace === undefined || obj.metadata.namespace === w.namespace) &&
      matchesLabels(w.labels, obj.metadata.labels) &&
      matchesFields(w.fields, obj);

    let backlog: WireEvent[];
    if (w.resourceVersion && w.resourceVersion !== "0") {
      const from = Number(w.resourceVersion);
      const events = Number.isFinite(from) ? store.eventsSince(from) : undefined;
      if (!events) {
        const err = expired(
          `too old resource version: ${w.resourceVersion} (${store.compactedResourceVersion})`,
        );
        if (this.settings.expiredMode === "http") throw err;
        res.writeHead(200, { "Content-Type": "application/json" });
        res.end(`${JSON.stringify({ type: "ERROR", object: err.body })}\n`);
        return 200;
      }
      backlog = events.flatMap((e) => translate(e, key, matches));
    } else {
      backlog = this.cluster
        .list(w.res, w.namespace, w.labels, w.fields)
        .items.map((object) => ({ type: "ADDED" as const, object }));
    }

    res.writeHead(200, { "Content-Type": "application/json", "Cache-Control": "no-cache, private" });
    res.flushHeaders();

    let heartbeat: NodeJS.Timeout | undefined;
    let timeout: NodeJS.Timeout | undefined;
    const write = (events: WireEvent[]) => {
      if (events.length === 0 || res.writableEnded) return;
      res.write(events.map((e) => `${JSON.stringify(e)}\n`).join(""));
      armHeartbeat();
    };
    const armHeartbeat = () => {
      clearTimeout(heartbeat);
      heartbeat = setTimeout(() => {
        if (w.allowBookmarks) {
          const object = {
            kind: w.res.kind,
            apiVersion: apiVersionOf(w.res),
            metadata: { resourceVersion: String(store.resourceVersion) },
          };
          write([{ type: "BOOKMARK", object }]);
        } else {
          res.write("\n");
          armHeartbeat();
        }
      }, this.settings.heartbeatMs);
    };

    // Subscribing and replaying in the same tick means no event can slip between the two.
    const unsubscribe = store.subscribe((e) => write(translate(e, key, matches)));
    const close = () => {
      clearTimeout(heartbeat);
      clearTimeout(timeout);
      unsubscribe();
      this.#open.delete(close);
      if (!res.writableEnded) res.end();
    };
    this.#open.add(close);
    // Not req.on("close"): an IncomingMessage closes as soon as its (empty) body is read.
    res.on("close", close);
    if (w.timeoutSeconds !== undefined && w.timeoutSeconds > 0) {
      timeout = setTimeout(close, w.timeoutSeconds * 1000);
    }
    write(backlog);
    armHeartbeat();
    return 200;
  }
}

/** Maps a store event to what a watcher with this selection sees (possibly nothing). */
function translate(e: StoreEvent, key: string, matches: (o: KubeObject) => boolean): WireEvent[] {
  if (e.resource !== key) return [];
  const now = matches(e.object);
  if (e.type !== "MODIFIED") return now ? [{ type: e.type, object: e.object }] : [];
  const before = e.previous ? matches(e.previous) : false;
  if (now && before) return [{ type: "MODIFIED", object: e.object }];
  if (now) return [{ type: "ADDED", object: e.object }];
  if (before) return [{ type: "DELETED", object: e.object }];
  return [];
}
