/**
 * Object shapes the fake Kubernetes API stores and serves.
 *
 * The fake never imports `@kubernetes/client-node` (it is only a dev dependency used by the tests),
 * so these are deliberately loose, JSON-shaped interfaces: just the fields the fake reads or writes.
 * Anything else a client sends is stored and echoed back untouched.
 */

/** `metadata` of any stored object. */
export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  ownerReferences?: OwnerReference[];
  [key: string]: unknown;
}

/** An owner reference; the fake's garbage collector deletes dependents of a deleted owner. */
export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

/** Any Kubernetes object (pod, secret, node, custom resource…). */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec?: any;
  status?: any;
  [key: string]: unknown;
}

/** Identifies a kind of stored object. Core resources have `group: ""`. */
export interface ResourceType {
  group: string;
  version: string;
  /** Lower-case plural used in URLs, e.g. `pods`, `sparkapplications`. */
  plural: string;
  /** `Pod`, `SparkApplication`… For custom resources learnt from the first object created. */
  kind: string;
  namespaced: boolean;
}

/** A `DisruptionTarget`, `PodScheduled`… condition. */
export interface PodCondition {
  type: string;
  status: "True" | "False" | "Unknown";
  reason?: string;
  message?: string;
  lastProbeTime?: string | null;
  lastTransitionTime?: string;
}

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: {
    secretKeyRef?: { name: string; key: string; optional?: boolean };
    configMapKeyRef?: { name: string; key: string; optional?: boolean };
    fieldRef?: { fieldPath: string };
  };
}

export interface ResourceRequirements {
  requests?: Record<string, string | number>;
  limits?: Record<string, string | number>;
}

export interface Container {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  workingDir?: string;
  resources?: ResourceRequirements;
  [key: string]: unknown;
}

export interface Toleration {
  key?: string;
  operator?: "Exists" | "Equal";
  value?: string;
  effect?: "NoSchedule" | "PreferNoSchedule" | "NoExecute" | "";
  tolerationSeconds?: number;
}

export interface NodeSelectorRequirement {
  key: string;
  operator: "In" | "NotIn" | "Exists" | "DoesNotExist" | "Gt" | "Lt";
  values?: string[];
}

export interface NodeSelectorTerm {
  matchExpressions?: NodeSelectorRequirement[];
  matchFields?: NodeSelectorRequirement[];
}

export interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  restartPolicy?: "Always" | "OnFailure" | "Never";
  nodeName?: string;
  nodeSelector?: Record<string, string>;
  tolerations?: Toleration[];
  affinity?: {
    nodeAffinity?: {
      requiredDuringSchedulingIgnoredDuringExecution?: { nodeSelectorTerms: NodeSelectorTerm[] };
    };
    [key: string]: unknown;
  };
  activeDeadlineSeconds?: number;
  terminationGracePeriodSeconds?: number;
  [key: string]: unknown;
}

export type ContainerState =
  | { waiting: { reason: string; message?: string } }
  | { running: { startedAt: string } }
  | {
      terminated: {
        exitCode: number;
        signal?: number;
        reason: string;
        message?: string;
        startedAt?: string;
        finishedAt: string;
        containerID?: string;
      };
    };

export interface ContainerStatus {
  name: string;
  image: string;
  imageID: string;
  containerID?: string;
  ready: boolean;
  started: boolean;
  restartCount: number;
  state: ContainerState;
  lastState: ContainerState | Record<string, never>;
}

export type PodPhase = "Pending" | "Running" | "Succeeded" | "Failed" | "Unknown";

export interface PodStatus {
  phase?: PodPhase;
  reason?: string;
  message?: string;
  conditions?: PodCondition[];
  containerStatuses?: ContainerStatus[];
  initContainerStatuses?: ContainerStatus[];
  hostIP?: string;
  podIP?: string;
  startTime?: string;
  qosClass?: string;
  [key: string]: unknown;
}

/** A pod as the fake stores it. */
export interface Pod extends KubeObject {
  spec: PodSpec;
  status?: PodStatus;
}

export interface Taint {
  key: string;
  value?: string;
  effect: "NoSchedule" | "PreferNoSchedule" | "NoExecute";
}

/**
 * A node of the fake cluster, as given to `startFakeKubernetes({nodes})` or `addNode()`.
 * It is stored as a real `Node` object, so `GET /api/v1/nodes` shows it.
 */
export interface FakeNodeSpec {
  name: string;
  /** Labels, e.g. `{"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}`. `kubernetes.io/hostname` is added. */
  labels?: Record<string, string>;
  taints?: Taint[];
  /** Quantities as Kubernetes writes them: `{cpu: "8", memory: "32Gi", "nvidia.com/gpu": "4"}`. */
  capacity?: Record<string, string | number>;
  /** `spec.unschedulable` (cordoned). */
  unschedulable?: boolean;
}

/** One recorded HTTP request (see `FakeKubernetes.requests()`). */
export interface RecordedRequest {
  method: string;
  /** Path without the query string. */
  path: string;
  query: Record<string, string>;
  headers: Record<string, string>;
  /** Parsed JSON body when the body was JSON, the raw text otherwise, `undefined` when empty. */
  body: unknown;
  /** Status code the fake answered with (`0` while a stream is still open). */
  status: number;
  time: Date;
}
