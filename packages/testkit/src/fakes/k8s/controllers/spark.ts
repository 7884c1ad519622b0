/**
 * A fake spark-operator (`sparkoperator.k8s.io/v1beta2` `SparkApplication`, PROTOCOLS §1.8)
 * for the fake Kubernetes API: install it with {@link installSparkOperator}.
 *
 * Like the real operator it "spark-submits" each new application, which creates the driver
 * pod `<name>-driver` (labels `spark-role=driver`, `spark-app-name`, `spark-app-selector`),
 * and then follows that pod, moving `status.applicationState.state` along:
 * `SUBMITTED` → `RUNNING` → `SUCCEEDING` → `COMPLETED`, or → `FAILING` → `FAILED` with
 * `errorMessage` "driver container failed with ExitCode: N, Reason: R"; a deleted driver pod
 * gives `FAILING`/`FAILED` with "driver pod not found"; a failed submission gives
 * `SUBMISSION_FAILED` and then, once the restart policy gives up, `FAILED`.
 * `restartPolicy` `OnFailure`/`Always` re-runs the driver (`PENDING_RERUN`) within
 * `onFailureRetries` / `onSubmissionFailureRetries`. It also fills in `driverInfo.podName`,
 * `sparkApplicationId`, `submissionID`, `submissionAttempts`, `executionAttempts`,
 * `lastSubmissionAttemptTime`, `terminationTime` and `executorState`.
 *
 * The driver container really runs the main application file on this machine (the fake
 * kubelet runs it): `node <file>` for `.js`/`.mjs`/`.cjs`, `python3 <file>` for `.py`,
 * `Rscript <file>` for `.R`, `java -cp <jar> <mainClass>` for `.jar` (more with `runners`),
 * followed by `spec.arguments`. `local://` paths (paths inside the image) are used as they are,
 * or under `localRoot`; a missing one makes the driver exit 1, as it would in the image.
 * `file://` paths and plain absolute paths are read by spark-submit itself, so a missing one
 * is a submission failure; other schemes (s3a://, gs://…) cannot be fetched by the fake and
 * fail the submission too. The driver gets `SPARK_CONF_DIR` with a `spark.properties` holding
 * `sparkConf`, `hadoopConf` (as `spark.hadoop.*`) and the sizing. Once the driver runs, the
 * operator starts `executor.instances` executor pods (owned by the driver; they run
 * `executorCommand`) and removes them when the driver ends.
 *
 * A test that sets `status.applicationState.state` itself takes the application over: the
 * operator stops moving it (its pods stay until the application is deleted).
 */
import { randomBytes, randomUUID } from "node:crypto";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { ControllerContext, CustomResourceController } from "../controllers.js";
import type { FakeKubernetes } from "../fake.js";
import type { KubeObject, Pod } from "../types.js";

export interface SparkOperatorOptions {
  /** How often the operator looks at the driver pod. @default 25 */
  pollMs?: number;
  /** Directory `local://` paths are resolved under. @default "/" (paths are taken as they are) */
  localRoot?: string;
  /** argv prefix per main-file extension (`{ ".rb": ["ruby"] }`); the file and arguments follow. */
  runners?: Record<string, string[]>;
  /** Command of executor containers. @default ["sleep", "86400"] */
  executorCommand?: string[];
  /** Where each run's `spark.properties` directory is made (removed when the run ends). @default the OS temp dir */
  confDir?: string;
}

const PODS = { group: "", plural: "pods" };
const DRIVER_CONTAINER = "spark-kubernetes-driver";
const EXECUTOR_CONTAINER = "spark-kubernetes-executor";
const TYPES = ["Scala", "Java", "Python", "R"];

const now = () => `${new Date().toISOString().slice(0, 19)}Z`;

