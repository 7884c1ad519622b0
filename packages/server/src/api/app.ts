/**
 * The fastify application of the control plane: request ids, JSON logs with
 * secrets redacted, one error shape, body limits, authentication and
 * authorization on every route, HTTP metrics, OpenAPI at `/docs`, and the
 * route groups under `/api/v1`.
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage } from "node:http";
import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyServerOptions,
  LogController,
} from "fastify";
import type { ApiContext } from "./context.js";
import { ApiErrorCodes, apiError, toErrorResponse } from "./errors.js";
import { consoleRoutes } from "./routes/console.js";
import { executionRoutes } from "./routes/executions.js";
import { healthRoutes } from "./routes/health.js";
import { projectRoutes } from "./routes/projects.js";
import { registryRoutes } from "./routes/registry.js";
import { watchRoutes } from "./routes/watch.js";
import { SHARED_SCHEMAS } from "./schemas.js";

/** Default largest request body: 8 MiB. */
export const DEFAULT_BODY_LIMIT = 8 * 1024 * 1024;

export interface BuildAppOptions {
  /** A pino logger (see `createLogger`), or false for none. */
  logger?: FastifyBaseLogger | false;
  /** Largest request body in bytes. @default 8 MiB */
  bodyLimit?: number;
  /** Package version shown in the OpenAPI document. */
  version?: string;
}

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

/** Build (but do not start) the API server. */
export async function buildApp(ctx: ApiContext, opts: BuildAppOptions = {}): Promise<FastifyInstance> {
  const options: FastifyServerOptions = {
    ...(opts.logger ? { loggerInstance: opts.logger } : { logger: false }),
    bodyLimit: opts.bodyLimit ?? DEFAULT_BODY_LIMIT,
    // Reuse a caller's well-formed X-Request-Id, so a request can be followed across services.
    genReqId: (req: IncomingMessage) => {
      const given = req.headers["x-request-id"];
      return typeof given === "string" && REQUEST_ID.test(given) ? given : randomUUID();
    },
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 1024 },
    forceCloseConnections: true,
    // One line per request, written when it is answered (see the onResponse hook).
    logController: new LogController({ disableRequestLogging: true }),
    // Errors the router raises before any route runs (bad %-escapes, huge parameters) get the same body.
    frameworkErrors: (err, req, reply) => {
      const { status, body } = toErrorResponse(err, req.id);
      const r = reply as unknown as {
        status(n: number): { header(k: string, v: string): { send(b: unknown): void } };
      };
      r.status(status).header("x-request-id", req.id).send(body);
    },
    ajv: { customOptions: { coerceTypes: "array", removeAdditional: false, allErrors: false } },
  };
  const app = Fastify(options) as unknown as FastifyInstance;

  for (const s of SHARED_SCHEMAS) app.addSchema(s);

  app.setErrorHandler((err, req, reply) => {
    const { status, body } = toErrorResponse(err, req.id);
    if (status >= 500) req.log.error({ err }, "request failed");
    else req.log.info({ code: body.error.code, status }, body.error.message);
    void reply.status(status).type("application/json; charset=utf-8").send(body);
  });

  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split("?")[0].slice(0, 200);
    const { status, body } = toErrorResponse(
      apiError(ApiErrorCodes.ROUTE_NOT_FOUND, `no route ${req.method} ${path}`, {
        hint: "the API is under /api/v1; its description is at /docs",
      }),
      req.id,
    );
    void reply.status(status).send(body);
  });

  app.addHook("onRequest", async (req, reply) => {
    reply.header("x-request-id", req.id);
    const auth = req.routeOptions.config?.auth;
    if (!auth) return;
    const principal = ctx.auth.authenticate(req.headers.authorization);
    req.principal = principal;
    if (auth.scope === "handler") return;
    const params = (req.params ?? {}) as { project?: string; domain?: string };
    ctx.auth.require(
      principal,
      auth.role,
      auth.scope === "path" ? { project: params.project, domain: params.domain } : {},
    );
  });

  app.addHook("onResponse", async (req, reply) => {
    const route = req.routeOptions.url ?? "unmatched";
    ctx.metrics.httpDuration.observe(
      { method: req.method, route, status: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
    // The path only: no query string, no headers (tokens never reach the log).
    req.log.info(
      {
        method: req.method,
        path: req.url.split("?")[0].slice(0, 300),
        route,
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime * 10) / 10,
        ...(req.principal ? { principal: req.principal.name } : {}),
      },
      "request",
    );
  });

  app.addHook("preClose", async () => {
    for (const end of [...ctx.streams]) end();
  });

  await app.register(swagger, {
    openapi: {
      openapi: "3.0.3",
      info: {
        title: "Tern control plane",
        description:
          "Registry, executions, watch streams, logs and signals of Tern workflows. Send `Authorization: Bearer <token>` when the server has tokens; errors are `{ error: { code, message, hint?, details? } }`.",
        version: opts.version ?? "0.1.0",
      },
      components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
      security: [{ bearer: [] }],
    },
    refResolver: { buildLocalReference: (json, _base, _fragment, i) => String(json.$id ?? `def-${i}`) },
  });
  await app.register(swaggerUi, { routePrefix: "/docs" });

  await app.register(healthRoutes(ctx));
  await app.register(projectRoutes(ctx), { prefix: "/api/v1" });
  await app.register(registryRoutes(ctx), { prefix: "/api/v1" });
  await app.register(executionRoutes(ctx), { prefix: "/api/v1" });
  await app.register(watchRoutes(ctx), { prefix: "/api/v1" });
  await app.register(consoleRoutes(ctx));
  return app;
}
