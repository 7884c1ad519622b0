/**
 * Column encodings shared by the repositories, and the context they run in.
 */

import { ErrorCodes, type Json, TernError } from "@tern/core";
import type { Kysely } from "kysely";
import type { DialectName } from "./db.js";
import type { Database, JsonText } from "./schema.js";

/** What every repository gets: the database, its kind and the clock. */
export interface StoreContext {
  readonly db: Kysely<Database>;
  readonly dialect: DialectName;
  /** Epoch milliseconds; replaceable in tests to move leases through time. */
  readonly now: () => number;
}

export function toJson(value: unknown): JsonText {
  return JSON.stringify(value ?? null);
}

export function fromJson<T = Json>(text: JsonText): T {
  return JSON.parse(text) as T;
}

/** `undefined` keeps a column, `null` clears it, anything else is stored as JSON. */
export function toJsonPatch(value: unknown): JsonText | null | undefined {
  if (value === undefined) return undefined;
  if (value === null) return null;
  return JSON.stringify(value);
}

export function fromJsonOrUndefined<T = Json>(text: JsonText | null): T | undefined {
  return text === null ? undefined : (JSON.parse(text) as T);
}

export function orUndefined<T>(v: T | null): T | undefined {
  return v === null ? undefined : v;
}

export const toIntBool = (b: boolean | undefined): number => (b ? 1 : 0);
export const fromIntBool = (n: number): boolean => Number(n) !== 0;

/** Opaque pagination cursor over (created_at desc, id desc). */
export function encodeCursor(createdAt: number, id: string): string {
  return Buffer.from(JSON.stringify([createdAt, id])).toString("base64url");
}

export function decodeCursor(cursor: string): { createdAt: number; id: string } {
  try {
    const [createdAt, id] = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")) as [
      unknown,
      unknown,
    ];
    if (typeof createdAt === "number" && typeof id === "string") return { createdAt, id };
  } catch {
    // fall through
  }
  throw new TernError(ErrorCodes.USAGE, `invalid pagination cursor: ${cursor.slice(0, 40)}`, {
    hint: "pass back the nextCursor of the previous page unchanged",
  });
}

/** Drop `undefined` members so Kysely's `set()` leaves those columns alone. */
export function definedOnly<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] !== undefined) out[k] = o[k];
  return out;
}
