/**
 * A fake KubeRay operator (`ray.io/v1` `RayJob`, PROTOCOLS §1.8) for the fake Kubernetes API:
 * install it with {@link installKubeRay}.
 *
 * Like the real operator (K8sJobMode) it creates a `RayCluster` named
 * `<rayjob>-raycluster-<5 chars>` owned by the RayJob, the cluster's head pod and worker pods
 * (from `rayClusterSpec`, labelled `ray.io/cluster`, `ray.io/node-type`, `ray.io/group`) owned
 * by the RayCluster, waits until they all run, then creates a submitter pod
 * (`batch.kubernetes.io/job-name=<rayjob>`, container `ray-job-submitter`) owned by the
 * RayJob. `.status` moves the way KubeRay moves it: `jobDeploymentStatus` Initializing →
 * Running → Complete | Failed, `jobStatus` PENDING → RUNNING → SUCCEEDED | FAILED, with
 * `jobId`, `rayClusterName`, `dashboardURL`, `rayClusterStatus`, `startTime`, `endTime`,
 * `succeeded`/`failed`, and on failure `reason` (`AppFailed`, `SubmissionFailed`,
 * `DeadlineExceeded`, `ValidationFailed`) and `message`. With `shutdownAfterJobFinishes` the
 * RayCluster (and so its pods) is deleted `ttlSecondsAfterFinished` after the end and
 * `rayClusterStatus` is cleared; the submitter pod stays (its log is the job's log) until the
 * RayJob is deleted. Deleting the RayJob garbage-collects everything.
 *
 * Simplifications: the submitter pod runs the entrypoint itself (`sh -c <entrypoint>`, with
 * `runtimeEnvYAML`'s `env_vars` as its environment and a local `working_dir` as its working
 * directory) instead of submitting it to the head; head and worker containers run a sleeper;
 * a head pod that fails or disappears while the job runs fails the RayJob with
 * `SubmissionFailed` (the driver is lost); `clusterSelector`, `suspend` (beyond reporting
 * `Suspended`), autoscaling, `backoffLimit` retries and HTTPMode/InteractiveMode are not
 * modelled.
 */
import { existsSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import yaml from "js-yaml";
import type { ControllerContext, CustomResourceController } from "../controllers.js";
import type { FakeKubernetes } from "../fake.js";
import type { KubeObject, OwnerReference, Pod, PodCondition } from "../types.js";

export interface KubeRayOperatorOptions {
  /** Command of head and worker Ray containers (the real image runs `ray start`). @default ["sleep", "86400"] */
  nodeCommand?: string[];
  /** How often the operator looks at its pods. @default 20 */
  pollMs?: number;
}

const PODS = { group: "", plural: "pods" };
const RAYCLUSTERS = { group: "ray.io", version: "v1", plural: "rayclusters" };
const RAND_CHARS = "bcdfghjklmnpqrstvwxz2456789";

const now = () => `${new Date().toISOString().slice(0, 19)}Z`;

function rand5(): string {
  let s = "";
  for (let i = 0; i < 5; i++) s += RAND_CHARS[Math.floor(Math.random() * RAND_CHARS.length)];
  return s;
}

function podFailure(pod: Pod | undefined): string {
  if (!pod) return "was deleted";
  const s = pod.status;
  if (s?.reason) return `failed (${s.reason}${s.message ? `: ${s.message.trim()}` : ""})`;
  const t = s?.containerStatuses?.map((c) => c.state).find((st) => "terminated" in st);
  if (t && "terminated" in t)
    return `failed: container exited with code ${t.terminated.exitCode} (${t.terminated.reason})`;
  if (pod.metadata.deletionTimestamp) return "is being deleted";
  return `is ${s?.phase ?? "in an unknown phase"}`;
}

function exitCode(pod: Pod): number | undefined {
  for (const c of pod.status?.containerStatuses ?? [])
    if ("terminated" in c.state) return c.state.terminated.exitCode;
  return undefined;
}

function disrupted(pod: Pod): boolean {
  return (
    pod.status?.reason === "Evicted" ||
    pod.status?.reason === "Terminated" ||
    !!pod.status?.conditions?.some((c: PodCondition) => c.type === "DisruptionTarget" && c.status === "True")
  );
}

/** `working_dir` as a local directory, or why it cannot be used. */
function localWorkingDir(wd: unknown): string | { error: string } | undefined {
  if (wd === undefined || wd === null) return undefined;
  if (typeof wd !== "string") return { error: "working_dir must be a string" };
  const dir = wd.startsWith("file://") ? fileURLToPath(wd) : wd;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(dir) || !path.isAbsolute(dir))
    return { error: `the fake operator only uses local working_dir directories, not ${wd}` };
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    return { error: `working_dir ${wd} does not exist or is not a directory` };
  return dir;
}

