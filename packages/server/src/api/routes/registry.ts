/**
 * The registry: `POST /register`, and reading tasks, workflows and launch
 * plans per project and domain; activating and deactivating launch plans.
 *
 * Paths, under `/api/v1/projects/:project/domains/:domain`:
 * - `GET /{tasks|workflows|launchplans}`: newest versions first (`?name=`, `?limit=`)
 * - `GET /{kind}/:name`: every version of one name, newest first
 * - `GET /{kind}/:name/versions/:version`: one version, with its spec
 * - `GET /workflows/:name/versions/:version/compiled`: the workflow with every task it runs
 * - `GET /launchplans/:name/active`, `POST /launchplans/:name/versions/:version/activate`,
 *   `POST /launchplans/:name/deactivate`
 */
import type { FastifyPluginAsync } from "fastify";
import type { RegistryKind, RegistryRecord } from "../../store/registry.js";
import type { ApiContext } from "../context.js";
import { notFound } from "../errors.js";
import { type RegisterBody, registerAll } from "../register.js";
import {
  anyObject,
  errorResponses,
  identifierSchema,
  nameSchema,
  registryRecordRef,
  scopeParams,
  versionSchema,
} from "../schemas.js";

const KINDS: { path: string; kind: RegistryKind; label: string }[] = [
  { path: "tasks", kind: "task", label: "task" },
  { path: "workflows", kind: "workflow", label: "workflow" },
  { path: "launchplans", kind: "launch_plan", label: "launch plan" },
];

type Scope = { project: string; domain: string };
type NameParams = Scope & { name: string };
type VersionParams = NameParams & { version: string };

const nameParams = {
  type: "object",
  required: ["project", "domain", "name"],
  properties: { ...scopeParams.properties, name: nameSchema },
} as const;
const versionParams = {
  type: "object",
  required: ["project", "domain", "name", "version"],
  properties: { ...scopeParams.properties, name: nameSchema, version: versionSchema },
} as const;
const listOf = (items: unknown) => ({
  type: "object",
  required: ["items"],
  properties: { items: { type: "array", items } },
});

/** A record without its spec (lists stay small). */
function summary(r: RegistryRecord): Omit<RegistryRecord, "spec"> {
  const { spec: _spec, ...rest } = r;
  return rest;
}

const registerBodySchema = {
  type: "object",
  additionalProperties: false,
  properties: {
    tasks: { type: "array", maxItems: 10_000, items: anyObject },
    workflows: { type: "array", maxItems: 10_000, items: anyObject },
    launchPlans: { type: "array", maxItems: 10_000, items: anyObject },
    bundles: {
      type: "array",
      maxItems: 1000,
      items: {
        type: "object",
        required: ["digest", "contentBase64"],
        additionalProperties: false,
        properties: { digest: { type: "string", maxLength: 100 }, contentBase64: { type: "string" } },
      },
    },
  },
} as const;

