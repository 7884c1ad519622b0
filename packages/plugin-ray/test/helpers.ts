/**
 * Shared set-up for the plugin tests: fake Ray dashboards and fake Kubernetes clusters with
 * the fake KubeRay operator (closed after each file), Ray task specs whose entrypoints are
 * small Node scripts, and plugin options pointing at the fakes.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { type AnyTask, compile, type Json, type TaskSpec, task } from "@tern/core";
import {
  type FakeKubernetes,
  type FakeRay,
  type FakeRayOptions,
  installKubeRay,
  startFakeKubernetes,
  startFakeRay,
  startTestEngine,
  type TestEngine,
} from "@tern/testkit";
import { afterAll, afterEach } from "vitest";
import { z } from "zod";
import ray, { type RayOptions } from "../src/index.js";

const closers: (() => Promise<void>)[] = [];
const dirs: string[] = [];
const engines: TestEngine[] = [];

afterEach(async () => {
  await Promise.all(engines.splice(0).map((e) => e.close()));
});

afterAll(async () => {
  await Promise.all(closers.splice(0).map((c) => c()));
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

/** A fake Ray dashboard, closed after the test file. */
export async function fakeRay(opts: FakeRayOptions = {}): Promise<FakeRay> {
  const f = await startFakeRay({ pendingMs: 5, stopGraceMs: 300, ...opts });
  closers.push(() => f.close());
  return f;
}

/** A fake Kubernetes cluster with the fake KubeRay operator, closed after the test file. */
export async function fakeKubeRay(): Promise<FakeKubernetes> {
  const f = await startFakeKubernetes({
    schedulingDelayMs: 2,
    containerStartDelayMs: 2,
    maxGracePeriodMs: 300,
  });
  installKubeRay(f, { pollMs: 10 });
  closers.push(() => f.close());
  return f;
}

/** A temporary directory, removed after the test file. */
export function tempDir(prefix = "tern-ray-test-"): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  dirs.push(d);
  return d;
}

/** Quotes a string for `sh`. */
export const sh = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** A `node -e <script>` entrypoint (extra shell words appended, templates allowed). */
export const nodeEntrypoint = (script: string, ...args: string[]) =>
  [sh(process.execPath), "-e", sh(script), ...args].join(" ");

/** A script line that writes `expr` (JavaScript) as the task's output. */
export const writeOutput = (expr: string) =>
  `require("fs").writeFileSync(process.env.TERN_OUTPUTS_PATH, JSON.stringify(${expr}));`;

/** Options for a `ray()` on a fake dashboard: short retries. */
export function jobsOptions(fake: FakeRay, extra: Partial<RayOptions> = {}): RayOptions {
  return { address: fake.url, apiRetry: { attempts: 4, baseMs: 20, maxMs: 200 }, ...extra };
}

/** Options for a `ray()` with KubeRay on a fake cluster. */
export function kuberayOptions(fake: FakeKubernetes, extra: Partial<RayOptions> = {}): RayOptions {
  return {
    kuberay: {
      clusters: [{ name: "fake", kubeconfig: fake.kubeconfig(), namespace: "default" }],
      healthCheckIntervalMs: 300,
      healthCheckTimeoutMs: 1000,
    },
    apiRetry: { attempts: 4, baseMs: 20, maxMs: 200 },
    ...extra,
  };
}

/** A Ray task definition (type `ray` unless given) whose body never runs in this process. */
export function rayTask(
  name: string,
  custom: Record<string, Json>,
  opts: {
    type?: string;
    inputs?: Record<string, z.ZodType>;
    output?: z.ZodType;
    extra?: Record<string, unknown>;
  } = {},
): AnyTask {
  return task(
    {
      name,
      type: opts.type ?? "ray",
      inputs: opts.inputs ?? {},
      output: opts.output ?? z.null(),
      custom,
      ...(opts.extra ?? {}),
    },
    async () => {
      throw new Error("Ray tasks do not run in this process");
    },
  ) as AnyTask;
}

/** The compiled spec of a task definition. */
export function specOf(def: AnyTask): TaskSpec {
  return Object.values(compile(def).spec.tasks)[0];
}

/** A test engine with the Ray plugins (closed after each test). */
export async function rayEngine(options: RayOptions): Promise<TestEngine> {
  const te = await startTestEngine({ catalog: false, pollMaxMs: 100, plugins: [ray(options)] });
  engines.push(te);
  return te;
}
