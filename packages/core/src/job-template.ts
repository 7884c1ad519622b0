/**
 * What every backend that runs a user's own command (a container, a Spark driver, a Ray
 * entrypoint, a Batch job…) hands that command: templated arguments and Tern's environment
 * variables. A job reads its inputs from `TERN_INPUTS_URI` and writes its output value as
 * JSON to `TERN_OUTPUTS_URI` (or a failure to `TERN_ERROR_URI`); the engine reads them back
 * from the attempt's `outputPrefix` like any other backend's result.
 *
 * Templates: `{{.inputs.<name>}}` (strings as they are, file/dir values as their URI,
 * anything else as JSON), `{{.outputPrefix}}`, `{{.inputsUri}}`, `{{.outputsUri}}`.
 * @module
 */
import { fileURLToPath } from "node:url";
import type { TaskContext } from "./plugin.js";
import type { TaskSpec } from "./spec.js";

const TEMPLATE = /\{\{\s*\.(inputs\.([A-Za-z_][A-Za-z0-9_]*)|outputPrefix|inputsUri|outputsUri)\s*\}\}/g;

/** Replaces the `{{.…}}` templates of one job argument. */
export function renderJobTemplate(s: string, ctx: TaskContext, inputsUri: string): string {
  return s.replace(TEMPLATE, (_m, what: string, input?: string) => {
    if (input !== undefined) {
      const v = ctx.inputs[input];
      if (typeof v === "string") return v;
      if (v && typeof v === "object" && !Array.isArray(v) && typeof (v as { uri?: unknown }).uri === "string")
        return (v as { uri: string }).uri;
      return JSON.stringify(v ?? null);
    }
    if (what === "outputPrefix") return ctx.outputPrefix;
    if (what === "inputsUri") return inputsUri;
    return ctx.blobs.uri(`${ctx.outputPrefix}/outputs.json`);
  });
}

/**
 * The `{{.inputs.x}}` references in `strings` that name no input of `task`, for a
 * validation error before anything is submitted.
 */
export function unknownTemplateInputs(task: TaskSpec, strings: Iterable<string>): string[] {
  const bad: string[] = [];
  for (const s of strings)
    for (const m of s.matchAll(TEMPLATE)) if (m[2] && !(m[2] in task.interface.inputs)) bad.push(m[2]);
  return bad;
}

/**
 * Tern's variables for a job's process. For a local `file://` blob store the paths are also
 * given as `TERN_INPUTS_PATH`, `TERN_OUTPUTS_PATH` and `TERN_ERROR_PATH`.
 */
export function jobEnv(ctx: TaskContext, inputsUri: string): Record<string, string> {
  const outputsUri = ctx.blobs.uri(`${ctx.outputPrefix}/outputs.json`);
  const errorUri = ctx.blobs.uri(`${ctx.outputPrefix}/error.json`);
  const vars: Record<string, string> = {
    TERN_EXECUTION_ID: ctx.execution.id,
    TERN_PROJECT: ctx.execution.project,
    TERN_DOMAIN: ctx.execution.domain,
    TERN_NODE_ID: ctx.node.id,
    TERN_ATTEMPT: String(ctx.attempt.number),
    TERN_ATTEMPT_ID: ctx.attempt.id,
    TERN_TASK: ctx.task.id.name,
    TERN_BLOB_ROOT: ctx.blobs.root,
    TERN_INPUTS_URI: inputsUri,
    TERN_OUTPUT_PREFIX: ctx.outputPrefix,
    TERN_OUTPUTS_URI: outputsUri,
    TERN_ERROR_URI: errorUri,
    TERN_CHECKPOINT_PREFIX: ctx.checkpointPrefix,
  };
  if (ctx.blobs.root.startsWith("file:")) {
    vars.TERN_INPUTS_PATH = fileURLToPath(inputsUri);
    vars.TERN_OUTPUTS_PATH = fileURLToPath(outputsUri);
    vars.TERN_ERROR_PATH = fileURLToPath(errorUri);
  }
  return vars;
}
