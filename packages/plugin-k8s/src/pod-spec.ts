/**
 * From a task attempt to a pod: the command (`tern-execute` for `node` tasks, the
 * user's command for `container` tasks), the environment (Tern's variables, the task's
 * env, secrets), resources (validated quantities, GPUs under limits), and placement
 * (GPU and accelerator tolerations and affinity, interruptible capacity).
 *
 * Everything that can be wrong with a task spec is found by {@link validateTask} before
 * anything is sent to a cluster, and reported as a `TERN_E_SPEC_INVALID` error naming the
 * task and the field.
 */
import {
  bundlePath,
  ErrorCodes,
  jobEnv,
  type Resources,
  renderJobTemplate,
  type TaskContext,
  type TaskSpec,
  TernError,
  unknownTemplateInputs,
} from "@tern/core";
import type { K8sObject } from "./api.js";
import { attemptAnnotations, attemptLabels } from "./names.js";
import type { ResolvedK8sOptions, Toleration } from "./options.js";
import { isQuantity, parseQuantity, quantityString } from "./quantities.js";

/**
 * `custom` of a `container` task.
 *
 * @example
 * task({ name: "wc", type: "container", inputs: { path: z.string() }, output: z.null(),
 *   custom: { image: "busybox:1.36", command: ["wc", "-l", "{{.inputs.path}}"] } }, async () => {})
 */
export interface ContainerTaskConfig {
  /** Image; else the task's `image`, else `defaultImage`. */
  image?: string;
  /** Entrypoint (replaces the image's ENTRYPOINT). Templates allowed. */
  command?: string[];
  /** Arguments (replace the image's CMD). Templates allowed: `{{.inputs.name}}`, `{{.outputPrefix}}`, `{{.inputsUri}}`, `{{.outputsUri}}`. */
  args?: string[];
  env?: Record<string, string>;
  workingDir?: string;
}

/** A container env entry. */
export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef: { name: string; key: string } };
}

