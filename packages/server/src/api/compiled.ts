/**
 * Compiled workflows of the registry: the workflow spec together with every
 * task, subworkflow and launch plan it references, which is what the executor
 * runs. Each is written at registration as a blob named after the workflow's
 * id (ids are immutable, so the blob is too), read back when an execution is
 * created, and kept in a bounded in-memory cache. A missing blob is
 * re-assembled from the registry.
 */
import { createHash } from "node:crypto";
import {
  type BlobStore,
  type CompiledWorkflow,
  canonicalJson,
  ErrorCodes,
  type Identifier,
  type LaunchPlanSpec,
  type NodeSpec,
  SPEC_VERSION,
  type TaskSpec,
  TernError,
  type WorkflowSpec,
} from "@tern/core";
import { type RegistryKind, specDigest } from "../store/registry.js";
import type { Store } from "../store/store.js";

/** Where an entity referenced by key (`name@version`) comes from while assembling. */
export interface SpecLookup {
  task(key: string): TaskSpec | undefined | Promise<TaskSpec | undefined>;
  workflow(key: string): WorkflowSpec | undefined | Promise<WorkflowSpec | undefined>;
  launchPlan(key: string): LaunchPlanSpec | undefined | Promise<LaunchPlanSpec | undefined>;
}

/** `name@version` → `{ name, version }` (the version may itself hold `@`; the name cannot). */
export function splitKey(key: string): { name: string; version: string } {
  const at = key.indexOf("@");
  return at < 0 ? { name: key, version: "" } : { name: key.slice(0, at), version: key.slice(at + 1) };
}

/** The nodes of a node list, descending into branch cases (which run in the same workflow). */
function* walk(nodes: readonly NodeSpec[]): Generator<NodeSpec> {
  for (const n of nodes) {
    yield n;
    if (n.kind === "branch") {
      for (const c of n.cases) yield* walk(c.nodes);
      if (n.else && "nodes" in n.else) yield* walk(n.else.nodes);
    }
  }
}

/**
 * Gather everything `workflow` references into a {@link CompiledWorkflow}.
 * Throws `TERN_E_SPEC_INVALID` naming the first reference the lookup cannot
 * resolve.
 */
export async function assembleCompiled(
  workflow: WorkflowSpec,
  lookup: SpecLookup,
): Promise<CompiledWorkflow> {
  const tasks: Record<string, TaskSpec> = {};
  const subworkflows: Record<string, WorkflowSpec> = {};
  const launchPlans: Record<string, LaunchPlanSpec> = {};
  const missing = (what: string, key: string, owner: string) =>
    new TernError(
      ErrorCodes.SPEC_INVALID,
      `workflow "${owner}" references ${what} ${key}, which is neither in the request nor registered`,
      {
        hint: `register the ${what} first, or send the compiled workflow (with its tasks) instead of the bare spec`,
        details: { missing: { kind: what, key } },
      },
    );
  const addTask = async (key: string, owner: string) => {
    if (tasks[key]) return;
    const t = await lookup.task(key);
    if (!t) throw missing("task", key, owner);
    tasks[key] = t;
  };
  const addWorkflow = async (key: string, owner: string): Promise<void> => {
    if (subworkflows[key]) return;
    const w = await lookup.workflow(key);
    if (!w) throw missing("workflow", key, owner);
    subworkflows[key] = w;
    await visit(w);
  };
  const visit = async (wf: WorkflowSpec): Promise<void> => {
    const owner = wf.id.name;
    const all = [...walk(wf.nodes), ...(wf.onFailure ? [wf.onFailure] : [])];
    for (const n of all) {
      if (n.kind === "task") await addTask(n.task, owner);
      else if (n.kind === "workflow") await addWorkflow(n.workflow, owner);
      else if (n.kind === "map") {
        if ("task" in n.target) await addTask(n.target.task, owner);
        else await addWorkflow(n.target.workflow, owner);
      } else if (n.kind === "launchplan") {
        if (launchPlans[n.launchPlan]) continue;
        const lp = await lookup.launchPlan(n.launchPlan);
        if (!lp) throw missing("launch plan", n.launchPlan, owner);
        launchPlans[n.launchPlan] = lp;
        await addWorkflow(`${lp.workflow.name}@${lp.workflow.version}`, owner);
      }
    }
  };
  await visit(workflow);
  const compiled: CompiledWorkflow = { specVersion: SPEC_VERSION, workflow, tasks };
  if (Object.keys(subworkflows).length) compiled.subworkflows = subworkflows;
  if (Object.keys(launchPlans).length) compiled.launchPlans = launchPlans;
  return compiled;
}

