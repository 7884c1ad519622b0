/**
 * Loading a user's file and picking the workflow or task to run. The file is
 * bundled by esbuild (no build step for users) and imported from
 * `.tern/bundles`, so the bundle digest identifies the exact code that ran.
 */
import type { AnyTask, AnyWorkflow, Bundle } from "@tern/core";

/** `@tern/core`'s module namespace, imported lazily to keep start-up fast. */
export type Core = typeof import("@tern/core");

export interface Target {
  bundle: Bundle;
  def: AnyWorkflow | AnyTask;
  kind: "workflow" | "task";
  /** The definition's own name (workflow or task name). */
  name: string;
  /** The export it was found under. */
  exportName: string;
}

export interface Definitions {
  workflows: { name: string; exportName: string }[];
  tasks: { name: string; exportName: string }[];
}

/** Workflows and tasks a module exports, in export order. */
export function listDefinitions(core: Core, mod: Record<string, unknown>): Definitions {
  const out: Definitions = { workflows: [], tasks: [] };
  for (const [exportName, v] of Object.entries(mod)) {
    if (core.isWorkflowDef(v)) out.workflows.push({ name: v.workflowName, exportName });
    else if (core.isTaskDef(v)) out.tasks.push({ name: v.taskName, exportName });
  }
  return out;
}

/** `workflows: hello; tasks: say_hello (export sayHello)`. */
export function describeDefinitions(d: Definitions): string {
  const fmt = (xs: { name: string; exportName: string }[]) =>
    xs.map((x) => (x.name === x.exportName ? x.name : `${x.name} (export ${x.exportName})`)).join(", ");
  const parts: string[] = [];
  if (d.workflows.length) parts.push(`workflows: ${fmt(d.workflows)}`);
  if (d.tasks.length) parts.push(`tasks: ${fmt(d.tasks)}`);
  return parts.length ? parts.join("; ") : "no workflows or tasks (export what workflow() or task() returns)";
}

/**
 * Bundle and import `file`, then find `name` among its exports: a workflow name
 * first, then a task name, then an export name.
 */
export async function loadTarget(core: Core, file: string, name: string | undefined): Promise<Target> {
  const bundle = await core.bundleEntry(file);
  const mod = await core.importBundle(bundle.path);
  const defs = listDefinitions(core, mod);
  if (name === undefined) {
    throw new core.TernError(core.ErrorCodes.USAGE, `say which workflow or task of ${file} to run`, {
      hint: `${file} defines ${describeDefinitions(defs)}\n  e.g. tern run ${file} ${defs.workflows[0]?.name ?? defs.tasks[0]?.name ?? "<name>"}`,
      details: { file, ...defs },
    });
  }
  const pick =
    defs.workflows.find((w) => w.name === name) ??
    defs.tasks.find((t) => t.name === name) ??
    [...defs.workflows, ...defs.tasks].find((x) => x.exportName === name);
  if (!pick) {
    throw new core.TernError(
      core.ErrorCodes.EXPORT_NOT_FOUND,
      `${file} exports no workflow or task named "${name}"`,
      {
        hint: `it defines ${describeDefinitions(defs)}`,
        details: { file, name, ...defs },
      },
    );
  }
  const def = mod[pick.exportName] as AnyWorkflow | AnyTask;
  return {
    bundle,
    def,
    kind: core.isWorkflowDef(def) ? "workflow" : "task",
    name: pick.name,
    exportName: pick.exportName,
  };
}
