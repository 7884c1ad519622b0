/**
 * Executions: create, get, list, terminate, relaunch, recover, and answer
 * gates with signals. Paths are under `/api/v1/projects/:project/domains/:domain`.
 * An execution of another project or domain is a 404 here, as if it did not
 * exist.
 */

import type { SignalAnswer } from "@tern/core";
import { ErrorCodes, TernError } from "@tern/core";
import type { FastifyPluginAsync } from "fastify";
import type { ExecutionRecord } from "../../store/executions.js";
import type { ApiContext } from "../context.js";
import { badRequest, notFound } from "../errors.js";
import {
  checkInputRefs,
  compiledOf,
  inputsOf,
  type LaunchTarget,
  resolveLaunch,
  TERMINAL_PHASES,
  toApiExecution,
} from "../launch.js";
import {
  anyJson,
  anyObject,
  errorResponses,
  executionIdSchema,
  executionRef,
  nameSchema,
  nodeIdSchema,
  scopeParams,
  versionSchema,
} from "../schemas.js";

type Scope = { project: string; domain: string };
type IdParams = Scope & { id: string };

export const idParams = {
  type: "object",
  required: ["project", "domain", "id"],
  properties: { ...scopeParams.properties, id: executionIdSchema },
} as const;

const targetSchema = {
  type: "object",
  required: ["name"],
  additionalProperties: false,
  properties: { name: nameSchema, version: versionSchema },
} as const;

/** The execution `id` of the path's project and domain, or a 404. Without `spec`, its spec document is not read. */
export async function scopedExecution(
  ctx: ApiContext,
  p: IdParams,
  opts: { spec?: boolean } = {},
): Promise<ExecutionRecord> {
  const rec = await ctx.store.executions.get(p.id, { spec: opts.spec === true });
  if (!rec || rec.project !== p.project || rec.domain !== p.domain) {
    throw notFound(
      `execution "${p.id}" does not exist in ${p.project}/${p.domain}`,
      "list executions with `tern executions list`",
      { execution: p.id },
    );
  }
  return rec;
}

/** `2024-05-01T00:00:00Z` or epoch milliseconds. */
function parseTime(v: string | undefined, what: string): number | undefined {
  if (v === undefined) return undefined;
  const t = /^\d{1,15}$/.test(v) ? Number(v) : Date.parse(v);
  if (!Number.isFinite(t))
    throw badRequest(
      `${what} must be an ISO date or epoch milliseconds, not "${v.slice(0, 40)}"`,
      "e.g. 2024-05-01T00:00:00Z",
    );
  return t;
}

const KNOWN_PHASES = ["queued", "running", "aborting", "succeeded", "failed", "aborted"];

