/**
 * The `custom` of a Ray task and its validation. Everything that can be wrong with it is found
 * here, before anything is submitted, and reported as a `TERN_E_SPEC_INVALID` error naming the
 * task and the field, with what to write instead.
 */
import { ErrorCodes, type TaskSpec, TernError, unknownTemplateInputs } from "@tern/core";
import { isQuantity, parseQuantity } from "@tern/plugin-k8s";

/**
 * A Ray `runtime_env`: what the job's processes get (Ray's `RuntimeEnv` fields). Only the
 * keys Ray knows are accepted.
 */
export interface RayRuntimeEnv {
  /** Directory (a URI the cluster can fetch, e.g. `s3://…/code.zip`) the entrypoint runs in. */
  working_dir?: string;
  py_modules?: string[];
  py_executable?: string;
  excludes?: string[];
  /** Packages, a requirements file, or `{ packages, pip_check?, pip_version? }`. */
  pip?: string[] | string | Record<string, unknown>;
  uv?: string[] | string | Record<string, unknown>;
  conda?: string | Record<string, unknown>;
  /** Container image of the job's workers (newer Ray). */
  image_uri?: string;
  /** Deprecated form of `image_uri`. */
  container?: Record<string, unknown>;
  env_vars?: Record<string, string>;
  worker_process_setup_hook?: string;
  java_jars?: string[];
  nsight?: string | Record<string, unknown>;
  rocprof_sys?: string | Record<string, unknown>;
  config?: { setup_timeout_seconds?: number; eager_install?: boolean; log_files?: string[] };
}

/** Resources of a Ray node pod (KubeRay): Kubernetes quantities. */
export interface RayNodeConfig {
  /** CPU cores: `2`, `"500m"`. */
  cpu?: string | number;
  /** Memory: `"4Gi"`. */
  memory?: string;
  /** Whole GPUs. */
  gpu?: number;
  /** Extra `ray start` parameters. */
  rayStartParams?: Record<string, string>;
}

/** One worker group of a KubeRay cluster. */
export interface RayWorkerGroupConfig extends RayNodeConfig {
  /** DNS-1123 label, unique in the cluster. @default "workers", "workers-2"… */
  groupName?: string;
  replicas: number;
  minReplicas?: number;
  maxReplicas?: number;
}

/** The Ray cluster a `kuberay` task brings up (KubeRay's `rayClusterSpec`). */
export interface KubeRayClusterConfig {
  /** @default the plugin's `kuberay.image` */
  image?: string;
  /** @default the plugin's `kuberay.rayVersion` */
  rayVersion?: string;
  /** The head pod. @default the task's `resources` */
  head?: RayNodeConfig;
  /** Worker groups. @default none (a head-only cluster) */
  workers?: RayWorkerGroupConfig[];
  /** KubeRay fails the RayJob after this many seconds. */
  activeDeadlineSeconds?: number;
}

/**
 * `custom` of a Ray task (`type: "ray"` for an existing cluster, `type: "kuberay"` for a RayJob).
 *
 * @example
 * task({ name: "train", type: "ray", inputs: { epochs: z.number() }, output: z.object({ loss: z.number() }),
 *   custom: {
 *     entrypoint: "python train.py --epochs {{.inputs.epochs}}",
 *     runtimeEnv: { working_dir: "s3://bucket/code.zip", pip: ["torch==2.4.0"], env_vars: { LOG: "info" } },
 *     numCpus: 2, numGpus: 1, memory: "8Gi",
 *   } }, async () => { throw new Error("runs on Ray"); })
 */
export interface RayTaskConfig {
  /** Shell command of the job's driver. Templates: `{{.inputs.<name>}}`, `{{.outputPrefix}}`, `{{.inputsUri}}`, `{{.outputsUri}}`. */
  entrypoint: string;
  runtimeEnv?: RayRuntimeEnv;
  /** CPUs reserved for the entrypoint (`entrypoint_num_cpus`). @default the task's `resources` cpu */
  numCpus?: number;
  /** GPUs reserved for the entrypoint; fractions allowed. @default the task's `resources.gpu` */
  numGpus?: number;
  /** Memory reserved for the entrypoint: bytes, or a quantity such as `"2Gi"`. @default the task's `resources` memory */
  memory?: string | number;
  /** Custom Ray resources of the entrypoint (`entrypoint_resources`). */
  resources?: Record<string, number>;
  /** Extra job metadata (strings). */
  metadata?: Record<string, string>;
  /** KubeRay tasks only: the Ray cluster to bring up. */
  cluster?: KubeRayClusterConfig;
  /** KubeRay tasks only: the routing label of `kuberay.routing.byLabel`. */
  clusterLabel?: string;
}

