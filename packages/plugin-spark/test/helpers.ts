/**
 * Shared set-up for the Spark plugin tests: fake clusters with the testkit's fake
 * spark-operator (closed after each file), plugin instances on them (sharing a `k8s()` pool,
 * or with clusters of their own), and `spark` task specs running `fixtures/app.mjs`.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import {
  type AnyTask,
  CONTRACT_VERSION,
  compile,
  definePlugin,
  type Json,
  type TaskSpec,
  type TernPlugin,
  task,
} from "@tern/core";
import k8s, { type ClusterOptions, type K8sOptions } from "@tern/plugin-k8s";
import {
  type FakeKubernetes,
  type FakeKubernetesOptions,
  installSparkOperator,
  resolveBackendPlugin,
  type SparkOperatorOptions,
  startFakeKubernetes,
} from "@tern/testkit";
import { afterAll } from "vitest";
import { z } from "zod";
import spark, { type SparkOptions, type SparkPlugin } from "../src/index.js";

export const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), "fixtures");
/** The test application, as a path inside the "image" (the fake runs it from disk). */
export const APP = `local://${path.join(FIXTURES, "app.mjs")}`;

const fakes: FakeKubernetes[] = [];
const dirs: string[] = [];

afterAll(async () => {
  await Promise.all(fakes.splice(0).map((f) => f.close()));
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

/** A fake cluster with the fake spark-operator, closed after the test file. */
export async function sparkCluster(
  opts: FakeKubernetesOptions = {},
  operator: SparkOperatorOptions = {},
): Promise<FakeKubernetes> {
  const f = await startFakeKubernetes({
    schedulingDelayMs: 2,
    containerStartDelayMs: 2,
    maxGracePeriodMs: 500,
    ...opts,
  });
  fakes.push(f);
  installSparkOperator(f, { pollMs: 10, ...operator });
  return f;
}

/** A temporary directory, removed after the test file. */
export function tempDir(prefix = "tern-spark-test-"): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  dirs.push(d);
  return d;
}

export function clusterOf(fake: FakeKubernetes, name = "fake"): ClusterOptions {
  return { name, kubeconfig: fake.kubeconfig(), namespace: "default" };
}

/** k8s() options for the tests: short health checks and retries. */
export function k8sOptions(clusters: ClusterOptions[], extra: Partial<K8sOptions> = {}): K8sOptions {
  return {
    clusters,
    healthCheckIntervalMs: 300,
    healthCheckTimeoutMs: 1000,
    apiRetry: { attempts: 3, baseMs: 20, maxMs: 200 },
    ...extra,
  };
}

/** spark() options for the tests. */
export function sparkOptions(extra: SparkOptions = {}): SparkOptions {
  return { defaultImage: "apache/spark:3.5.1", serviceAccount: "spark", ...extra };
}

/** `k8s()` and `spark()` registered together, as a tern.config.ts lists them. */
export function withK8s(k8sPlugin: TernPlugin, sparkPlugin: TernPlugin): TernPlugin {
  return definePlugin({
    name: "k8s + spark",
    contractVersion: CONTRACT_VERSION,
    async register(c) {
      await sparkPlugin.register(c);
      await k8sPlugin.register(c);
    },
  });
}

/** A Spark plugin instance sharing the pool of a `k8s()` on `fake`. */
export function sharedPlugin(fake: FakeKubernetes, extra: SparkOptions = {}): Promise<SparkPlugin> {
  return resolveBackendPlugin<SparkPlugin>(
    withK8s(k8s(k8sOptions([clusterOf(fake)])), spark(sparkOptions(extra))),
    "spark",
  );
}

/** A Spark plugin instance with a pool of its own on `fake`. */
export function ownPlugin(fake: FakeKubernetes, extra: SparkOptions = {}): Promise<SparkPlugin> {
  return resolveBackendPlugin<SparkPlugin>(
    spark(
      sparkOptions({
        clusters: [clusterOf(fake)],
        healthCheckIntervalMs: 300,
        apiRetry: { attempts: 3, baseMs: 20, maxMs: 200 },
        ...extra,
      }),
    ),
    "spark",
  );
}

/** A `spark` task definition running `fixtures/app.mjs <arguments…>`. */
export function sparkTaskDef(
  name: string,
  args: string[],
  opts: {
    inputs?: Record<string, z.ZodType>;
    output?: z.ZodType;
    custom?: Record<string, Json>;
    extra?: Record<string, unknown>;
  } = {},
): AnyTask {
  return task(
    {
      name,
      type: "spark",
      inputs: opts.inputs ?? {},
      output: opts.output ?? z.null(),
      custom: {
        // The fake operator runs a .mjs main file with node; the type only matters to spark-submit.
        type: "Scala",
        mainApplicationFile: APP,
        arguments: args,
        ...(opts.custom ?? {}),
      },
      ...(opts.extra ?? {}),
    },
    async () => {
      throw new Error("spark tasks run on the cluster");
    },
  ) as AnyTask;
}

/** The compiled spec of a task definition. */
export function specOf(def: AnyTask): TaskSpec {
  return Object.values(compile(def).spec.tasks)[0];
}

/** A `spark` task spec running `fixtures/app.mjs <arguments…>`. */
export function sparkTask(...a: Parameters<typeof sparkTaskDef>): TaskSpec {
  return specOf(sparkTaskDef(...a));
}
