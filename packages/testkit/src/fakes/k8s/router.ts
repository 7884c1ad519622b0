/**
 * Maps Kubernetes REST paths and verbs onto the cluster (PROTOCOLS §1.2, §1.8):
 *
 *   /api/v1/{plural}[/{name}[/{sub}]]                              core, cluster-scoped or all namespaces
 *   /api/v1/namespaces/{ns}/{plural}[/{name}[/{sub}]]              core, namespaced
 *   /apis/{group}/{version}/{plural}[/{name}[/{sub}]]              custom, cluster-scoped or all namespaces
 *   /apis/{group}/{version}/namespaces/{ns}/{plural}[/{name}[/{sub}]]
 *
 * plus discovery (`/api`, `/api/v1`, `/apis`, `/apis/{g}/{v}`), `/version` and health checks.
 * Any group/plural is accepted under `/apis`, so custom resources need no CRD.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Cluster, DeleteOptions } from "./cluster.js";
import { badRequest, expired, methodNotAllowed, StatusError, unknownPath } from "./errors.js";
import type { Kubelet } from "./kubelet.js";
import { streamLog } from "./logs.js";
import { apiVersionOf, CORE_RESOURCES, PODS } from "./resources.js";
import { parseFieldSelector, parseLabelSelector } from "./selectors.js";
import type { KubeObject, ResourceType } from "./types.js";
import type { WatchHub } from "./watch.js";

/** What the server hands the router for one request. */
export interface RequestContext {
  req: IncomingMessage;
  res: ServerResponse;
  method: string;
  path: string;
  query: Record<string, string>;
  body: unknown;
  contentType: string | undefined;
}

interface Target {
  res: ResourceType;
  namespace?: string;
  name?: string;
  sub?: string;
}

