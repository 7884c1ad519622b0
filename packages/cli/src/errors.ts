/**
 * How the CLI reports errors and which exit status they get.
 *
 * Exit statuses: 0 the command succeeded; 1 the execution failed or was
 * aborted (or Tern hit an unexpected error); 2 the command could not start:
 * usage, file, load, definition, compile or input errors.
 */

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

/** The shape of a `TernError`, checked structurally so this module needs no import of `@tern/core`. */
export interface CodedError {
  name: string;
  code: string;
  message: string;
  hint?: string;
  kind?: "user" | "system";
  details?: Record<string, unknown>;
  stack?: string;
}

/** True for a `TernError` (from any copy of `@tern/core`) or an error built to look like one. */
export function isCodedError(e: unknown): e is CodedError {
  return (
    typeof e === "object" &&
    e !== null &&
    (e as { name?: unknown }).name === "TernError" &&
    typeof (e as { code?: unknown }).code === "string" &&
    typeof (e as { message?: unknown }).message === "string"
  );
}

/** Codes that mean "the command is wrong or the code does not load or compile": exit 2. */
const STARTUP_CODES = new Set([
  "TERN_E_USAGE",
  "TERN_E_FILE_NOT_FOUND",
  "TERN_E_LOAD_FAILED",
  "TERN_E_EXPORT_NOT_FOUND",
  "TERN_E_DEFINITION",
  "TERN_E_COMPILE",
  "TERN_E_TYPE_MISMATCH",
  "TERN_E_SPEC_INVALID",
  "TERN_E_INPUT_INVALID",
  "TERN_E_CONFIG",
  "TERN_E_VERSION_CONFLICT",
  "TERN_E_PLUGIN_VERSION_MISMATCH",
  "TERN_E_PLUGIN_AMBIGUOUS",
  "TERN_E_PLUGIN_UNKNOWN_TASK_TYPE",
  "TERN_E_PLUGIN_UNKNOWN",
]);

/** Exit status for an error raised before or outside an execution. */
export function exitCodeFor(e: unknown): number {
  return isCodedError(e) && STARTUP_CODES.has(e.code) ? EXIT_USAGE : EXIT_FAILED;
}

/** A usage error with the same shape as core's `TernError`, for code that must not load `@tern/core`. */
export class UsageError extends Error {
  readonly code = "TERN_E_USAGE";
  readonly kind = "user" as const;
  constructor(
    message: string,
    readonly hint?: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = "TernError";
  }
}

/** `error[CODE]: message` plus `hint:`, as printed on stderr. Never a stack for coded errors. */
export function formatCodedError(e: Pick<CodedError, "code" | "message" | "hint">): string {
  const lines = [`error[${e.code}]: ${e.message}`];
  if (e.hint) lines.push(`  hint: ${e.hint}`);
  return `${lines.join("\n")}\n`;
}

/**
 * Text for any error on stderr. Unexpected errors get one line and a request to
 * report them; their stack only with `TERN_DEBUG=1`.
 */
export function describeError(e: unknown): string {
  if (isCodedError(e)) return formatCodedError(e);
  const err = e instanceof Error ? e : new Error(String(e));
  const lines = [`error: ${err.message || err.name}`];
  if (process.env.TERN_DEBUG === "1") lines.push(err.stack ?? "(no stack)");
  else
    lines.push(
      "  this looks like a bug in Tern: please report it (run again with TERN_DEBUG=1 to see the stack)",
    );
  return `${lines.join("\n")}\n`;
}

/** The `--json` document for an error that happened before any execution started. */
export function jsonErrorDocument(e: unknown): Record<string, unknown> {
  const coded = isCodedError(e);
  return {
    execution: null,
    phase: "failed",
    outputs: null,
    error: {
      kind: coded ? (e.kind ?? "user") : "system",
      code: coded ? e.code : "TERN_E_INTERNAL",
      message: e instanceof Error ? e.message : String(e),
      node: null,
    },
    nodes: [],
  };
}
