/**
 * Fake Kubernetes API for tests: see {@link startFakeKubernetes}.
 * @module
 */

export type { ClusterClient, ObjectEventType, ObjectListener, ResourceRef } from "./cluster-client.js";
export type { ControllerContext, CustomResourceController } from "./controllers.js";
export type { ImageConfig } from "./env.js";
export type { StatusBody, StatusCause, StatusDetails } from "./errors.js";
export { StatusError } from "./errors.js";
export type { FakeKubernetesOptions, WaitOptions } from "./fake.js";
export { FakeKubernetes, startFakeKubernetes } from "./fake.js";
// RuleHandle ({cancel()}) is not re-exported: the S3 fake exports the same shape under that name,
// and two `export *` of one name at the package root would clash.
export type { FailSpec, RequestMatch } from "./faults.js";
export type { KubeConfigObject, KubeconfigOptions } from "./kubeconfig.js";
export type { RunningContainer } from "./kubelet.js";
export { liveProcessCount } from "./process.js";
export { DEFAULT_NODE, gpuNode } from "./scheduler.js";
export type { DownMode } from "./server.js";
export type {
  Container,
  ContainerState,
  ContainerStatus,
  FakeNodeSpec,
  KubeObject,
  ObjectMeta,
  OwnerReference,
  Pod,
  PodCondition,
  PodPhase,
  PodSpec,
  PodStatus,
  RecordedRequest,
  Taint,
  Toleration,
} from "./types.js";
export type { ExpiredMode } from "./watch.js";
