/**
 * The pure parts: quantities, names, the pod-status verdict table, pod specs, options,
 * routing and error classification.
 */
import { type AnyTask, compile, LocalBlobStore, type TaskSpec, TernError, task } from "@tern/core";
import { makeTaskContext } from "@tern/testkit";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { toApiError } from "../src/api.js";
import k8s, {
  buildPod,
  ClusterPool,
  deletedPodStatus,
  isQuantity,
  K8sApiError,
  type K8sObject,
  labelValue,
  objectName,
  parseQuantity,
  podStatus,
  resolveOptions,
  type StatusContext,
  secretEnvName,
  validateTask,
} from "../src/index.js";
import { tempDir } from "./helpers.js";

const OPTS = resolveOptions({
  clusters: [{ name: "c", kubeconfig: "/dev/null", namespace: "ns" }],
  defaultImage: "img:1",
});

function spec(opts: Record<string, unknown>, inputs: Record<string, z.ZodType> = {}): TaskSpec {
  const def = task(
    { name: "t", type: "container", inputs, output: z.null(), ...opts } as never,
    async () => {},
  );
  return Object.values(compile(def as AnyTask).spec.tasks)[0];
}

describe("quantities", () => {
  it.each([
    ["500m", 0.5],
    ["2", 2],
    ["1.5", 1.5],
    ["1Gi", 2 ** 30],
    ["512Mi", 512 * 2 ** 20],
    ["1G", 1e9],
    ["1e3", 1000],
    ["100k", 1e5],
    [0.25, 0.25],
  ])("%s is %d", (q, v) => {
    expect(parseQuantity(q)).toBeCloseTo(v);
    expect(isQuantity(q)).toBe(true);
  });

  it.each(["1GB", "two", "", " 1Gi", "1.2.3", "-1", "Mi", "1 Gi", "1gi"])("%j is not a quantity", (q) => {
    expect(isQuantity(q)).toBe(false);
  });
});

describe("names", () => {
  it("keeps a valid attempt id and makes any other a DNS-1123 label with a hash suffix", () => {
    expect(objectName("xabc12-train-1")).toBe("xabc12-train-1");
    const odd = objectName("xabc12-Train_Model-1");
    expect(odd).toMatch(/^xabc12-train-model-1-[0-9a-f]{10}$/);
    expect(objectName("xabc12-train-model-1")).not.toBe(odd);
    const long = objectName(`x${"a".repeat(100)}-n-1`);
    expect(long.length).toBeLessThanOrEqual(63);
    expect(long).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    expect(objectName(`x${"a".repeat(100)}-n-1`)).toBe(long);
    expect(objectName(`x${"a".repeat(100)}-n-2`)).not.toBe(long);
  });

  it("label values are at most 63 characters and alphanumeric at both ends", () => {
    expect(labelValue("my_task.v2")).toBe("my_task.v2");
    const v = labelValue(`_${"x".repeat(80)}_`);
    expect(v.length).toBeLessThanOrEqual(63);
    expect(v).toMatch(/^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/);
  });
});

