/**
 * A simulated kubelet. For every pod bound to one of the fake's nodes it really runs each
 * container's `command` + `args` as a local process (the image is only recorded), streams its
 * output into the pod log, and writes status the way the kubelet does: waiting reasons
 * (ContainerCreating, ErrImagePull/ImagePullBackOff, CreateContainerConfigError, CrashLoopBackOff),
 * running/terminated states with exit codes, the phase, restarts under OnFailure/Always,
 * `activeDeadlineSeconds`, and graceful termination on delete (SIGTERM, SIGKILL after the grace
 * period, capped small so tests stay fast).
 *
 * The kubelet learns about pods only through store events, like the real one through its watch.
 * Simplification: a pod's main containers are created together — if one cannot be created yet
 * (missing secret, unpullable image) none starts, and all are retried after a back-off.
 */
import { mkdirSync, rmSync } from "node:fs";
import path from "node:path";
import type { Cluster } from "./cluster.js";
import { type Blocker, type ImageConfig, resolveContainer } from "./env.js";
import { badRequest, notFound } from "./errors.js";
import { ContainerLog } from "./logs.js";
import {
  type ContainerRun,
  computePhase,
  containerStatus,
  isTerminatedOk,
  kubeletConditions,
  newContainerRun,
} from "./pod-status.js";
import { ContainerProcess, type ProcessExit } from "./process.js";
import { NODES, PODS } from "./resources.js";
import { upsertCondition } from "./scheduler.js";
import { resourceKey, type StoreEvent } from "./store.js";
import type { Pod, PodCondition, PodPhase, PodStatus } from "./types.js";
import { containerId, isTerminalPhase, rfc3339 } from "./util.js";

const PODS_KEY = resourceKey("", "pods");

export interface KubeletOptions {
  /** Time between binding and container creation (ContainerCreating is visible meanwhile). */
  startDelayMs: number;
  /** Retry period for containers that cannot be created (image pull, config errors). */
  imagePullBackoffMs: number;
  /** First CrashLoopBackOff delay; doubles per restart up to `maxCrashLoopBackoffMs`. */
  crashLoopBackoffMs: number;
  maxCrashLoopBackoffMs: number;
  /** Cap on the SIGTERM→SIGKILL grace period (real pods default to 30 s; tests cannot wait that long). */
  maxGracePeriodMs: number;
  /** Root under which each pod gets a scratch working directory. */
  workDir: string;
  /** Variables copied from the fake's own environment into every container (PATH…). */
  hostEnv: string[];
  /** Port of the fake API, exported to containers as KUBERNETES_SERVICE_HOST/PORT. */
  apiPort: () => number;
}

type Stage = "starting" | "running" | "terminating" | "done" | "detached";

/** The kubelet's record of one admitted pod. */
interface PodRun {
  ns: string;
  name: string;
  uid: string;
  pod: Pod;
  inits: ContainerRun[];
  mains: ContainerRun[];
  stage: Stage;
  timers: Set<NodeJS.Timeout>;
  killTimer?: NodeJS.Timeout;
  /** Pod-level terminal reason (DeadlineExceeded, Evicted, Terminated). */
  forced?: { reason: string; message: string };
  /** Final phase decided by a termination; overrides the computed one. */
  finalPhase?: PodPhase;
  deleting: boolean;
  dir: string;
}

/** A container process the kubelet is running. */
export interface RunningContainer {
  namespace: string;
  pod: string;
  container: string;
  pid: number;
}

export class Kubelet {
  readonly #runs = new Map<string, PodRun>();
  readonly #unpullable = new Set<string>();
  readonly #images = new Map<string, ImageConfig>();
  #unsubscribe: (() => void) | undefined;

  constructor(
    private readonly cluster: Cluster,
    private readonly options: KubeletOptions,
  ) {}

  start(): void {
    mkdirSync(this.options.workDir, { recursive: true });
    this.#unsubscribe = this.cluster.store.subscribe((e) => this.#onEvent(e));
  }

  /** Kills every container (SIGKILL) and waits for the processes to be gone. */
  async shutdown(): Promise<void> {
    this.#unsubscribe?.();
    const exits: Promise<unknown>[] = [];
    for (const run of this.#runs.values()) {
      for (const c of [...run.inits, ...run.mains]) if (c.proc) exits.push(c.proc.exited);
      this.#detach(run);
    }
    this.#runs.clear();
    await Promise.all(exits);
  }

