/**
 * A fake Kubeflow mpi-operator (v2beta1 `MPIJob`, PROTOCOLS §1.8) for the fake Kubernetes
 * API: install it with {@link installMpiOperator}.
 *
 * Like the real operator it creates `<name>-worker-<i>` pods from the Worker template,
 * waits for them to run, writes a hostfile, then creates the launcher pod
 * (`<name>-launcher`) from the Launcher template — whose command the fake kubelet really
 * runs — and moves `status.conditions` along: `Created` → `Running` → `Succeeded` or
 * `Failed`, with `Restarting` when the launcher fails and `runPolicy.backoffLimit` allows
 * another try. `cleanPodPolicy` decides which pods are deleted at the end. Every pod is
 * owned by the MPIJob, so deleting the job garbage-collects them.
 *
 * Simplifications: worker containers without a command run `sleep`; there is no ssh, and
 * the launcher reaches nothing but what its own command does locally; a failed worker fails
 * the job (no worker restarts).
 */
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { ControllerContext, CustomResourceController } from "../controllers.js";
import type { FakeKubernetes } from "../fake.js";
import type { KubeObject, Pod, PodCondition } from "../types.js";

export interface MpiOperatorOptions {
  /** Command of worker containers whose template has none (the real image runs sshd). @default ["sleep", "86400"] */
  workerCommand?: string[];
  /** How often the operator looks at its pods. @default 25 */
  pollMs?: number;
  /** Where hostfile directories are made (one per job, removed when the job ends). @default the OS temp dir */
  hostfileDir?: string;
}

const PODS = { group: "", plural: "pods" };
const JOB_NAME = "training.kubeflow.org/job-name";
const JOB_ROLE = "training.kubeflow.org/job-role";
const REPLICA_INDEX = "training.kubeflow.org/replica-index";

interface JobCondition {
  type: string;
  status: "True" | "False";
  reason: string;
  message: string;
  lastTransitionTime: string;
  lastUpdateTime: string;
}

const now = () => `${new Date().toISOString().slice(0, 19)}Z`;

function podFailure(pod: Pod | undefined): string {
  if (!pod) return "the pod was deleted";
  const s = pod.status;
  if (s?.reason) return `${s.reason}${s.message ? `: ${s.message.trim()}` : ""}`;
  const t = s?.containerStatuses?.map((c) => c.state).find((st) => "terminated" in st);
  if (t && "terminated" in t)
    return `container exited with code ${t.terminated.exitCode} (${t.terminated.reason})`;
  return `phase ${s?.phase ?? "unknown"}`;
}