describe("pod status verdicts (PROTOCOLS §1.6)", () => {
  const sc: StatusContext = {
    where: "c/ns/p",
    task: "t",
    now: Date.parse("2030-01-01T00:10:00Z"),
    imagePullGraceMs: 60_000,
    configErrorGraceMs: 0,
    unschedulableTimeoutMs: 300_000,
  };
  const pod = (status: Record<string, unknown>, extra: Partial<K8sObject> = {}): K8sObject => ({
    metadata: { name: "p", creationTimestamp: "2030-01-01T00:09:00Z" },
    spec: { containers: [{ name: "main", resources: { limits: { memory: "1Gi" } } }] },
    status,
    ...extra,
  });
  const main = (state: unknown, lastState: unknown = {}) => ({
    containerStatuses: [{ name: "main", state, lastState }],
  });
  const disruption = (reason: string) => ({
    conditions: [{ type: "DisruptionTarget", status: "True", reason, message: "m" }],
  });

  it.each<[string, Record<string, unknown>, Record<string, unknown>]>([
    ["Succeeded", { phase: "Succeeded" }, { phase: "succeeded" }],
    ["Running", { phase: "Running", ...main({ running: {} }) }, { phase: "running" }],
    [
      "ContainerCreating",
      { phase: "Pending", ...main({ waiting: { reason: "ContainerCreating" } }) },
      { phase: "initializing" },
    ],
    [
      "exit 2",
      { phase: "Failed", ...main({ terminated: { exitCode: 2, reason: "Error" } }) },
      { phase: "failed", error: { kind: "user" } },
    ],
    [
      "OOMKilled",
      { phase: "Failed", ...main({ terminated: { exitCode: 137, reason: "OOMKilled" } }) },
      {
        phase: "failed",
        error: { kind: "user", message: expect.stringContaining("out of memory (limit 1Gi)") },
      },
    ],
    [
      "Evicted",
      { phase: "Failed", reason: "Evicted", message: "low memory" },
      { phase: "failed", error: { kind: "system", message: expect.stringContaining("Evicted: low memory") } },
    ],
    [
      "node shutdown",
      {
        phase: "Failed",
        reason: "Terminated",
        message: "Pod was terminated in response to imminent node shutdown.",
      },
      { phase: "failed", error: { kind: "system" } },
    ],
    [
      "PreemptionByScheduler",
      { phase: "Running", ...disruption("PreemptionByScheduler") },
      { phase: "failed", preempted: true, error: { kind: "system" } },
    ],
    [
      "TerminationByKubelet",
      { phase: "Failed", ...disruption("TerminationByKubelet") },
      { phase: "failed", error: { kind: "system" } },
    ],
    [
      "DeletionByTaintManager",
      { phase: "Running", ...disruption("DeletionByTaintManager") },
      { phase: "failed", error: { kind: "system" } },
    ],
    [
      "EvictionByEvictionAPI",
      { phase: "Running", ...disruption("EvictionByEvictionAPI") },
      { phase: "failed", error: { kind: "system" } },
    ],
    [
      "DeletionByPodGC",
      { phase: "Running", ...disruption("DeletionByPodGC") },
      { phase: "failed", error: { kind: "system" } },
    ],
    [
      "exit 143 without a deletion",
      { phase: "Failed", ...main({ terminated: { exitCode: 143, reason: "Error" } }) },
      { phase: "failed", error: { kind: "user" } },
    ],
    [
      "InvalidImageName",
      { phase: "Pending", ...main({ waiting: { reason: "InvalidImageName", message: "bad" } }) },
      { phase: "failed", error: { kind: "user" } },
    ],
    [
      "ImagePullBackOff in grace",
      { phase: "Pending", ...main({ waiting: { reason: "ImagePullBackOff" } }) },
      { phase: "initializing", message: "ImagePullBackOff" },
    ],
    [
      "CreateContainerConfigError",
      {
        phase: "Pending",
        ...main({ waiting: { reason: "CreateContainerConfigError", message: 'secret "s" not found' } }),
      },
      { phase: "failed", error: { kind: "user", message: expect.stringContaining('secret "s" not found') } },
    ],
    [
      "CrashLoopBackOff",
      {
        phase: "Running",
        ...main(
          { waiting: { reason: "CrashLoopBackOff" } },
          { terminated: { exitCode: 1, reason: "Error" } },
        ),
      },
      { phase: "failed", error: { kind: "user", message: expect.stringContaining("last exit code 1") } },
    ],
    [
      "DeadlineExceeded",
      { phase: "Failed", reason: "DeadlineExceeded" },
      { phase: "failed", error: { kind: "user", code: "TERN_E_TIMEOUT" } },
    ],
    [
      "Unschedulable",
      {
        phase: "Pending",
        conditions: [
          {
            type: "PodScheduled",
            status: "False",
            reason: "Unschedulable",
            message: "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
          },
        ],
      },
      {
        phase: "waiting-for-resources",
        message: "unschedulable: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
      },
    ],
  ])("%s", (_name, status, want) => {
    expect(podStatus(pod(status), sc)).toMatchObject(want);
  });

  it("image pull errors fail once the grace period is over; unschedulable pods after their timeout", () => {
    const pulling = pod({ phase: "Pending", ...main({ waiting: { reason: "ErrImagePull" } }) });
    expect(podStatus(pulling, { ...sc, waitingSince: sc.now - 59_000 }).phase).toBe("initializing");
    expect(podStatus(pulling, { ...sc, waitingSince: sc.now - 60_000 })).toMatchObject({
      phase: "failed",
      error: { kind: "user" },
    });
    const stuck = pod(
      {
        phase: "Pending",
        conditions: [{ type: "PodScheduled", status: "False", reason: "Unschedulable", message: "no" }],
      },
      { metadata: { name: "p", creationTimestamp: "2030-01-01T00:00:00Z" } },
    );
    expect(podStatus(stuck, sc)).toMatchObject({
      phase: "failed",
      error: { kind: "user", message: expect.stringContaining("could not be scheduled for 600 s") },
    });
  });

  it("a pod whose containers were stopped by a deletion is a system failure, not the task's exit code", () => {
    const stopped = pod(
      { phase: "Failed", ...main({ terminated: { exitCode: 143, reason: "Error" } }) },
      { metadata: { name: "p", deletionTimestamp: "2030-01-01T00:09:59Z" } },
    );
    expect(podStatus(stopped, sc)).toMatchObject({
      phase: "failed",
      error: { kind: "system", message: expect.stringContaining("was deleted while it ran") },
    });
  });

  it("a pod deleted before finishing is lost (system), unless we aborted it or it was preempted", () => {
    const running = pod({ phase: "Running", ...main({ running: {} }) });
    expect(deletedPodStatus(running, sc, false)).toMatchObject({
      phase: "failed",
      error: { kind: "system", message: expect.stringContaining("lost") },
    });
    expect(deletedPodStatus(running, sc, true)).toMatchObject({ phase: "aborted" });
    expect(
      deletedPodStatus(pod({ phase: "Running", ...disruption("PreemptionByScheduler") }), sc, false),
    ).toMatchObject({ preempted: true });
    expect(deletedPodStatus(pod({ phase: "Succeeded" }), sc, false)).toMatchObject({ phase: "succeeded" });
  });
});

