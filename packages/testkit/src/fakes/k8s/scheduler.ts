/**
 * A small kube-scheduler: binds each new pod (after a configurable delay) to the first node that
 * passes the default filters, in the real filter order — unschedulable node, taints/tolerations,
 * nodeSelector + required node affinity, then resource fit (requests, with limits as the default
 * request; `nvidia.com/gpu` and other extended resources included). A pod that fits nowhere stays
 * Pending with `PodScheduled=False/Unschedulable` and the scheduler's summary message, and is
 * retried whenever nodes change or a pod releases its resources.
 *
 * Not modelled: priorities and preemption (use the control API's `preempt`), pod (anti-)affinity,
 * topology spread, preferred affinity, ports, volumes.
 */
import type { Cluster } from "./cluster.js";
import { parseQuantity } from "./quantity.js";
import { NODES, PODS } from "./resources.js";
import { matchesNodeRequirement, tolerates } from "./selectors.js";
import { resourceKey, type StoreEvent } from "./store.js";
import type { FakeNodeSpec, KubeObject, Pod, PodCondition, Taint } from "./types.js";
import { isTerminalPhase, rfc3339 } from "./util.js";

const PODS_KEY = resourceKey("", "pods");
const NODES_KEY = resourceKey("", "nodes");

/** The node the fake starts with unless `nodes` is given: plenty of CPU and memory, no GPUs. */
export const DEFAULT_NODE: FakeNodeSpec = {
  name: "fake-node-1",
  capacity: { cpu: "64", memory: "256Gi", pods: "110", "ephemeral-storage": "1Ti" },
};

/** A typical GPU node: 8 A100s, tainted so only pods tolerating `nvidia.com/gpu` land there. */
export function gpuNode(name: string, gpus = 8, product = "NVIDIA-A100-SXM4-80GB"): FakeNodeSpec {
  return {
    name,
    labels: { "nvidia.com/gpu.product": product, "nvidia.com/gpu.count": String(gpus) },
    taints: [{ key: "nvidia.com/gpu", value: "present", effect: "NoSchedule" }],
    capacity: {
      cpu: "96",
      memory: "1Ti",
      pods: "110",
      "nvidia.com/gpu": String(gpus),
      "ephemeral-storage": "1Ti",
    },
  };
}

/** Builds the stored `Node` object for a node spec. */
export function nodeObject(spec: FakeNodeSpec): KubeObject {
  const capacity = Object.fromEntries(
    Object.entries(spec.capacity ?? DEFAULT_NODE.capacity!).map(([k, v]) => [k, String(v)]),
  );
  capacity.pods ??= "110";
  return {
    apiVersion: "v1",
    kind: "Node",
    metadata: {
      name: spec.name,
      labels: {
        "kubernetes.io/hostname": spec.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        ...(spec.labels ?? {}),
      },
    },
    spec: { taints: spec.taints ?? [], unschedulable: spec.unschedulable ?? false },
    status: {
      capacity,
      allocatable: { ...capacity },
      conditions: [
        {
          type: "Ready",
          status: "True",
          reason: "KubeletReady",
          message: "kubelet is posting ready status",
          lastTransitionTime: rfc3339(),
        },
      ],
      addresses: [
        { type: "InternalIP", address: "127.0.0.1" },
        { type: "Hostname", address: spec.name },
      ],
      nodeInfo: {
        kubeletVersion: "v1.30.0-tern-fake",
        operatingSystem: "linux",
        architecture: "amd64",
        containerRuntimeVersion: "fake://1.0",
      },
    },
  };
}

