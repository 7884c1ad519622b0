/**
 * `@tern/testkit`: the conformance suite for Tern backend plugins, a test engine, and loopback
 * fakes of the services plugins talk to. Import everything from the package root; no deep imports.
 */

export * from "./conformance/index.js";
export * from "./engine/index.js";
export {
  installKubeRay,
  type KubeRayOperatorOptions,
  kubeRayOperator,
} from "./fakes/k8s/controllers/kuberay.js";
export { installMpiOperator, type MpiOperatorOptions, mpiOperator } from "./fakes/k8s/controllers/mpi.js";
export {
  installSparkOperator,
  type SparkOperatorOptions,
  sparkOperator,
} from "./fakes/k8s/controllers/spark.js";
export * from "./fakes/k8s/index.js";
export * from "./fakes/ray/index.js";
export * from "./fakes/s3/index.js";
