/**
 * `tern register <file.ts>`: bundle the file, compile every workflow, task and
 * launch plan it exports for one project and domain, and upload them with the
 * code bundle in one request. Registered versions are immutable: the same
 * content again is reported as `exists`; changed content under a taken version
 * is refused (exit 2) with what differs.
 */
import * as fs from "node:fs";
import type { AnyTask, AnyWorkflow, CompiledWorkflow, LaunchPlanSpec } from "@tern/core";
import { ApiClient, type RemoteFlags } from "../client.js";
import { EXIT_OK, UsageError } from "../errors.js";
import type { Io } from "../io.js";
import type { Core } from "../load.js";

/** What `POST /api/v1/register` takes. */
export interface RegistrationPayload {
  workflows: CompiledWorkflow[];
  launchPlans: LaunchPlanSpec[];
  bundles: { digest: string; contentBase64: string }[];
}

/** What the server answers. */
export interface RegistrationResult {
  entities: {
    kind: string;
    id: { project: string; domain: string; name: string; version: string };
    digest: string;
    status: "created" | "exists";
  }[];
  bundles: { digest: string; status: string }[];
}

export interface CompileTarget {
  project: string;
  domain: string;
  /** One version for everything; derived from content when left out. */
  version?: string;
}

/**
 * Compile every exported workflow, task (wrapped in a one-node workflow of its
 * own name) and launch plan of an imported bundle.
 */
export function compileExports(
  core: Core,
  mod: Record<string, unknown>,
  bundle: { digest: string; projectRoot: string },
  target: CompileTarget,
): { payload: Omit<RegistrationPayload, "bundles">; names: string[] } {
  const opts = {
    bundle: bundle.digest,
    projectRoot: bundle.projectRoot,
    project: target.project,
    domain: target.domain,
    ...(target.version ? { version: target.version } : {}),
  };
  const workflows: CompiledWorkflow[] = [];
  const launchPlans: LaunchPlanSpec[] = [];
  const names: string[] = [];
  for (const [exportName, v] of Object.entries(mod)) {
    const kind = core.definitionKind(v);
    if (kind === "workflow" || kind === "task") {
      workflows.push(core.compile(v as AnyWorkflow | AnyTask, opts).spec);
      names.push(exportName);
    } else if (kind === "launchplan") {
      const c = core.compileLaunchPlan(v as Parameters<Core["compileLaunchPlan"]>[0], opts);
      workflows.push(c.spec);
      launchPlans.push(c.launchPlan);
      names.push(exportName);
    }
  }
  return { payload: { workflows, launchPlans }, names };
}

/** The bundle file as the register request carries it. */
export function bundlePart(bundle: { digest: string; path: string }): RegistrationPayload["bundles"][number] {
  return { digest: bundle.digest, contentBase64: fs.readFileSync(bundle.path).toString("base64") };
}

export interface RegisterFlags extends RemoteFlags {
  version?: string;
  json: boolean;
}

/** Register a file's definitions; resolves to the exit status. */
export async function registerCommand(file: string, flags: RegisterFlags, io: Io): Promise<number> {
  const client = new ApiClient(flags);
  const core: Core = await import("@tern/core");
  const bundle = await core.bundleEntry(file);
  const mod = await core.importBundle(bundle.path);
  const target = {
    project: flags.project ?? "default",
    domain: flags.domain ?? "development",
    ...(flags.version ? { version: flags.version } : {}),
  };
  const { payload, names } = compileExports(core, mod, bundle, target);
  if (names.length === 0) {
    throw new UsageError(
      `${file} exports no workflows, tasks or launch plans`,
      "export what workflow(), task() or launchPlan() returns",
    );
  }
  const result = await client.request<RegistrationResult>("POST", "/api/v1/register", {
    ...payload,
    bundles: [bundlePart(bundle)],
  });
  if (flags.json) {
    await io.json(result);
    return EXIT_OK;
  }
  const created = result.entities.filter((e) => e.status === "created").length;
  const lines = result.entities.map(
    (e) => `${e.status.padEnd(8)} ${e.kind.replace("_", " ").padEnd(12)} ${e.id.name}@${e.id.version}`,
  );
  lines.push(
    `registered ${result.entities.length} entit${result.entities.length === 1 ? "y" : "ies"} in ${target.project}/${target.domain} on ${client.server} (${created} new, ${result.entities.length - created} already there)`,
  );
  io.out(`${lines.join("\n")}\n`);
  return EXIT_OK;
}
