/**
 * Projects and domains. Every project has every domain (development, staging,
 * production by default). Listing shows the projects a token has grants in;
 * creating one needs admin in it.
 */
import type { FastifyPluginAsync } from "fastify";
import type { ProjectRecord } from "../../store/projects.js";
import type { ApiContext } from "../context.js";
import { notFound } from "../errors.js";
import { errorResponses, nameSchema } from "../schemas.js";

const projectSchema = {
  type: "object",
  required: ["name", "createdAt", "domains"],
  properties: {
    name: { type: "string" },
    description: { type: "string" },
    createdAt: { type: "number" },
    domains: { type: "array", items: { type: "string" } },
  },
} as const;

export function projectRoutes(ctx: ApiContext): FastifyPluginAsync {
  const withDomains = async (p: ProjectRecord) => ({ ...p, domains: await ctx.scopes.domainList() });
  return async (app) => {
    app.get(
      "/projects",
      {
        config: { auth: { role: "viewer", scope: "any" } },
        schema: {
          summary: "List projects (those the token has grants in)",
          tags: ["projects"],
          response: {
            200: {
              type: "object",
              required: ["items"],
              properties: { items: { type: "array", items: projectSchema } },
            },
            ...errorResponses(),
          },
        },
      },
      async (req) => {
        const domains = await ctx.scopes.domainList();
        const all = await ctx.store.projects.list();
        const principal = req.principal!;
        return {
          items: all.filter((p) => ctx.auth.canSeeProject(principal, p.name)).map((p) => ({ ...p, domains })),
        };
      },
    );

    app.post<{ Body: { name: string; description?: string } }>(
      "/projects",
      {
        config: { auth: { role: "admin", scope: "handler" } },
        schema: {
          summary: "Create a project",
          tags: ["projects"],
          body: {
            type: "object",
            required: ["name"],
            additionalProperties: false,
            properties: { name: nameSchema, description: { type: "string", maxLength: 2000 } },
          },
          response: { 201: projectSchema, ...errorResponses(409) },
        },
      },
      async (req, reply) => {
        ctx.auth.require(req.principal!, "admin", { project: req.body.name });
        const p = await ctx.store.projects.create(req.body.name, req.body.description);
        ctx.scopes.remember(p.name);
        return reply.status(201).send(await withDomains(p));
      },
    );

    app.get<{ Params: { project: string } }>(
      "/projects/:project",
      {
        config: { auth: { role: "viewer", scope: "path" } },
        schema: {
          summary: "One project, with its domains",
          tags: ["projects"],
          params: { type: "object", required: ["project"], properties: { project: nameSchema } },
          response: { 200: projectSchema, ...errorResponses() },
        },
      },
      async (req) => {
        const p = await ctx.store.projects.get(req.params.project);
        if (!p)
          throw notFound(
            `project "${req.params.project}" does not exist`,
            "list projects with GET /api/v1/projects",
          );
        return withDomains(p);
      },
    );

    app.get(
      "/whoami",
      {
        config: { auth: { role: "viewer", scope: "any" } },
        schema: {
          summary: "Who the token is and what it may do: its grants (role per project and domain)",
          description:
            "The console asks this to show only what the token's role allows. `authRequired` is false on the open sandbox (every request runs as an anonymous admin).",
          tags: ["projects"],
          response: {
            200: {
              type: "object",
              required: ["name", "anonymous", "authRequired", "grants"],
              properties: {
                name: { type: "string" },
                anonymous: { type: "boolean" },
                authRequired: { type: "boolean" },
                grants: {
                  type: "array",
                  items: {
                    type: "object",
                    required: ["project", "domain", "role"],
                    properties: {
                      project: { type: "string" },
                      domain: { type: "string" },
                      role: { type: "string", enum: ["viewer", "runner", "admin"] },
                    },
                  },
                },
              },
            },
            ...errorResponses(),
          },
        },
      },
      async (req) => {
        const p = req.principal!;
        return {
          name: p.name,
          anonymous: p.anonymous,
          authRequired: ctx.auth.enabled,
          grants: p.grants.map((g) => ({ project: g.project, domain: g.domain, role: g.role })),
        };
      },
    );

    app.get(
      "/domains",
      {
        config: { auth: { role: "viewer", scope: "any" } },
        schema: {
          summary: "The domains every project has",
          tags: ["projects"],
          response: {
            200: {
              type: "object",
              required: ["items"],
              properties: { items: { type: "array", items: { type: "string" } } },
            },
            ...errorResponses(),
          },
        },
      },
      async () => ({ items: await ctx.scopes.domainList() }),
    );
  };
}
