/**
 * Deterministic object names and labels. An attempt's pod (or MPIJob) is named after
 * the attempt id, so launching the same attempt twice meets the first pod (409) instead
 * of creating a second one, and a restarted engine finds it again from its state.
 */
import { createHash } from "node:crypto";
import type { TaskContext } from "@tern/core";

/** Longest name we give: a DNS-1123 label, usable as a hostname too. */
const MAX_NAME = 63;

function shortHash(s: string): string {
  return createHash("sha256").update(s).digest("hex").slice(0, 10);
}

/**
 * A DNS-1123 label (lowercase alphanumerics and `-`, at most 63 characters) derived from
 * `id`. Ids that are already valid are kept as they are; others are cleaned and get a hash
 * suffix of the original, so two ids never share a name.
 */
export function objectName(id: string): string {
  const clean = id
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/-+/g, "-")
    .replace(/^-+|-+$/g, "");
  if (clean === id && clean.length > 0 && clean.length <= MAX_NAME) return clean;
  const head = clean.slice(0, MAX_NAME - 11).replace(/-+$/, "") || "tern";
  return `${head}-${shortHash(id)}`;
}

/** A valid label value (≤ 63 characters of `[A-Za-z0-9-_.]`, alphanumeric at both ends). */
export function labelValue(v: string): string {
  const clean = v.replace(/[^A-Za-z0-9._-]+/g, "-").replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, "");
  if (clean === v && clean.length <= MAX_NAME) return clean;
  const head = clean.slice(0, MAX_NAME - 11).replace(/[^A-Za-z0-9]+$/, "");
  return head ? `${head}-${shortHash(v)}` : shortHash(v);
}

export const LABELS = {
  managedBy: "app.kubernetes.io/managed-by",
  plugin: "tern.dev/plugin",
  project: "tern.dev/project",
  domain: "tern.dev/domain",
  execution: "tern.dev/execution",
  node: "tern.dev/node",
  attempt: "tern.dev/attempt",
  task: "tern.dev/task",
  interruptible: "tern.dev/interruptible",
} as const;

export const ANNOTATIONS = {
  /** The full attempt id: what `launch` compares before adopting an existing object. */
  attemptId: "tern.dev/attempt-id",
  taskVersion: "tern.dev/task-version",
} as const;

/** Labels every object of an attempt carries. */
export function attemptLabels(
  ctx: TaskContext,
  plugin: string,
  extra: Record<string, string> = {},
): Record<string, string> {
  const labels: Record<string, string> = {
    ...extra,
    [LABELS.managedBy]: "tern",
    [LABELS.plugin]: plugin,
    [LABELS.project]: labelValue(ctx.execution.project),
    [LABELS.domain]: labelValue(ctx.execution.domain),
    [LABELS.execution]: labelValue(ctx.execution.id),
    [LABELS.node]: labelValue(ctx.node.id),
    [LABELS.attempt]: String(ctx.attempt.number),
    [LABELS.task]: labelValue(ctx.task.id.name),
  };
  if (ctx.attempt.interruptible) labels[LABELS.interruptible] = "true";
  return labels;
}

export function attemptAnnotations(
  ctx: TaskContext,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    ...extra,
    [ANNOTATIONS.attemptId]: ctx.attempt.id,
    [ANNOTATIONS.taskVersion]: ctx.task.id.version,
  };
}

/** True when an object found under our name was made for this attempt (safe to adopt). */
export function belongsTo(
  obj: { metadata: { annotations?: Record<string, string>; labels?: Record<string, string> } },
  ctx: TaskContext,
): boolean {
  return (
    obj.metadata.annotations?.[ANNOTATIONS.attemptId] === ctx.attempt.id &&
    obj.metadata.labels?.[LABELS.managedBy] === "tern"
  );
}