export function sendJson(
  res: ServerResponse,
  code: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(code, {
    "Content-Type": "application/json",
    "Content-Length": Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

const VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

export class Router {
  constructor(
    private readonly cluster: Cluster,
    private readonly kubelet: Kubelet,
    private readonly watches: WatchHub,
    private readonly serverAddress: () => string,
  ) {}

  /** Handles one request; throws StatusError for the server to render. */
  handle(ctx: RequestContext): void {
    const parts = ctx.path.split("/").filter(Boolean).map(decodeURIComponent);
    if (this.#special(ctx, parts)) return;
    const target = this.#resolve(parts);
    if (!target) throw unknownPath();
    // Legacy `/api/v1/watch/...` paths are watches too.
    if (parts[2] === "watch" || parts[3] === "watch") ctx.query.watch ??= "true";
    if (target.name === undefined) this.#collection(ctx, target);
    else this.#item(ctx, target);
  }

  #special(ctx: RequestContext, parts: string[]): boolean {
    const p = ctx.path.replace(/\/+$/, "") || "/";
    if (["/healthz", "/livez", "/readyz"].includes(p)) {
      ctx.res.writeHead(200, { "Content-Type": "text/plain" });
      ctx.res.end("ok");
      return true;
    }
    if (ctx.method !== "GET") return false;
    if (p === "/version") {
      sendJson(ctx.res, 200, {
        major: "1",
        minor: "30",
        gitVersion: "v1.30.0-tern-fake",
        platform: `${process.platform}/${process.arch}`,
      });
      return true;
    }
    if (p === "/api") {
      sendJson(ctx.res, 200, {
        kind: "APIVersions",
        versions: ["v1"],
        serverAddressByClientCIDRs: [{ clientCIDR: "0.0.0.0/0", serverAddress: this.serverAddress() }],
      });
      return true;
    }
    if (p === "/api/v1") {
      sendJson(ctx.res, 200, resourceList("v1", Object.values(CORE_RESOURCES)));
      return true;
    }
    const custom = this.cluster.registry.customResources();
    if (p === "/apis") {
      const groups = new Map<string, Set<string>>();
      for (const r of custom) groups.set(r.group, (groups.get(r.group) ?? new Set()).add(r.version));
      sendJson(ctx.res, 200, {
        kind: "APIGroupList",
        apiVersion: "v1",
        groups: [...groups].map(([name, versions]) => {
          const list = [...versions].map((v) => ({ groupVersion: `${name}/${v}`, version: v }));
          return { name, versions: list, preferredVersion: list[0] };
        }),
      });
      return true;
    }
    if (parts[0] === "apis" && parts.length === 3) {
      const [, group, version] = parts;
      sendJson(
        ctx.res,
        200,
        resourceList(
          `${group}/${version}`,
          custom.filter((r) => r.group === group),
        ),
      );
      return true;
    }
    return false;
  }

  #resolve(parts: string[]): Target | undefined {
    let rest: string[];
    let lookup: (plural: string, namespaced: boolean) => ResourceType | undefined;
    if (parts[0] === "api" && parts[1] === "v1") {
      rest = parts.slice(2);
      lookup = (plural) => CORE_RESOURCES[plural];
    } else if (parts[0] === "apis" && parts.length >= 4) {
      const [, group, version] = parts;
      rest = parts.slice(3);
      lookup = (plural, namespaced) => this.cluster.registry.custom(group, version, plural, namespaced);
    } else return undefined;
    if (rest[0] === "watch") rest = rest.slice(1);

    // `namespaces/{ns}/{plural}…` is a namespaced resource; `namespaces` and `namespaces/{ns}` are the Namespace objects.
    if (rest[0] === "namespaces" && rest.length >= 3) {
      const [, namespace, plural, name, sub] = rest;
      if (rest.length > 5) return undefined;
      const res = lookup(plural, true);
      if (!res?.namespaced) return undefined;
      return { res, namespace, name, sub };
    }
    const [plural, name, sub] = rest;
    if (!plural || rest.length > 3) return undefined;
    const res = lookup(plural, name !== undefined ? false : (CORE_RESOURCES[plural]?.namespaced ?? true));
    if (!res) return undefined;
    // A namespaced resource at cluster level can only be listed or watched across namespaces.
    if (res.namespaced && name !== undefined) return undefined;
    return { res, name, sub };
  }

  #collection(ctx: RequestContext, t: Target): void {
    const q = ctx.query;
    switch (ctx.method) {
      case "GET": {
        const labels = parseLabelSelector(q.labelSelector);
        const fields = parseFieldSelector(q.fieldSelector);
        if (q.watch === "true" || q.watch === "1") {
          this.watches.serve(ctx.res, {
            res: t.res,
            namespace: t.namespace,
            labels,
            fields,
            resourceVersion: q.resourceVersion,
            allowBookmarks: q.allowWatchBookmarks === "true" || q.allowWatchBookmarks === "1",
            timeoutSeconds: q.timeoutSeconds !== undefined ? Number(q.timeoutSeconds) : undefined,
          });
          return;
        }
        const { items, resourceVersion } = this.cluster.list(t.res, t.namespace, labels, fields);
        sendJson(ctx.res, 200, this.#page(t.res, items, resourceVersion, q.limit, q.continue));
        return;
      }
      case "POST": {
        const created = this.cluster.create(t.res, t.namespace, ctx.body, { dryRun: q.dryRun === "All" });
        sendJson(ctx.res, 201, created);
        return;
      }
      case "DELETE": {
        const labels = parseLabelSelector(q.labelSelector);
        const fields = parseFieldSelector(q.fieldSelector);
        const { items, resourceVersion } = this.cluster.list(t.res, t.namespace, labels, fields);
        const opts = deleteOptions(ctx);
        const deleted = items.map(
          (o) => this.cluster.delete(t.res, o.metadata.namespace, o.metadata.name!, opts).object,
        );
        sendJson(ctx.res, 200, listOf(t.res, deleted, resourceVersion));
        return;
      }
      default:
        throw methodNotAllowed();
    }
  }

  #item(ctx: RequestContext, t: Target): void {
    const name = t.name!;
    if (t.sub === "log") {
      if (t.res !== PODS || ctx.method !== "GET") throw methodNotAllowed();
      this.#log(ctx, t.namespace!, name);
      return;
    }
    if (t.sub !== undefined && t.sub !== "status") throw unknownPath();
    const sub = t.sub as "status" | undefined;
    switch (ctx.method) {
      case "GET":
        sendJson(ctx.res, 200, this.cluster.get(t.res, t.namespace, name));
        return;
      case "PUT":
        sendJson(ctx.res, 200, this.cluster.update(t.res, t.namespace, name, ctx.body, sub));
        return;
      case "PATCH":
        sendJson(ctx.res, 200, this.cluster.patch(t.res, t.namespace, name, ctx.body, ctx.contentType, sub));
        return;
      case "DELETE": {
        if (sub) throw methodNotAllowed();
        const result = this.cluster.delete(t.res, t.namespace, name, deleteOptions(ctx));
        // Pods (and other core objects) come back as the object; a custom resource that is gone
        // at once comes back as a Success Status, as the API server does for CRDs.
        if (t.res.group && result.removed) {
          const o = result.object;
          sendJson(ctx.res, 200, {
            kind: "Status",
            apiVersion: "v1",
            metadata: {},
            status: "Success",
            details: { name: o.metadata.name, group: t.res.group, kind: t.res.plural, uid: o.metadata.uid },
          });
        } else sendJson(ctx.res, 200, result.object);
        return;
      }
      default:
        throw methodNotAllowed();
    }
  }

  #log(ctx: RequestContext, namespace: string, name: string): void {
    const q = ctx.query;
    const num = (v: string | undefined) => {
      if (v === undefined || v === "") return undefined;
      const n = Number(v);
      if (!Number.isFinite(n)) throw badRequest(`invalid number "${v}"`);
      return n;
    };
    const log = this.kubelet.logFor(namespace, name, q.container || undefined, q.previous === "true");
    streamLog(ctx.res, log, {
      follow: q.follow === "true",
      timestamps: q.timestamps === "true",
      tailLines: num(q.tailLines),
      sinceSeconds: num(q.sinceSeconds),
      sinceTime: q.sinceTime ? new Date(q.sinceTime) : undefined,
      limitBytes: num(q.limitBytes),
    });
  }

  /**
   * One page of a list. The continue token records the resourceVersion of the first page and the
   * last key served; a token whose resourceVersion has been compacted away is 410 Expired, like
   * the real server. Later pages show live data, not a snapshot (a documented simplification).
   */
  #page(
    res: ResourceType,
    items: KubeObject[],
    rv: number,
    limitText?: string,
    token?: string,
  ): Record<string, unknown> {
    let start = "";
    let listRv = rv;
    if (token) {
      let decoded: { rv: number; start: string };
      try {
        decoded = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
      } catch {
        throw badRequest(`invalid continue token: "${token}"`);
      }
      if (decoded.rv < this.cluster.store.compactedResourceVersion) {
        throw expired(
          "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
        );
      }
      start = decoded.start;
      listRv = decoded.rv;
    }
    const keyOf = (o: KubeObject) => `${o.metadata.namespace ?? ""}/${o.metadata.name}`;
    let rest = start ? items.filter((o) => keyOf(o) > start) : items;
    const limit = limitText ? Number(limitText) : 0;
    const list = listOf(res, rest, listRv);
    if (limit > 0 && rest.length > limit) {
      const page = rest.slice(0, limit);
      (list.metadata as Record<string, unknown>).continue = Buffer.from(
        JSON.stringify({ rv: listRv, start: keyOf(page[page.length - 1]) }),
      ).toString("base64url");
      (list.metadata as Record<string, unknown>).remainingItemCount = rest.length - limit;
      rest = page;
      list.items = page;
    }
    return list;
  }
}