function specError(
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

const QUANTITY_HINT =
  'write quantities as Kubernetes does: cpu "500m", "2" or 0.5; memory "512Mi", "1Gi" or "1G"';
const RESOURCE_NAMES = { cpu: "cpu", memory: "memory", ephemeralStorage: "ephemeral-storage" } as const;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const ENV_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;

/** Requests, limits, GPU count and accelerator label value of a task (or MPI worker). */
export interface PodResources {
  requirements: { requests?: Record<string, string>; limits?: Record<string, string> };
  gpus: number;
  /** The node label value the accelerator maps to. */
  accelerator?: string;
}

/** Checks and converts `resources` (of the task, or of `field` inside `custom`). */
export function podResources(
  task: TaskSpec,
  res: Resources | undefined,
  opts: ResolvedK8sOptions,
  field = "resources",
): PodResources {
  const requests: Record<string, string> = {};
  const limits: Record<string, string> = {};
  for (const part of ["requests", "limits"] as const) {
    const q = res?.[part];
    if (q === undefined) continue;
    if (typeof q !== "object" || q === null)
      throw specError(task, `${field}.${part}`, "must be an object", 'e.g. { cpu: "1", memory: "1Gi" }');
    for (const [k, v] of Object.entries(q)) {
      if (k === "gpu" || v === undefined) continue;
      const name = RESOURCE_NAMES[k as keyof typeof RESOURCE_NAMES];
      if (!name)
        throw specError(
          task,
          `${field}.${part}.${k}`,
          "is not a known resource",
          "use cpu, memory, ephemeralStorage or gpu",
          { value: v },
        );
      if (!isQuantity(v))
        throw specError(
          task,
          `${field}.${part}.${k}`,
          `${JSON.stringify(v)} is not a Kubernetes quantity`,
          QUANTITY_HINT,
          { value: v },
        );
      (part === "requests" ? requests : limits)[name] = quantityString(v);
    }
  }
  for (const [name, req] of Object.entries(requests)) {
    const lim = limits[name];
    if (lim !== undefined && parseQuantity(req)! > parseQuantity(lim)!) {
      const key = Object.entries(RESOURCE_NAMES).find(([, n]) => n === name)![0];
      throw specError(
        task,
        `${field}.requests.${key}`,
        `(${req}) is more than the limit (${lim})`,
        "a request must not exceed its limit",
      );
    }
  }
  const counts = [res?.gpu, res?.limits?.gpu, res?.requests?.gpu].filter((g): g is number => g !== undefined);
  for (const g of counts) {
    if (!Number.isInteger(g) || g < 0)
      throw specError(
        task,
        `${field}.gpu`,
        `must be a whole number of GPUs, not ${g}`,
        "GPUs are never shared or fractional",
      );
  }
  if (new Set(counts).size > 1) {
    throw specError(
      task,
      `${field}.gpu`,
      `is given differently in gpu, requests.gpu and limits.gpu (${counts.join(", ")})`,
      "give the GPU count once, as resources.gpu",
    );
  }
  const gpus = counts[0] ?? 0;
  if (gpus > 0) limits[opts.gpuResource] = String(gpus);
  let accelerator: string | undefined;
  if (res?.accelerator !== undefined) {
    if (gpus === 0)
      throw specError(
        task,
        `${field}.accelerator`,
        `"${res.accelerator}" is set but no GPU is requested`,
        "add gpu: 1 (or more) next to accelerator",
      );
    accelerator = acceleratorValue(task, res.accelerator, opts, field);
  }
  const requirements: PodResources["requirements"] = {};
  if (Object.keys(requests).length) requirements.requests = requests;
  if (Object.keys(limits).length) requirements.limits = limits;
  return { requirements, gpus, accelerator };
}

function acceleratorValue(task: TaskSpec, name: string, opts: ResolvedK8sOptions, field: string): string {
  const allowed = opts.accelerators;
  if (allowed === undefined) return name;
  if (Array.isArray(allowed)) {
    if (allowed.includes(name)) return name;
  } else if (Object.hasOwn(allowed, name)) return allowed[name];
  const known = Array.isArray(allowed) ? allowed : Object.keys(allowed);
  throw specError(
    task,
    `${field}.accelerator`,
    `"${name}" is not an accelerator this deployment offers`,
    `use one of: ${known.join(", ") || "(none configured)"}`,
    {
      accelerator: name,
      known,
    },
  );
}

/** Tolerations, node affinity and node selector for GPUs, the accelerator and interruptible attempts. */
export function placement(
  r: PodResources,
  interruptible: boolean,
  opts: ResolvedK8sOptions,
): Record<string, unknown> {
  const tolerations: Toleration[] = [];
  const out: Record<string, unknown> = {};
  if (r.gpus > 0) tolerations.push({ key: opts.gpuResource, operator: "Exists", effect: "NoSchedule" });
  if (r.accelerator) {
    tolerations.push({
      key: opts.acceleratorLabel,
      operator: "Equal",
      value: r.accelerator,
      effect: "NoSchedule",
    });
    out.affinity = {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [
            { matchExpressions: [{ key: opts.acceleratorLabel, operator: "In", values: [r.accelerator] }] },
          ],
        },
      },
    };
  }
  if (interruptible) {
    tolerations.push(...opts.interruptibleTolerations);
    if (Object.keys(opts.interruptibleNodeSelector).length)
      out.nodeSelector = { ...opts.interruptibleNodeSelector };
  }
  if (tolerations.length) out.tolerations = tolerations;
  return out;
}

/** The default variable a secret is exposed as: `TERN_SECRET_<GROUP>_<KEY>`. */
export function secretEnvName(group: string, key: string): string {
  return `TERN_SECRET_${group}_${key}`.toUpperCase().replace(/[^A-Z0-9_]/g, "_");
}

