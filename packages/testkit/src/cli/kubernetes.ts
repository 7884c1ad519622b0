/** `tern-fake kubernetes`: the fake Kubernetes API plus a kubeconfig file pointing at it. */
import { rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { installKubeRay } from "../fakes/k8s/controllers/kuberay.js";
import { installMpiOperator } from "../fakes/k8s/controllers/mpi.js";
import { installSparkOperator } from "../fakes/k8s/controllers/spark.js";
import { type FakeKubernetes, startFakeKubernetes } from "../fakes/k8s/index.js";
import { type FakeService, int } from "./services.js";

/** Operators `--operators` can install: the custom resources they run. */
const OPERATORS: Record<string, { what: string; install(fake: FakeKubernetes): unknown }> = {
  mpi: { what: "MPIJob (kubeflow.org)", install: (f) => installMpiOperator(f) },
  spark: { what: "SparkApplication (sparkoperator.k8s.io)", install: (f) => installSparkOperator(f) },
  kuberay: { what: "RayJob (ray.io)", install: (f) => installKubeRay(f) },
};

function operatorList(value: string | boolean | undefined): string[] {
  if (value === undefined) return [];
  const names = String(value)
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  for (const n of names) {
    if (!(n in OPERATORS))
      throw new Error(
        `--operators: unknown operator "${n}"; choose from ${Object.keys(OPERATORS).join(", ")}`,
      );
  }
  return names;
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
    "--operators LIST     run these operators' controllers: mpi, spark, kuberay (comma-separated)",
  ],
  options: {
    port: { type: "string" },
    kubeconfig: { type: "string" },
    "gpu-nodes": { type: "string" },
    token: { type: "string" },
    namespace: { type: "string" },
    operators: { type: "string" },
  },
  async start(values) {
    const operators = operatorList(values.operators);
    const fake = await startFakeKubernetes({
      port: int(values.port, "port", 0),
      gpuNodes: int(values["gpu-nodes"], "gpu-nodes", 0),
      token: values.token as string | undefined,
      namespace: values.namespace as string | undefined,
    });
    for (const o of operators) OPERATORS[o].install(fake);
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
          ...(operators.length
            ? [`Operators: ${operators.map((o) => `${o}: ${OPERATORS[o].what}`).join("; ")}`]
            : []),
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
