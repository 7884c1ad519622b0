/**
 * Scheduling realism: GPUs, taints/tolerations, nodeSelector and required node affinity, capacity
 * accounting, and the scheduler's Unschedulable messages.
 */
import type { V1PodSpec } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { filterNode, gpuNode, nodeObject, schedule } from "../src/fakes/k8s/scheduler.js";
import type { Pod } from "../src/index.js";
import { harness, nodePod, type PodBody } from "./helpers.js";

const GPU_TOLERATION = { key: "nvidia.com/gpu", operator: "Exists" as const, effect: "NoSchedule" as const };

function gpuPod(name: string, gpus = 1, extra: Partial<V1PodSpec> = {}): PodBody {
  const pod = nodePod(name, "console.log('trained')", extra);
  pod.spec.containers[0].resources = { limits: { "nvidia.com/gpu": String(gpus), cpu: "2", memory: "4Gi" } };
  return pod;
}

const scheduled = (pod: Pod | undefined) => pod?.status?.conditions?.find((c) => c.type === "PodScheduled");

describe("scheduler", () => {
  it("a GPU pod stays Pending/Unschedulable on the default node and runs once a GPU node is added", async () => {
    const { fake, core } = await harness();
    await core.createNamespacedPod({
      namespace: "default",
      body: gpuPod("train", 1, { tolerations: [GPU_TOLERATION] }),
    });
    const pending = await fake.waitForPod("default", "train", (p) => scheduled(p)?.status === "False");
    expect(scheduled(pending)).toMatchObject({
      status: "False",
      reason: "Unschedulable",
      message: "0/1 nodes are available: 1 Insufficient nvidia.com/gpu.",
    });
    expect(pending.status?.phase).toBe("Pending");
    expect(pending.spec.nodeName).toBeUndefined();
    expect(fake.processes()).toEqual([]);

    fake.addGpuNode("gpu-a100-1", 1);
    const done = await fake.waitForPod("default", "train", (p) => p.status?.phase === "Succeeded");
    expect(done.spec.nodeName).toBe("gpu-a100-1");
    expect(scheduled(done)?.status).toBe("True");
  });

  it("explains every node's verdict: taints, resources, affinity", async () => {
    const { fake, core } = await harness({ gpuNodes: 1 });
    // No toleration: the GPU node's taint rejects it, the CPU node has no GPUs.
    await core.createNamespacedPod({ namespace: "default", body: gpuPod("no-toleration") });
    const a = await fake.waitForPod("default", "no-toleration", (p) => scheduled(p)?.status === "False");
    expect(scheduled(a)?.message).toBe(
      "0/2 nodes are available: 1 Insufficient nvidia.com/gpu, 1 node(s) had untolerated taint {nvidia.com/gpu: present}.",
    );
    // Asking for an H100 where only A100s exist.
    const affinity = {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [
            {
              matchExpressions: [
                { key: "nvidia.com/gpu.product", operator: "In" as const, values: ["NVIDIA-H100-80GB-HBM3"] },
              ],
            },
          ],
        },
      },
    };
    await core.createNamespacedPod({
      namespace: "default",
      body: gpuPod("wants-h100", 1, { tolerations: [GPU_TOLERATION], affinity }),
    });
    const b = await fake.waitForPod("default", "wants-h100", (p) => scheduled(p)?.status === "False");
    // Affinity is checked before resources (the real filter order), so the CPU node fails it too.
    expect(scheduled(b)?.message).toBe(
      "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector.",
    );

    // The same pod asking for an A100 lands on the GPU node.
    affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].values =
      ["NVIDIA-A100-SXM4-80GB"];
    await core.createNamespacedPod({
      namespace: "default",
      body: gpuPod("wants-a100", 1, { tolerations: [GPU_TOLERATION], affinity }),
    });
    const c = await fake.waitForPod("default", "wants-a100", (p) => p.status?.phase === "Succeeded");
    expect(c.spec.nodeName).toBe("fake-gpu-node-1");
  });

  it("accounts for capacity: a second pod waits for the first to release the GPU", async () => {
    const { fake, core } = await harness({ nodes: [gpuNode("only-gpu", 1)] });
    const hold = gpuPod("holder", 1, { tolerations: [GPU_TOLERATION] });
    hold.spec.containers[0].command = [process.execPath, "-e", "setTimeout(() => {}, 400)"];
    await core.createNamespacedPod({ namespace: "default", body: hold });
    await fake.waitForPod("default", "holder", (p) => p.status?.phase === "Running");
    await core.createNamespacedPod({
      namespace: "default",
      body: gpuPod("next", 1, { tolerations: [GPU_TOLERATION] }),
    });
    const waiting = await fake.waitForPod("default", "next", (p) => scheduled(p)?.status === "False");
    expect(scheduled(waiting)?.message).toBe("0/1 nodes are available: 1 Insufficient nvidia.com/gpu.");
    const done = await fake.waitForPod("default", "next", (p) => p.status?.phase === "Succeeded");
    expect(done.spec.nodeName).toBe("only-gpu");
    expect(fake.pod("default", "holder")?.status?.phase).toBe("Succeeded");
  });

  it("nodeSelector picks among labelled nodes", async () => {
    const { fake, core } = await harness({
      nodes: [
        { name: "cpu-a", labels: { pool: "a" } },
        { name: "cpu-b", labels: { pool: "b" } },
      ],
    });
    await core.createNamespacedPod({
      namespace: "default",
      body: nodePod("to-b", "", { nodeSelector: { pool: "b" } }),
    });
    expect((await fake.waitForPod("default", "to-b", (p) => Boolean(p.spec.nodeName))).spec.nodeName).toBe(
      "cpu-b",
    );
    await core.createNamespacedPod({
      namespace: "default",
      body: nodePod("to-c", "", { nodeSelector: { pool: "c" } }),
    });
    const stuck = await fake.waitForPod("default", "to-c", (p) => scheduled(p)?.status === "False");
    expect(scheduled(stuck)?.message).toBe(
      "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector.",
    );
  });
});

