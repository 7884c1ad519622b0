/**
 * `@tern/plugin-ray`: Tern tasks as Ray jobs.
 *
 * - `ray-job` (task type `ray`): the Ray Jobs REST API of an existing cluster's dashboard
 *   (`address`), through a small axios client ({@link RayJobsClient}).
 * - `ray-kuberay` (task type `kuberay`): one KubeRay `RayJob` per attempt, with its own Ray
 *   cluster, on Kubernetes through `@tern/plugin-k8s`'s client layer (`kuberay`).
 *
 * Both take the same task `custom` ({@link RayTaskConfig}): a templated `entrypoint`, a
 * checked `runtimeEnv`, and the entrypoint's CPUs, GPUs and memory. Importing the package
 * registers nothing: call the factory and list its result in `plugins`.
 *
 * @example
 * // tern.config.ts
 * import ray from "@tern/plugin-ray";
 * export default { plugins: [ray({ address: "http://ray-head:8265" })] };
 *
 * @module
 */
import { BACKEND_PLUGIN, CONTRACT_VERSION, definePlugin, provide, type TernPlugin } from "@tern/core";
import { resolveOptions } from "@tern/plugin-k8s";
import { RayJobPlugin } from "./job-plugin.js";
import { KUBERAY_CLUSTERS, KUBERAY_K8S_OPTIONS, KubeRayClusterPool, KubeRayPlugin } from "./kuberay.js";
import { RAY_OPTIONS, type RayOptions, resolveRayOptions } from "./options.js";

/**
 * The Ray plugins: `ray-job` when `address` is given, `ray-kuberay` when `kuberay` is.
 * Options are checked here, so a bad configuration fails at start-up.
 */
export default function ray(options: RayOptions): TernPlugin {
  const resolved = resolveRayOptions(options);
  const k8s = resolved.kuberay ? resolveOptions(resolved.kuberay.k8s) : undefined;
  return definePlugin({
    name: "@tern/plugin-ray",
    contractVersion: CONTRACT_VERSION,
    register(container) {
      provide(container, RAY_OPTIONS, resolved);
      if (resolved.address !== undefined) container.register(BACKEND_PLUGIN, { useClass: RayJobPlugin });
      if (k8s) {
        provide(container, KUBERAY_K8S_OPTIONS, k8s);
        container.registerSingleton(KUBERAY_CLUSTERS, KubeRayClusterPool);
        container.register(BACKEND_PLUGIN, { useClass: KubeRayPlugin });
      }
    },
  });
}

export {
  isRayApiError,
  RayApiError,
  type RayJobDetails,
  type RayJobStatus,
  type RayJobsApi,
  RayJobsClient,
  type RayJobsClientOptions,
  type RaySubmitRequest,
  type RayVersionInfo,
} from "./client.js";
export {
  type CheckedRayTask,
  checkRayTask,
  type KubeRayClusterConfig,
  type RayNodeConfig,
  type RayRuntimeEnv,
  type RayTaskConfig,
  type RayWorkerGroupConfig,
  RUNTIME_ENV_KEYS,
} from "./config.js";
export { RAY_METADATA, RayJobPlugin, type RayJobState, rayJobStatus } from "./job-plugin.js";
export {
  KUBERAY_CLUSTERS,
  KUBERAY_K8S_OPTIONS,
  KubeRayClusterPool,
  KubeRayPlugin,
  type KubeRayState,
  RAYJOBS,
  rayJobCrStatus,
} from "./kuberay.js";
export { rayJobName, submissionId } from "./names.js";
export {
  type KubeRayOptions,
  RAY_OPTIONS,
  type RayOptions,
  type ResolvedRayOptions,
  type RetryOptions,
  resolveRayOptions,
} from "./options.js";
export { ray };