/** Env entries, volumes and mounts of the task's secrets (`group` is the Secret's name). */
export function secretsOf(task: TaskSpec): { env: EnvVar[]; volumes: unknown[]; mounts: unknown[] } {
  const env: EnvVar[] = [];
  const volumes: unknown[] = [];
  const mounts: unknown[] = [];
  task.metadata.secrets.forEach((s, i) => {
    const field = `secrets[${i}]`;
    if (!DNS_SUBDOMAIN.test(s.group) || s.group.length > 253) {
      throw specError(
        task,
        `${field}.group`,
        `"${s.group}" is not a valid Secret name`,
        "Secret names are lowercase letters, digits, '-' and '.'",
      );
    }
    if (s.mountPath !== undefined) {
      if (!s.mountPath.startsWith("/"))
        throw specError(
          task,
          `${field}.mountPath`,
          `"${s.mountPath}" is not an absolute path`,
          'e.g. mountPath: "/etc/secrets/db"',
        );
      const name = `secret-${i}`;
      volumes.push({
        name,
        secret: { secretName: s.group, ...(s.key ? { items: [{ key: s.key, path: s.key }] } : {}) },
      });
      mounts.push({ name, mountPath: s.mountPath, readOnly: true });
    }
    if (s.env !== undefined || s.mountPath === undefined) {
      if (!s.key) {
        throw specError(
          task,
          `${field}.key`,
          `is needed to expose Secret "${s.group}" as an environment variable`,
          "give key, or mount the whole Secret with mountPath",
        );
      }
      const name = s.env ?? secretEnvName(s.group, s.key);
      if (!ENV_NAME.test(name))
        throw specError(
          task,
          `${field}.env`,
          `"${name}" is not a valid environment variable name`,
          "use letters, digits and _",
        );
      env.push({ name, valueFrom: { secretKeyRef: { name: s.group, key: s.key } } });
    }
  });
  return { env, volumes, mounts };
}

function containerConfig(task: TaskSpec): ContainerTaskConfig {
  const c = (task.custom ?? {}) as Record<string, unknown>;
  const strings = (v: unknown, field: string): string[] | undefined => {
    if (v === undefined) return undefined;
    if (!Array.isArray(v) || v.some((x) => typeof x !== "string"))
      throw specError(task, `custom.${field}`, "must be a list of strings", `e.g. ${field}: ["echo", "hi"]`);
    return v as string[];
  };
  if (c.image !== undefined && (typeof c.image !== "string" || !c.image))
    throw specError(task, "custom.image", "must be an image name", 'e.g. image: "busybox:1.36"');
  if (
    c.env !== undefined &&
    (typeof c.env !== "object" || c.env === null || Object.values(c.env).some((v) => typeof v !== "string"))
  ) {
    throw specError(task, "custom.env", "must map names to strings", 'e.g. env: { MODE: "fast" }');
  }
  const cfg: ContainerTaskConfig = {
    image: c.image as string | undefined,
    command: strings(c.command, "command"),
    args: strings(c.args, "args"),
    env: c.env as Record<string, string> | undefined,
    workingDir: typeof c.workingDir === "string" ? c.workingDir : undefined,
  };
  const unknown = unknownTemplateInputs(task, [...(cfg.command ?? []), ...(cfg.args ?? [])]);
  if (unknown.length > 0) {
    throw specError(
      task,
      "custom.args",
      `refers to {{.inputs.${unknown[0]}}}, which is not an input of the task`,
      `inputs are: ${Object.keys(task.interface.inputs).join(", ") || "(none)"}`,
    );
  }
  return cfg;
}

function imageOf(task: TaskSpec, custom: string | undefined, opts: ResolvedK8sOptions): string {
  const image = custom ?? task.metadata.image ?? opts.defaultImage;
  if (!image) {
    throw specError(
      task,
      "image",
      "is not set and the k8s plugin has no defaultImage",
      "give the task an image (task({ image })), or set defaultImage in the k8s() options",
    );
  }
  return image;
}

/** Everything about a `node` or `container` task that can be checked without a cluster. */
export function validateTask(task: TaskSpec, opts: ResolvedK8sOptions): void {
  podResources(task, task.metadata.resources, opts);
  secretsOf(task);
  for (const k of Object.keys(task.metadata.env))
    if (!ENV_NAME.test(k))
      throw specError(
        task,
        `env.${k}`,
        "is not a valid environment variable name",
        "use letters, digits and _",
      );
  if (task.type === "node") {
    if (!task.code?.bundle) {
      throw specError(
        task,
        "code.bundle",
        "is missing: a pod runs the task from its code bundle",
        "run it with `tern run`, which bundles your code, or bundle it with bundleEntry() and compile with compile(def, { bundle: bundle.digest })",
      );
    }
    imageOf(task, undefined, opts);
  } else {
    const cfg = containerConfig(task);
    imageOf(task, cfg.image, opts);
    if (!cfg.command && !cfg.args)
      throw specError(
        task,
        "custom.command",
        "is missing",
        'give custom: { image, command: ["…"], args: […] }',
      );
  }
}

