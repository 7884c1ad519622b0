/**
 * `@tern/plugin-k8s`: Tern tasks on Kubernetes — `node` and `container` tasks as pods
 * (CPU and GPU), `mpi` tasks as Kubeflow MPIJobs, across one or several clusters.
 *
 * Importing the package registers nothing: call the factory and list its result in
 * `plugins`. `@kubernetes/client-node` is loaded on the first launch.
 *
 * @example
 * // tern.config.ts
 * import k8s from "@tern/plugin-k8s";
 * export default {
 *   plugins: [k8s({ clusters: [{ name: "main", kubeconfig: "~/.kube/config", namespace: "tern" }], defaultImage: "ghcr.io/acme/tasks:1" })],
 *   backendConfig: { defaultForTaskTypes: { node: "k8s-pod" } },
 * };
 *
 * @module
 */
import { BACKEND_PLUGIN, CONTRACT_VERSION, definePlugin, provide, type TernPlugin } from "@tern/core";
import { ClusterPool, K8S_CLUSTERS } from "./clusters.js";
import { MpiPlugin } from "./mpi.js";
import { K8S_OPTIONS, type K8sOptions, resolveOptions } from "./options.js";
import { PodPlugin } from "./plugin.js";

/**
 * The Kubernetes plugins: `k8s-pod` (task types `node`, `container`) and `k8s-mpi` (`mpi`).
 * Options are checked here, so a bad configuration fails at start-up.
 */
export default function k8s(options: K8sOptions): TernPlugin {
  const resolved = resolveOptions(options);
  return definePlugin({
    name: "@tern/plugin-k8s",
    contractVersion: CONTRACT_VERSION,
    register(container) {
      provide(container, K8S_OPTIONS, resolved);
      container.registerSingleton(K8S_CLUSTERS, ClusterPool);
      container.register(BACKEND_PLUGIN, { useClass: PodPlugin });
      container.register(BACKEND_PLUGIN, { useClass: MpiPlugin });
    },
  });
}

export {
  clientNodeApi,
  isApiError,
  type K8sApi,
  K8sApiError,
  type K8sObject,
  type KubeConfigObject,
  type KubeconfigSource,
  MPIJOBS,
  PODS,
  type ResourceRef,
  type WatchEventType,
  type WatchHandle,
  type WatchOptions,
} from "./api.js";
export { type ClusterHealth, ClusterPool, K8S_CLUSTERS, MANAGED_SELECTOR } from "./clusters.js";
export type { Failover } from "./launch.js";
export { followPodLogs, type Launched, launchObject, lostObject } from "./launch.js";
export { buildMpiJob, MpiPlugin, type MpiState, type MpiTaskConfig, mpiJobStatus } from "./mpi.js";
export {
  ANNOTATIONS,
  attemptAnnotations,
  attemptLabels,
  belongsTo,
  LABELS,
  labelValue,
  objectName,
} from "./names.js";
export {
  type ApiRetryOptions,
  type ClusterOptions,
  K8S_OPTIONS,
  type K8sOptions,
  type ResolvedK8sOptions,
  type RoutingOptions,
  resolveOptions,
  type Toleration,
} from "./options.js";
export { PodPlugin, type PodState, readErrorDocument } from "./plugin.js";
export {
  buildPod,
  type ContainerTaskConfig,
  type EnvVar,
  envOf,
  mergeEnv,
  podResources,
  secretEnvName,
  secretsOf,
  validateTask,
} from "./pod-spec.js";
export { isQuantity, parseQuantity } from "./quantities.js";
export { withRetry } from "./retry.js";
export { deletedPodStatus, podStatus, type StatusContext } from "./status.js";
export { WatchCache } from "./watch-cache.js";
export { k8s };