  markImageUnpullable(image: string, unpullable = true): void {
    if (unpullable) this.#unpullable.add(image);
    else this.#unpullable.delete(image);
  }

  registerImage(image: string, config: ImageConfig): void {
    this.#images.set(image, config);
  }

  processes(): RunningContainer[] {
    const out: RunningContainer[] = [];
    for (const run of this.#runs.values()) {
      for (const c of [...run.inits, ...run.mains]) {
        if (c.proc?.running && c.proc.pid !== undefined) {
          out.push({ namespace: run.ns, pod: run.name, container: c.spec.name, pid: c.proc.pid });
        }
      }
    }
    return out;
  }

  /** The log to serve for `/log` (PROTOCOLS §1.4 errors included). */
  logFor(ns: string, name: string, container: string | undefined, previous: boolean): ContainerLog {
    const pod = this.cluster.get(PODS, ns, name) as Pod;
    const mains = pod.spec.containers.map((c) => c.name);
    const inits = (pod.spec.initContainers ?? []).map((c) => c.name);
    if (!container) {
      if (mains.length !== 1) {
        const initHint = inits.length ? ` or one of the init containers: [${inits.join(" ")}]` : "";
        throw badRequest(
          `a container name must be specified for pod ${name}, choose one of: [${mains.join(" ")}]${initHint}`,
        );
      }
      container = mains[0];
    }
    if (!mains.includes(container) && !inits.includes(container)) {
      throw badRequest(`container ${container} is not valid for pod ${name}`);
    }
    const run = this.#runs.get(`${ns}/${name}`);
    const c = run && [...run.inits, ...run.mains].find((x) => x.spec.name === container);
    if (previous) {
      if (c?.previous) return c.previous;
      throw badRequest(`previous terminated container "${container}" in pod "${name}" not found`);
    }
    if (c?.logs) return c.logs;
    const status = [
      ...(pod.status?.initContainerStatuses ?? []),
      ...(pod.status?.containerStatuses ?? []),
    ].find((s) => s.name === container);
    const reason = status && "waiting" in status.state ? status.state.waiting.reason : "ContainerCreating";
    throw badRequest(`container "${container}" in pod "${name}" is waiting to start: ${reason}`);
  }

