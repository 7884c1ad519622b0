/**
 * Backends of examples/spark-ray/pipeline.ts: Kubernetes (for Spark's SparkApplications)
 * and Ray (an existing cluster's dashboard). Point them at real endpoints, or at the
 * testkit's fakes (see pipeline.ts):
 *
 *   TERN_KUBECONFIG  kubeconfig of a cluster with the spark-operator (default ~/.kube/config)
 *   TERN_NAMESPACE   namespace for the applications (default "default")
 *   RAY_ADDRESS      the Ray dashboard (default http://127.0.0.1:8265)
 */
import k8s from "@tern/plugin-k8s";
import ray from "@tern/plugin-ray";
import spark from "@tern/plugin-spark";

export default {
  plugins: [
    k8s({
      clusters: [
        {
          name: "main",
          kubeconfig: process.env.TERN_KUBECONFIG ?? "~/.kube/config",
          namespace: process.env.TERN_NAMESPACE ?? "default",
        },
      ],
    }),
    spark({ defaultImage: "apache/spark:3.5.1", sparkVersion: "3.5.1" }),
    ray({ address: process.env.RAY_ADDRESS ?? "http://127.0.0.1:8265" }),
  ],
  // TypeScript tasks run here, not as pods.
  backendConfig: { defaultForTaskTypes: { node: "inline" } },
};
