/**
 * Executions: create, get, list, terminate, relaunch, recover, and answer
 * gates with signals. Paths are under `/api/v1/projects/:project/domains/:domain`.
 * An execution of another project or domain is a 404 here, as if it did not
 * exist.
 */

import type { SignalAnswer } from "@tern/core";
import { ErrorCodes, isTernError, TernError } from "@tern/core";
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from "fastify";
import { checkLaunch } from "../../executor/executor.js";
import type { ExecutionRecord } from "../../store/executions.js";
import type { ApiContext } from "../context.js";
import { badRequest, notFound, statusForCode, toErrorResponse } from "../errors.js";
import {
  checkInputRefs,
  compiledOf,
  inputsOf,
  type LaunchTarget,
  type ResolvedLaunch,
  type ResolvedTarget,
  resolveTarget,
  TERMINAL_PHASES,
  toApiExecution,
  withInputs,
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
import { ExecutionWaits, MAX_WAIT_SECONDS, preferredWait } from "../wait.js";

type Scope = { project: string; domain: string };
/** What creates one execution: the body of `POST …/executions`, an item of the batch. */
type CreateBody = LaunchTarget & { inputs?: Record<string, unknown> };
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

const createBody = {
  type: "object",
  additionalProperties: false,
  properties: { workflow: targetSchema, launchPlan: targetSchema, inputs: anyObject },
} as const;

/** The most executions one batch creates. */
export const MAX_BATCH = 1000;

const preferHeader = {
  type: "object",
  properties: {
    prefer: {
      type: "string",
      description: `\`wait=<seconds>\` (RFC 7240): answer once the execution is over or the wait ran out; at most ${MAX_WAIT_SECONDS} s (a larger value waits ${MAX_WAIT_SECONDS} s). \`wait=0\` or a malformed value: no wait.`,
    },
  },
} as const;

const preferenceApplied = {
  "Preference-Applied": {
    type: "string",
    description: "`wait=<seconds>` when the request waited (the wait it applied, after the cap)",
  },
} as const;

const WAIT_DESCRIPTION = `With \`Prefer: wait=<seconds>\` (RFC 7240) the answer comes once the execution is over (succeeded, failed or aborted: its outputs or error included) or when the wait runs out, whichever is first, with the record as it is then; the status is 201 either way, with \`Preference-Applied: wait=<n>\`. The wait is at most ${MAX_WAIT_SECONDS} s (a larger value waits ${MAX_WAIT_SECONDS} s); \`wait=0\` or a malformed value means no wait. A server shutting down answers waiting requests at once.`;

/** Refuse a create body that names neither or both of workflow and launch plan. */
function needOneTarget(body: CreateBody): void {
  if (!!body.workflow === !!body.launchPlan) {
    throw badRequest(
      "give exactly one of workflow or launchPlan",
      'e.g. { "workflow": { "name": "hello" }, "inputs": { "name": "Ada" } }',
    );
  }
}

/** An item's error, naming the item (`executions[3]: …`, `details.index`); server failures pass unchanged. */
function forItem(e: unknown, index: number): unknown {
  if (!isTernError(e) || statusForCode(e.code) >= 500) return e;
  return new TernError(e.code, `executions[${index}]: ${e.message}`, {
    ...(e.hint ? { hint: e.hint } : {}),
    kind: e.kind,
    details: { ...e.details, index },
    cause: e,
  });
}

/** A schema error inside `executions[i]` of a batch: the usual 400, naming the item like the other item errors. */
function batchSchemaError(err: Error): unknown {
  const first = (err as { validation?: { instancePath?: string }[] }).validation?.[0];
  const m = /^\/executions\/(\d+)(?:\/|$)/.exec(first?.instancePath ?? "");
  if (!m) return err;
  const { error } = toErrorResponse(err).body;
  const index = Number(m[1]);
  return badRequest(`executions[${index}]: ${error.message}`, error.hint, { ...error.details, index });
}

/**
 * The execution `id` of the path's project and domain, or a 404. Without `spec`, its spec
 * document is not read. With `live`, the record of an execution this replica drives is the
 * executor's (its phase may lag a termination request: for scope checks).
 */
export async function scopedExecution(
  ctx: ApiContext,
  p: IdParams,
  opts: { spec?: boolean; live?: boolean } = {},
): Promise<ExecutionRecord> {
  // With `live`, an execution driven here is checked against the executor's record (no store read).
  const rec =
    (opts.live ? ctx.executor.record(p.id) : undefined) ??
    (await ctx.store.executions.get(p.id, { spec: opts.spec === true }));
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
  const waits = new ExecutionWaits(ctx);

  const launch = (
    scope: Scope,
    resolved: ResolvedLaunch & { checked?: boolean },
    extra: { recoverFrom?: string } = {},
  ) => {
    if (!resolved.checked) checkInputRefs(ctx, resolved.inputs);
    return ctx.executor.launch({
      project: scope.project,
      domain: scope.domain,
      compiled: resolved.compiled,
      inputs: resolved.inputs,
      ...(resolved.launchPlan ? { launchPlan: resolved.launchPlan } : {}),
      ...(resolved.checked ? { checked: true } : {}),
      ...extra,
    });
  };

  /**
   * Resolve what a create body names and check it as launching will (inputs, file
   * references, the spec), creating nothing. `targets` shares resolutions within a batch.
   */
  const prepare = async (
    scope: Scope,
    body: CreateBody,
    targets: Map<string, Promise<ResolvedTarget>> = new Map(),
  ): Promise<ResolvedLaunch & { checked: true }> => {
    needOneTarget(body);
    const named = body.workflow ?? body.launchPlan!;
    const key = `${body.workflow ? "workflow" : "launchPlan"}\0${named.name}\0${named.version ?? ""}`;
    let target = targets.get(key);
    if (!target) targets.set(key, (target = resolveTarget(ctx, scope.project, scope.domain, body)));
    const resolved = withInputs(await target, body.inputs ?? {});
    checkInputRefs(ctx, resolved.inputs);
    // Checked here once; launching takes them as they are (defaults filled in).
    const { compiled, inputs } = checkLaunch(resolved.compiled, resolved.inputs);
    return { ...resolved, compiled, inputs, checked: true };
  };

  /**
   * Launch checked executions (at once: the store can group their writes), then wait as the
   * request's `Prefer: wait=<n>` asks. Their API records, in order, as they are then.
   */
  const create = async (
    req: FastifyRequest,
    reply: FastifyReply,
    scope: Scope,
    items: readonly (ResolvedLaunch & { checked?: boolean })[],
  ): Promise<Record<string, unknown>[]> => {
    const recs = await Promise.all(items.map((item) => launch(scope, item)));
    const wait = preferredWait(req.headers.prefer);
    if (wait === 0) return recs.map(toApiExecution);
    reply.header("preference-applied", `wait=${wait}`);
    // The client going away closes the response before it ended. (Not `req.signal`: on
    // Node 20 the request emits "close" once its body is read, so that signal cannot tell.)
    const gone = new AbortController();
    const onClose = () => {
      if (!reply.raw.writableEnded) gone.abort();
    };
    if (reply.raw.destroyed) gone.abort();
    reply.raw.once("close", onClose);
    try {
      return (await waits.wait(recs, wait * 1000, gone.signal)).map(toApiExecution);
    } finally {
      reply.raw.off("close", onClose);
    }
  };

  return async (app) => {
    app.post<{ Params: Scope; Body: CreateBody }>(
      "/projects/:project/domains/:domain/executions",
      {
        config: { auth: { role: "runner", scope: "path" } },
        schema: {
          summary:
            "Create an execution of a registered workflow or launch plan (Prefer: wait for its outcome)",
          description: `Give \`workflow\` or \`launchPlan\` (\`version\` left out: the latest workflow version, the active launch plan version). Inputs are checked against the registered interface; a 400 names the input. ${WAIT_DESCRIPTION}`,
          tags: ["executions"],
          params: scopeParams,
          headers: preferHeader,
          body: createBody,
          response: {
            201: { description: "The execution", headers: preferenceApplied, ...executionRef },
            ...errorResponses(),
          },
        },
      },
      async (req, reply) => {
        const body = req.body ?? {};
        needOneTarget(body);
        await ctx.scopes.check(req.params.project, req.params.domain);
        const [rec] = await create(req, reply, req.params, [await prepare(req.params, body)]);
        return reply.status(201).send(rec);
      },
    );

    app.post<{ Params: Scope; Body: { executions: CreateBody[] } }>(
      "/projects/:project/domains/:domain/executions/batch",
      {
        config: { auth: { role: "runner", scope: "path" } },
        attachValidation: true,
        schema: {
          summary: `Create up to ${MAX_BATCH} executions at once, checked first: one invalid item creates none (Prefer: wait for their outcomes)`,
          description: `Each item is a create body (\`workflow\` or \`launchPlan\`, \`inputs\`). Every item is resolved and checked first: if one is invalid the answer is its error (a 400 for bad inputs) with \`executions[<i>]: …\` in the message and \`details.index\`, and no execution is created. Otherwise all are created and the answer lists them in request order. ${WAIT_DESCRIPTION} The wait covers every execution of the batch.`,
          tags: ["executions"],
          params: scopeParams,
          headers: preferHeader,
          body: {
            type: "object",
            required: ["executions"],
            additionalProperties: false,
            properties: {
              executions: { type: "array", minItems: 1, maxItems: MAX_BATCH, items: createBody },
            },
          },
          response: {
            201: {
              description: "The executions, in request order",
              headers: preferenceApplied,
              type: "object",
              required: ["executions"],
              properties: { executions: { type: "array", items: executionRef } },
            },
            ...errorResponses(),
          },
        },
      },
      async (req, reply) => {
        if (req.validationError) throw batchSchemaError(req.validationError);
        await ctx.scopes.check(req.params.project, req.params.domain);
        const targets = new Map<string, Promise<ResolvedTarget>>();
        const items: ResolvedLaunch[] = [];
        for (const [i, body] of req.body.executions.entries()) {
          try {
            items.push(await prepare(req.params, body, targets));
          } catch (e) {
            throw forItem(e, i);
          }
        }
        return reply.status(201).send({ executions: await create(req, reply, req.params, items) });
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
        return reply.status(201).send(toApiExecution(await launch(req.params, resolved)));
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
        return reply
          .status(201)
          .send(toApiExecution(await launch(req.params, resolved, { recoverFrom: rec.id })));
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
