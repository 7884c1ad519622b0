/**
 * Pod status → task status, per the verdict table of PROTOCOLS §1.6:
 *
 * | What the pod shows | Task status |
 * |---|---|
 * | phase Succeeded | succeeded (the engine reads `outputs.json`) |
 * | `DisruptionTarget=True`, `PreemptionByScheduler` | failed, preempted (a system retry) |
 * | `DisruptionTarget=True`, other reasons; `Evicted`; node shutdown | failed, system error |
 * | container terminated `OOMKilled` | failed, user error ("out of memory", with the limit) |
 * | container exit code ≠ 0 | failed, user error (or the task's own `error.json`) |
 * | `ErrImagePull` / `ImagePullBackOff` past the grace period; `InvalidImageName` | failed, user error |
 * | `CreateContainerConfigError` (missing Secret…) past its grace period | failed, user error naming the cause |
 * | `PodScheduled=False/Unschedulable` | waiting-for-resources; failed (user) after `unschedulableTimeoutMs` |
 * | deleted before finishing (or stopped by a deletion) | failed, system error ("lost") |
 */
import { ErrorCodes, type ErrorDocument, type TaskStatus } from "@tern/core";
import type { K8sObject } from "./api.js";

/** Waiting reasons that fail the task once their grace period is over. */
export const IMAGE_PULL_REASONS = new Set([
  "ErrImagePull",
  "ImagePullBackOff",
  "ErrImageNeverPull",
  "RegistryUnavailable",
]);
export const CONFIG_REASONS = new Set([
  "CreateContainerConfigError",
  "CreateContainerError",
  "RunContainerError",
  "PreCreateHookError",
  "PreStartHookError",
]);
/** Pod-level `status.reason` values that mean the infrastructure, not the task, ended it. */
const SYSTEM_POD_REASONS = new Set([
  "Evicted",
  "Terminated",
  "NodeLost",
  "Shutdown",
  "NodeShutdown",
  "UnexpectedAdmissionError",
  "NodeAffinity",
  "OutOfcpu",
  "OutOfmemory",
]);

interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}

interface ContainerState {
  waiting?: { reason?: string; message?: string };
  running?: { startedAt?: string };
  terminated?: { exitCode: number; signal?: number; reason?: string; message?: string };
}

export interface StatusContext {
  /** `cluster/namespace/pod`, for messages. */
  where: string;
  task: string;
  now: number;
  /** When the current waiting reason was first seen (for grace periods). */
  waitingSince?: number;
  imagePullGraceMs: number;
  configErrorGraceMs: number;
  unschedulableTimeoutMs: number;
}

/** A task status, plus whether it is a non-zero exit whose `error.json` may say more. */
export type PodVerdict = TaskStatus & { exitFailure?: boolean };

function condition(pod: K8sObject, type: string): Condition | undefined {
  return (pod.status?.conditions as Condition[] | undefined)?.find((c) => c.type === type);
}

function mainContainer(
  pod: K8sObject,
): { name: string; state?: ContainerState; lastState?: ContainerState } | undefined {
  const list = pod.status?.containerStatuses as
    | { name: string; state?: ContainerState; lastState?: ContainerState }[]
    | undefined;
  return list?.find((c) => c.name === "main") ?? list?.[0];
}

/** The waiting reason of the pod's main container, if it is waiting. */
export function waitingReason(pod: K8sObject): string | undefined {
  return mainContainer(pod)?.state?.waiting?.reason;
}

function failure(
  kind: "user" | "system",
  code: string,
  message: string,
  extra: Partial<ErrorDocument> = {},
): PodVerdict {
  return { phase: "failed", message, error: { code, kind, message, ...extra } };
}

function memoryLimit(pod: K8sObject): string | undefined {
  const c = (
    pod.spec?.containers as { name: string; resources?: { limits?: Record<string, string> } }[] | undefined
  )?.find((x) => x.name === "main");
  return c?.resources?.limits?.memory;
}