/** Spark's byte strings ("512m", "2g"; no unit = MiB) in MiB, or undefined. */
function sparkMiB(s: unknown): number | undefined {
  const m = /^(\d+)(b|k|kb|m|mb|g|gb|t|tb)?$/i.exec(String(s ?? ""));
  if (!m) return undefined;
  const unit = (m[2] ?? "m").toLowerCase()[0];
  const f: Record<string, number> = { b: 1 / 2 ** 20, k: 1 / 1024, m: 1, g: 1024, t: 1024 * 1024 };
  return Number(m[1]) * f[unit];
}

function podResources(p: Record<string, any> | undefined): Record<string, unknown> {
  const mem = sparkMiB(p?.memory ?? "1g") ?? 1024;
  const overhead = sparkMiB(p?.memoryOverhead) ?? Math.max(384, Math.ceil(mem * 0.1));
  const total = `${Math.ceil(mem + overhead)}Mi`;
  const requests: Record<string, string> = { cpu: String(p?.cores ?? 1), memory: total };
  const limits: Record<string, string> = { memory: total };
  if (p?.coreLimit) limits.cpu = String(p.coreLimit);
  return { requests, limits };
}

function properties(entries: Record<string, unknown>): string {
  const esc = (s: string) =>
    s
      .replace(/\\/g, "\\\\")
      .replace(/\n/g, "\\n")
      .replace(/([=:])/g, "\\$1");
  return Object.entries(entries)
    .filter(([, v]) => v !== undefined && v !== null && v !== "")
    .map(([k, v]) => `${esc(k)}=${esc(String(v))}\n`)
    .join("");
}

function driverFailure(pod: Pod): string {
  const list = pod.status?.containerStatuses ?? [];
  const t = (list.find((c) => c.name === DRIVER_CONTAINER) ?? list[0])?.state;
  if (t && "terminated" in t) {
    if (t.terminated.exitCode === 0) return "driver container status missing";
    return `driver container failed with ExitCode: ${t.terminated.exitCode}, Reason: ${t.terminated.reason ?? "Error"}`;
  }
  return "driver container status missing";
}

type Submission = { ok: true; argv: string[] } | { ok: false; error: string };