function listOf(
  res: ResourceType,
  items: KubeObject[],
  rv: number,
): { kind: string; apiVersion: string; metadata: object; items: KubeObject[] } {
  return {
    kind: `${res.kind}List`,
    apiVersion: apiVersionOf(res),
    metadata: { resourceVersion: String(rv) },
    items,
  };
}

function resourceList(groupVersion: string, resources: ResourceType[]) {
  return {
    kind: "APIResourceList",
    apiVersion: "v1",
    groupVersion,
    resources: resources.flatMap((r) => {
      const base = {
        name: r.plural,
        singularName: r.kind.toLowerCase(),
        namespaced: r.namespaced,
        kind: r.kind,
        verbs: VERBS,
      };
      const status = {
        name: `${r.plural}/status`,
        singularName: "",
        namespaced: r.namespaced,
        kind: r.kind,
        verbs: ["get", "patch", "update"],
      };
      const log = { name: "pods/log", singularName: "", namespaced: true, kind: "Pod", verbs: ["get"] };
      return r === PODS ? [base, status, log] : [base, status];
    }),
  };
}

/** DeleteOptions from the query (client-node) or the body (other clients). */
function deleteOptions(ctx: RequestContext): DeleteOptions {
  const body = (ctx.body && typeof ctx.body === "object" ? ctx.body : {}) as Record<string, any>;
  const q = ctx.query;
  const grace = q.gracePeriodSeconds ?? body.gracePeriodSeconds;
  const opts: DeleteOptions = {};
  if (grace !== undefined && grace !== null && grace !== "") {
    const n = Number(grace);
    if (!Number.isFinite(n) || n < 0) throw badRequest(`invalid gracePeriodSeconds "${grace}"`);
    opts.gracePeriodSeconds = n;
  }
  const policy = q.propagationPolicy ?? body.propagationPolicy;
  if (policy !== undefined) {
    if (!["Background", "Foreground", "Orphan"].includes(policy)) {
      throw new StatusError({
        kind: "Status",
        apiVersion: "v1",
        metadata: {},
        status: "Failure",
        message: `DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: "${policy}": supported values: "Foreground", "Background", "Orphan"`,
        reason: "Invalid",
        code: 422,
      });
    }
    opts.propagationPolicy = policy as DeleteOptions["propagationPolicy"];
  }
  if (body.preconditions) opts.preconditions = body.preconditions;
  if (q.dryRun === "All" || (Array.isArray(body.dryRun) && body.dryRun.includes("All"))) opts.dryRun = true;
  return opts;
}