describe("pod spec", () => {
  const workDir = tempDir("tern-units-");
  const blobs = new LocalBlobStore(`${workDir}/.tern/blobs`);

  it("templates inputs into args, sets Tern's variables, task env and secrets (env and volume)", async () => {
    const s = spec(
      {
        custom: {
          image: "busybox:1.36",
          command: ["sh", "-c"],
          args: ["echo {{.inputs.name}} {{ .inputs.n }} {{.inputs.cfg}} > {{.outputPrefix}}"],
          env: { MODE: "fast" },
        },
        env: { MODE: "slow", LEVEL: "3" },
        secrets: [
          { group: "db-creds", key: "password" },
          { group: "tls", mountPath: "/etc/tls" },
          { group: "api", key: "token", env: "API_TOKEN", mountPath: "/etc/api" },
        ],
      },
      { name: z.string(), n: z.number(), cfg: z.object({ a: z.number() }) },
    );
    const ctx = makeTaskContext(
      s,
      { name: "Ada", n: 3, cfg: { a: 1 } },
      { workDir, blobs, interruptible: false },
    );
    const pod = await buildPod(ctx, "p1", "ns", OPTS, "k8s-pod");
    const c = pod.spec.containers[0];
    expect(c.image).toBe("busybox:1.36");
    expect(c.args).toEqual([`echo Ada 3 {"a":1} > ${ctx.outputPrefix}`]);
    const env = Object.fromEntries(
      c.env.map((e: { name: string; value?: string }) => [e.name, e.value ?? e]),
    );
    expect(env.MODE).toBe("fast");
    expect(env.LEVEL).toBe("3");
    expect(env.TERN_INPUTS_URI).toBe(await ctx.inputsUri());
    expect(env.TERN_OUTPUTS_PATH).toBe(`${workDir}/.tern/blobs/${ctx.outputPrefix}/outputs.json`);
    expect(env.TERN_ATTEMPT).toBe("1");
    expect(env[secretEnvName("db-creds", "password")]).toEqual({
      name: "TERN_SECRET_DB_CREDS_PASSWORD",
      valueFrom: { secretKeyRef: { name: "db-creds", key: "password" } },
    });
    expect(env.API_TOKEN).toEqual({
      name: "API_TOKEN",
      valueFrom: { secretKeyRef: { name: "api", key: "token" } },
    });
    expect(pod.spec.volumes).toEqual([
      { name: "secret-1", secret: { secretName: "tls" } },
      { name: "secret-2", secret: { secretName: "api", items: [{ key: "token", path: "token" }] } },
    ]);
    expect(c.volumeMounts).toEqual([
      { name: "secret-1", mountPath: "/etc/tls", readOnly: true },
      { name: "secret-2", mountPath: "/etc/api", readOnly: true },
    ]);
    expect(pod.spec.restartPolicy).toBe("Never");
    expect(pod.metadata.labels).toMatchObject({
      "app.kubernetes.io/managed-by": "tern",
      "tern.dev/plugin": "k8s-pod",
      "tern.dev/attempt": "1",
      "tern.dev/task": "t",
    });
  });

  it.each<[string, Record<string, unknown>, string]>([
    [
      "a request above its limit",
      { resources: { requests: { memory: "2Gi" }, limits: { memory: "1Gi" } } },
      "resources.requests.memory (2Gi) is more than the limit (1Gi)",
    ],
    [
      "a negative cpu",
      { resources: { requests: { cpu: "-1" } } },
      'resources.requests.cpu "-1" is not a Kubernetes quantity',
    ],
    [
      "GPU counts that disagree",
      { resources: { gpu: 1, limits: { gpu: 2 } } },
      "resources.gpu is given differently",
    ],
    [
      "an accelerator without GPUs",
      { resources: { accelerator: "a100" } },
      'resources.accelerator "a100" is set but no GPU is requested',
    ],
    [
      "a secret for env without a key",
      { secrets: [{ group: "s" }], custom: { command: ["x"] } },
      "secrets[0].key is needed",
    ],
    [
      "an invalid secret name",
      { secrets: [{ group: "Bad_Name", key: "k" }] },
      'secrets[0].group "Bad_Name" is not a valid Secret name',
    ],
    [
      "an unknown template input",
      { custom: { command: ["echo", "{{.inputs.nope}}"] } },
      "refers to {{.inputs.nope}}, which is not an input of the task",
    ],
    ["no command", { custom: { image: "x" } }, "custom.command is missing"],
  ])("refuses %s", (_what, opts, message) => {
    const s = spec({ custom: { command: ["true"] }, ...opts });
    expect(() => validateTask(s, OPTS)).toThrow(TernError);
    expect(() => validateTask(s, OPTS)).toThrow(message);
  });
});

