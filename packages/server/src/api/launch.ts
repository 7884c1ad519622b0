/**
 * What creating an execution needs beyond the executor: resolving a workflow
 * or launch plan by name (latest or active version when none is given),
 * merging a launch plan's defaults and fixed inputs, refusing file inputs that
 * point into the server's own disk, and the API's view of an execution record.
 */
import {
  type CompiledWorkflow,
  ErrorCodes,
  type Identifier,
  type Json,
  type LaunchPlanSpec,
  TernError,
} from "@tern/core";
import type { ExecutionRecord } from "../store/executions.js";
import type { ApiContext } from "./context.js";
import { notFound } from "./errors.js";

/** Phases an execution cannot leave. */
export const TERMINAL_PHASES: ReadonlySet<string> = new Set(["succeeded", "failed", "aborted"]);

/** What to run, as a client names it. */
export interface LaunchTarget {
  workflow?: { name: string; version?: string };
  launchPlan?: { name: string; version?: string };
}

export interface ResolvedLaunch {
  compiled: CompiledWorkflow;
  inputs: Record<string, unknown>;
  launchPlan?: { name: string; version: string };
}

/** An execution as the API returns it: no internal spec, lease or owner. */
export function toApiExecution(r: ExecutionRecord): Record<string, unknown> {
  const { spec: _spec, owner: _owner, leaseExpiresAt: _lease, ...rest } = r;
  return rest;
}

/** A target resolved to what it runs, before inputs: its compiled workflow and, for a launch plan, the plan. */
export interface ResolvedTarget {
  compiled: CompiledWorkflow;
  plan?: {
    id: { name: string; version: string };
    defaults: Record<string, unknown>;
    fixed: Record<string, unknown>;
  };
}

/** Resolve a target to its compiled workflow (and launch plan). Throws 404 for unknown names. */
export async function resolveTarget(
  ctx: ApiContext,
  project: string,
  domain: string,
  target: LaunchTarget,
): Promise<ResolvedTarget> {
  if (target.workflow) {
    const { name, version } = target.workflow;
    if (version) return { compiled: await ctx.compiled.get({ project, domain, name, version }) };
    const rec = await ctx.store.registry.latest("workflow", { project, domain, name });
    if (!rec) {
      throw notFound(
        `workflow "${name}" is not registered in ${project}/${domain}`,
        `register it: tern register <file.ts> --project ${project} --domain ${domain}`,
        {
          workflow: name,
        },
      );
    }
    return { compiled: await ctx.compiled.get(rec.id) };
  }
  const { name, version } = target.launchPlan!;
  const key = { project, domain, name };
  const rec = version
    ? await ctx.store.registry.get("launch_plan", { ...key, version })
    : ((await ctx.store.registry.activeLaunchPlan(key)) ??
      (await ctx.store.registry.latest("launch_plan", key)));
  if (!rec) {
    throw notFound(
      `launch plan ${version ? `${name}@${version}` : `"${name}"`} is not registered in ${project}/${domain}`,
      "list launch plans with `tern launchplans list`",
      {
        launchPlan: name,
      },
    );
  }
  const lp = rec.spec as unknown as LaunchPlanSpec;
  return {
    compiled: await ctx.compiled.get(lp.workflow as Identifier),
    plan: {
      id: { name: rec.id.name, version: rec.id.version },
      defaults: lp.defaults ?? {},
      fixed: lp.fixed ?? {},
    },
  };
}

/** Merge the inputs given with a launch plan's defaults and fixed inputs. Throws 400 for fixed inputs given. */
export function withInputs(target: ResolvedTarget, given: Record<string, unknown>): ResolvedLaunch {
  const { compiled, plan } = target;
  if (!plan) return { compiled, inputs: given };
  for (const k of Object.keys(given)) {
    if (Object.hasOwn(plan.fixed, k)) {
      throw new TernError(
        ErrorCodes.INPUT_INVALID,
        `input "${k}" is fixed by launch plan "${plan.id.name}" and cannot be given`,
        {
          hint: `its fixed inputs are: ${Object.keys(plan.fixed).join(", ")}`,
          details: { input: k },
        },
      );
    }
  }
  return {
    compiled,
    inputs: { ...plan.defaults, ...given, ...plan.fixed },
    launchPlan: plan.id,
  };
}

/**
 * Refuse file and directory inputs that would make the server read its own
 * disk: outside the open loopback sandbox, a reference must be a URI inside
 * the server's blob storage.
 */
export function checkInputRefs(ctx: ApiContext, inputs: Record<string, unknown>): void {
  if (!ctx.remoteInputsOnly) return;
  const root = ctx.blobs.uri("");
  const visit = (v: unknown, at: string, depth: number): void => {
    if (depth > 64 || typeof v !== "object" || v === null) return;
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) visit(v[i], `${at}[${i}]`, depth + 1);
      return;
    }
    const o = v as Record<string, unknown>;
    if (typeof o.$tern === "string") {
      const uri = typeof o.uri === "string" ? o.uri : undefined;
      if (o.path !== undefined || !uri || !uri.startsWith(root)) {
        throw new TernError(
          ErrorCodes.INPUT_INVALID,
          `input "${at}" names a ${String(o.$tern)} by a server-side path; this server only takes references into its blob storage`,
          {
            hint: `give { "$tern": "${String(o.$tern)}", "uri": "${root}…" } (upload the data first)`,
            details: { input: at.split(/[.[]/)[0] },
          },
        );
      }
      return;
    }
    for (const [k, x] of Object.entries(o)) visit(x, `${at}.${k}`, depth + 1);
  };
  for (const [k, v] of Object.entries(inputs)) visit(v, k, 0);
}

/** The compiled workflow an execution runs (the executor stores it with the execution). */
export function compiledOf(rec: ExecutionRecord): CompiledWorkflow {
  const c = (rec.spec as { compiled?: CompiledWorkflow } | null)?.compiled;
  if (!c) {
    throw new TernError(ErrorCodes.CONFLICT, `execution ${rec.id} carries no workflow spec to run again`, {
      details: { execution: rec.id },
    });
  }
  return c;
}

/** Inputs of a stored execution, as an object. */
export function inputsOf(rec: ExecutionRecord): Record<string, unknown> {
  const i = rec.inputs as Json;
  return typeof i === "object" && i !== null && !Array.isArray(i) ? (i as Record<string, unknown>) : {};
}
