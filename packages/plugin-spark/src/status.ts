/**
 * `status.applicationState.state` of a SparkApplication → task status (PROTOCOLS §1.8):
 *
 * | state | task |
 * |---|---|
 * | `""`, `SUBMITTED`, `PENDING_RERUN`, `INVALIDATING` | initializing |
 * | `RUNNING`, `SUCCEEDING`, `FAILING`, `UNKNOWN` | running (the last three are on their way to an end) |
 * | `COMPLETED` | succeeded: the engine reads `outputs.json` |
 * | `FAILED` after the driver ran | failed, user error with the operator's `errorMessage` |
 * | `FAILED` with the driver pod gone ("driver pod not found") | failed, system error (lost) |
 * | `SUBMISSION_FAILED`, or `FAILED` without a successful submission | failed, system error |
 *
 * With `restartPolicy: Never` the real operator moves `SUBMISSION_FAILED` on to `FAILED`
 * (keeping the message), so a failed submission is recognised by `executionAttempts`
 * still being 0.
 */
import { ErrorCodes, type TaskStatus } from "@tern/core";
import type { K8sObject } from "@tern/plugin-k8s";

/** A task status, plus whether the driver itself failed (its pod and `error.json` may say more). */
export type SparkVerdict = TaskStatus & { driverFailed?: boolean };

/** The application's state (`""` before the operator has looked at it). */
export function applicationState(app: K8sObject): string {
  return (app.status?.applicationState?.state as string | undefined) ?? "";
}

function system(message: string, hint: string, details: Record<string, unknown>): SparkVerdict {
  return {
    phase: "failed",
    message,
    error: { code: ErrorCodes.SYSTEM, kind: "system", message, hint, details },
  };
}

/** The task status of a SparkApplication (`where` is `cluster/namespace/name`, for messages). */
export function sparkApplicationStatus(app: K8sObject, where: string, task: string): SparkVerdict {
  const state = applicationState(app);
  const error = app.status?.applicationState?.errorMessage as string | undefined;
  const details = { state, errorMessage: error, sparkApplicationId: app.status?.sparkApplicationId };
  switch (state) {
    case "COMPLETED":
      return { phase: "succeeded" };
    case "SUBMISSION_FAILED":
      return system(
        `the spark-operator could not submit SparkApplication ${where} of task "${task}"${error ? `: ${error}` : ""}`,
        "a failed spark-submit is retried as a system error; if it keeps failing, check the operator's logs and the application's dependencies",
        details,
      );
    case "FAILED": {
      if (!(Number(app.status?.executionAttempts) > 0)) {
        return system(
          `SparkApplication ${where} of task "${task}" failed before its driver ran${error ? `: ${error}` : ""}`,
          "the submission failed; it is retried as a system error",
          details,
        );
      }
      if (error === "driver pod not found") {
        return system(
          `the driver pod of SparkApplication ${where} was deleted before it finished (lost)`,
          "the attempt is retried as a system error",
          details,
        );
      }
      const message = `task "${task}" failed: Spark application ${where} failed${error ? ` (${error})` : ""}`;
      return {
        phase: "failed",
        message,
        error: { code: ErrorCodes.TASK_FAILED, kind: "user", message, details },
        driverFailed: true,
      };
    }
    case "RUNNING":
      return { phase: "running" };
    case "SUCCEEDING":
      return { phase: "running", message: "the driver finished; the operator is completing the application" };
    case "FAILING":
      return {
        phase: "running",
        message: `the driver failed${error ? ` (${error})` : ""}; the operator is finishing`,
      };
    case "UNKNOWN":
      return { phase: "running", message: "the operator cannot see the driver pod right now" };
    case "SUBMITTED":
      return { phase: "initializing", message: "submitted; the driver pod is starting" };
    case "PENDING_RERUN":
    case "INVALIDATING":
      return { phase: "initializing", message: `the operator is re-running the application (${state})` };
    case "":
      return { phase: "initializing", message: "waiting for the spark-operator to submit the application" };
    default:
      return { phase: "running", message: `application state ${state}` };
  }
}
