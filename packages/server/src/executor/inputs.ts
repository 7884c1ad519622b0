/**
 * Checking an execution's inputs against the registered workflow interface, from
 * the spec alone (a registered spec carries JSON Schemas, not zod): unknown names,
 * missing required inputs and wrong types are `TERN_E_INPUT_INVALID` naming the input.
 */
import { type CompiledWorkflow, ErrorCodes, TernError, validateValue } from "@tern/core";

/** The inputs with defaults filled in; throws `TERN_E_INPUT_INVALID` for the first problem. */
export function checkInputs(
  compiled: CompiledWorkflow,
  given: Record<string, unknown>,
): Record<string, unknown> {
  const wf = compiled.workflow;
  const declared = wf.interface.inputs;
  for (const k of Object.keys(given ?? {})) {
    if (!(k in declared)) {
      throw new TernError(ErrorCodes.INPUT_INVALID, `workflow "${wf.id.name}" has no input "${k}"`, {
        hint: `its inputs are: ${Object.keys(declared).join(", ") || "(none)"}`,
        details: { input: k },
      });
    }
  }
  const out: Record<string, unknown> = {};
  for (const [k, s] of Object.entries(declared)) {
    const v = given?.[k] ?? s.default;
    if (v === undefined && !s.optional) {
      throw new TernError(ErrorCodes.INPUT_INVALID, `workflow "${wf.id.name}" needs input "${k}"`, {
        details: { input: k },
      });
    }
    if (v === undefined) continue;
    const problem = validateValue(v, s.schema);
    if (problem) {
      throw new TernError(
        ErrorCodes.INPUT_INVALID,
        `input "${k}${problem.path}" of workflow "${wf.id.name}" ${problem.message}`,
        {
          hint: "give a value of the declared type",
          details: { input: k, path: problem.path },
        },
      );
    }
    out[k] = v;
  }
  return out;
}
