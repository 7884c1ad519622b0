/**
 * Following an execution: its stored events (paged), the live watch stream
 * (server-sent events), node details, and node logs. Paths are under
 * `/api/v1/projects/:project/domains/:domain/executions/:id`.
 */
import type { FastifyPluginAsync } from "fastify";
import type { ApiContext } from "../context.js";
import { badRequest, notFound } from "../errors.js";
import { TERMINAL_PHASES } from "../launch.js";
import { errorResponses, nodeIdSchema, nodeSchema } from "../schemas.js";
import { publicEvent, streamExecution } from "../sse.js";
import { idParams, scopedExecution } from "./executions.js";

type IdParams = { project: string; domain: string; id: string };

/** A by-reference value (`t.file()`, `t.dir()`, `t.dataframe()`) found in a JSON value. */
interface BlobRef {
  kind: "file" | "dir" | "dataframe";
  name?: string;
}

/** Every by-reference value with a `uri` inside `values`, by uri. */
export function referencedBlobs(values: unknown[]): Map<string, BlobRef> {
  const out = new Map<string, BlobRef>();
  const stack: unknown[] = [...values];
  while (stack.length) {
    const v = stack.pop();
    if (typeof v !== "object" || v === null) continue;
    if (Array.isArray(v)) {
      for (const x of v) stack.push(x);
      continue;
    }
    const o = v as Record<string, unknown>;
    const kind = o.$tern;
    if ((kind === "file" || kind === "dir" || kind === "dataframe") && typeof o.uri === "string") {
      out.set(o.uri, { kind, ...(typeof o.name === "string" ? { name: o.name } : {}) });
    }
    for (const x of Object.values(o)) stack.push(x);
  }
  return out;
}