export function registryRoutes(ctx: ApiContext): FastifyPluginAsync {
  return async (app) => {
    app.post<{ Body: RegisterBody }>(
      "/register",
      {
        bodyLimit: ctx.registerBodyLimit,
        config: { auth: { role: "admin", scope: "handler" } },
        schema: {
          summary: "Register tasks, workflows (specs or compiled), launch plans and code bundles",
          description:
            "Registered versions are immutable: the same content again is reported as `exists`; other content under a taken version is refused with 409 and the paths that differ, and nothing in the request is written.",
          tags: ["registry"],
          body: registerBodySchema,
          response: {
            200: {
              type: "object",
              required: ["entities", "bundles"],
              properties: {
                entities: {
                  type: "array",
                  items: {
                    type: "object",
                    required: ["kind", "id", "digest", "status"],
                    properties: {
                      kind: { type: "string" },
                      id: identifierSchema,
                      digest: { type: "string" },
                      status: { type: "string", enum: ["created", "exists"] },
                    },
                  },
                },
                bundles: {
                  type: "array",
                  items: {
                    type: "object",
                    properties: { digest: { type: "string" }, status: { type: "string" } },
                  },
                },
              },
            },
            ...errorResponses(409),
          },
        },
      },
      async (req) => registerAll(ctx, req.body ?? {}, req.principal!),
    );

    for (const { path, kind, label } of KINDS) {
      app.get<{ Params: Scope; Querystring: { name?: string; limit?: number } }>(
        `/projects/:project/domains/:domain/${path}`,
        {
          config: { auth: { role: "viewer", scope: "path" } },
          schema: {
            summary: `List ${label}s, newest first`,
            tags: ["registry"],
            params: scopeParams,
            querystring: {
              type: "object",
              additionalProperties: false,
              properties: { name: nameSchema, limit: { type: "integer", minimum: 1, maximum: 1000 } },
            },
            response: { 200: listOf(registryRecordRef), ...errorResponses() },
          },
        },
        async (req) => {
          const { project, domain } = req.params;
          await ctx.scopes.check(project, domain);
          const items = await ctx.store.registry.list(kind, {
            project,
            domain,
            name: req.query.name,
            limit: req.query.limit ?? 100,
          });
          return { items: items.map(summary) };
        },
      );

      app.get<{ Params: NameParams; Querystring: { limit?: number } }>(
        `/projects/:project/domains/:domain/${path}/:name`,
        {
          config: { auth: { role: "viewer", scope: "path" } },
          schema: {
            summary: `Versions of one ${label}, newest first`,
            tags: ["registry"],
            params: nameParams,
            querystring: {
              type: "object",
              additionalProperties: false,
              properties: { limit: { type: "integer", minimum: 1, maximum: 1000 } },
            },
            response: { 200: listOf(registryRecordRef), ...errorResponses() },
          },
        },
        async (req) => {
          const { project, domain, name } = req.params;
          await ctx.scopes.check(project, domain);
          const items = await ctx.store.registry.list(kind, {
            project,
            domain,
            name,
            limit: req.query.limit ?? 100,
          });
          if (items.length === 0)
            throw notFound(
              `${label} "${name}" is not registered in ${project}/${domain}`,
              "register it with `tern register <file.ts>`",
              { name },
            );
          return { items: items.map(summary) };
        },
      );

      app.get<{ Params: VersionParams }>(
        `/projects/:project/domains/:domain/${path}/:name/versions/:version`,
        {
          config: { auth: { role: "viewer", scope: "path" } },
          schema: {
            summary: `One version of a ${label}, with its spec`,
            tags: ["registry"],
            params: versionParams,
            response: { 200: registryRecordRef, ...errorResponses() },
          },
        },
        async (req) => {
          const { project, domain, name, version } = req.params;
          await ctx.scopes.check(project, domain);
          const r = await ctx.store.registry.get(kind, { project, domain, name, version });
          if (!r)
            throw notFound(
              `${label} ${name}@${version} is not registered in ${project}/${domain}`,
              `list its versions with GET …/${path}/${name}`,
              { name, version },
            );
          return r;
        },
      );
    }

    app.get<{ Params: VersionParams }>(
      "/projects/:project/domains/:domain/workflows/:name/versions/:version/compiled",
      {
        config: { auth: { role: "viewer", scope: "path" } },
        schema: {
          summary: "A workflow version with every task, subworkflow and launch plan it runs",
          tags: ["registry"],
          params: versionParams,
          response: { 200: anyObject, ...errorResponses() },
        },
      },
      async (req) => {
        const { project, domain, name, version } = req.params;
        await ctx.scopes.check(project, domain);
        if (!(await ctx.store.registry.get("workflow", { project, domain, name, version }))) {
          throw notFound(`workflow ${name}@${version} is not registered in ${project}/${domain}`);
        }
        return ctx.compiled.get({ project, domain, name, version });
      },
    );

    app.get<{ Params: NameParams }>(
      "/projects/:project/domains/:domain/launchplans/:name/active",
      {
        config: { auth: { role: "viewer", scope: "path" } },
        schema: {
          summary: "The active version of a launch plan",
          tags: ["registry"],
          params: nameParams,
          response: { 200: registryRecordRef, ...errorResponses() },
        },
      },
      async (req) => {
        const { project, domain, name } = req.params;
        await ctx.scopes.check(project, domain);
        const r = await ctx.store.registry.activeLaunchPlan({ project, domain, name });
        if (!r)
          throw notFound(
            `launch plan "${name}" has no active version in ${project}/${domain}`,
            "activate one with `tern launchplans activate`",
          );
        return r;
      },
    );

    app.post<{ Params: VersionParams }>(
      "/projects/:project/domains/:domain/launchplans/:name/versions/:version/activate",
      {
        config: { auth: { role: "admin", scope: "path" } },
        schema: {
          summary: "Make this version the launch plan's active one (its schedule runs)",
          tags: ["registry"],
          params: versionParams,
          response: { 200: registryRecordRef, ...errorResponses() },
        },
      },
      async (req) => {
        const { project, domain, name, version } = req.params;
        await ctx.scopes.check(project, domain);
        const id = { project, domain, name, version };
        await ctx.store.registry.activate(id);
        const r = await ctx.store.registry.get("launch_plan", id);
        return r ? summary(r) : undefined;
      },
    );

    app.post<{ Params: NameParams }>(
      "/projects/:project/domains/:domain/launchplans/:name/deactivate",
      {
        config: { auth: { role: "admin", scope: "path" } },
        schema: {
          summary: "Deactivate every version of a launch plan (its schedule stops)",
          tags: ["registry"],
          params: nameParams,
          response: {
            200: {
              type: "object",
              required: ["deactivated"],
              properties: { deactivated: { type: "boolean" } },
            },
            ...errorResponses(),
          },
        },
      },
      async (req) => {
        const { project, domain, name } = req.params;
        await ctx.scopes.check(project, domain);
        if (
          (await ctx.store.registry.list("launch_plan", { project, domain, name, limit: 1 })).length === 0
        ) {
          throw notFound(`launch plan "${name}" is not registered in ${project}/${domain}`);
        }
        return { deactivated: await ctx.store.registry.deactivate({ project, domain, name }) };
      },
    );
  };
}
