/**
 * Deterministic external names derived from the attempt id, so that launching the same
 * attempt twice (a retry after a lost answer, an engine restart) meets the first job instead
 * of starting a second one.
 */
import { createHash } from "node:crypto";

function shortHash(s: string): string {
  return createHash("sha256").update(s).digest("hex").slice(0, 10);
}

/**
 * The Ray `submission_id` of an attempt: `tern-<attempt id>` when that is made of
 * `[A-Za-z0-9._-]` and fits in 100 characters, else a cleaned prefix plus a hash of the id
 * (two attempts never share an id). Ray uses it in log file names, hence the charset.
 */
export function submissionId(attemptId: string): string {
  const raw = `tern-${attemptId}`;
  if (/^[A-Za-z0-9._-]+$/.test(raw) && raw.length <= 100) return raw;
  const clean = raw
    .replace(/[^A-Za-z0-9._-]+/g, "-")
    .slice(0, 88)
    .replace(/-+$/, "");
  return `${clean}-${shortHash(attemptId)}`;
}

/**
 * The RayJob name of an attempt: a DNS-1123 label short enough (≤ 37 characters) that the
 * names KubeRay derives from it (`<name>-raycluster-xxxxx-head-svc`) stay within 63.
 */
export function rayJobName(attemptId: string): string {
  const clean = `tern-${attemptId}`
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/-+/g, "-")
    .replace(/^-+|-+$/g, "");
  if (clean === `tern-${attemptId}` && clean.length <= 37) return clean;
  return `${clean.slice(0, 26).replace(/-+$/, "")}-${shortHash(attemptId)}`;
}