export function watchRoutes(ctx: ApiContext): FastifyPluginAsync {
  return async (app) => {
    app.get<{ Params: IdParams; Querystring: { after?: number; limit?: number } }>(
      "/projects/:project/domains/:domain/executions/:id/events",
      {
        config: { auth: { role: "viewer", scope: "path" } },
        schema: {
          summary: "Stored events of an execution, in order, after a seq",
          tags: ["watch"],
          params: idParams,
          querystring: {
            type: "object",
            additionalProperties: false,
            properties: {
              after: { type: "integer", minimum: 0 },
              limit: { type: "integer", minimum: 1, maximum: 5000 },
            },
          },
          response: {
            200: {
              type: "object",
              required: ["items"],
              properties: {
                items: { type: "array", items: { $ref: "ExecutionEvent#" } },
                nextAfter: {
                  type: "integer",
                  description: "pass as ?after= for the next page; absent on the last page",
                },
              },
            },
            ...errorResponses(),
          },
        },
      },
      async (req) => {
        await scopedExecution(ctx, req.params);
        const limit = req.query.limit ?? 1000;
        const items = await ctx.store.events.list(req.params.id, req.query.after ?? 0, limit);
        const last = items[items.length - 1];
        return {
          items: items.map(publicEvent),
          ...(items.length === limit && last ? { nextAfter: last.seq } : {}),
        };
      },
    );

    app.get<{ Params: IdParams; Querystring: { after?: number } }>(
      "/projects/:project/domains/:domain/executions/:id/watch",
      {
        config: { auth: { role: "viewer", scope: "path" } },
        schema: {
          summary: "Follow an execution as server-sent events",
          description:
            "Replays stored events after `Last-Event-ID` (or `?after=`), then streams live ones; each is `id: <seq>` with the event as JSON data. Ends with `event: end` (`{execution, phase}`) once the execution is over. Idle streams get a comment every 15 s.",
          tags: ["watch"],
          params: idParams,
          querystring: {
            type: "object",
            additionalProperties: false,
            properties: { after: { type: "integer", minimum: 0 } },
          },
          response: { 200: { description: "text/event-stream", type: "string" }, ...errorResponses() },
        },
      },
      async (req, reply) => {
        const rec = await scopedExecution(ctx, req.params, { live: true });
        const header = req.headers["last-event-id"];
        let after = req.query.after ?? 0;
        if (typeof header === "string" && header !== "") {
          if (!/^\d{1,15}$/.test(header))
            throw badRequest("Last-Event-ID must be the seq of an event (a whole number)");
          after = Number(header);
        }
        reply.hijack();
        await streamExecution(ctx, reply.raw, rec.id, after, {
          requestId: req.id,
          terminal: TERMINAL_PHASES.has(rec.phase),
        });
      },
    );

    app.get<{ Params: IdParams }>(
      "/projects/:project/domains/:domain/executions/:id/nodes",
      {
        config: { auth: { role: "viewer", scope: "path" } },
        schema: {
          summary: "Every node of an execution: phase, attempts, cache and recovery, outputs or error",
          tags: ["watch"],
          params: idParams,
          response: {
            200: {
              type: "object",
              required: ["items"],
              properties: { items: { type: "array", items: nodeSchema } },
            },
            ...errorResponses(),
          },
        },
      },
      async (req) => {
        await scopedExecution(ctx, req.params);
        const nodes = await ctx.store.nodes.list(req.params.id);
        // Plugin state is the plugin's own bookkeeping (job ids, handles): not part of the API.
        return { items: nodes.map(({ pluginState: _state, execution: _execution, ...n }) => n) };
      },
    );

    app.get<{ Params: IdParams; Querystring: { uri: string } }>(
      "/projects/:project/domains/:domain/executions/:id/blob",
      {
        config: { auth: { role: "viewer", scope: "path" } },
        schema: {
          summary:
            "Download a file or dataframe value of an execution (its inputs, outputs or a node's outputs)",
          description:
            '`uri` is the `uri` of a `{ $tern: "file" | "dataframe" }` value of this execution; other blobs are a 404, so a token reads only what its executions hold.',
          tags: ["watch"],
          params: idParams,
          querystring: {
            type: "object",
            required: ["uri"],
            additionalProperties: false,
            properties: { uri: { type: "string", minLength: 1, maxLength: 2000 } },
          },
          response: { 200: { description: "the bytes", type: "string" }, ...errorResponses() },
        },
      },
      async (req, reply) => {
        const rec = await scopedExecution(ctx, req.params, { spec: false });
        const nodes = await ctx.store.nodes.list(rec.id);
        const refs = referencedBlobs([rec.inputs, rec.outputs, ...nodes.map((n) => n.outputs)]);
        const ref = refs.get(req.query.uri);
        if (!ref) {
          throw notFound(
            `execution ${rec.id} has no file or dataframe value with uri "${req.query.uri.slice(0, 200)}"`,
            "take the uri from a file value in the execution's inputs, outputs or node outputs",
            { uri: req.query.uri.slice(0, 200) },
          );
        }
        if (ref.kind === "dir") {
          throw badRequest(
            `"${req.query.uri.slice(0, 200)}" is a directory value`,
            "download its files one by one",
          );
        }
        const bytes = await ctx.blobs.get(req.query.uri);
        const base = (ref.name ?? req.query.uri.split("/").pop() ?? "value").replace(/[^\w.@+-]/g, "_");
        const name = ref.kind === "dataframe" && !base.includes(".") ? `${base}.jsonl` : base;
        return reply
          .type("application/octet-stream")
          .header("content-disposition", `attachment; filename="${name}"`)
          .header("x-content-type-options", "nosniff")
          .send(Buffer.from(bytes));
      },
    );

    app.get<{ Params: IdParams & { node: string }; Querystring: { attempt?: number } }>(
      "/projects/:project/domains/:domain/executions/:id/nodes/:node/logs",
      {
        config: { auth: { role: "viewer", scope: "path" } },
        schema: {
          summary: "Log lines of a node's attempt (the last one by default)",
          tags: ["watch"],
          params: {
            type: "object",
            required: ["project", "domain", "id", "node"],
            properties: { ...idParams.properties, node: nodeIdSchema },
          },
          querystring: {
            type: "object",
            additionalProperties: false,
            properties: { attempt: { type: "integer", minimum: 1, maximum: 1000 } },
          },
          response: {
            200: {
              type: "object",
              required: ["execution", "node", "lines"],
              properties: {
                execution: { type: "string" },
                node: { type: "string" },
                attempt: { type: "integer" },
                lines: { type: "array", items: { type: "string" } },
              },
            },
            ...errorResponses(),
          },
        },
      },
      async (req) => {
        const rec = await scopedExecution(ctx, req.params);
        const { node } = req.params;
        const stored = await ctx.store.nodes.get(rec.id, node);
        const lines = await ctx.executor.logs(rec.id, node, req.query.attempt);
        if (!stored && lines.length === 0) {
          throw notFound(
            `execution ${rec.id} has no node "${node}" (yet)`,
            "list its nodes with GET …/executions/:id/nodes",
            { node },
          );
        }
        const attempt = req.query.attempt ?? stored?.attempts;
        return { execution: rec.id, node, ...(attempt ? { attempt } : {}), lines };
      },
    );
  };
}
