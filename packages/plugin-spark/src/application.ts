/**
 * From a task attempt to a `SparkApplication` (`sparkoperator.k8s.io/v1beta2`): templated
 * main file and arguments, Tern's job environment in the driver and the executors, sizing,
 * Spark and Hadoop properties, and `restartPolicy: Never` (Tern retries attempts itself).
 */
import { jobEnv, renderJobTemplate, type TaskContext } from "@tern/core";
import {
  attemptAnnotations,
  attemptLabels,
  type EnvVar,
  envOf,
  type K8sObject,
  mergeEnv,
  type ResourceRef,
  secretsOf,
} from "@tern/plugin-k8s";
import { type SparkPodConfig, sparkConfig } from "./config.js";
import type { ResolvedSparkOptions } from "./options.js";

export const SPARK_APPLICATIONS: ResourceRef = {
  group: "sparkoperator.k8s.io",
  version: "v1beta2",
  plural: "sparkapplications",
};

/** The driver container's name in Spark's driver pod (what `logs()` reads). */
export const DRIVER_CONTAINER = "spark-kubernetes-driver";

/** The driver pod's name, as the operator gives it (`spec.driver.podName`, else `<app>-driver`). */
export function driverPodName(app: K8sObject): string {
  return app.status?.driverInfo?.podName || app.spec?.driver?.podName || `${app.metadata.name}-driver`;
}

/** The SparkApplication of one attempt. */
export async function buildSparkApplication(
  ctx: TaskContext,
  name: string,
  namespace: string,
  opts: ResolvedSparkOptions,
  plugin: string,
): Promise<K8sObject> {
  const task = ctx.task;
  const cfg = sparkConfig(task, opts);
  const inputsUri = await ctx.inputsUri();
  const render = (s: string) => renderJobTemplate(s, ctx, inputsUri);
  const renderAll = (m: Record<string, string>) =>
    Object.fromEntries(Object.entries(m).map(([k, v]) => [k, render(v)]));
  const labels = attemptLabels(ctx, plugin, opts.labels);
  const secrets = secretsOf(task);
  const mounted = task.metadata.secrets
    .filter((s) => s.mountPath !== undefined)
    .map((s) => ({ name: s.group, path: s.mountPath!, secretType: "Generic" }));
  const base: EnvVar[] = mergeEnv(envOf(jobEnv(ctx, inputsUri)), envOf(opts.env), envOf(task.metadata.env));
  const pod = (p: SparkPodConfig & { cores: number; memory: string }): Record<string, unknown> => {
    const out: Record<string, unknown> = {
      cores: p.cores,
      memory: p.memory,
      labels: { ...labels, ...(p.labels ?? {}) },
      env: mergeEnv(base, envOf(p.env ?? {}), secrets.env),
    };
    if (p.coreLimit) out.coreLimit = p.coreLimit;
    if (p.memoryOverhead) out.memoryOverhead = p.memoryOverhead;
    if (p.annotations) out.annotations = p.annotations;
    if (p.javaOptions) out.javaOptions = p.javaOptions;
    if (mounted.length) out.secrets = mounted;
    return out;
  };
  const driver = pod(cfg.driver);
  const serviceAccount = cfg.driver.serviceAccount ?? opts.serviceAccount;
  if (serviceAccount) driver.serviceAccount = serviceAccount;
  const spec: Record<string, unknown> = {
    type: cfg.type,
    mode: "cluster",
    image: cfg.image,
    mainApplicationFile: render(cfg.mainApplicationFile),
    arguments: cfg.arguments.map(render),
    sparkVersion: cfg.sparkVersion,
    restartPolicy: { type: "Never" },
    driver,
    executor: { ...pod(cfg.executor), instances: cfg.executor.instances },
  };
  if (opts.imagePullPolicy) spec.imagePullPolicy = opts.imagePullPolicy;
  if (cfg.mainClass) spec.mainClass = cfg.mainClass;
  if (Object.keys(cfg.sparkConf).length) spec.sparkConf = renderAll(cfg.sparkConf);
  if (Object.keys(cfg.hadoopConf).length) spec.hadoopConf = renderAll(cfg.hadoopConf);
  if (cfg.deps) spec.deps = cfg.deps;
  if (cfg.timeToLiveSeconds !== undefined) spec.timeToLiveSeconds = cfg.timeToLiveSeconds;
  return {
    apiVersion: `${SPARK_APPLICATIONS.group}/${SPARK_APPLICATIONS.version}`,
    kind: "SparkApplication",
    metadata: { name, namespace, labels, annotations: attemptAnnotations(ctx, opts.annotations) },
    spec,
  };
}
