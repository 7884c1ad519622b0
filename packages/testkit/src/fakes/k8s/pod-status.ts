/**
 * How the kubelet turns its view of a pod's containers into `status`: the phase (the kubelet's own
 * `getPhase` rules), the container statuses and the Initialized/ContainersReady/Ready conditions.
 */
import type { ContainerLog } from "./logs.js";
import type { ContainerProcess } from "./process.js";
import { upsertCondition } from "./scheduler.js";
import type { Container, ContainerState, ContainerStatus, PodCondition, PodPhase } from "./types.js";

/** The kubelet's record of one container of a pod. */
export interface ContainerRun {
  spec: Container;
  init: boolean;
  state: ContainerState;
  lastState: ContainerState | Record<string, never>;
  restartCount: number;
  everStarted: boolean;
  /** Waiting for its (first or next) start. */
  wantStart: boolean;
  /** In CrashLoopBackOff, waiting for the restart timer. */
  backoff: boolean;
  containerID?: string;
  proc?: ContainerProcess;
  /** Log of the current (or last) instance; `previous` is the one before. */
  logs?: ContainerLog;
  previous?: ContainerLog;
  /** Overrides the terminated reason of the next exit (OOMKilled). */
  killReason?: string;
}

export function newContainerRun(spec: Container, init: boolean, waitingReason: string): ContainerRun {
  return {
    spec,
    init,
    state: { waiting: { reason: waitingReason } },
    lastState: {},
    restartCount: 0,
    everStarted: false,
    wantStart: true,
    backoff: false,
  };
}

export function isTerminatedOk(c: ContainerRun): boolean {
  return "terminated" in c.state && c.state.terminated.exitCode === 0;
}

export function isRunning(c: ContainerRun): boolean {
  return "running" in c.state;
}

/** The kubelet's phase rules for the main containers (init containers must have completed). */
export function computePhase(inits: ContainerRun[], mains: ContainerRun[], restartPolicy: string): PodPhase {
  for (const c of inits) {
    if (isTerminatedOk(c)) continue;
    const failed = "terminated" in c.state || ("waiting" in c.state && "terminated" in c.lastState);
    return failed && restartPolicy === "Never" ? "Failed" : "Pending";
  }
  let waiting = 0;
  let running = 0;
  let stopped = 0;
  let succeeded = 0;
  for (const c of mains) {
    if ("running" in c.state) running++;
    else if ("terminated" in c.state) {
      stopped++;
      if (c.state.terminated.exitCode === 0) succeeded++;
    } else if ("terminated" in c.lastState)
      stopped++; // waiting to restart after a failure
    else waiting++;
  }
  if (waiting > 0) return "Pending";
  if (running > 0) return "Running";
  if (stopped > 0) {
    if (restartPolicy === "Always") return "Running";
    if (stopped === succeeded) return "Succeeded";
    return restartPolicy === "OnFailure" ? "Running" : "Failed";
  }
  return "Pending";
}

export function containerStatus(c: ContainerRun): ContainerStatus {
  const image = c.spec.image ?? "";
  const status: ContainerStatus = {
    name: c.spec.name,
    image,
    imageID: c.everStarted ? `${image.split(":")[0]}@sha256:${"0".repeat(64)}` : "",
    ready: isRunning(c),
    started: isRunning(c),
    restartCount: c.restartCount,
    state: c.state,
    lastState: c.lastState,
  };
  if (c.containerID) status.containerID = c.containerID;
  return status;
}

/** Conditions the kubelet owns, merged into the existing list (PodScheduled, DisruptionTarget stay). */
export function kubeletConditions(
  existing: PodCondition[] | undefined,
  inits: ContainerRun[],
  mains: ContainerRun[],
  phase: PodPhase,
): PodCondition[] {
  let conditions = upsertCondition(existing, { type: "PodReadyToStartContainers", status: "True" });
  const incomplete = inits.filter((c) => !isTerminatedOk(c)).map((c) => c.spec.name);
  conditions = upsertCondition(
    conditions,
    incomplete.length === 0 || phase === "Succeeded"
      ? { type: "Initialized", status: "True" }
      : {
          type: "Initialized",
          status: "False",
          reason: "ContainersNotInitialized",
          message: `containers with incomplete status: [${incomplete.join(" ")}]`,
        },
  );
  const unready = mains.filter((c) => !isRunning(c)).map((c) => c.spec.name);
  const ready: PodCondition =
    phase === "Succeeded"
      ? { type: "Ready", status: "False", reason: "PodCompleted" }
      : unready.length === 0
        ? { type: "Ready", status: "True" }
        : {
            type: "Ready",
            status: "False",
            reason: "ContainersNotReady",
            message: `containers with unready status: [${unready.join(" ")}]`,
          };
  conditions = upsertCondition(conditions, { ...ready, type: "ContainersReady" });
  return upsertCondition(conditions, ready);
}