describe("scheduling rules (unit)", () => {
  const cpu = nodeObject({ name: "cpu", labels: { zone: "z1" }, capacity: { cpu: "4", memory: "8Gi" } });
  const gpu = nodeObject(gpuNode("gpu", 2));
  const pod = (spec: Partial<Pod["spec"]>, resources?: Record<string, string>): Pod => ({
    metadata: { name: "p", uid: "u" },
    spec: {
      containers: [{ name: "c", image: "i", resources: resources ? { requests: resources } : undefined }],
      ...spec,
    },
  });

  it("matchExpressions In, NotIn, Exists, DoesNotExist and OR-ed terms", () => {
    const terms = (...matchExpressions: any[][]) => ({
      affinity: {
        nodeAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: {
            nodeSelectorTerms: matchExpressions.map((m) => ({ matchExpressions: m })),
          },
        },
      },
    });
    expect(filterNode(pod(terms([{ key: "zone", operator: "In", values: ["z1", "z2"] }])), cpu, [])).toEqual(
      [],
    );
    expect(
      filterNode(pod(terms([{ key: "zone", operator: "NotIn", values: ["z1"] }])), cpu, []),
    ).toHaveLength(1);
    expect(filterNode(pod(terms([{ key: "zone", operator: "Exists" }])), cpu, [])).toEqual([]);
    expect(filterNode(pod(terms([{ key: "zone", operator: "DoesNotExist" }])), cpu, [])).toHaveLength(1);
    expect(
      filterNode(
        pod(
          terms([{ key: "zone", operator: "In", values: ["nope"] }], [{ key: "zone", operator: "Exists" }]),
        ),
        cpu,
        [],
      ),
    ).toEqual([]);
  });

  it("tolerations: Exists, Equal with value, wrong effect", () => {
    const taint = (tolerations: any[]) => filterNode(pod({ tolerations }), gpu, []);
    expect(taint([])).toEqual(["node(s) had untolerated taint {nvidia.com/gpu: present}"]);
    expect(taint([{ key: "nvidia.com/gpu", operator: "Exists" }])).toEqual([]);
    expect(
      taint([{ key: "nvidia.com/gpu", operator: "Equal", value: "present", effect: "NoSchedule" }]),
    ).toEqual([]);
    expect(taint([{ key: "nvidia.com/gpu", operator: "Equal", value: "absent" }])).toHaveLength(1);
    expect(taint([{ key: "nvidia.com/gpu", operator: "Exists", effect: "NoExecute" }])).toHaveLength(1);
    expect(taint([{ operator: "Exists" }])).toEqual([]);
  });

  it("resource fit counts requests (limits as default) of pods already on the node", () => {
    const other: Pod = {
      ...pod({ nodeName: "cpu" }, { cpu: "3", memory: "1Gi" }),
      metadata: { name: "o", uid: "o" },
    };
    expect(filterNode(pod({}, { cpu: "1500m" }), cpu, [other])).toEqual(["Insufficient cpu"]);
    expect(filterNode(pod({}, { cpu: "1", memory: "7Gi" }), cpu, [other])).toEqual([]);
    expect(filterNode(pod({}, { cpu: "2", memory: "8Gi" }), cpu, [other])).toEqual([
      "Insufficient cpu",
      "Insufficient memory",
    ]);
    expect(schedule(pod({}, { cpu: "100" }), [], [])).toEqual({
      message: "no nodes available to schedule pods",
    });
    expect(schedule(pod({}, { cpu: "1" }), [cpu, gpu], [])).toEqual({ node: "cpu" });
  });
});
