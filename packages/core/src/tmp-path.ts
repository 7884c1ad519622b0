/**
 * A temporary name beside `file`, for write-then-rename. Unique per call, not only
 * per process: two writers in one process (two engines on one blob root, say) that
 * shared a name would truncate each other's file, and a rename could then publish
 * a half-written one.
 */
import { randomBytes } from "node:crypto";

export function tmpPath(file: string): string {
  return `${file}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`;
}
