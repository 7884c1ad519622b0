/**
 * `POST /api/v1/register`: tasks, workflows (bare specs or compiled bundles),
 * launch plans and code bundles in one request. Everything is checked before
 * anything is written: specs against core's schemas, bundles against their
 * digests, references against the request and the registry, schedules against
 * croner, and every id against what is registered (a taken version with other
 * content is a 409 listing what differs, and nothing is written).
 */
import { createHash } from "node:crypto";
import {
  type CompiledWorkflow,
  ErrorCodes,
  type Identifier,
  type LaunchPlanSpec,
  type TaskSpec,
  TernError,
  validateCompiledWorkflow,
  validateLaunchPlanSpec,
  validateTaskSpec,
  validateWorkflowSpec,
  type WorkflowSpec,
} from "@tern/core";
import { Cron } from "croner";
import type { Principal } from "../auth/tokens.js";
import { bundleKey } from "../executor/index.js";
import { type RegistryKind, specDigest } from "../store/registry.js";
import { describeDiff, diffSpecs } from "../store/spec-diff.js";
import { assembleCompiled, registryLookup, type SpecLookup, splitKey } from "./compiled.js";
import type { ApiContext } from "./context.js";
import { badRequest } from "./errors.js";

/** The request body (already shape-checked by the route's JSON Schema). */
export interface RegisterBody {
  tasks?: unknown[];
  /** `WorkflowSpec`s, or `CompiledWorkflow`s (a workflow with every task it uses). */
  workflows?: unknown[];
  launchPlans?: unknown[];
  /** Code bundles the tasks name in `code.bundle`, base64-encoded. */
  bundles?: { digest: string; contentBase64: string }[];
}

/** What happened to one entity. */
export interface RegisteredEntity {
  kind: RegistryKind;
  id: Identifier;
  digest: string;
  status: "created" | "exists";
}

export interface RegisterResponse {
  entities: RegisteredEntity[];
  bundles: { digest: string; status: "created" | "exists" }[];
}

type Entity =
  | { kind: "task"; spec: TaskSpec; where: string }
  | { kind: "workflow"; spec: WorkflowSpec; where: string; compiled?: CompiledWorkflow }
  | { kind: "launch_plan"; spec: LaunchPlanSpec; where: string };

const DIGEST = /^sha256:[0-9a-f]{64}$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

const idText = (id: Identifier) => `${id.project}/${id.domain}/${id.name}@${id.version}`;
const kindText = (k: RegistryKind) => k.replace("_", " ");

/** Re-throw a spec validation error with where in the request it happened. */
function at<T>(where: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof TernError)
      throw new TernError(e.code, `${where}: ${e.message}`, {
        hint: e.hint,
        details: { ...e.details, at: where },
      });
    throw e;
  }
}

/** Check a launch plan's schedule: a cron expression croner accepts and that fires, or a positive rate. */
export function checkSchedule(lp: LaunchPlanSpec, where: string): void {
  const s = lp.schedule;
  if (!s || !("cron" in s)) return;
  let next: Date | null = null;
  try {
    const job = new Cron(s.cron, { paused: true, ...(s.timezone ? { timezone: s.timezone } : {}) });
    next = job.nextRun();
    job.stop();
  } catch (e) {
    throw new TernError(
      ErrorCodes.SPEC_INVALID,
      `${where}: launch plan "${lp.id.name}" has an invalid schedule "${s.cron}"${s.timezone ? ` (timezone ${s.timezone})` : ""}: ${(e as Error).message}`,
      {
        hint: 'use a cron expression of 5 or 6 fields (e.g. "0 3 * * *") and an IANA timezone (e.g. "Europe/Paris")',
        details: { at: where, cron: s.cron, timezone: s.timezone },
      },
    );
  }
  if (!next) {
    throw new TernError(
      ErrorCodes.SPEC_INVALID,
      `${where}: the schedule "${s.cron}" of launch plan "${lp.id.name}" never fires`,
      {
        hint: "check the day-of-month and month fields",
        details: { at: where, cron: s.cron },
      },
    );
  }
}

/** Decode and check the bundles: each digest must be the SHA-256 of its content. */
function decodeBundles(bundles: RegisterBody["bundles"]): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  (bundles ?? []).forEach((b, i) => {
    const where = `bundles[${i}]`;
    if (!DIGEST.test(b.digest)) throw badRequest(`${where}.digest must look like sha256:<64 hex digits>`);
    const text = b.contentBase64.replace(/\s+/g, "");
    if (!BASE64.test(text) || text.length % 4 === 1) throw badRequest(`${where}.contentBase64 is not base64`);
    const content = Buffer.from(text, "base64");
    const actual = `sha256:${createHash("sha256").update(content).digest("hex")}`;
    if (actual !== b.digest) {
      throw badRequest(
        `${where}: the content's digest is ${actual}, not ${b.digest}`,
        "send the bundle's bytes unchanged, base64-encoded",
        {
          at: where,
          expected: b.digest,
          actual,
        },
      );
    }
    out.set(b.digest, content);
  });
  return out;
}