/** The controller; {@link installKubeRay} registers it for `rayjobs.ray.io`. */
export function kubeRayOperator(opts: KubeRayOperatorOptions = {}): CustomResourceController {
  const pollMs = opts.pollMs ?? 20;
  const sleeper = opts.nodeCommand ?? ["sleep", "86400"];
  return {
    created(job, ctx) {
      void lifecycle(job, ctx).catch((err) => {
        if (!ctx.signal.aborted) process.emitWarning(`fake KubeRay: ${(err as Error)?.stack ?? err}`);
      });
    },
  };

  async function lifecycle(job: KubeObject, ctx: ControllerContext): Promise<void> {
    const ns = job.metadata.namespace!;
    const name = job.metadata.name!;
    const uid = job.metadata.uid!;
    const spec = (job.spec ?? {}) as Record<string, any>;
    const alive = () => !ctx.signal.aborted && ctx.current()?.metadata.uid === uid;
    const startTime = now();

    // What KubeRay's validation refuses before it creates anything.
    const problems: string[] = [];
    const mode = spec.submissionMode ?? "K8sJobMode";
    if (mode !== "K8sJobMode") problems.push(`submissionMode ${mode} is not modelled by the fake operator`);
    if (!spec.entrypoint || typeof spec.entrypoint !== "string") problems.push("spec.entrypoint is required");
    if (spec.clusterSelector && Object.keys(spec.clusterSelector).length > 0)
      problems.push("spec.clusterSelector (an existing RayCluster) is not modelled by the fake operator");
    else if (!spec.rayClusterSpec) problems.push("spec.rayClusterSpec is required");
    let runtimeEnv: Record<string, any> = {};
    if (spec.runtimeEnvYAML !== undefined) {
      try {
        const parsed = yaml.load(String(spec.runtimeEnvYAML));
        if (parsed !== null && parsed !== undefined) {
          if (typeof parsed !== "object" || Array.isArray(parsed))
            problems.push("spec.runtimeEnvYAML must be a YAML mapping");
          else runtimeEnv = parsed as Record<string, any>;
        }
      } catch (e) {
        problems.push(`spec.runtimeEnvYAML is not valid YAML: ${(e as Error).message.split("\n")[0]}`);
      }
    }
    if (problems.length) {
      ctx.patchStatus({
        jobDeploymentStatus: "Failed",
        reason: "ValidationFailed",
        message: `The RayJob spec is invalid ${ns}/${name}: ${problems.join("; ")}`,
        startTime,
        endTime: now(),
      });
      return;
    }
    if (spec.suspend === true) {
      ctx.patchStatus({ jobDeploymentStatus: "Suspended", startTime });
      return;
    }

    const clusterName = `${name}-raycluster-${rand5()}`;
    const jobId: string = typeof spec.jobId === "string" && spec.jobId ? spec.jobId : `${name}-${rand5()}`;
    const dashboardURL = `${clusterName}-head-svc.${ns}.svc.cluster.local:8265`;
    ctx.patchStatus({ jobDeploymentStatus: "Initializing", jobId, rayClusterName: clusterName, startTime });

    const rayJobOwner: OwnerReference = {
      apiVersion: job.apiVersion ?? "ray.io/v1",
      kind: "RayJob",
      name,
      uid,
      controller: true,
      blockOwnerDeletion: true,
    };
    const clusterSpec = spec.rayClusterSpec as Record<string, any>;
    const rayCluster = ctx.cluster.create(RAYCLUSTERS, ns, {
      apiVersion: "ray.io/v1",
      kind: "RayCluster",
      metadata: {
        name: clusterName,
        labels: { "ray.io/originated-from-crd": "RayJob", "ray.io/originated-from-cr-name": name },
        ownerReferences: [rayJobOwner],
      },
      spec: clusterSpec,
    });
    const clusterOwner: OwnerReference = {
      apiVersion: "ray.io/v1",
      kind: "RayCluster",
      name: clusterName,
      uid: rayCluster.metadata.uid!,
      controller: true,
      blockOwnerDeletion: true,
    };
    const pod = (podName: string) => ctx.cluster.get(PODS, ns, podName) as Pod | undefined;
    const remove = (podName: string | undefined) => {
      if (podName && pod(podName)) ctx.cluster.delete(PODS, ns, podName, { gracePeriodSeconds: 0 });
    };
    const nodePod = (
      nodeType: "head" | "worker",
      group: string,
      template: Record<string, any> | undefined,
    ): string => {
      const podName =
        nodeType === "head" ? `${clusterName}-head-${rand5()}` : `${clusterName}-${group}-worker-${rand5()}`;
      const tpl = structuredClone(template ?? {});
      const podSpec = tpl.spec ?? {};
      podSpec.restartPolicy = "Never";
      podSpec.containers = (podSpec.containers ?? [{ name: `ray-${nodeType}`, image: "rayproject/ray" }]).map(
        (c: Record<string, any>, i: number) => ({
          ...c,
          command: i === 0 || !c.command ? sleeper : c.command,
          args: i === 0 || !c.command ? undefined : c.args,
          env: [
            ...(c.env ?? []),
            { name: "RAY_CLUSTER_NAME", value: clusterName },
            { name: "RAY_IP", value: `${clusterName}-head-svc` },
          ],
        }),
      );
      ctx.cluster.create(PODS, ns, {
        apiVersion: "v1",
        kind: "Pod",
        metadata: {
          name: podName,
          labels: {
            ...(tpl.metadata?.labels ?? {}),
            "ray.io/cluster": clusterName,
            "ray.io/node-type": nodeType,
            "ray.io/group": group,
            "ray.io/is-ray-node": "yes",
          },
          annotations: tpl.metadata?.annotations,
          ownerReferences: [clusterOwner],
        },
        spec: podSpec,
      });
      return podName;
    };
    const headTemplate = clusterSpec.headGroupSpec?.template;
    let head = nodePod("head", "headgroup", headTemplate);
    const groups = (clusterSpec.workerGroupSpecs ?? []) as Record<string, any>[];
    const workers: string[] = [];
    for (const g of groups) {
      const replicas = Number(g.replicas ?? g.minReplicas ?? 0);
      for (let i = 0; i < replicas; i++)
        workers.push(nodePod("worker", g.groupName ?? "workergroup", g.template));
    }

    // The cluster comes up: the RayCluster controller replaces a head that dies meanwhile.
    for (;;) {
      if (!alive()) return;
      const h = pod(head);
      if (!h || h.status?.phase === "Failed" || h.status?.phase === "Succeeded") {
        remove(head);
        head = nodePod("head", "headgroup", headTemplate);
      }
      const ready = workers.filter((w) => pod(w)?.status?.phase === "Running").length;
      if (pod(head)?.status?.phase === "Running" && ready === workers.length) break;
      if (!(await ctx.sleep(pollMs))) return;
    }
    const rayClusterStatus = {
      state: "ready",
      desiredWorkerReplicas: workers.length,
      availableWorkerReplicas: workers.length,
      readyWorkerReplicas: workers.length,
      head: {
        podName: head,
        podIP: "127.0.0.1",
        serviceIP: "127.0.0.1",
        serviceName: `${clusterName}-head-svc`,
      },
      endpoints: { client: "10001", dashboard: "8265", "gcs-server": "6379", metrics: "8080" },
      lastUpdateTime: now(),
    };
    if (ctx.cluster.get(RAYCLUSTERS, ns, clusterName))
      ctx.cluster.patchStatus(RAYCLUSTERS, ns, clusterName, rayClusterStatus);

    const endTimes = () => ({ endTime: now() });
    const finish = async (status: Record<string, unknown>) => {
      ctx.patchStatus({ ...status, ...endTimes() });
      if (spec.shutdownAfterJobFinishes === true) {
        const ttl = Number(spec.ttlSecondsAfterFinished ?? 0);
        if (ttl > 0 && !(await ctx.sleep(ttl * 1000))) return;
        if (!alive()) return;
        if (ctx.cluster.get(RAYCLUSTERS, ns, clusterName)) ctx.cluster.delete(RAYCLUSTERS, ns, clusterName);
        ctx.patchStatus({ rayClusterStatus: null });
      }
    };

    ctx.patchStatus({ jobDeploymentStatus: "Running", dashboardURL, rayClusterStatus, jobStatus: "PENDING" });
    const wd = localWorkingDir(runtimeEnv.working_dir);
    if (wd && typeof wd === "object") {
      return finish({
        jobDeploymentStatus: "Failed",
        jobStatus: "FAILED",
        reason: "AppFailed",
        message: `runtime_env setup failed: ${wd.error}`,
        failed: 1,
      });
    }
    const envVars = (runtimeEnv.env_vars ?? {}) as Record<string, unknown>;
    const headImage: string = headTemplate?.spec?.containers?.[0]?.image ?? "rayproject/ray";
    const submitter = `${name}-${rand5()}`;
    ctx.cluster.create(PODS, ns, {
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        name: submitter,
        labels: {
          "batch.kubernetes.io/job-name": name,
          "job-name": name,
          "ray.io/originated-from-crd": "RayJob",
          "ray.io/originated-from-cr-name": name,
        },
        ownerReferences: [rayJobOwner],
      },
      spec: {
        restartPolicy: "Never",
        containers: [
          {
            name: "ray-job-submitter",
            image: headImage,
            command: ["sh", "-c", spec.entrypoint],
            env: [
              ...Object.entries(envVars).map(([k, v]) => ({ name: k, value: String(v) })),
              { name: "RAY_DASHBOARD_ADDRESS", value: dashboardURL },
              { name: "RAY_JOB_SUBMISSION_ID", value: jobId },
            ],
            ...(wd ? { workingDir: wd } : {}),
          },
        ],
      },
    });

    const deadlineMs =
      Number(spec.activeDeadlineSeconds) > 0
        ? Date.parse(startTime) + Number(spec.activeDeadlineSeconds) * 1000
        : 0;
    let running = false;
    for (;;) {
      if (!alive()) return;
      const s = pod(submitter);
      const h = pod(head);
      if (deadlineMs && Date.now() > deadlineMs) {
        remove(submitter);
        return finish({
          jobDeploymentStatus: "Failed",
          reason: "DeadlineExceeded",
          message: `The RayJob has passed the activeDeadlineSeconds. StartTime: ${startTime}. ActiveDeadlineSeconds: ${spec.activeDeadlineSeconds}`,
        });
      }
      if (s?.status?.phase === "Succeeded") {
        return finish({
          jobDeploymentStatus: "Complete",
          jobStatus: "SUCCEEDED",
          message: "Job finished successfully.",
          succeeded: 1,
        });
      }
      if (
        !h ||
        h.metadata.deletionTimestamp ||
        h.status?.phase === "Failed" ||
        h.status?.phase === "Succeeded"
      ) {
        remove(submitter);
        return finish({
          jobDeploymentStatus: "Failed",
          reason: "SubmissionFailed",
          message: `Ray head pod ${ns}/${head} ${podFailure(h)}: the job's driver was lost and the submitter could not reach the Ray dashboard`,
          failed: 1,
        });
      }
      if (!s || s.status?.phase === "Failed") {
        if (!s || disrupted(s)) {
          remove(submitter);
          return finish({
            jobDeploymentStatus: "Failed",
            reason: "SubmissionFailed",
            message: `the submitter pod ${ns}/${submitter} ${podFailure(s)}`,
            failed: 1,
          });
        }
        return finish({
          jobDeploymentStatus: "Failed",
          jobStatus: "FAILED",
          reason: "AppFailed",
          message: `Job entrypoint command failed with exit code ${exitCode(s) ?? "unknown"}`,
          failed: 1,
        });
      }
      if (!running && s.status?.phase === "Running") {
        running = true;
        ctx.patchStatus({ jobStatus: "RUNNING", message: "Job is currently running." });
      }
      if (!(await ctx.sleep(pollMs))) return;
    }
  }
}

/** Registers the fake KubeRay operator on a fake cluster (`rayjobs.ray.io`, any version). */
export function installKubeRay(
  fake: FakeKubernetes,
  opts: KubeRayOperatorOptions = {},
): { uninstall(): void } {
  const reg = fake.registerController("ray.io", "rayjobs", kubeRayOperator(opts));
  return { uninstall: () => reg.unregister() };
}