/** The status of a pod that still exists (or the last state of one that is gone). */
export function podStatus(pod: K8sObject, sc: StatusContext): PodVerdict {
  const disruption = condition(pod, "DisruptionTarget");
  if (disruption?.status === "True") {
    const why = `${disruption.reason ?? "DisruptionTarget"}${disruption.message ? `: ${disruption.message}` : ""}`;
    if (disruption.reason === "PreemptionByScheduler") {
      return {
        ...failure("system", ErrorCodes.SYSTEM, `pod ${sc.where} was preempted (${why})`, {
          hint: "preemption is retried as a system error; the last attempt runs on non-interruptible capacity",
        }),
        preempted: true,
      };
    }
    return failure("system", ErrorCodes.SYSTEM, `pod ${sc.where} was disrupted by the cluster (${why})`, {
      hint: "infrastructure trouble is retried as a system error",
      details: { reason: disruption.reason },
    });
  }
  const phase = pod.status?.phase as string | undefined;
  if (phase === "Succeeded") return { phase: "succeeded" };
  const main = mainContainer(pod);
  if (phase === "Failed" && pod.metadata.deletionTimestamp) {
    // Deleted by someone while it ran: its containers were stopped (exit 143 or 137), which
    // says nothing about the task's code.
    return failure(
      "system",
      ErrorCodes.SYSTEM,
      `pod ${sc.where} was deleted while it ran (stopped from outside Tern)`,
      {
        hint: "the attempt is retried as a system error",
        details: { reason: "PodDeleted" },
      },
    );
  }
  if (phase === "Failed") {
    const reason = pod.status?.reason as string | undefined;
    const message = pod.status?.message as string | undefined;
    if (reason && SYSTEM_POD_REASONS.has(reason)) {
      return failure(
        "system",
        ErrorCodes.SYSTEM,
        `pod ${sc.where} was stopped by the cluster (${reason}${message ? `: ${message.trim()}` : ""})`,
        {
          hint: "infrastructure trouble is retried as a system error",
          details: { reason },
        },
      );
    }
    if (reason === "DeadlineExceeded") {
      return failure(
        "user",
        ErrorCodes.TIMEOUT,
        `task "${sc.task}" ran past its deadline in pod ${sc.where}`,
        { details: { reason } },
      );
    }
    const t = main?.state?.terminated;
    if (t?.reason === "OOMKilled") {
      const limit = memoryLimit(pod);
      return failure(
        "user",
        ErrorCodes.TASK_FAILED,
        `task "${sc.task}" ran out of memory${limit ? ` (limit ${limit})` : ""} and was killed (OOMKilled, exit code ${t.exitCode}) in pod ${sc.where}`,
        {
          hint: "raise resources.limits.memory, or make the task use less memory",
          details: { reason: "OOMKilled", exitCode: t.exitCode, memoryLimit: limit },
        },
      );
    }
    if (t && t.exitCode !== 0) {
      const signal = t.signal !== undefined ? `, signal ${t.signal}` : "";
      return {
        ...failure(
          "user",
          ErrorCodes.TASK_FAILED,
          `task "${sc.task}" failed: its container exited with code ${t.exitCode}${signal}${t.message ? `: ${t.message.trim()}` : ""} (pod ${sc.where})`,
          {
            details: { reason: t.reason, exitCode: t.exitCode },
          },
        ),
        exitFailure: true,
      };
    }
    return failure(
      "system",
      ErrorCodes.SYSTEM,
      `pod ${sc.where} failed${reason ? ` (${reason})` : ""}${message ? `: ${message}` : ""}`,
      { details: { reason } },
    );
  }
  const scheduled = condition(pod, "PodScheduled");
  if (scheduled?.status === "False" && scheduled.reason === "Unschedulable") {
    const created = Date.parse(pod.metadata.creationTimestamp ?? "");
    const waited = Number.isFinite(created) ? sc.now - created : 0;
    if (sc.unschedulableTimeoutMs > 0 && waited > sc.unschedulableTimeoutMs) {
      return failure(
        "user",
        ErrorCodes.TASK_FAILED,
        `task "${sc.task}" could not be scheduled for ${Math.round(waited / 1000)} s: ${scheduled.message ?? "no node fits"}`,
        {
          hint: "ask for fewer resources (cpu, memory, gpu) or an accelerator the cluster has, or raise unschedulableTimeoutMs",
          details: { reason: "Unschedulable" },
        },
      );
    }
    return {
      phase: "waiting-for-resources",
      message: `unschedulable: ${scheduled.message ?? "no node fits"}`,
    };
  }
  const waiting = main?.state?.waiting;
  if (waiting?.reason) {
    const since = sc.waitingSince ?? sc.now;
    const msg = waiting.message ? `: ${waiting.message}` : "";
    if (
      waiting.reason === "InvalidImageName" ||
      (IMAGE_PULL_REASONS.has(waiting.reason) && sc.now - since >= sc.imagePullGraceMs)
    ) {
      return failure(
        "user",
        ErrorCodes.TASK_FAILED,
        `the image of task "${sc.task}" cannot be pulled (${waiting.reason}${msg})`,
        {
          hint: "check the image name and tag, and that the cluster can reach the registry (imagePullSecrets)",
          details: { reason: waiting.reason },
        },
      );
    }
    if (CONFIG_REASONS.has(waiting.reason) && sc.now - since >= sc.configErrorGraceMs) {
      return failure(
        "user",
        ErrorCodes.TASK_FAILED,
        `the container of task "${sc.task}" cannot be created (${waiting.reason}${msg})`,
        {
          hint: "create the Secret or ConfigMap the task refers to (secrets: [{ group, key }]) in the pod's namespace, or fix the reference",
          details: { reason: waiting.reason },
        },
      );
    }
    if (waiting.reason === "CrashLoopBackOff") {
      const last = main?.lastState?.terminated;
      return failure(
        "user",
        ErrorCodes.TASK_FAILED,
        `task "${sc.task}" keeps crashing${last ? ` (last exit code ${last.exitCode}${last.reason ? `, ${last.reason}` : ""})` : ""} in pod ${sc.where}`,
        {
          details: { reason: "CrashLoopBackOff", exitCode: last?.exitCode },
        },
      );
    }
    return { phase: "initializing", message: `${waiting.reason}${msg}` };
  }
  if (phase === "Running") return { phase: "running" };
  return {
    phase: "initializing",
    message: phase === "Pending" || !phase ? "pod pending" : `pod phase ${phase}`,
  };
}

/** The status of a pod that disappeared: classified from its last state (PROTOCOLS §1.6, last row). */
export function deletedPodStatus(last: K8sObject, sc: StatusContext, abortedByUs: boolean): PodVerdict {
  const phase = last.status?.phase as string | undefined;
  if (phase === "Succeeded" || phase === "Failed") return podStatus(last, sc);
  if (condition(last, "DisruptionTarget")?.status === "True") return podStatus(last, sc);
  if (abortedByUs) return { phase: "aborted", message: `pod ${sc.where} was deleted (aborted)` };
  return failure(
    "system",
    ErrorCodes.SYSTEM,
    `pod ${sc.where} was deleted before it finished (lost: deleted by someone else, or its node went away)`,
    {
      hint: "the attempt is retried as a system error",
      details: { reason: "PodDeleted" },
    },
  );
}

/** The status of a pod that cannot be found at all (404). */
export function missingPodStatus(sc: StatusContext): PodVerdict {
  return failure("system", ErrorCodes.SYSTEM, `pod ${sc.where} no longer exists (lost)`, {
    hint: "the attempt is retried as a system error",
    details: { reason: "PodNotFound" },
  });
}