describe("options and routing", () => {
  it.each<[string, unknown, string]>([
    ["no clusters", { clusters: [] }, "no clusters configured"],
    [
      "duplicate names",
      {
        clusters: [
          { name: "a", kubeconfig: "x", namespace: "n" },
          { name: "a", kubeconfig: "x", namespace: "n" },
        ],
      },
      'two clusters are named "a"',
    ],
    ["no namespace", { clusters: [{ name: "a", kubeconfig: "x" }] }, 'cluster "a" has no namespace'],
    [
      "a bad nodeCommand",
      { clusters: [{ name: "a", kubeconfig: "x", namespace: "n" }], nodeCommand: [] },
      "nodeCommand must be a non-empty list",
    ],
  ])("the factory refuses %s with TERN_E_CONFIG", (_w, options, message) => {
    expect(() => k8s(options as never)).toThrow(message);
    try {
      k8s(options as never);
    } catch (e) {
      expect((e as TernError).code).toBe("TERN_E_CONFIG");
    }
  });

  it("importing and calling the factory has no effects until register()", () => {
    const p = k8s({ clusters: [{ name: "a", kubeconfig: "/does/not/exist", namespace: "n" }] });
    expect(p).toMatchObject({ $$type: "tern.plugin", name: "@tern/plugin-k8s", contractVersion: "1.0" });
  });

  it("routing rules add up to the labels a cluster must have", async () => {
    const pool = new ClusterPool(
      resolveOptions({
        clusters: [
          { name: "eu-cpu", kubeconfig: "x", namespace: "n", labels: { region: "eu" } },
          { name: "eu-gpu", kubeconfig: "x", namespace: "n", labels: { region: "eu", gpu: "a100" } },
        ],
        routing: {
          byProject: { ml: { region: "eu" } },
          byLabel: { gpu: { gpu: "a100" } },
          byDomain: { production: { tier: "prod" } },
        },
      }),
    );
    const ctx = (project: string, domain: string, custom?: Record<string, unknown>) => ({
      execution: { id: "x", project, domain },
      task: { ...spec({ custom: { command: ["x"] } }), custom },
    });
    expect(pool.requiredLabels(ctx("ml", "development", { clusterLabel: "gpu" }))).toEqual({
      region: "eu",
      gpu: "a100",
    });
    expect(pool.requiredLabels(ctx("other", "development"))).toEqual({});
    expect(() => pool.requiredLabels(ctx("ml", "development", { clusterLabel: "tpu" }))).toThrow(
      'asks for cluster label "tpu", which routing.byLabel does not define',
    );
    await expect(pool.route(ctx("ml", "production"))).rejects.toThrow(
      "no configured cluster has the labels region=eu,tier=prod",
    );
    await pool.close();
  });
});

