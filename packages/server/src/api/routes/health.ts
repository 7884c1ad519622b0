/**
 * `/healthz` (the process answers), `/readyz` (the store answers) and
 * `/metrics` (Prometheus text; needs a token when the server has tokens).
 */
import type { FastifyPluginAsync } from "fastify";
import type { ApiContext } from "../context.js";
import { ApiErrorCodes, apiError } from "../errors.js";
import { errorResponses } from "../schemas.js";

const READY_TIMEOUT_MS = 2000;

export function healthRoutes(ctx: ApiContext): FastifyPluginAsync {
  return async (app) => {
    app.get(
      "/healthz",
      {
        schema: {
          summary: "Liveness: the process is up",
          tags: ["health"],
          security: [],
          response: { 200: { type: "object", properties: { status: { type: "string" } } } },
        },
      },
      async () => ({ status: "ok" }),
    );

    app.get(
      "/readyz",
      {
        schema: {
          summary: "Readiness: the store answers",
          tags: ["health"],
          security: [],
          response: {
            200: { type: "object", properties: { status: { type: "string" }, database: { type: "string" } } },
            ...errorResponses(503),
          },
        },
      },
      async () => {
        let timer: NodeJS.Timeout | undefined;
        try {
          await Promise.race([
            ctx.store.projects.domains(),
            new Promise((_, reject) => {
              timer = setTimeout(() => reject(new Error("timed out")), READY_TIMEOUT_MS);
            }),
          ]);
        } catch (e) {
          throw apiError(ApiErrorCodes.UNAVAILABLE, `the store does not answer: ${(e as Error).message}`, {
            hint: "check the database the server was started with (--db)",
          });
        } finally {
          clearTimeout(timer);
        }
        return { status: "ready", database: ctx.store.dialect };
      },
    );

    app.get(
      "/metrics",
      {
        config: { auth: { role: "viewer", scope: "any" } },
        schema: { summary: "Prometheus metrics", tags: ["health"], response: errorResponses() },
      },
      async (_req, reply) => {
        const { contentType, text } = await ctx.metrics.render();
        return reply.type(contentType).send(text);
      },
    );
  };
}