  /** Node-pressure eviction: DisruptionTarget, containers killed, phase Failed + reason Evicted. */
  evict(
    ns: string,
    name: string,
    message = "The node was low on resource: memory. Threshold quantity: 100Mi, available: 64Mi. ",
  ): void {
    this.#disrupt(
      ns,
      name,
      "Evicted",
      message,
      "TerminationByKubelet",
      "Evicted by the kubelet (node pressure)",
      0,
    );
  }

  /** Graceful node shutdown: DisruptionTarget, SIGTERM with grace, phase Failed + reason Terminated. */
  nodeShutdown(ns: string, name: string): void {
    const message = "Pod was terminated in response to imminent node shutdown.";
    this.#disrupt(ns, name, "Terminated", message, "TerminationByKubelet", message, undefined);
  }

  /** Kills a running container as the kernel OOM killer would: exit 137, reason OOMKilled. */
  oomKill(ns: string, name: string, container?: string): void {
    const run = this.#runs.get(`${ns}/${name}`);
    const c =
      run &&
      [...run.inits, ...run.mains].find((x) => x.proc?.running && (!container || x.spec.name === container));
    if (!c?.proc)
      throw new Error(
        `oomKill: pod ${ns}/${name} has no running container${container ? ` "${container}"` : ""}`,
      );
    c.killReason = "OOMKilled";
    c.proc.kill("SIGKILL");
  }

  /** Stops managing a pod silently (its processes are SIGKILLed, nothing more is written). */
  forget(ns: string, name: string): void {
    const run = this.#runs.get(`${ns}/${name}`);
    if (run) this.#discard(run);
  }

  #onEvent(e: StoreEvent): void {
    if (e.resource !== PODS_KEY) return;
    const pod = e.object as Pod;
    const key = `${pod.metadata.namespace}/${pod.metadata.name}`;
    const run = this.#runs.get(key);
    if (e.type === "DELETED") {
      if (run && run.uid === pod.metadata.uid) this.#discard(run);
      return;
    }
    if (!run) {
      const nodeName = pod.spec.nodeName;
      if (
        nodeName &&
        this.cluster.tryGet(NODES, undefined, nodeName) &&
        !isTerminalPhase(pod.status?.phase) &&
        !pod.metadata.deletionTimestamp
      ) {
        this.#admit(pod);
      }
      return;
    }
    if (run.uid !== pod.metadata.uid) return;
    if (pod.metadata.deletionTimestamp && !run.deleting) {
      run.deleting = true;
      if (run.stage === "done" || run.stage === "detached") this.cluster.finishPodDeletion(run.ns, run.name);
      else this.#terminate(run, (pod.metadata.deletionGracePeriodSeconds ?? 0) * 1000);
      return;
    }
    // Someone else (the control API) declared the pod finished: stop its processes, write nothing more.
    if (isTerminalPhase(pod.status?.phase) && (run.stage === "starting" || run.stage === "running")) {
      this.#detach(run);
    }
  }

  #admit(pod: Pod): void {
    const ns = pod.metadata.namespace!;
    const name = pod.metadata.name!;
    const hasInits = (pod.spec.initContainers ?? []).length > 0;
    const run: PodRun = {
      ns,
      name,
      uid: pod.metadata.uid!,
      pod,
      inits: (pod.spec.initContainers ?? []).map((c) => newContainerRun(c, true, "PodInitializing")),
      mains: pod.spec.containers.map((c) =>
        newContainerRun(c, false, hasInits ? "PodInitializing" : "ContainerCreating"),
      ),
      stage: "starting",
      timers: new Set(),
      deleting: false,
      dir: path.join(this.options.workDir, ns, `${name}-${pod.metadata.uid!.slice(0, 8)}`),
    };
    this.#runs.set(`${ns}/${name}`, run);
    mkdirSync(run.dir, { recursive: true });
    const startTime = rfc3339();
    this.#publish(run, (s) => {
      s.startTime = startTime;
      s.hostIP = "127.0.0.1";
      s.hostIPs = [{ ip: "127.0.0.1" }];
      s.podIP = "127.0.0.1";
      s.podIPs = [{ ip: "127.0.0.1" }];
    });
    const deadline = pod.spec.activeDeadlineSeconds;
    if (deadline !== undefined) {
      this.#after(run, deadline * 1000, () =>
        this.#terminate(run, this.#graceMs(run.pod.spec.terminationGracePeriodSeconds), {
          reason: "DeadlineExceeded",
          message: "Pod was active on the node longer than the specified deadline",
        }),
      );
    }
    this.#after(run, this.options.startDelayMs, () => this.#advance(run));
  }

  /** Starts whatever can start next: init containers one by one, then all main containers. */
  #advance(run: PodRun): void {
    if (run.stage !== "starting" && run.stage !== "running") return;
    for (const c of run.inits) {
      if (isTerminatedOk(c)) continue;
      if (!c.proc && !c.backoff && c.wantStart) this.#tryStart(run, [c]);
      return;
    }
    const want = run.mains.filter((c) => !c.proc && !c.backoff && c.wantStart);
    if (want.length > 0) this.#tryStart(run, want);
  }

  #tryStart(run: PodRun, containers: ContainerRun[]): void {
    const pod = this.cluster.tryGet(PODS, run.ns, run.name) as Pod | undefined;
    if (!pod || pod.metadata.uid !== run.uid) return;
    const blocked: [ContainerRun, Blocker | { reason: string; message: string }][] = [];
    const ready: [ContainerRun, ReturnType<typeof resolveContainer>][] = [];
    for (const c of containers) {
      const image = c.spec.image ?? "";
      if (this.#unpullable.has(image)) {
        // ErrImagePull, then ImagePullBackOff until the next attempt, then ErrImagePull again…
        const last = "waiting" in c.state ? c.state.waiting.reason : "";
        blocked.push([
          c,
          last === "ErrImagePull"
            ? { reason: "ImagePullBackOff", message: `Back-off pulling image "${image}"` }
            : {
                reason: "ErrImagePull",
                message: `failed to pull and unpack image "${image}": failed to resolve reference "${image}": ${image}: not found`,
              },
        ]);
        continue;
      }
      const resolved = resolveContainer({
        cluster: this.cluster,
        pod,
        container: c.spec,
        image: this.#images.get(image),
        baseEnv: this.#baseEnv(pod),
        defaultCwd: run.dir,
      });
      if ("reason" in resolved) blocked.push([c, resolved]);
      else ready.push([c, resolved]);
    }
    if (blocked.length > 0) {
      for (const [c, why] of blocked) c.state = { waiting: why };
      this.#publish(run);
      this.#after(run, this.options.imagePullBackoffMs, () => this.#advance(run));
      return;
    }
    for (const [c, resolved] of ready) this.#spawn(run, c, resolved as Exclude<typeof resolved, Blocker>);
    if (run.stage === "starting" && run.mains.every((c) => c.everStarted)) run.stage = "running";
    this.#publish(run);
  }

  #spawn(
    run: PodRun,
    c: ContainerRun,
    r: { argv: string[]; env: Record<string, string>; cwd: string },
  ): void {
    if (c.logs) c.previous = c.logs;
    const logs = new ContainerLog();
    c.logs = logs;
    if (c.everStarted) c.restartCount++;
    c.everStarted = true;
    c.wantStart = false;
    c.killReason = undefined;
    c.containerID = containerId();
    const startedAt = rfc3339();
    const proc = new ContainerProcess({
      argv: r.argv,
      env: r.env,
      cwd: r.cwd,
      onOutput: (stream, text) => logs.append(stream, text),
      onExit: (exit) => this.#onExit(run, c, exit, startedAt, logs),
    });
    c.proc = proc;
    // An executable that cannot be found fails asynchronously; until then it is still "creating".
    c.state =
      proc.pid !== undefined ? { running: { startedAt } } : { waiting: { reason: "ContainerCreating" } };
  }

  #onExit(run: PodRun, c: ContainerRun, exit: ProcessExit, startedAt: string, logs: ContainerLog): void {
    logs.end();
    c.proc = undefined;
    const reason = exit.startError
      ? "StartError"
      : (c.killReason ?? (exit.exitCode === 0 ? "Completed" : "Error"));
    c.killReason = undefined;
    c.state = {
      terminated: {
        exitCode: exit.exitCode,
        ...(exit.signal !== undefined ? { signal: exit.signal } : {}),
        reason,
        ...(exit.startError
          ? {
              message: `failed to create containerd task: OCI runtime create failed: exec: ${exit.startError}`,
            }
          : {}),
        startedAt: exit.startError ? "1970-01-01T00:00:00Z" : startedAt,
        finishedAt: rfc3339(),
        containerID: c.containerID,
      },
    };
    if (run.stage === "detached") return;
    if (run.stage === "terminating") {
      this.#publish(run);
      this.#maybeFinishTermination(run);
      return;
    }
    if (run.stage === "done") return;
    const policy = run.pod.spec.restartPolicy ?? "Always";
    const restart = exit.exitCode !== 0 ? policy !== "Never" : policy === "Always" && !c.init;
    if (restart) {
      this.#publish(run);
      this.#scheduleRestart(run, c);
      return;
    }
    this.#publish(run);
    if (c.init && exit.exitCode === 0) this.#advance(run);
  }

  #scheduleRestart(run: PodRun, c: ContainerRun): void {
    const delay = Math.min(
      this.options.crashLoopBackoffMs * 2 ** c.restartCount,
      this.options.maxCrashLoopBackoffMs,
    );
    c.lastState = c.state;
    c.backoff = true;
    c.state = {
      waiting: {
        reason: "CrashLoopBackOff",
        message: `back-off ${Math.ceil(delay / 1000)}s restarting failed container=${c.spec.name} pod=${run.name}_${run.ns}(${run.uid})`,
      },
    };
    this.#publish(run);
    this.#after(run, delay, () => {
      c.backoff = false;
      c.wantStart = true;
      this.#advance(run);
    });
  }

  /** Stops all containers: SIGTERM now (SIGKILL when graceMs is 0), SIGKILL after graceMs. */
  #terminate(run: PodRun, graceMs: number, forced?: { reason: string; message: string }): void {
    if (run.stage === "detached") return;
    if (forced && !run.forced) run.forced = forced;
    if (run.stage === "done") {
      if (run.deleting) this.cluster.finishPodDeletion(run.ns, run.name);
      return;
    }
    run.stage = "terminating";
    this.#clearTimers(run);
    const grace = Math.min(graceMs, this.options.maxGracePeriodMs);
    for (const c of [...run.inits, ...run.mains]) c.proc?.kill(grace > 0 ? "SIGTERM" : "SIGKILL");
    clearTimeout(run.killTimer);
    if (grace > 0) {
      run.killTimer = setTimeout(() => {
        for (const c of [...run.inits, ...run.mains]) c.proc?.kill("SIGKILL");
      }, grace);
    }
    this.#maybeFinishTermination(run);
  }

  #maybeFinishTermination(run: PodRun): void {
    if ([...run.inits, ...run.mains].some((c) => c.proc)) return;
    clearTimeout(run.killTimer);
    run.stage = "done";
    run.finalPhase = run.forced || !run.mains.every(isTerminatedOk) ? "Failed" : "Succeeded";
    this.#publish(run);
    if (run.deleting) this.cluster.finishPodDeletion(run.ns, run.name);
  }

  #disrupt(
    ns: string,
    name: string,
    reason: string,
    message: string,
    conditionReason: string,
    conditionMessage: string,
    graceMs: number | undefined,
  ): void {
    const run = this.#runs.get(`${ns}/${name}`);
    const disruption: PodCondition = {
      type: "DisruptionTarget",
      status: "True",
      reason: conditionReason,
      message: conditionMessage,
    };
    const pod = this.cluster.mutate(PODS, ns, name, (p) => {
      p.status = { ...(p.status ?? {}), conditions: upsertCondition(p.status?.conditions, disruption) };
      // A pod the kubelet does not run (not scheduled, or already finished) just gets the verdict.
      if (!run || run.stage === "done" || run.stage === "detached") {
        p.status.phase = "Failed";
        p.status.reason = reason;
        p.status.message = message;
      }
    });
    if (!pod) throw notFound(PODS, name);
    if (run && run.stage !== "done" && run.stage !== "detached") {
      this.#terminate(run, graceMs ?? this.#graceMs(run.pod.spec.terminationGracePeriodSeconds), {
        reason,
        message,
      });
    }
  }

  /** Writes the kubelet's view of the pod into status (skipping writes that change nothing). */
  #publish(run: PodRun, extra?: (s: PodStatus) => void): void {
    const policy = run.pod.spec.restartPolicy ?? "Always";
    const phase =
      run.finalPhase ??
      (run.forced && run.stage === "done" ? "Failed" : computePhase(run.inits, run.mains, policy));
    if (isTerminalPhase(phase) && (run.stage === "starting" || run.stage === "running")) {
      run.stage = "done";
      this.#clearTimers(run);
    }
    this.cluster.mutate(PODS, run.ns, run.name, (p) => {
      if (p.metadata.uid !== run.uid) return false;
      const before = JSON.stringify(p.status ?? {});
      const s: PodStatus = { ...(p.status ?? {}) };
      s.phase = phase;
      if (run.forced && isTerminalPhase(phase)) {
        s.reason = run.forced.reason;
        s.message = run.forced.message;
      }
      s.conditions = kubeletConditions(s.conditions, run.inits, run.mains, phase);
      if (run.inits.length > 0) s.initContainerStatuses = run.inits.map(containerStatus);
      s.containerStatuses = run.mains.map(containerStatus);
      extra?.(s);
      p.status = s;
      if (JSON.stringify(s) === before) return false;
    });
  }

  #graceMs(seconds: number | undefined): number {
    return Math.min((seconds ?? 30) * 1000, this.options.maxGracePeriodMs);
  }

  #baseEnv(pod: Pod): Record<string, string> {
    const env: Record<string, string> = {};
    for (const name of this.options.hostEnv) {
      const v = process.env[name];
      if (v !== undefined) env[name] = v;
    }
    env.HOSTNAME = pod.metadata.name!;
    env.KUBERNETES_SERVICE_HOST = "127.0.0.1";
    env.KUBERNETES_SERVICE_PORT = String(this.options.apiPort());
    return env;
  }

  #after(run: PodRun, ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      run.timers.delete(t);
      fn();
    }, ms);
    run.timers.add(t);
  }

  #clearTimers(run: PodRun): void {
    for (const t of run.timers) clearTimeout(t);
    run.timers.clear();
  }

  /** Stops managing a pod: SIGKILL its processes, no more status writes. */
  #detach(run: PodRun): void {
    run.stage = "detached";
    this.#clearTimers(run);
    clearTimeout(run.killTimer);
    for (const c of [...run.inits, ...run.mains]) c.proc?.kill("SIGKILL");
  }

  /** The pod is gone: detach and drop its logs and scratch directory. */
  #discard(run: PodRun): void {
    this.#detach(run);
    this.#runs.delete(`${run.ns}/${run.name}`);
    const dir = run.dir;
    const procs = [...run.inits, ...run.mains].flatMap((c) => (c.proc ? [c.proc.exited] : []));
    void Promise.all(procs).then(() => rmSync(dir, { recursive: true, force: true }));
  }
}
