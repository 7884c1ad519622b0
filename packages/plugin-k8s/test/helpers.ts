/**
 * Shared set-up for the plugin tests: fake clusters (closed after each file), the plugin
 * options that point at them, container task specs, and request counting.
 */
import * as fs from "node:fs";
import { createRequire } from "node:module";
import * as os from "node:os";
import * as path from "node:path";
import { type AnyTask, compile, type Json, type TaskSpec, task } from "@tern/core";
import {
  type FakeKubernetes,
  type FakeKubernetesOptions,
  type RecordedRequest,
  startFakeKubernetes,
  startTestEngine,
  type TestEngine,
  type TestEngineOptions,
} from "@tern/testkit";
import { afterAll, afterEach } from "vitest";
import { z } from "zod";
import k8s, { type ClusterOptions, type K8sOptions } from "../src/index.js";

export const CORE_DIR = path.dirname(createRequire(import.meta.url).resolve("@tern/core/package.json"));
export const ZOD_DIR = path.dirname(
  createRequire(path.join(CORE_DIR, "package.json")).resolve("zod/package.json"),
);
/** `tern-execute` of the workspace's core, as pods run it. */
export const TERN_EXECUTE = path.join(CORE_DIR, "dist", "bin", "tern-execute.js");

const fakes: FakeKubernetes[] = [];
const dirs: string[] = [];
const engines: TestEngine[] = [];

afterEach(async () => {
  await Promise.all(engines.splice(0).map((e) => e.close()));
});

afterAll(async () => {
  await Promise.all(fakes.splice(0).map((f) => f.close()));
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

/** A fake cluster, closed after the test file. */
export async function fakeCluster(opts: FakeKubernetesOptions = {}): Promise<FakeKubernetes> {
  const f = await startFakeKubernetes({
    schedulingDelayMs: 2,
    containerStartDelayMs: 2,
    maxGracePeriodMs: 500,
    ...opts,
  });
  fakes.push(f);
  return f;
}

/** A temporary directory, removed after the test file. */
export function tempDir(prefix = "tern-k8s-test-"): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  dirs.push(d);
  return d;
}

/** A cluster entry of the plugin options for a fake. */
export function clusterOf(
  fake: FakeKubernetes,
  name = "fake",
  labels?: Record<string, string>,
): ClusterOptions {
  return { name, kubeconfig: fake.kubeconfig(), namespace: "default", ...(labels ? { labels } : {}) };
}

/** Plugin options for tests: tern-execute of this workspace, short grace periods and retries. */
export function testOptions(clusters: ClusterOptions[], extra: Partial<K8sOptions> = {}): K8sOptions {
  return {
    clusters,
    nodeCommand: [process.execPath, TERN_EXECUTE],
    defaultImage: "tern/runtime:test",
    imagePullGraceMs: 400,
    abortGracePeriodSeconds: 1,
    healthCheckIntervalMs: 300,
    healthCheckTimeoutMs: 1000,
    apiRetry: { attempts: 5, baseMs: 20, maxMs: 1500 },
    ...extra,
  };
}

/**
 * A test engine with the k8s plugins on these clusters (closed after each test). `node`
 * tasks go to `k8s-pod`: with the engine's built-in `inline` backend also able to run
 * them, the mapping must be explicit.
 */
export async function k8sEngine(
  clusters: ClusterOptions[],
  extra: Partial<K8sOptions> = {},
  engine: Partial<TestEngineOptions> = {},
): Promise<TestEngine> {
  const te = await startTestEngine({
    catalog: false,
    pollMaxMs: 200,
    plugins: [k8s(testOptions(clusters, extra))],
    backendConfig: { defaultForTaskTypes: { node: "k8s-pod" } },
    ...engine,
  });
  engines.push(te);
  return te;
}

/** The compiled spec of a task definition. */
export function specOf(def: AnyTask): TaskSpec {
  return Object.values(compile(def).spec.tasks)[0];
}

/** A `node -e <script>` container task, its spec and inputs. */
export function nodeScriptTask(
  name: string,
  script: string,
  opts: {
    inputs?: Record<string, z.ZodType>;
    output?: z.ZodType;
    args?: string[];
    extra?: Record<string, unknown>;
    custom?: Record<string, Json>;
  } = {},
): AnyTask {
  return task(
    {
      name,
      type: "container",
      inputs: opts.inputs ?? {},
      output: opts.output ?? z.null(),
      custom: {
        image: "node:20-slim",
        command: [process.execPath, "-e", script],
        ...(opts.args ? { args: opts.args } : {}),
        ...(opts.custom ?? {}),
      },
      ...(opts.extra ?? {}),
    },
    async () => {
      throw new Error("container tasks do not run in this process");
    },
  ) as AnyTask;
}

/** A script line that writes `expr` (JavaScript) as the task's output. */
export const writeOutput = (expr: string) =>
  `require("fs").writeFileSync(process.env.TERN_OUTPUTS_PATH, JSON.stringify(${expr}));`;

/** Requests that touch one pod or create pods (not list/watch streams, not logs). */
export function podCalls(fake: FakeKubernetes): RecordedRequest[] {
  return fake
    .requests()
    .filter(
      (r) =>
        r.query.watch !== "true" &&
        (/^\/api\/v1\/namespaces\/[^/]+\/pods\/[^/]+$/.test(r.path) ||
          (r.method === "POST" && /\/pods$/.test(r.path))),
    );
}

/** POSTed pod bodies (the specs the plugin sent), in order. */
export function postedPods(fake: FakeKubernetes): any[] {
  return fake.requests({ method: "POST", path: /\/pods$/ }).map((r) => r.body as any);
}
