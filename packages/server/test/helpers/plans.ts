/**
 * Registering launch plans for scheduler tests: a workflow defined in the test,
 * compiled with `compileLaunchPlan`, its tasks, workflow and plan written to the
 * registry, and the plan activated.
 */
import { type AnyWorkflow, compileLaunchPlan, type LaunchPlanSpec, launchPlan } from "@tern/core";
import type { Store } from "../../src/store/index.js";

export type PlanOptions = Parameters<typeof launchPlan>[1];

/** Register `wf`'s plan `opts.name` (tasks and workflow too) and activate it. */
export async function registerPlan(
  store: Store,
  wf: AnyWorkflow,
  opts: PlanOptions,
  activate = true,
): Promise<LaunchPlanSpec> {
  const c = compileLaunchPlan(launchPlan(wf, opts));
  for (const t of Object.values(c.spec.tasks)) await store.registry.register("task", t);
  for (const w of Object.values(c.spec.subworkflows ?? {})) await store.registry.register("workflow", w);
  await store.registry.register("workflow", c.spec.workflow);
  await store.registry.register("launch_plan", c.launchPlan as never);
  if (activate) await store.registry.activate(c.launchPlan.id);
  return c.launchPlan;
}