/** Replaces `{{.inputs.x}}`, `{{.outputPrefix}}`, `{{.inputsUri}}` and `{{.outputsUri}}` (see core's `renderJobTemplate`). */
export const renderTemplate = renderJobTemplate;

/** Tern's variables in every pod, as env entries (see core's `jobEnv`). */
export function ternEnv(ctx: TaskContext, inputsUri: string): EnvVar[] {
  return envOf(jobEnv(ctx, inputsUri));
}

/** The command of a `node` task's container: `nodeCommand` + tern-execute's one-shot arguments. */
export function nodeCommand(ctx: TaskContext, inputsUri: string, opts: ResolvedK8sOptions): string[] {
  return [
    ...opts.nodeCommand,
    "--bundle",
    bundlePath(ctx.workDir, ctx.task.code!.bundle!),
    "--task",
    ctx.task.id.name,
    "--inputs",
    inputsUri,
    "--output-prefix",
    ctx.outputPrefix,
    "--blob-root",
    ctx.blobs.root,
    "--execution",
    ctx.execution.id,
    "--project",
    ctx.execution.project,
    "--domain",
    ctx.execution.domain,
    "--node",
    ctx.node.id,
    "--attempt",
    String(ctx.attempt.number),
    "--checkpoint-prefix",
    ctx.checkpointPrefix,
    "--work-dir",
    ctx.workDir,
  ];
}

/** Merges env entries: later ones win by name, order of first appearance kept. */
export function mergeEnv(...lists: EnvVar[][]): EnvVar[] {
  const byName = new Map<string, EnvVar>();
  for (const l of lists) for (const e of l) byName.set(e.name, e);
  return [...byName.values()];
}

export const envOf = (o: Record<string, string>): EnvVar[] =>
  Object.entries(o).map(([name, value]) => ({ name, value }));

/** The pod of one attempt of a `node` or `container` task. */
export async function buildPod(
  ctx: TaskContext,
  name: string,
  namespace: string,
  opts: ResolvedK8sOptions,
  plugin: string,
): Promise<K8sObject> {
  const task = ctx.task;
  validateTask(task, opts);
  const res = podResources(task, task.metadata.resources, opts);
  const secrets = secretsOf(task);
  const inputsUri = await ctx.inputsUri();
  const base = mergeEnv(ternEnv(ctx, inputsUri), envOf(opts.env));
  let container: Record<string, unknown>;
  if (task.type === "node") {
    container = {
      image: imageOf(task, undefined, opts),
      command: nodeCommand(ctx, inputsUri, opts),
      env: mergeEnv(base, envOf(task.metadata.env), secrets.env),
    };
  } else {
    const cfg = containerConfig(task);
    container = {
      image: imageOf(task, cfg.image, opts),
      env: mergeEnv(base, envOf(task.metadata.env), envOf(cfg.env ?? {}), secrets.env),
    };
    if (cfg.command) container.command = cfg.command.map((s) => renderTemplate(s, ctx, inputsUri));
    if (cfg.args) container.args = cfg.args.map((s) => renderTemplate(s, ctx, inputsUri));
    if (cfg.workingDir) container.workingDir = cfg.workingDir;
  }
  if (Object.keys(res.requirements).length) container.resources = res.requirements;
  if (secrets.mounts.length) container.volumeMounts = secrets.mounts;
  const spec: Record<string, unknown> = {
    restartPolicy: "Never",
    containers: [{ name: "main", ...container }],
    ...placement(res, ctx.attempt.interruptible, opts),
  };
  if (secrets.volumes.length) spec.volumes = secrets.volumes;
  if (opts.serviceAccountName) spec.serviceAccountName = opts.serviceAccountName;
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name,
      namespace,
      labels: attemptLabels(ctx, plugin, opts.labels),
      annotations: attemptAnnotations(ctx, opts.annotations),
    },
    spec,
  };
}
