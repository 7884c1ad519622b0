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
        const rec = await scopedExecution(ctx, req.params);
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