/** The controller; `installSparkOperator` registers it for `sparkapplications.sparkoperator.k8s.io`. */
export function sparkOperator(opts: SparkOperatorOptions = {}): CustomResourceController {
  const pollMs = opts.pollMs ?? 25;
  const confRoot = opts.confDir ?? os.tmpdir();
  const runners: Record<string, string[]> = {
    ".js": [process.execPath],
    ".mjs": [process.execPath],
    ".cjs": [process.execPath],
    ".py": ["python3"],
    ".r": ["Rscript"],
    ...Object.fromEntries(Object.entries(opts.runners ?? {}).map(([k, v]) => [k.toLowerCase(), v])),
  };
  return {
    created(app, ctx) {
      // The lifecycle outlives this hook; it ends when the application finishes, is deleted,
      // is taken over by a test, or the fake closes.
      void run(app, ctx).catch((err) => {
        if (!ctx.signal.aborted) process.emitWarning(`fake spark-operator: ${(err as Error)?.stack ?? err}`);
      });
    },
  };

  async function run(app: KubeObject, ctx: ControllerContext): Promise<void> {
    const dirs: string[] = [];
    try {
      await lifecycle(app, ctx, dirs);
    } finally {
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    }
  }

  /** What spark-submit would do with the spec: the driver's argv, or why it refuses. */
  function submission(spec: Record<string, any>): Submission {
    if (!TYPES.includes(spec.type))
      return { ok: false, error: `spec.type ${JSON.stringify(spec.type)} is not one of ${TYPES.join(", ")}` };
    if (!spec.sparkVersion) return { ok: false, error: "spec.sparkVersion is required" };
    const file = spec.mainApplicationFile;
    if (typeof file !== "string" || !file)
      return { ok: false, error: "spec.mainApplicationFile is required" };
    let local: string;
    const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\//.exec(file)?.[1];
    if (scheme === "local") {
      const inImage = file.slice("local://".length);
      local = opts.localRoot ? path.join(opts.localRoot, inImage) : inImage;
    } else if (scheme === "file" || (!scheme && file.startsWith("/"))) {
      local = scheme ? file.slice("file://".length) : file;
      if (!existsSync(local)) return { ok: false, error: `spark-submit: File file:${local} does not exist` };
    } else {
      return {
        ok: false,
        error: `spark-submit: cannot fetch ${file} (the fake spark-operator reads local:// and file:// paths only)`,
      };
    }
    const ext = path.extname(local).toLowerCase();
    const args: string[] = (spec.arguments ?? []).map(String);
    if (ext === ".jar") {
      if (!spec.mainClass)
        return {
          ok: false,
          error: "spark-submit: no main class set in JAR; please specify one with --class",
        };
      return { ok: true, argv: [...(runners[".jar"] ?? ["java", "-cp"]), local, spec.mainClass, ...args] };
    }
    const runner = runners[ext];
    if (!runner)
      return {
        ok: false,
        error: `the fake spark-operator cannot run "${path.basename(local)}" (no runner for "${ext || "(no extension)"}"; add one with runners)`,
      };
    return { ok: true, argv: [...runner, local, ...args] };
  }

  async function lifecycle(app: KubeObject, ctx: ControllerContext, dirs: string[]): Promise<void> {
    const ns = app.metadata.namespace!;
    const name = app.metadata.name!;
    const uid = app.metadata.uid!;
    const spec: Record<string, any> = app.spec ?? {};
    const policy: Record<string, any> = spec.restartPolicy ?? { type: "Never" };
    const driverName: string = spec.driver?.podName ?? `${name}-driver`;
    const owner = {
      apiVersion: app.apiVersion ?? "sparkoperator.k8s.io/v1beta2",
      kind: "SparkApplication",
      name,
      uid,
      controller: true,
      blockOwnerDeletion: true,
    };
    const status: Record<string, any> = {
      applicationState: { state: "" },
      driverInfo: {},
      executorState: {},
      submissionAttempts: 0,
      executionAttempts: 0,
    };
    let written = "";
    /** False once a test changed the state: the operator lets go of the application. */
    const ours = () => {
      const cur = ctx.current();
      if (!cur || cur.metadata.uid !== uid || ctx.signal.aborted) return false;
      return (cur.status?.applicationState?.state ?? "") === written;
    };
    const write = () => {
      written = status.applicationState.state;
      ctx.patchStatus(structuredClone(status));
    };
    const setState = (state: string, errorMessage?: string) => {
      status.applicationState = errorMessage ? { state, errorMessage } : { state, errorMessage: null };
      write();
    };
    const pod = (n: string) => ctx.cluster.get(PODS, ns, n) as Pod | undefined;
    const labels = (role: "driver" | "executor", appId: string, submissionId: string) => ({
      ...(spec[role]?.labels ?? {}),
      "spark-role": role,
      "spark-app-name": name,
      "spark-app-selector": appId,
      "sparkoperator.k8s.io/app-name": name,
      "sparkoperator.k8s.io/launched-by-spark-operator": "true",
      "sparkoperator.k8s.io/submission-id": submissionId,
    });

    for (;;) {
      // ---- submit
      if (!ours()) return;
      status.submissionAttempts += 1;
      status.lastSubmissionAttemptTime = now();
      status.submissionID = randomUUID();
      status.driverInfo = { podName: driverName };
      const sub = submission(spec);
      if (!sub.ok) {
        setState("SUBMISSION_FAILED", `failed to submit spark application: ${sub.error}`);
        const retries = policy.type === "Never" ? 0 : (policy.onSubmissionFailureRetries ?? 0);
        if (!(await ctx.sleep(pollMs)) || !ours()) return;
        if (status.submissionAttempts <= retries) continue;
        status.terminationTime = now();
        setState("FAILED", status.applicationState.errorMessage);
        return;
      }
      const appId = `spark-${randomBytes(16).toString("hex")}`;
      const dir = path.join(confRoot, `tern-fake-spark-${uid}-${status.submissionAttempts}`);
      dirs.push(dir);
      mkdirSync(dir, { recursive: true });
      const d = spec.driver ?? {};
      const e = spec.executor ?? {};
      writeFileSync(
        path.join(dir, "spark.properties"),
        properties({
          "spark.app.name": name,
          "spark.app.id": appId,
          "spark.submit.deployMode": spec.mode ?? "cluster",
          "spark.kubernetes.namespace": ns,
          "spark.kubernetes.container.image": d.image ?? spec.image,
          "spark.kubernetes.driver.pod.name": driverName,
          "spark.driver.cores": d.cores,
          "spark.driver.memory": d.memory,
          "spark.kubernetes.driver.limit.cores": d.coreLimit,
          "spark.executor.instances": e.instances,
          "spark.executor.cores": e.cores,
          "spark.executor.memory": e.memory,
          "spark.kubernetes.executor.limit.cores": e.coreLimit,
          "spark.jars": spec.deps?.jars?.join(","),
          "spark.files": spec.deps?.files?.join(","),
          "spark.submit.pyFiles": spec.deps?.pyFiles?.join(","),
          "spark.jars.packages": spec.deps?.packages?.join(","),
          ...(spec.sparkConf ?? {}),
          ...Object.fromEntries(
            Object.entries(spec.hadoopConf ?? {}).map(([k, v]) => [`spark.hadoop.${k}`, v]),
          ),
        }),
      );
      const submissionId: string = status.submissionID;
      const driverEnv = [
        ...(d.env ?? []),
        ...Object.entries(d.envVars ?? {}).map(([k, v]) => ({ name: k, value: String(v) })),
        { name: "SPARK_APPLICATION_ID", value: appId },
        { name: "SPARK_CONF_DIR", value: dir },
        { name: "SPARK_DRIVER_BIND_ADDRESS", value: "127.0.0.1" },
      ];
      try {
        ctx.cluster.create(PODS, ns, {
          apiVersion: "v1",
          kind: "Pod",
          metadata: {
            name: driverName,
            labels: labels("driver", appId, submissionId),
            annotations: d.annotations,
            ownerReferences: [owner],
          },
          spec: {
            restartPolicy: "Never",
            ...(d.serviceAccount ? { serviceAccountName: d.serviceAccount } : {}),
            ...((d.nodeSelector ?? spec.nodeSelector)
              ? { nodeSelector: d.nodeSelector ?? spec.nodeSelector }
              : {}),
            ...(d.tolerations ? { tolerations: d.tolerations } : {}),
            containers: [
              {
                name: DRIVER_CONTAINER,
                image: d.image ?? spec.image ?? "apache/spark",
                command: sub.argv,
                env: driverEnv,
                resources: podResources(d),
              },
            ],
          },
        });
      } catch (err) {
        setState("SUBMISSION_FAILED", `failed to submit spark application: ${(err as Error).message}`);
        if (!(await ctx.sleep(pollMs)) || !ours()) return;
        status.terminationTime = now();
        setState("FAILED", status.applicationState.errorMessage);
        return;
      }
      status.sparkApplicationId = appId;
      status.executionAttempts += 1;
      delete status.terminationTime;
      setState("SUBMITTED");

      // ---- follow the driver
      const executors: string[] = [];
      const stopExecutors = (final: "COMPLETED" | "FAILED") => {
        for (const x of executors) {
          if (pod(x)) ctx.cluster.delete(PODS, ns, x, { gracePeriodSeconds: 0 });
          status.executorState[x] = final;
        }
      };
      let outcome: "COMPLETED" | "FAILED";
      for (;;) {
        if (!(await ctx.sleep(pollMs)) || !ours()) return;
        const p = pod(driverName);
        const before = JSON.stringify(status);
        if (!p) {
          status.terminationTime ??= now();
          stopExecutors("FAILED");
          setState("FAILING", "driver pod not found");
          outcome = "FAILED";
          break;
        }
        const phase = p.status?.phase;
        for (const x of executors) {
          const xp = pod(x)?.status?.phase;
          status.executorState[x] =
            xp === "Running"
              ? "RUNNING"
              : xp === "Succeeded"
                ? "COMPLETED"
                : xp === "Failed"
                  ? "FAILED"
                  : xp
                    ? "PENDING"
                    : "UNKNOWN";
        }
        if (phase === "Running" && status.applicationState.state !== "RUNNING") {
          if (executors.length === 0) {
            const driverUid = p.metadata.uid!;
            for (let i = 1; i <= (e.instances ?? 1); i++) {
              const x = `${name}-exec-${i}`;
              executors.push(x);
              status.executorState[x] = "PENDING";
              ctx.cluster.create(PODS, ns, {
                apiVersion: "v1",
                kind: "Pod",
                metadata: {
                  name: x,
                  labels: { ...labels("executor", appId, submissionId), "spark-exec-id": String(i) },
                  annotations: e.annotations,
                  ownerReferences: [
                    { apiVersion: "v1", kind: "Pod", name: driverName, uid: driverUid, controller: true },
                  ],
                },
                spec: {
                  restartPolicy: "Never",
                  containers: [
                    {
                      name: EXECUTOR_CONTAINER,
                      image: e.image ?? spec.image ?? "apache/spark",
                      command: opts.executorCommand ?? ["sleep", "86400"],
                      env: [
                        ...(e.env ?? []),
                        { name: "SPARK_APPLICATION_ID", value: appId },
                        { name: "SPARK_EXECUTOR_ID", value: String(i) },
                        {
                          name: "SPARK_DRIVER_URL",
                          value: `spark://CoarseGrainedScheduler@${driverName}-svc.${ns}.svc:7078`,
                        },
                      ],
                      resources: podResources(e),
                    },
                  ],
                },
              });
            }
          }
          status.applicationState = { state: "RUNNING", errorMessage: null };
        } else if (phase === "Succeeded") {
          status.terminationTime = now();
          stopExecutors("COMPLETED");
          setState("SUCCEEDING");
          outcome = "COMPLETED";
          break;
        } else if (phase === "Failed") {
          status.terminationTime = now();
          stopExecutors("FAILED");
          setState("FAILING", driverFailure(p));
          outcome = "FAILED";
          break;
        } else if (phase === "Unknown") {
          status.applicationState = { state: "UNKNOWN", errorMessage: null };
        }
        if (JSON.stringify(status) !== before) write();
      }

      // ---- finish, or run again under the restart policy
      if (!(await ctx.sleep(pollMs)) || !ours()) return;
      if (outcome === "COMPLETED" && policy.type !== "Always") {
        setState("COMPLETED");
        return;
      }
      const retries =
        policy.type === "Always"
          ? Number.POSITIVE_INFINITY
          : policy.type === "OnFailure"
            ? (policy.onFailureRetries ?? 0)
            : 0;
      if (outcome === "FAILED" && status.executionAttempts > retries) {
        setState("FAILED", status.applicationState.errorMessage);
        return;
      }
      // PENDING_RERUN: the old driver goes first, then a new submission.
      setState("PENDING_RERUN");
      if (pod(driverName)) ctx.cluster.delete(PODS, ns, driverName, { gracePeriodSeconds: 0 });
      while (pod(driverName)) if (!(await ctx.sleep(pollMs)) || !ours()) return;
    }
  }
}

/** Registers the fake spark-operator on a fake cluster (`sparkapplications.sparkoperator.k8s.io`, any version). */
export function installSparkOperator(
  fake: FakeKubernetes,
  opts: SparkOperatorOptions = {},
): { uninstall(): void } {
  const reg = fake.registerController("sparkoperator.k8s.io", "sparkapplications", sparkOperator(opts));
  return { uninstall: () => reg.unregister() };
}