/** A lookup over the registry of one project and domain. */
export function registryLookup(store: Store, project: string, domain: string): SpecLookup {
  const id = (key: string): Identifier => ({ project, domain, ...splitKey(key) });
  return {
    task: async (key) => (await store.registry.get("task", id(key)))?.spec,
    workflow: async (key) => (await store.registry.get("workflow", id(key)))?.spec,
    launchPlan: async (key) =>
      (await store.registry.get("launch_plan", id(key)))?.spec as LaunchPlanSpec | undefined,
  };
}

/** Blob key of a registered workflow's compiled bundle. */
export function compiledKey(id: Identifier): string {
  const h = createHash("sha256")
    .update(canonicalJson({ project: id.project, domain: id.domain, name: id.name, version: id.version }))
    .digest("hex");
  return `registry/compiled/${h}.json`;
}

/** Compiled workflows by id: blob storage behind a small LRU cache. */
export class CompiledWorkflows {
  private readonly cache = new Map<string, CompiledWorkflow>();

  constructor(
    private readonly store: Store,
    private readonly blobs: BlobStore,
    private readonly cacheSize = 1000,
  ) {}

  /**
   * Write the compiled bundle of a workflow about to be registered (idempotent).
   * It is not cached: only bundles checked against the registry are.
   */
  async save(compiled: CompiledWorkflow): Promise<void> {
    const key = compiledKey(compiled.workflow.id);
    const uri = this.blobs.uri(key);
    if (!(await this.blobs.exists(uri))) await this.blobs.put(key, JSON.stringify(compiled));
  }

  /**
   * The compiled bundle of a registered workflow version. Throws
   * `TERN_E_NOT_FOUND` when the version is not registered. A bundle read from
   * blob storage is checked against the registry (every spec's digest) before
   * it is trusted and cached: two registrations racing for one id may leave the
   * loser's bundle there; the registry's rows are what was accepted.
   */
  async get(id: Identifier): Promise<CompiledWorkflow> {
    // Every launch comes through here: the cache key is plain text, the blob key a digest.
    const mem = `${id.project}\u0000${id.domain}\u0000${id.name}\u0000${id.version}`;
    const hit = this.cache.get(mem);
    if (hit) {
      this.remember(mem, hit);
      return hit;
    }
    const key = compiledKey(id);
    const rec = await this.store.registry.get("workflow", id);
    if (!rec) {
      throw new TernError(
        ErrorCodes.NOT_FOUND,
        `workflow ${id.name}@${id.version} is not registered in ${id.project}/${id.domain}`,
        {
          hint: `register it: tern register <file.ts> --project ${id.project} --domain ${id.domain}`,
          details: { id },
        },
      );
    }
    const uri = this.blobs.uri(key);
    let compiled: CompiledWorkflow | undefined;
    if (await this.blobs.exists(uri)) {
      const stored = JSON.parse(Buffer.from(await this.blobs.get(uri)).toString("utf8")) as CompiledWorkflow;
      if (await this.matchesRegistry(stored, rec.digest)) compiled = stored;
    }
    if (!compiled) {
      compiled = await assembleCompiled(rec.spec, registryLookup(this.store, id.project, id.domain));
      await this.blobs.put(key, JSON.stringify(compiled));
    }
    this.remember(mem, compiled);
    return compiled;
  }

  /** True when every spec in `c` is the registered one. */
  private async matchesRegistry(c: CompiledWorkflow, workflowDigest: string): Promise<boolean> {
    if (specDigest(c.workflow) !== workflowDigest) return false;
    const { project, domain } = c.workflow.id;
    const checks: [RegistryKind, { id: Identifier }][] = [
      ...Object.values(c.tasks).map((t): [RegistryKind, { id: Identifier }] => ["task", t]),
      ...Object.values(c.subworkflows ?? {}).map((w): [RegistryKind, { id: Identifier }] => ["workflow", w]),
      ...Object.values(c.launchPlans ?? {}).map((l): [RegistryKind, { id: Identifier }] => [
        "launch_plan",
        l,
      ]),
    ];
    for (const [kind, spec] of checks) {
      const r = await this.store.registry.get(kind, { ...spec.id, project, domain });
      if (!r || r.digest !== specDigest(spec)) return false;
    }
    return true;
  }

  private remember(key: string, compiled: CompiledWorkflow): void {
    this.cache.delete(key);
    this.cache.set(key, compiled);
    if (this.cache.size > this.cacheSize) this.cache.delete(this.cache.keys().next().value as string);
  }
}