/** A checked task config, with defaults from the task's `resources` applied. */
export interface CheckedRayTask {
  entrypoint: string;
  runtimeEnv: RayRuntimeEnv;
  numCpus?: number;
  numGpus?: number;
  memoryBytes?: number;
  resources?: Record<string, number>;
  metadata: Record<string, string>;
  cluster: KubeRayClusterConfig;
}

/** Ray's `RuntimeEnv.known_fields` that users set (the underscored internal ones excluded). */
export const RUNTIME_ENV_KEYS = [
  "working_dir",
  "py_modules",
  "py_executable",
  "excludes",
  "pip",
  "uv",
  "conda",
  "container",
  "image_uri",
  "env_vars",
  "worker_process_setup_hook",
  "java_jars",
  "nsight",
  "rocprof_sys",
  "config",
] as const;

/** `RuntimeEnvConfig` fields. */
const RUNTIME_ENV_CONFIG_KEYS = ["setup_timeout_seconds", "eager_install", "log_files"];

const CUSTOM_KEYS = {
  jobs: ["entrypoint", "runtimeEnv", "numCpus", "numGpus", "memory", "resources", "metadata"],
  kuberay: [
    "entrypoint",
    "runtimeEnv",
    "numCpus",
    "numGpus",
    "memory",
    "resources",
    "metadata",
    "cluster",
    "clusterLabel",
  ],
};

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export function specError(
  task: TaskSpec,
  field: string,
  message: string,
  hint: string,
  details: Record<string, unknown> = {},
): TernError {
  return new TernError(ErrorCodes.SPEC_INVALID, `task "${task.id.name}": ${field} ${message}`, {
    hint,
    kind: "user",
    details: { task: task.id.name, field, ...details },
  });
}

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++)
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
  return d[a.length][b.length];
}

/** The known key a misspelt one most likely meant (`workingDir` → `working_dir`, `env` → `env_vars`). */
function closest(key: string, known: readonly string[]): string | undefined {
  const norm = (s: string) => s.replace(/[_-]/g, "").toLowerCase();
  const exact = known.find((k) => norm(k) === norm(key));
  if (exact) return exact;
  const prefix = known.find((k) => norm(k).startsWith(norm(key)) && key.length >= 3);
  if (prefix) return prefix;
  let best: string | undefined;
  let bestD = 3;
  for (const k of known) {
    const dist = editDistance(norm(key), norm(k));
    if (dist < bestD) {
      best = k;
      bestD = dist;
    }
  }
  return best;
}

function unknownKey(
  task: TaskSpec,
  field: string,
  key: string,
  known: readonly string[],
  what: string,
): TernError {
  const guess = closest(key, known);
  return specError(
    task,
    `${field}.${key}`,
    `is not a ${what}`,
    `${guess ? `did you mean "${guess}"? ` : ""}known keys: ${known.join(", ")}`,
    { key, known: [...known] },
  );
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);
const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === "string");