/** The controller; `installMpiOperator` registers it for `mpijobs.kubeflow.org`. */
export function mpiOperator(opts: MpiOperatorOptions = {}): CustomResourceController {
  const pollMs = opts.pollMs ?? 25;
  const hostRoot = opts.hostfileDir ?? os.tmpdir();
  return {
    created(job, ctx) {
      // The lifecycle outlives this hook (hooks of one object run in order); it ends when the
      // job is deleted, finishes, or the fake closes.
      void run(job, ctx).catch((err) => {
        if (!ctx.signal.aborted) process.emitWarning(`fake mpi-operator: ${(err as Error)?.stack ?? err}`);
      });
    },
  };

  /** The job's lifecycle; its hostfile directory goes when it ends (finished, deleted, or the fake closed). */
  async function run(job: KubeObject, ctx: ControllerContext): Promise<void> {
    const dir = path.join(hostRoot, `tern-fake-mpi-${job.metadata.uid}`);
    try {
      await lifecycle(job, ctx, dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  async function lifecycle(job: KubeObject, ctx: ControllerContext, dir: string): Promise<void> {
    const ns = job.metadata.namespace!;
    const name = job.metadata.name!;
    const uid = job.metadata.uid!;
    const spec = job.spec ?? {};
    const workers: number = spec.mpiReplicaSpecs?.Worker?.replicas ?? 0;
    const slots: number = spec.slotsPerWorker ?? 1;
    const backoffLimit: number = spec.runPolicy?.backoffLimit ?? 6;
    const cleanPodPolicy: string = spec.runPolicy?.cleanPodPolicy ?? "None";
    const alive = () => !ctx.signal.aborted && ctx.current()?.metadata.uid === uid;
    const conditions: JobCondition[] = [];
    const replicaStatuses = {
      Launcher: { active: 0, succeeded: 0, failed: 0 },
      Worker: { active: 0, succeeded: 0, failed: 0 },
    };
    const setCondition = (
      type: string,
      status: "True" | "False",
      reason: string,
      message: string,
      extra: Record<string, unknown> = {},
    ) => {
      const t = now();
      const i = conditions.findIndex((c) => c.type === type);
      const prev = i >= 0 ? conditions[i] : undefined;
      const c: JobCondition = {
        type,
        status,
        reason,
        message,
        lastUpdateTime: t,
        lastTransitionTime: prev && prev.status === status ? prev.lastTransitionTime : t,
      };
      if (i >= 0) conditions[i] = c;
      else conditions.push(c);
      ctx.patchStatus({
        conditions: structuredClone(conditions),
        replicaStatuses: structuredClone(replicaStatuses),
        ...extra,
      });
    };
    const owner = {
      apiVersion: job.apiVersion ?? "kubeflow.org/v2beta1",
      kind: "MPIJob",
      name,
      uid,
      controller: true,
      blockOwnerDeletion: true,
    };
    const makePod = (
      podName: string,
      role: "launcher" | "worker",
      template: Record<string, any> | undefined,
      extraEnv: { name: string; value: string }[],
      index?: number,
    ) => {
      const tpl = structuredClone(template ?? {});
      const podSpec = tpl.spec ?? { containers: [] };
      podSpec.restartPolicy = "Never";
      podSpec.containers = (podSpec.containers ?? []).map((c: Record<string, any>) => ({
        ...c,
        command: c.command ?? (role === "worker" ? (opts.workerCommand ?? ["sleep", "86400"]) : c.command),
        env: [...(c.env ?? []), ...extraEnv],
      }));
      const labels: Record<string, string> = {
        ...(tpl.metadata?.labels ?? {}),
        [JOB_NAME]: name,
        [JOB_ROLE]: role,
      };
      if (index !== undefined) labels[REPLICA_INDEX] = String(index);
      return ctx.cluster.create(PODS, ns, {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: podName, labels, annotations: tpl.metadata?.annotations, ownerReferences: [owner] },
        spec: podSpec,
      });
    };
    const pod = (podName: string) => ctx.cluster.get(PODS, ns, podName) as Pod | undefined;
    const remove = (podName: string) => {
      if (pod(podName)) ctx.cluster.delete(PODS, ns, podName, { gracePeriodSeconds: 0 });
    };

    setCondition("Created", "True", "MPIJobCreated", `MPIJob ${ns}/${name} is created.`, {
      startTime: now(),
    });
    const workerNames = Array.from({ length: workers }, (_, i) => `${name}-worker-${i}`);
    workerNames.forEach((w, i) => {
      makePod(
        w,
        "worker",
        spec.mpiReplicaSpecs?.Worker?.template,
        [{ name: "K_MPI_JOB_ROLE", value: "worker" }],
        i,
      );
    });
    const launchers: string[] = [];
    const finish = (type: "Succeeded" | "Failed", reason: string, message: string) => {
      const policy = cleanPodPolicy;
      if (policy === "All" || policy === "Running") {
        for (const w of workerNames) {
          const p = pod(w);
          if (policy === "All" || p?.status?.phase === "Running" || p?.status?.phase === "Pending") remove(w);
        }
        if (policy === "All") for (const l of launchers) remove(l);
      }
      replicaStatuses.Worker.active = 0;
      replicaStatuses.Launcher.active = 0;
      if (type === "Succeeded") replicaStatuses.Launcher.succeeded = 1;
      else replicaStatuses.Launcher.failed = launchers.length;
      const t = now();
      const i = conditions.findIndex((c) => c.type === "Running");
      if (i >= 0)
        conditions[i] = { ...conditions[i], status: "False", lastTransitionTime: t, lastUpdateTime: t };
      setCondition(type, "True", reason, message, { completionTime: t });
    };

    // Workers first: the launcher starts once every worker runs.
    for (;;) {
      if (!alive()) return;
      const ws = workerNames.map(pod);
      const bad = ws.findIndex((p) => !p || p.status?.phase === "Failed" || p.status?.phase === "Succeeded");
      if (bad >= 0) {
        return finish(
          "Failed",
          "MPIJobFailed",
          `worker pod ${workerNames[bad]} failed: ${podFailure(ws[bad])}`,
        );
      }
      replicaStatuses.Worker.active = ws.filter((p) => p?.status?.phase === "Running").length;
      if (replicaStatuses.Worker.active === workers) break;
      if (!(await ctx.sleep(pollMs))) return;
    }
    mkdirSync(dir, { recursive: true });
    const hostfile = path.join(dir, "hostfile");
    writeFileSync(hostfile, workerNames.map((w) => `${w}.${name}.${ns}.svc slots=${slots}\n`).join(""));
    const launcherEnv = [
      { name: "K_MPI_JOB_ROLE", value: "launcher" },
      { name: "OMPI_MCA_orte_default_hostfile", value: hostfile },
      { name: "OMPI_MCA_plm_rsh_args", value: "-o ConnectionAttempts=10" },
    ];

    for (let restarts = 0; ; restarts++) {
      const launcher = restarts === 0 ? `${name}-launcher` : `${name}-launcher-${restarts}`;
      launchers.push(launcher);
      makePod(launcher, "launcher", spec.mpiReplicaSpecs?.Launcher?.template, launcherEnv);
      replicaStatuses.Launcher.active = 1;
      let running = false;
      for (;;) {
        if (!alive()) return;
        const p = pod(launcher);
        const phase = p?.status?.phase;
        if (phase === "Running" && !running) {
          running = true;
          setCondition("Running", "True", "MPIJobRunning", `MPIJob ${ns}/${name} is running.`);
          if (restarts > 0)
            setCondition("Restarting", "False", "MPIJobRunning", `MPIJob ${ns}/${name} is running.`);
        }
        if (phase === "Succeeded")
          return finish("Succeeded", "MPIJobSucceeded", `MPIJob ${ns}/${name} successfully completed.`);
        const disrupted = p?.status?.conditions?.find(
          (c: PodCondition) => c.type === "DisruptionTarget" && c.status === "True",
        );
        if (!p || phase === "Failed") {
          const evicted = p?.status?.reason === "Evicted" || !!disrupted;
          const why = podFailure(p);
          if (!evicted && restarts < backoffLimit) {
            setCondition(
              "Restarting",
              "True",
              "MPIJobRestarting",
              `launcher pod ${launcher} failed (${why}); restarting`,
            );
            break;
          }
          return finish(
            "Failed",
            evicted ? "MPIJobEvicted" : "MPIJobFailed",
            evicted
              ? `launcher pod ${launcher} was evicted: ${why}`
              : `MPIJob ${ns}/${name} has failed because launcher pod ${launcher} failed: ${why}`,
          );
        }
        if (!(await ctx.sleep(pollMs))) return;
      }
    }
  }
}

/** Registers the fake mpi-operator on a fake cluster (`mpijobs.kubeflow.org`, any version). */
export function installMpiOperator(
  fake: FakeKubernetes,
  opts: MpiOperatorOptions = {},
): { uninstall(): void } {
  const reg = fake.registerController("kubeflow.org", "mpijobs", mpiOperator(opts));
  return { uninstall: () => reg.unregister() };
}
