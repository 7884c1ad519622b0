/**
 * Errors raised by the store, and the recognisers that turn driver errors
 * (SQLite and PostgreSQL spell them differently) into them.
 */
import { ErrorCodes, TernError } from "@tern/core";

type TernErrorOptions = NonNullable<ConstructorParameters<typeof TernError>[2]>;

/**
 * Codes the store raises (the API maps `TERN_E_CONFLICT` and
 * `TERN_E_VERSION_CONFLICT` to 409 and `TERN_E_NOT_FOUND` to 404).
 */
export const StoreErrorCodes = {
  /** Same id, different content (registry). */
  VERSION_CONFLICT: ErrorCodes.VERSION_CONFLICT,
  /** The write collides with what is already stored (duplicate id, event seq, signal). */
  CONFLICT: ErrorCodes.CONFLICT,
  /** The row the call names does not exist. */
  NOT_FOUND: ErrorCodes.NOT_FOUND,
  /** The database URL or the database itself is unusable. */
  CONFIG: ErrorCodes.CONFIG,
} as const;

export type StoreErrorCode = (typeof StoreErrorCodes)[keyof typeof StoreErrorCodes];

/** A {@link TernError} with one of the {@link StoreErrorCodes}. */
export function storeError(code: StoreErrorCode, message: string, opts: TernErrorOptions = {}): TernError {
  return new TernError(code, message, opts);
}

function driverCode(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/** A primary-key or unique-index violation on either database. */
export function isUniqueViolation(e: unknown): boolean {
  const code = driverCode(e);
  return code === "23505" || code === "SQLITE_CONSTRAINT_PRIMARYKEY" || code === "SQLITE_CONSTRAINT_UNIQUE";
}

/** A foreign-key violation on either database (e.g. an event for an unknown execution). */
export function isForeignKeyViolation(e: unknown): boolean {
  const code = driverCode(e);
  return code === "23503" || code === "SQLITE_CONSTRAINT_FOREIGNKEY";
}

/** A deadlock or serialization failure: the transaction may simply be run again. */
export function isTransientConflict(e: unknown): boolean {
  const code = driverCode(e);
  return code === "40P01" || code === "40001";
}