function checkRuntimeEnv(task: TaskSpec, env: unknown): RayRuntimeEnv {
  const f = "custom.runtimeEnv";
  if (env === undefined) return {};
  if (!isObject(env))
    throw specError(
      task,
      f,
      "must be an object (Ray's runtime_env)",
      'e.g. runtimeEnv: { pip: ["requests"], env_vars: { A: "1" } }',
    );
  for (const key of Object.keys(env))
    if (!(RUNTIME_ENV_KEYS as readonly string[]).includes(key))
      throw unknownKey(task, f, key, RUNTIME_ENV_KEYS, "Ray runtime_env key");
  const str = (k: string) => {
    if (env[k] !== undefined && typeof env[k] !== "string")
      throw specError(task, `${f}.${k}`, "must be a string", `e.g. ${k}: "…"`);
  };
  const strs = (k: string) => {
    if (env[k] !== undefined && !isStrings(env[k]))
      throw specError(task, `${f}.${k}`, "must be a list of strings", `e.g. ${k}: ["…"]`);
  };
  for (const k of ["working_dir", "py_executable", "image_uri", "worker_process_setup_hook"]) str(k);
  for (const k of ["py_modules", "excludes", "java_jars"]) strs(k);
  for (const k of ["pip", "uv"]) {
    const v = env[k];
    if (v !== undefined && typeof v !== "string" && !isStrings(v) && !(isObject(v) && isStrings(v.packages)))
      throw specError(
        task,
        `${f}.${k}`,
        "must be a list of packages, a requirements file path, or { packages: [...] }",
        `e.g. ${k}: ["requests==2.32.3"]`,
      );
  }
  if (env.conda !== undefined && typeof env.conda !== "string" && !isObject(env.conda))
    throw specError(
      task,
      `${f}.conda`,
      "must be an environment name or an environment.yml object",
      'e.g. conda: "my-env"',
    );
  const pkgs = ["pip", "uv", "conda"].filter((k) => env[k] !== undefined);
  if (pkgs.length > 1)
    throw specError(
      task,
      f,
      `sets ${pkgs.join(" and ")}, which Ray refuses together`,
      "use one of pip, uv and conda",
    );
  if (env.image_uri !== undefined && env.container !== undefined)
    throw specError(
      task,
      f,
      "sets both image_uri and container",
      "use image_uri (container is its deprecated form)",
    );
  if (env.container !== undefined && !isObject(env.container))
    throw specError(task, `${f}.container`, "must be an object", 'e.g. container: { image: "…" }');
  if (env.env_vars !== undefined) {
    if (!isObject(env.env_vars))
      throw specError(
        task,
        `${f}.env_vars`,
        "must map names to strings",
        'e.g. env_vars: { LOG_LEVEL: "debug" }',
      );
    for (const [k, v] of Object.entries(env.env_vars)) {
      if (!ENV_NAME.test(k))
        throw specError(
          task,
          `${f}.env_vars.${k}`,
          "is not a valid environment variable name",
          "use letters, digits and _",
        );
      if (typeof v !== "string")
        throw specError(
          task,
          `${f}.env_vars.${k}`,
          `must be a string, not ${JSON.stringify(v)}`,
          `Ray takes string values only: write ${JSON.stringify(String(v))}`,
        );
      if (k.startsWith("TERN_"))
        throw specError(task, `${f}.env_vars.${k}`, "is set by Tern for every job", "choose another name");
    }
  }
  if (env.config !== undefined) {
    if (!isObject(env.config))
      throw specError(
        task,
        `${f}.config`,
        "must be an object",
        "e.g. config: { setup_timeout_seconds: 600 }",
      );
    for (const k of Object.keys(env.config))
      if (!RUNTIME_ENV_CONFIG_KEYS.includes(k))
        throw unknownKey(task, `${f}.config`, k, RUNTIME_ENV_CONFIG_KEYS, "Ray runtime_env config key");
    const t = env.config.setup_timeout_seconds;
    if (t !== undefined && (!Number.isInteger(t) || ((t as number) <= 0 && t !== -1)))
      throw specError(
        task,
        `${f}.config.setup_timeout_seconds`,
        `must be a whole number of seconds > 0 (or -1 for none), not ${JSON.stringify(t)}`,
        "e.g. setup_timeout_seconds: 600",
      );
    if (env.config.eager_install !== undefined && typeof env.config.eager_install !== "boolean")
      throw specError(task, `${f}.config.eager_install`, "must be true or false", "e.g. eager_install: true");
  }
  return env as RayRuntimeEnv;
}

function count(task: TaskSpec, field: string, v: unknown, what: string, whole = false): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0 || (whole && !Number.isInteger(v)))
    throw specError(
      task,
      field,
      `must be ${whole ? "a whole number" : "a number"} ≥ 0 of ${what}, not ${JSON.stringify(v)}`,
      `e.g. ${field.split(".").pop()}: ${whole ? 2 : 0.5}`,
      { value: v },
    );
  return v;
}

function cpuOf(task: TaskSpec, field: string, v: unknown): number | undefined {
  if (v === undefined) return undefined;
  if (!isQuantity(v))
    throw specError(
      task,
      field,
      `${JSON.stringify(v)} is not a CPU count`,
      'write a number of cores: 2, 0.5 or "500m"',
      {
        value: v,
      },
    );
  return parseQuantity(v)!;
}

function memoryOf(task: TaskSpec, field: string, v: unknown): number | undefined {
  if (v === undefined) return undefined;
  if (!isQuantity(v))
    throw specError(
      task,
      field,
      `${JSON.stringify(v)} is not a memory size`,
      'write bytes (a number) or a quantity: "512Mi", "4Gi"',
      {
        value: v,
      },
    );
  const bytes = parseQuantity(v)!;
  if (!Number.isInteger(bytes))
    throw specError(
      task,
      field,
      `${JSON.stringify(v)} is not a whole number of bytes`,
      'e.g. "512Mi" or "4Gi"',
      {
        value: v,
      },
    );
  return bytes;
}

