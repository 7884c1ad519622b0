/** `tern-fake kubernetes`: the fake Kubernetes API plus a kubeconfig file pointing at it. */
import { rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { startFakeKubernetes } from "../fakes/k8s/index.js";
import type { FakeService } from "./services.js";

function int(value: string | boolean | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0)
    throw new Error(`--${name} must be a non-negative integer, got "${value}"`);
  return n;
}

export const kubernetesService: FakeService = {
  name: "kubernetes",
  summary: "Kubernetes API (pods run as local processes, any custom resource, watch, logs)",
  usage: [
    "--port N             port on 127.0.0.1 (default 0 = any free port)",
    "--kubeconfig FILE    write the kubeconfig here (default: a temp file, removed on exit)",
    "--gpu-nodes N        add N tainted GPU nodes with 8 x nvidia.com/gpu each (default 0)",
    "--token TOKEN        require this bearer token",
    "--namespace NS       namespace of the kubeconfig context (default: default)",
  ],
  options: {
    port: { type: "string" },
    kubeconfig: { type: "string" },
    "gpu-nodes": { type: "string" },
    token: { type: "string" },
    namespace: { type: "string" },
  },
  async start(values) {
    const fake = await startFakeKubernetes({
      port: int(values.port, "port", 0),
      gpuNodes: int(values["gpu-nodes"], "gpu-nodes", 0),
      token: values.token as string | undefined,
      namespace: values.namespace as string | undefined,
    });
    const given = values.kubeconfig as string | undefined;
    const file = path.resolve(given ?? path.join(os.tmpdir(), `tern-fake-kubeconfig-${fake.port}.yaml`));
    writeFileSync(file, fake.kubeconfig(), { mode: 0o600 });
    const nodes = fake
      .nodes()
      .map((n) => {
        const gpus = n.status?.allocatable?.["nvidia.com/gpu"];
        return `${n.metadata.name} (cpu ${n.status?.allocatable?.cpu}, memory ${n.status?.allocatable?.memory}${gpus ? `, ${gpus} x nvidia.com/gpu` : ""})`;
      })
      .join(", ");
    return {
      describe: () =>
        [
          `Fake Kubernetes API listening on ${fake.url}`,
          `Nodes: ${nodes}`,
          `Kubeconfig: ${file}`,
          "Connect with:",
          `  KUBECONFIG=${file} kubectl get pods`,
          `  new KubeConfig().loadFromFile(${JSON.stringify(file)})   // @kubernetes/client-node`,
        ].join("\n"),
      async close() {
        await fake.close();
        if (!given) rmSync(file, { force: true });
      },
    };
  },
};