describe("API errors", () => {
  it("classifies client-node failures: status, reason, Retry-After, network codes", () => {
    const throttled = toApiError(
      {
        code: 429,
        body: JSON.stringify({ reason: "TooManyRequests", message: "slow down" }),
        headers: { "retry-after": "2" },
      },
      "create pod p",
    );
    expect(throttled).toBeInstanceOf(K8sApiError);
    expect(throttled).toMatchObject({
      status: 429,
      reason: "TooManyRequests",
      retryAfterMs: 2000,
      message: "create pod p: slow down",
    });
    expect(throttled.transient && throttled.notApplied).toBe(true);
    const refused = toApiError(
      Object.assign(new TypeError("fetch failed"), {
        cause: { code: "ECONNREFUSED", message: "connect ECONNREFUSED 127.0.0.1:1" },
      }),
      "get",
    );
    expect(refused).toMatchObject({ status: 0, reason: "ECONNREFUSED" });
    expect(refused.notApplied).toBe(true);
    const reset = toApiError(
      Object.assign(new TypeError("fetch failed"), {
        cause: { code: "ECONNRESET", message: "socket hang up" },
      }),
      "create",
    );
    expect(reset.transient).toBe(true);
    expect(reset.notApplied).toBe(false);
    const conflict = toApiError(
      { code: 409, body: JSON.stringify({ reason: "AlreadyExists", message: 'pods "p" already exists' }) },
      "create",
    );
    expect(conflict.transient).toBe(false);
  });
});