function nodeConfig(task: TaskSpec, field: string, v: unknown, worker: boolean): void {
  if (!isObject(v)) throw specError(task, field, "must be an object", 'e.g. { cpu: 2, memory: "4Gi" }');
  const known = worker
    ? ["groupName", "replicas", "minReplicas", "maxReplicas", "cpu", "memory", "gpu", "rayStartParams"]
    : ["cpu", "memory", "gpu", "rayStartParams"];
  for (const k of Object.keys(v))
    if (!known.includes(k)) throw unknownKey(task, field, k, known, "setting of a Ray node");
  if (v.cpu !== undefined && !isQuantity(v.cpu))
    throw specError(
      task,
      `${field}.cpu`,
      `${JSON.stringify(v.cpu)} is not a Kubernetes quantity`,
      'e.g. cpu: 2 or "500m"',
    );
  if (v.memory !== undefined && (typeof v.memory !== "string" || !isQuantity(v.memory)))
    throw specError(
      task,
      `${field}.memory`,
      `${JSON.stringify(v.memory)} is not a Kubernetes quantity`,
      'e.g. memory: "4Gi"',
    );
  count(task, `${field}.gpu`, v.gpu, "GPUs", true);
  if (
    v.rayStartParams !== undefined &&
    !(isObject(v.rayStartParams) && Object.values(v.rayStartParams).every((x) => typeof x === "string"))
  )
    throw specError(
      task,
      `${field}.rayStartParams`,
      "must map names to strings",
      'e.g. rayStartParams: { "num-cpus": "2" }',
    );
}

function clusterConfig(task: TaskSpec, v: unknown): KubeRayClusterConfig {
  const f = "custom.cluster";
  if (v === undefined) return {};
  if (!isObject(v))
    throw specError(task, f, "must be an object", "e.g. cluster: { workers: [{ replicas: 2, cpu: 2 }] }");
  const known = ["image", "rayVersion", "head", "workers", "activeDeadlineSeconds"];
  for (const k of Object.keys(v))
    if (!known.includes(k)) throw unknownKey(task, f, k, known, "KubeRay cluster setting");
  for (const k of ["image", "rayVersion"])
    if (v[k] !== undefined && (typeof v[k] !== "string" || !v[k]))
      throw specError(task, `${f}.${k}`, "must be a non-empty string", `e.g. ${k}: "…"`);
  if (v.head !== undefined) nodeConfig(task, `${f}.head`, v.head, false);
  count(task, `${f}.activeDeadlineSeconds`, v.activeDeadlineSeconds, "seconds", true);
  if (v.workers !== undefined) {
    if (!Array.isArray(v.workers))
      throw specError(
        task,
        `${f}.workers`,
        "must be a list of worker groups",
        "e.g. workers: [{ replicas: 2 }]",
      );
    const names = new Set<string>();
    v.workers.forEach((w: unknown, i: number) => {
      const wf = `${f}.workers[${i}]`;
      nodeConfig(task, wf, w, true);
      const g = w as Record<string, unknown>;
      const name = (g.groupName as string | undefined) ?? (i === 0 ? "workers" : `workers-${i + 1}`);
      if (typeof name !== "string" || !DNS_LABEL.test(name) || name.length > 40)
        throw specError(
          task,
          `${wf}.groupName`,
          `"${name}" is not a valid group name`,
          "use lowercase letters, digits and -, at most 40",
        );
      if (names.has(name))
        throw specError(
          task,
          `${wf}.groupName`,
          `"${name}" is used twice`,
          "give every worker group its own name",
        );
      names.add(name);
      const replicas = count(task, `${wf}.replicas`, g.replicas, "workers", true);
      if (replicas === undefined) throw specError(task, `${wf}.replicas`, "is missing", "e.g. replicas: 2");
      const min = count(task, `${wf}.minReplicas`, g.minReplicas, "workers", true);
      const max = count(task, `${wf}.maxReplicas`, g.maxReplicas, "workers", true);
      if ((min !== undefined && min > replicas) || (max !== undefined && max < replicas))
        throw specError(
          task,
          `${wf}.replicas`,
          `(${replicas}) must lie between minReplicas and maxReplicas`,
          "minReplicas ≤ replicas ≤ maxReplicas",
        );
    });
  }
  return v as KubeRayClusterConfig;
}

