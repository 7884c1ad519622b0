import { randomBytes } from "node:crypto";

/**
 * A temporary name beside `target`, for write-then-rename: unique per call, so two
 * writers of one file in this process (two executions materializing one bundle) never
 * share it.
 */
export function tmpPath(target: string): string {
  return `${target}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`;
}