/** Effective requests of a pod: max(largest init container, sum of containers), per resource, plus one `pods` slot. */
export function podRequests(pod: Pod): Record<string, number> {
  const of = (c: Pod["spec"]["containers"][number]) => {
    const out: Record<string, number> = {};
    const limits = c.resources?.limits ?? {};
    const requests = c.resources?.requests ?? {};
    for (const r of new Set([...Object.keys(limits), ...Object.keys(requests)])) {
      out[r] = parseQuantity(requests[r] ?? limits[r]);
    }
    return out;
  };
  const total: Record<string, number> = {};
  for (const c of pod.spec.containers ?? [])
    for (const [r, v] of Object.entries(of(c))) total[r] = (total[r] ?? 0) + v;
  for (const c of pod.spec.initContainers ?? [])
    for (const [r, v] of Object.entries(of(c))) total[r] = Math.max(total[r] ?? 0, v);
  total.pods = 1;
  return total;
}

function taintText(t: Taint): string {
  return t.value ? `{${t.key}: ${t.value}}` : `{${t.key}: }`;
}

/** Why a pod cannot go to a node (empty = it fits). Several reasons only for resource shortfalls. */
export function filterNode(pod: Pod, node: KubeObject, podsOnNode: Pod[]): string[] {
  if (node.spec?.unschedulable) return ["node(s) were unschedulable"];
  const taints: Taint[] = node.spec?.taints ?? [];
  const untolerated = taints.find(
    (t) => t.effect !== "PreferNoSchedule" && !(pod.spec.tolerations ?? []).some((tol) => tolerates(tol, t)),
  );
  if (untolerated) return [`node(s) had untolerated taint ${taintText(untolerated)}`];

  const labels = node.metadata.labels ?? {};
  const selectorOk = Object.entries(pod.spec.nodeSelector ?? {}).every(([k, v]) => labels[k] === v);
  const terms =
    pod.spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms;
  // Terms are ORed; expressions inside a term are ANDed; an empty term matches nothing.
  const affinityOk =
    !terms ||
    terms.some(
      (term) =>
        (term.matchExpressions?.length ?? 0) + (term.matchFields?.length ?? 0) > 0 &&
        (term.matchExpressions ?? []).every((req) => matchesNodeRequirement(req, labels)) &&
        (term.matchFields ?? []).every((req) =>
          matchesNodeRequirement(req, { "metadata.name": node.metadata.name! }),
        ),
    );
  if (!selectorOk || !affinityOk) return ["node(s) didn't match Pod's node affinity/selector"];

  const allocatable: Record<string, string> = node.status?.allocatable ?? {};
  const used: Record<string, number> = {};
  for (const other of podsOnNode) {
    for (const [r, v] of Object.entries(podRequests(other))) used[r] = (used[r] ?? 0) + v;
  }
  const reasons: string[] = [];
  for (const [r, want] of Object.entries(podRequests(pod))) {
    if (want <= 0) continue;
    const have = parseQuantity(allocatable[r] ?? "0");
    if ((used[r] ?? 0) + want > have) reasons.push(r === "pods" ? "Too many pods" : `Insufficient ${r}`);
  }
  return reasons;
}

/** Picks a node, or explains (in the scheduler's words) why none fits. */
export function schedule(pod: Pod, nodes: KubeObject[], pods: Pod[]): { node: string } | { message: string } {
  if (nodes.length === 0) return { message: "no nodes available to schedule pods" };
  const counts = new Map<string, number>();
  for (const node of nodes) {
    const onNode = pods.filter(
      (p) =>
        p.spec.nodeName === node.metadata.name &&
        !isTerminalPhase(p.status?.phase) &&
        p.metadata.uid !== pod.metadata.uid,
    );
    const reasons = filterNode(pod, node, onNode);
    if (reasons.length === 0) return { node: node.metadata.name! };
    for (const r of reasons) counts.set(r, (counts.get(r) ?? 0) + 1);
  }
  const parts = [...counts].map(([reason, n]) => `${n} ${reason}`).sort();
  return { message: `0/${nodes.length} nodes are available: ${parts.join(", ")}.` };
}

/** Inserts or updates a condition, keeping lastTransitionTime when the status does not change. */
export function upsertCondition(conditions: PodCondition[] | undefined, next: PodCondition): PodCondition[] {
  const list = [...(conditions ?? [])];
  const idx = list.findIndex((c) => c.type === next.type);
  const old = idx >= 0 ? list[idx] : undefined;
  const merged: PodCondition = {
    lastProbeTime: null,
    ...next,
    lastTransitionTime: old && old.status === next.status ? old.lastTransitionTime : rfc3339(),
  };
  if (idx >= 0) list[idx] = merged;
  else list.push(merged);
  return list;
}