export function executionRoutes(ctx: ApiContext): FastifyPluginAsync {
  const launch = async (
    scope: Scope,
    resolved: Awaited<ReturnType<typeof resolveLaunch>>,
    extra: { recoverFrom?: string } = {},
  ) => {
    checkInputRefs(ctx, resolved.inputs);
    const rec = await ctx.executor.launch({
      project: scope.project,
      domain: scope.domain,
      compiled: resolved.compiled,
      inputs: resolved.inputs,
      ...(resolved.launchPlan ? { launchPlan: resolved.launchPlan } : {}),
      ...extra,
    });
    return toApiExecution(rec);
  };

  return async (app) => {
    app.post<{ Params: Scope; Body: LaunchTarget & { inputs?: Record<string, unknown> } }>(
      "/projects/:project/domains/:domain/executions",
      {
        config: { auth: { role: "runner", scope: "path" } },
        schema: {
          summary: "Create an execution of a registered workflow or launch plan",
          description:
            "Give `workflow` or `launchPlan` (`version` left out: the latest workflow version, the active launch plan version). Inputs are checked against the registered interface; a 400 names the input.",
          tags: ["executions"],
          params: scopeParams,
          body: {
            type: "object",
            additionalProperties: false,
            properties: { workflow: targetSchema, launchPlan: targetSchema, inputs: anyObject },
          },
          response: { 201: executionRef, ...errorResponses() },
        },
      },
      async (req, reply) => {
        const body = req.body ?? {};
        if (!!body.workflow === !!body.launchPlan) {
          throw badRequest(
            "give exactly one of workflow or launchPlan",
            'e.g. { "workflow": { "name": "hello" }, "inputs": { "name": "Ada" } }',
          );
        }
        await ctx.scopes.check(req.params.project, req.params.domain);
        const resolved = await resolveLaunch(
          ctx,
          req.params.project,
          req.params.domain,
          body,
          body.inputs ?? {},
        );
        return reply.status(201).send(await launch(req.params, resolved));
      },
    );

    app.get<{
      Params: Scope;
      Querystring: {
        phase?: string;
        workflow?: string;
        createdAfter?: string;
        createdBefore?: string;
        limit?: number;
        cursor?: string;
      };
    }>(
      "/projects/:project/domains/:domain/executions",
      {
        config: { auth: { role: "viewer", scope: "path" } },
        schema: {
          summary: "List executions, newest first",
          tags: ["executions"],
          params: scopeParams,
          querystring: {
            type: "object",
            additionalProperties: false,
            properties: {
              phase: {
                type: "string",
                maxLength: 200,
                pattern: "^[a-z-]+(,[a-z-]+)*$",
                description: "one phase or several, comma-separated",
              },
              workflow: nameSchema,
              createdAfter: {
                type: "string",
                maxLength: 40,
                description: "ISO date or epoch ms (inclusive)",
              },
              createdBefore: {
                type: "string",
                maxLength: 40,
                description: "ISO date or epoch ms (exclusive)",
              },
              limit: { type: "integer", minimum: 1, maximum: 500 },
              cursor: { type: "string", maxLength: 400 },
            },
          },
          response: {
            200: {
              type: "object",
              required: ["items"],
              properties: { items: { type: "array", items: executionRef }, nextCursor: { type: "string" } },
            },
            ...errorResponses(),
          },
        },
      },
      async (req) => {
        const { project, domain } = req.params;
        await ctx.scopes.check(project, domain);
        const q = req.query;
        const phases = q.phase?.split(",");
        const unknown = phases?.find((p) => !KNOWN_PHASES.includes(p));
        if (unknown) throw badRequest(`unknown phase "${unknown}"`, `phases are: ${KNOWN_PHASES.join(", ")}`);
        const page = await ctx.store.executions.list({
          project,
          domain,
          ...(phases ? { phase: phases } : {}),
          ...(q.workflow ? { workflowName: q.workflow } : {}),
          createdAfter: parseTime(q.createdAfter, "createdAfter"),
          createdBefore: parseTime(q.createdBefore, "createdBefore"),
          limit: q.limit ?? 50,
          ...(q.cursor ? { cursor: q.cursor } : {}),
          spec: false,
        });
        return {
          items: page.items.map(toApiExecution),
          ...(page.nextCursor ? { nextCursor: page.nextCursor } : {}),
        };
      },
    );

    app.get<{ Params: IdParams }>(
      "/projects/:project/domains/:domain/executions/:id",
      {
        config: { auth: { role: "viewer", scope: "path" } },
        schema: {
          summary: "One execution",
          tags: ["executions"],
          params: idParams,
          response: { 200: executionRef, ...errorResponses() },
        },
      },
      async (req) => toApiExecution(await scopedExecution(ctx, req.params)),
    );

    app.post<{ Params: IdParams; Body: { reason?: string } | undefined }>(
      "/projects/:project/domains/:domain/executions/:id/terminate",
      {
        config: { auth: { role: "runner", scope: "path" } },
        schema: {
          summary: "Stop an execution (a finished one is returned unchanged)",
          tags: ["executions"],
          params: idParams,
          body: {
            type: "object",
            additionalProperties: false,
            properties: { reason: { type: "string", maxLength: 1000 } },
          },
          response: { 200: executionRef, ...errorResponses() },
        },
      },
      async (req) => {
        await scopedExecution(ctx, req.params);
        const who = req.principal?.name ?? "anonymous";
        const reason = req.body?.reason ? `${req.body.reason} (by ${who})` : `terminated by ${who}`;
        return toApiExecution(await ctx.executor.terminate(req.params.id, reason));
      },
    );

    app.post<{ Params: IdParams }>(
      "/projects/:project/domains/:domain/executions/:id/relaunch",
      {
        config: { auth: { role: "runner", scope: "path" } },
        schema: {
          summary: "Run the same workflow version with the same inputs again, as a new execution",
          tags: ["executions"],
          params: idParams,
          body: { type: "object", additionalProperties: false, properties: {} },
          response: { 201: executionRef, ...errorResponses(409) },
        },
      },
      async (req, reply) => {
        const rec = await scopedExecution(ctx, req.params, { spec: true });
        const resolved = {
          compiled: compiledOf(rec),
          inputs: inputsOf(rec),
          ...(rec.launchPlan ? { launchPlan: rec.launchPlan } : {}),
        };
        return reply.status(201).send(await launch(req.params, resolved));
      },
    );

    app.post<{ Params: IdParams }>(
      "/projects/:project/domains/:domain/executions/:id/recover",
      {
        config: { auth: { role: "runner", scope: "path" } },
        schema: {
          summary:
            "Run a failed or aborted execution again as a new one, reusing the outputs of its succeeded nodes",
          tags: ["executions"],
          params: idParams,
          body: { type: "object", additionalProperties: false, properties: {} },
          response: { 201: executionRef, ...errorResponses(409) },
        },
      },
      async (req, reply) => {
        const rec = await scopedExecution(ctx, req.params, { spec: true });
        if (rec.phase !== "failed" && rec.phase !== "aborted") {
          throw new TernError(
            ErrorCodes.CONFLICT,
            TERMINAL_PHASES.has(rec.phase)
              ? `execution ${rec.id} succeeded: there is nothing to recover`
              : `execution ${rec.id} is still ${rec.phase}: recover it once it failed or was aborted`,
            { hint: "relaunch runs it again from scratch", details: { execution: rec.id, phase: rec.phase } },
          );
        }
        const resolved = {
          compiled: compiledOf(rec),
          inputs: inputsOf(rec),
          ...(rec.launchPlan ? { launchPlan: rec.launchPlan } : {}),
        };
        return reply.status(201).send(await launch(req.params, resolved, { recoverFrom: rec.id }));
      },
    );

    app.post<{
      Params: IdParams & { node: string };
      Body: { approved?: boolean; value?: unknown; reason?: string };
    }>(
      "/projects/:project/domains/:domain/executions/:id/signals/:node",
      {
        config: { auth: { role: "runner", scope: "path" } },
        schema: {
          summary: "Answer a gate: { approved } for approve gates, { value } for input gates",
          tags: ["executions"],
          params: {
            type: "object",
            required: ["project", "domain", "id", "node"],
            properties: { ...idParams.properties, node: nodeIdSchema },
          },
          body: {
            type: "object",
            additionalProperties: false,
            properties: {
              approved: { type: "boolean" },
              value: anyJson,
              reason: { type: "string", maxLength: 2000 },
            },
          },
          response: {
            201: {
              type: "object",
              required: ["execution", "node", "createdAt"],
              properties: {
                execution: { type: "string" },
                node: { type: "string" },
                setBy: { type: "string" },
                createdAt: { type: "number" },
                value: anyJson,
              },
            },
            ...errorResponses(409),
          },
        },
      },
      async (req, reply) => {
        const body = req.body ?? {};
        if (body.approved === undefined && body.value === undefined) {
          throw badRequest(
            "give approved (approve gates) or value (input gates)",
            'e.g. { "approved": true }',
          );
        }
        const rec = await scopedExecution(ctx, req.params, { spec: true });
        const node = req.params.node;
        const { workflow } = compiledOf(rec);
        if (!node.includes("/")) {
          const gate = workflow.nodes.find((n) => n.id === node);
          if (gate?.kind !== "gate") {
            const gates = workflow.nodes.filter((n) => n.kind === "gate").map((n) => n.id);
            throw notFound(
              `workflow "${workflow.id.name}" has no gate "${node}"`,
              gates.length ? `its gates are: ${gates.join(", ")}` : "it has no gates",
              { node },
            );
          }
        }
        if (TERMINAL_PHASES.has(rec.phase)) {
          throw new TernError(
            ErrorCodes.CONFLICT,
            `execution ${rec.id} already ${rec.phase}; it waits for no signal`,
            { details: { execution: rec.id, phase: rec.phase } },
          );
        }
        const by = req.principal?.name ?? "anonymous";
        const answer: SignalAnswer = {
          by,
          ...(body.approved !== undefined ? { approved: body.approved } : {}),
          ...(body.value !== undefined ? { value: body.value } : {}),
          ...(body.reason ? { reason: body.reason } : {}),
        };
        await ctx.executor.signal(rec.id, node, answer, by);
        const stored = await ctx.store.signals.get(rec.id, node, "signal");
        return reply.status(201).send({
          execution: rec.id,
          node,
          setBy: by,
          createdAt: stored?.createdAt ?? Date.now(),
          value: answer as unknown,
        });
      },
    );
  };
}
