/**
 * Coded errors. Every error Tern raises for a user mistake carries a stable
 * `TERN_E_*` code, names the thing at fault (task, node, input, file) and says
 * what to do. CLIs print `message` and `hint` — never a stack — for these.
 */

export const ErrorCodes = {
  USAGE: "TERN_E_USAGE",
  FILE_NOT_FOUND: "TERN_E_FILE_NOT_FOUND",
  LOAD_FAILED: "TERN_E_LOAD_FAILED",
  EXPORT_NOT_FOUND: "TERN_E_EXPORT_NOT_FOUND",
  DEFINITION: "TERN_E_DEFINITION",
  COMPILE: "TERN_E_COMPILE",
  TYPE_MISMATCH: "TERN_E_TYPE_MISMATCH",
  SPEC_INVALID: "TERN_E_SPEC_INVALID",
  INPUT_INVALID: "TERN_E_INPUT_INVALID",
  OUTPUT_INVALID: "TERN_E_OUTPUT_INVALID",
  OUTPUT_NOT_SERIALIZABLE: "TERN_E_OUTPUT_NOT_SERIALIZABLE",
  TASK_FAILED: "TERN_E_TASK_FAILED",
  TIMEOUT: "TERN_E_TIMEOUT",
  DEADLINE: "TERN_E_EXECUTION_DEADLINE",
  SYSTEM: "TERN_E_SYSTEM",
  ABORTED: "TERN_E_ABORTED",
  UPSTREAM_FAILED: "TERN_E_UPSTREAM_FAILED",
  PLUGIN_VERSION: "TERN_E_PLUGIN_VERSION_MISMATCH",
  PLUGIN_AMBIGUOUS: "TERN_E_PLUGIN_AMBIGUOUS",
  PLUGIN_UNKNOWN_TYPE: "TERN_E_PLUGIN_UNKNOWN_TASK_TYPE",
  PLUGIN_UNKNOWN: "TERN_E_PLUGIN_UNKNOWN",
  VERSION_CONFLICT: "TERN_E_VERSION_CONFLICT",
  CACHE: "TERN_E_CACHE",
  BLOB_NOT_FOUND: "TERN_E_BLOB_NOT_FOUND",
  CONFIG: "TERN_E_CONFIG",
  CONFLICT: "TERN_E_CONFLICT",
  BRANCH_FAILED: "TERN_E_BRANCH_FAILED",
  SIGNAL_MISSING: "TERN_E_SIGNAL_MISSING",
  GATE_REJECTED: "TERN_E_GATE_REJECTED",
  NOT_FOUND: "TERN_E_NOT_FOUND",
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

/** Who is to blame: the task's code (`user`) or the platform around it (`system`). */
export type ErrorKind = "user" | "system";

export interface TernErrorOptions {
  /** What the user can do about it. */
  hint?: string;
  kind?: ErrorKind;
  /** Structured facts (task, node, input, file…) for `--json` and the API. */
  details?: Record<string, unknown>;
  cause?: unknown;
}

export class TernError extends Error {
  readonly code: ErrorCode;
  readonly hint?: string;
  readonly kind: ErrorKind;
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, opts: TernErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "TernError";
    this.code = code;
    this.hint = opts.hint;
    this.kind = opts.kind ?? "user";
    this.details = opts.details ?? {};
  }

  /** `message` followed by the hint, as a CLI prints it. */
  describe(): string {
    return this.hint ? `${this.message}\n  hint: ${this.hint}` : this.message;
  }

  toJSON(): ErrorDocument {
    return {
      code: this.code,
      kind: this.kind,
      message: this.message,
      hint: this.hint,
      details: this.details,
    };
  }
}

/** The serialized form of an error: what workers write and the engine records. */
export interface ErrorDocument {
  code: string;
  kind: ErrorKind;
  message: string;
  hint?: string;
  details?: Record<string, unknown>;
  /** Stack of a user's exception (kept for the log, never printed for Tern's own user errors). */
  stack?: string;
}

export function isTernError(e: unknown): e is TernError {
  return (
    e instanceof TernError ||
    (typeof e === "object" && e !== null && (e as { name?: unknown }).name === "TernError")
  );
}

/** Turn anything thrown into an error document, keeping the user's stack for logs. */
export function toErrorDocument(e: unknown, fallbackKind: ErrorKind = "user"): ErrorDocument {
  if (isTernError(e)) return { ...e.toJSON() };
  if (e instanceof Error) {
    return {
      code: ErrorCodes.TASK_FAILED,
      kind: fallbackKind,
      message: `${e.name === "Error" ? "" : `${e.name}: `}${e.message}`,
      stack: e.stack,
    };
  }
  return { code: ErrorCodes.TASK_FAILED, kind: fallbackKind, message: String(e) };
}

export function errorFromDocument(doc: ErrorDocument): TernError {
  const err = new TernError(doc.code as ErrorCode, doc.message, {
    hint: doc.hint,
    kind: doc.kind,
    details: doc.details,
  });
  if (doc.stack) err.stack = doc.stack;
  return err;
}