export interface SchedulerOptions {
  /** Time between a pod's creation and its first scheduling attempt. */
  delayMs: number;
}

/** Watches pods and nodes in-process and binds pending pods. */
export class Scheduler {
  readonly #timers = new Set<NodeJS.Timeout>();
  // Pods that failed to fit; retried when the cluster changes.
  readonly #waiting = new Set<string>();
  #unsubscribe: (() => void) | undefined;

  constructor(
    private readonly cluster: Cluster,
    private readonly options: SchedulerOptions,
  ) {}

  start(): void {
    this.#unsubscribe = this.cluster.store.subscribe((e) => this.#onEvent(e));
  }

  stop(): void {
    this.#unsubscribe?.();
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
  }

  /** Re-runs scheduling for every waiting pod (called after node changes). */
  retryAll(): void {
    for (const key of [...this.#waiting]) {
      const [ns, name] = key.split("/");
      this.#attempt(ns, name);
    }
  }

  #onEvent(e: StoreEvent): void {
    if (e.resource === NODES_KEY) {
      this.#later(0, () => this.retryAll());
      return;
    }
    if (e.resource !== PODS_KEY) return;
    const pod = e.object as Pod;
    const key = `${pod.metadata.namespace}/${pod.metadata.name}`;
    if (
      e.type === "ADDED" &&
      !pod.spec.nodeName &&
      (pod.spec.schedulerName ?? "default-scheduler") === "default-scheduler"
    ) {
      this.#later(this.options.delayMs, () => this.#attempt(pod.metadata.namespace!, pod.metadata.name!));
      return;
    }
    const released =
      e.type === "DELETED" ||
      (e.type === "MODIFIED" &&
        isTerminalPhase(pod.status?.phase) &&
        !isTerminalPhase((e.previous as Pod)?.status?.phase));
    if (e.type === "DELETED") this.#waiting.delete(key);
    if (released && pod.spec.nodeName && this.#waiting.size > 0) this.#later(0, () => this.retryAll());
  }

  #later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.#timers.delete(t);
      fn();
    }, ms);
    this.#timers.add(t);
  }

  #attempt(namespace: string, name: string): void {
    const key = `${namespace}/${name}`;
    const pod = this.cluster.tryGet(PODS, namespace, name) as Pod | undefined;
    if (!pod || pod.spec.nodeName || pod.metadata.deletionTimestamp || isTerminalPhase(pod.status?.phase)) {
      this.#waiting.delete(key);
      return;
    }
    const nodes = this.cluster.list(NODES).items;
    const pods = this.cluster.list(PODS).items as Pod[];
    const result = schedule(pod, nodes, pods);
    if ("node" in result) {
      this.#waiting.delete(key);
      this.cluster.mutate(PODS, namespace, name, (p) => {
        if (p.spec.nodeName) return false;
        p.spec.nodeName = result.node;
        p.status = {
          ...(p.status ?? {}),
          conditions: upsertCondition(p.status?.conditions, { type: "PodScheduled", status: "True" }),
        };
      });
      return;
    }
    this.#waiting.add(key);
    this.cluster.mutate(PODS, namespace, name, (p) => {
      const current = (p.status?.conditions as PodCondition[] | undefined)?.find(
        (c) => c.type === "PodScheduled",
      );
      // Only write when the verdict changes, so retries do not flood watchers with MODIFIED events.
      if (current?.status === "False" && current.message === result.message) return false;
      p.status = {
        ...(p.status ?? {}),
        phase: "Pending",
        conditions: upsertCondition(p.status?.conditions, {
          type: "PodScheduled",
          status: "False",
          reason: "Unschedulable",
          message: result.message,
        }),
      };
    });
  }
}
