/**
 * `@tern/plugin-spark`: Tern tasks of type `spark` as spark-operator `SparkApplication`s
 * (`sparkoperator.k8s.io/v1beta2`) on Kubernetes.
 *
 * Importing the package registers nothing: call the factory and list its result in
 * `plugins`. By default it runs on the clusters of the `k8s()` plugin listed next to it
 * (one set of API clients, watches and health checks); `spark({ clusters })` gives it
 * clusters of its own instead.
 *
 * @example
 * // tern.config.ts
 * import k8s from "@tern/plugin-k8s";
 * import spark from "@tern/plugin-spark";
 * export default {
 *   plugins: [
 *     k8s({ clusters: [{ name: "main", kubeconfig: "~/.kube/config", namespace: "spark-jobs" }] }),
 *     spark({ defaultImage: "ghcr.io/acme/spark-jobs:3.5.1", serviceAccount: "spark" }),
 *   ],
 * };
 *
 * @module
 */
import {
  BACKEND_PLUGIN,
  CONTRACT_VERSION,
  type DependencyContainer,
  definePlugin,
  provide,
  type TernPlugin,
} from "@tern/core";
import type { ClusterPool } from "@tern/plugin-k8s";
import {
  resolveSparkOptions,
  SPARK_CLUSTERS,
  SPARK_OPTIONS,
  type SparkOptions,
  sparkClusters,
} from "./options.js";
import { SparkPlugin } from "./plugin.js";

/**
 * The Spark plugin (`spark`, task type `spark`). Options are checked here, so a bad
 * configuration fails at start-up; without `clusters` the engine's start-up fails unless a
 * `k8s()` plugin is loaded too.
 */
export default function spark(options: SparkOptions = {}): TernPlugin {
  const resolved = resolveSparkOptions(options);
  return definePlugin({
    name: "@tern/plugin-spark",
    contractVersion: CONTRACT_VERSION,
    register(container) {
      provide(container, SPARK_OPTIONS, resolved);
      // One pool per container, made when the plugin is first resolved (after every plugin
      // has registered, so the order of k8s() and spark() in `plugins` does not matter).
      // The plugin is built by a factory rather than by constructor injection so that a
      // missing cluster configuration surfaces as its own TERN_E_CONFIG error, not wrapped
      // in tsyringe's "cannot inject" message.
      let pool: ClusterPool | undefined;
      let plugin: SparkPlugin | undefined;
      const clusters = (c: DependencyContainer) => (pool ??= sparkClusters(c, resolved));
      container.register(SPARK_CLUSTERS, { useFactory: clusters });
      container.register(BACKEND_PLUGIN, {
        useFactory: (c) => (plugin ??= new SparkPlugin(resolved, clusters(c))),
      });
    },
  });
}

export { buildSparkApplication, DRIVER_CONTAINER, driverPodName, SPARK_APPLICATIONS } from "./application.js";
export {
  parseSparkMemory,
  type ResolvedSparkConfig,
  type SparkApplicationType,
  type SparkDeps,
  type SparkDriverConfig,
  type SparkExecutorConfig,
  type SparkPodConfig,
  type SparkTaskConfig,
  sparkConfig,
} from "./config.js";
export {
  type ResolvedSparkOptions,
  resolveSparkOptions,
  SPARK_CLUSTERS,
  SPARK_OPTIONS,
  type SparkOptions,
} from "./options.js";
export { SparkPlugin, type SparkState } from "./plugin.js";
export { applicationState, type SparkVerdict, sparkApplicationStatus } from "./status.js";
export { spark };