/** A compiled workflow or a bare spec, told apart by shape. */
function isCompiled(v: unknown): boolean {
  return typeof v === "object" && v !== null && "workflow" in v && "tasks" in v;
}

/** Register everything in `body` for `principal` (admin in every project and domain it touches). */
export async function registerAll(
  ctx: ApiContext,
  body: RegisterBody,
  principal: Principal,
): Promise<RegisterResponse> {
  const bundles = decodeBundles(body.bundles);
  const entities = new Map<string, Entity>();
  const add = (e: Entity) => {
    const key = `${e.kind}:${idText(e.spec.id)}`;
    const prior = entities.get(key);
    if (prior) {
      if (specDigest(prior.spec) !== specDigest(e.spec)) {
        throw badRequest(
          `${e.where} and ${prior.where} are two different ${kindText(e.kind)}s with the same id ${idText(e.spec.id)}`,
          "give them different names or versions",
        );
      }
      if (e.kind === "workflow" && e.compiled && prior.kind === "workflow") prior.compiled ??= e.compiled;
      return;
    }
    entities.set(key, e);
  };

  const compiledList: { compiled: CompiledWorkflow; where: string }[] = [];
  for (const [i, t] of (body.tasks ?? []).entries()) {
    add({ kind: "task", spec: at(`tasks[${i}]`, () => validateTaskSpec(t)), where: `tasks[${i}]` });
  }
  (body.workflows ?? []).forEach((w, i) => {
    const where = `workflows[${i}]`;
    if (isCompiled(w)) {
      const compiled = at(where, () => validateCompiledWorkflow(w));
      compiledList.push({ compiled, where });
      add({ kind: "workflow", spec: compiled.workflow, where, compiled });
      for (const [k, t] of Object.entries(compiled.tasks))
        add({ kind: "task", spec: t, where: `${where}.tasks["${k}"]` });
      for (const [k, s] of Object.entries(compiled.subworkflows ?? {}))
        add({ kind: "workflow", spec: s, where: `${where}.subworkflows["${k}"]` });
      for (const [k, lp] of Object.entries(compiled.launchPlans ?? {}))
        add({ kind: "launch_plan", spec: lp, where: `${where}.launchPlans["${k}"]` });
    } else {
      add({ kind: "workflow", spec: at(where, () => validateWorkflowSpec(w)), where });
    }
  });
  (body.launchPlans ?? []).forEach((lp, i) => {
    const where = `launchPlans[${i}]`;
    add({ kind: "launch_plan", spec: at(where, () => validateLaunchPlanSpec(lp)), where });
  });
  if (entities.size === 0 && bundles.size === 0) {
    throw badRequest("nothing to register", "send at least one of tasks, workflows, launchPlans or bundles");
  }

  // Where everything goes: existing domains, and admin there.
  const scopes = new Map<string, { project: string; domain: string }>();
  for (const e of entities.values())
    scopes.set(`${e.spec.id.project}\u0000${e.spec.id.domain}`, {
      project: e.spec.id.project,
      domain: e.spec.id.domain,
    });
  for (const s of scopes.values()) {
    await ctx.scopes.checkDomain(s.domain);
    ctx.auth.require(principal, "admin", s);
  }
  if (scopes.size === 0) ctx.auth.require(principal, "admin", {});

  // A compiled workflow lives in one project and domain.
  for (const { compiled, where } of compiledList) {
    const { project, domain } = compiled.workflow.id;
    const stray = [
      ...Object.values(compiled.tasks),
      ...Object.values(compiled.subworkflows ?? {}),
      ...Object.values(compiled.launchPlans ?? {}),
    ].find((s) => s.id.project !== project || s.id.domain !== domain);
    if (stray) {
      throw badRequest(
        `${where}: ${stray.id.name}@${stray.id.version} is in ${stray.id.project}/${stray.id.domain}, not in the workflow's ${project}/${domain}`,
        "compile the workflow and its tasks for one project and domain",
      );
    }
  }

  // Code: every bundle a task names is in the request or already stored.
  for (const e of entities.values()) {
    if (e.kind !== "task" || !e.spec.code?.bundle) continue;
    const digest = e.spec.code.bundle;
    if (bundles.has(digest)) continue;
    if (!DIGEST.test(digest) || !(await ctx.blobs.exists(ctx.blobs.uri(bundleKey(digest))))) {
      throw badRequest(
        `${e.where}: task "${e.spec.id.name}" runs code bundle ${digest}, which is neither in the request nor stored`,
        "include it in bundles: [{ digest, contentBase64 }]",
        {
          at: e.where,
          bundle: digest,
        },
      );
    }
  }

  // Launch plans: schedules, and workflows that exist.
  const inRequest = (kind: RegistryKind, id: Identifier) => entities.has(`${kind}:${idText(id)}`);
  for (const e of entities.values()) {
    if (e.kind !== "launch_plan") continue;
    checkSchedule(e.spec, e.where);
    const wf = e.spec.workflow;
    if (wf.project !== e.spec.id.project || wf.domain !== e.spec.id.domain) {
      throw badRequest(
        `${e.where}: launch plan "${e.spec.id.name}" runs a workflow of another project or domain (${idText(wf)})`,
      );
    }
    if (!inRequest("workflow", wf) && !(await ctx.store.registry.get("workflow", wf))) {
      throw new TernError(
        ErrorCodes.SPEC_INVALID,
        `${e.where}: launch plan "${e.spec.id.name}" runs workflow ${idText(wf)}, which is neither in the request nor registered`,
        {
          hint: "register the workflow in the same request",
          details: { at: e.where, workflow: wf },
        },
      );
    }
  }

  // Compiled bundles for every workflow: as sent, or assembled from the request and the registry.
  const compiledFor = new Map<string, CompiledWorkflow>();
  for (const e of entities.values()) {
    if (e.kind !== "workflow") continue;
    const { project, domain } = e.spec.id;
    const fromRegistry = registryLookup(ctx.store, project, domain);
    const local = (kind: RegistryKind, key: string) =>
      entities.get(`${kind}:${idText({ project, domain, ...splitKey(key) })}`)?.spec;
    const lookup: SpecLookup = {
      task: async (k) => (local("task", k) as TaskSpec | undefined) ?? fromRegistry.task(k),
      workflow: async (k) => (local("workflow", k) as WorkflowSpec | undefined) ?? fromRegistry.workflow(k),
      launchPlan: async (k) =>
        (local("launch_plan", k) as LaunchPlanSpec | undefined) ?? fromRegistry.launchPlan(k),
    };
    compiledFor.set(
      idText(e.spec.id),
      e.compiled ?? (await at(e.where, () => assembleCompiled(e.spec, lookup))),
    );
  }

  // Conflicts: refuse the whole request if any id is taken by other content.
  const conflicts: { kind: RegistryKind; id: Identifier; changed: string[]; more: number; at: string }[] = [];
  for (const e of entities.values()) {
    const prior = await ctx.store.registry.get(e.kind, e.spec.id);
    if (prior && prior.digest !== specDigest(e.spec)) {
      const diff = diffSpecs(prior.spec, e.spec);
      conflicts.push({ kind: e.kind, id: e.spec.id, changed: diff.paths, more: diff.more, at: e.where });
    }
  }
  if (conflicts.length) {
    const describe = (c: (typeof conflicts)[number]) =>
      `${kindText(c.kind)} ${idText(c.id)} (changed: ${describeDiff({ paths: c.changed, more: c.more })})`;
    const message =
      conflicts.length === 1
        ? `${describe(conflicts[0])} is already registered with different content`
        : `${conflicts.length} versions are already registered with different content: ${conflicts.slice(0, 5).map(describe).join("; ")}${conflicts.length > 5 ? `; and ${conflicts.length - 5} more` : ""}`;
    throw new TernError(ErrorCodes.VERSION_CONFLICT, message, {
      hint: "registered versions are immutable: register under a new version (--version), or leave the version out to derive one from the content",
      details: { conflicts },
    });
  }

  // Write: code first, then compiled bundles, then the registry rows that make them visible.
  const bundleResults: RegisterResponse["bundles"] = [];
  for (const [digest, content] of bundles) {
    const uri = ctx.blobs.uri(bundleKey(digest));
    if (await ctx.blobs.exists(uri)) bundleResults.push({ digest, status: "exists" });
    else {
      await ctx.blobs.put(bundleKey(digest), content);
      bundleResults.push({ digest, status: "created" });
    }
  }
  for (const c of compiledFor.values()) await ctx.compiled.save(c);
  for (const s of scopes.values()) await ctx.scopes.ensureProject(s.project);
  const order: RegistryKind[] = ["task", "workflow", "launch_plan"];
  const results: RegisteredEntity[] = [];
  for (const kind of order) {
    for (const e of entities.values()) {
      if (e.kind !== kind) continue;
      const r = await ctx.store.registry.register(kind, e.spec as never);
      results.push({ kind, id: r.record.id, digest: r.record.digest, status: r.status });
    }
  }
  return { entities: results, bundles: bundleResults };
}