/**
 * Checks `custom` of a Ray task (`flavour` `"jobs"` for the Jobs API, `"kuberay"` for RayJobs)
 * and applies defaults from the task's `resources`. Throws `TERN_E_SPEC_INVALID`.
 */
export function checkRayTask(task: TaskSpec, flavour: "jobs" | "kuberay"): CheckedRayTask {
  const c = task.custom;
  if (c === undefined || !isObject(c))
    throw specError(
      task,
      "custom",
      "is missing",
      'give custom: { entrypoint: "python main.py" } (see RayTaskConfig)',
    );
  const known = CUSTOM_KEYS[flavour];
  for (const k of Object.keys(c)) {
    if (known.includes(k)) continue;
    if (flavour === "jobs" && (k === "cluster" || k === "clusterLabel"))
      throw specError(
        task,
        `custom.${k}`,
        `is for KubeRay tasks, but task type "${task.type}" runs on an existing Ray cluster through the Jobs API`,
        'remove it, or run the task on KubeRay (type "kuberay")',
      );
    throw unknownKey(task, "custom", k, known, "Ray task setting");
  }
  if (c.entrypoint === undefined || (typeof c.entrypoint === "string" && c.entrypoint.trim() === ""))
    throw specError(
      task,
      "custom.entrypoint",
      "is missing",
      'give the shell command of the job\'s driver, e.g. entrypoint: "python main.py {{.inputs.n}}"',
    );
  if (typeof c.entrypoint !== "string")
    throw specError(
      task,
      "custom.entrypoint",
      "must be a string (one shell command)",
      'e.g. entrypoint: "python main.py"',
    );
  const unknown = unknownTemplateInputs(task, [c.entrypoint]);
  if (unknown.length > 0)
    throw specError(
      task,
      "custom.entrypoint",
      `refers to {{.inputs.${unknown[0]}}}, which is not an input of the task`,
      `inputs are: ${Object.keys(task.interface.inputs).join(", ") || "(none)"}`,
      { input: unknown[0] },
    );
  const runtimeEnv = checkRuntimeEnv(task, c.runtimeEnv);
  if (
    c.metadata !== undefined &&
    !(isObject(c.metadata) && Object.values(c.metadata).every((v) => typeof v === "string"))
  )
    throw specError(task, "custom.metadata", "must map names to strings", 'e.g. metadata: { team: "ml" }');
  if (c.resources !== undefined) {
    if (!isObject(c.resources))
      throw specError(
        task,
        "custom.resources",
        "must map resource names to numbers",
        'e.g. resources: { "accelerator_type:A100": 1 }',
      );
    for (const [k, v] of Object.entries(c.resources)) {
      if (["CPU", "GPU", "memory"].includes(k))
        throw specError(
          task,
          `custom.resources.${k}`,
          "cannot be given as a custom resource",
          "use numCpus, numGpus or memory",
        );
      count(task, `custom.resources.${k}`, v, k);
    }
  }
  if (c.clusterLabel !== undefined && typeof c.clusterLabel !== "string")
    throw specError(task, "custom.clusterLabel", "must be a string", 'e.g. clusterLabel: "gpu"');
  const cluster = flavour === "kuberay" ? clusterConfig(task, c.cluster) : {};

  // Defaults from the task's resources (requests first, then limits).
  const r = task.metadata.resources;
  const fromTask = (k: "cpu" | "memory") => r?.requests?.[k] ?? r?.limits?.[k];
  const numCpus =
    count(task, "custom.numCpus", c.numCpus, "CPUs") ??
    cpuOf(task, `resources.requests.cpu`, fromTask("cpu"));
  const gpus = r?.gpu ?? r?.requests?.gpu ?? r?.limits?.gpu;
  const numGpus =
    count(task, "custom.numGpus", c.numGpus, "GPUs") ?? count(task, "resources.gpu", gpus, "GPUs", true);
  const memoryBytes =
    memoryOf(task, "custom.memory", c.memory) ??
    memoryOf(task, "resources.requests.memory", fromTask("memory"));
  return {
    entrypoint: c.entrypoint,
    runtimeEnv,
    numCpus,
    numGpus,
    memoryBytes,
    resources: c.resources as Record<string, number> | undefined,
    metadata: (c.metadata as Record<string, string> | undefined) ?? {},
    cluster,
  };
}
