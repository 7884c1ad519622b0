/**
 * examples/spark-ray end to end on the loopback fakes, the way a user runs it: `tern run`
 * in its own process, the plugins loaded from the example's tern.config.ts only, Spark
 * applications on the fake Kubernetes API (spark-operator controller) and Ray jobs on the
 * fake dashboard. The job scripts are Python (standard library only): python3 must be on
 * the machine.
 *
 * Needs the built packages: `pnpm build` first.
 */
import { execFile, execFileSync } from "node:child_process";
import * as fs from "node:fs";
import { createRequire } from "node:module";
import * as os from "node:os";
import * as path from "node:path";
import {
  type FakeKubernetes,
  type FakeRay,
  installSparkOperator,
  startFakeKubernetes,
  startFakeRay,
} from "@tern/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const repo = path.resolve(import.meta.dirname, "../..");
const ternBin = path.join(repo, "packages/cli/dist/bin/tern.js");
const require = createRequire(path.join(repo, "packages/core/package.json"));
const zodDir = path.dirname(require.resolve("zod/package.json"));

let k8s: FakeKubernetes;
let ray: FakeRay;
let project: string;
let kubeconfig: string;

type RunJson = {
  phase: string;
  outputs: { accuracy: number; trainAccuracy: number; lines: string[] } | null;
  error: { kind: string; message: string; node: string } | null;
  nodes: { id: string; phase: string; cached: boolean }[];
};

/** `tern run` of the example in the temp project; resolves with the exit code and the --json object. */
function ternRun(
  env: Record<string, string> = {},
  args: string[] = [],
): Promise<{ code: number; json: RunJson; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [
        ternBin,
        "run",
        "examples/spark-ray/pipeline.ts",
        "iris_spark_ray",
        "--config",
        "examples/spark-ray/tern.config.ts",
        "--dataset",
        "examples/data/iris.csv",
        "--json",
        ...args,
      ],
      {
        cwd: project,
        env: { ...process.env, TERN_KUBECONFIG: kubeconfig, RAY_ADDRESS: ray.url, ...env },
        timeout: 120_000,
      },
      (err, stdout, stderr) => {
        const code = err ? ((err as { code?: number }).code ?? 1) : 0;
        try {
          resolve({ code: typeof code === "number" ? code : 1, json: JSON.parse(stdout), stderr });
        } catch {
          reject(new Error(`tern run printed no JSON (exit ${code}): ${stdout}\n${stderr}`));
        }
      },
    );
  });
}

const cached = (r: RunJson) => Object.fromEntries(r.nodes.map((n) => [n.id, n.cached]));
/** SparkApplications created on the fake cluster (finished ones are deleted after their attempt). */
const sparkApps = () =>
  k8s.requests().filter((r) => r.method === "POST" && r.path.endsWith("/sparkapplications")).length;

beforeAll(async () => {
  try {
    execFileSync("python3", ["--version"], { stdio: "pipe" });
  } catch {
    throw new Error(
      "python3 is not on this machine: the example's Ray and Spark jobs are Python scripts (install python3)",
    );
  }
  expect(fs.existsSync(ternBin), `${ternBin} is missing: run pnpm build first`).toBe(true);
  k8s = await startFakeKubernetes();
  installSparkOperator(k8s);
  ray = await startFakeRay();
  // The example in a project of its own, so its .tern cache starts empty.
  project = fs.mkdtempSync(path.join(os.tmpdir(), "tern-spark-ray-"));
  kubeconfig = path.join(project, "kubeconfig.yaml");
  fs.writeFileSync(kubeconfig, k8s.kubeconfig());
  fs.writeFileSync(
    path.join(project, "package.json"),
    JSON.stringify({ name: "spark-ray-example", private: true, type: "module" }),
  );
  for (const dir of ["examples/spark-ray", "examples/lib"])
    fs.cpSync(path.join(repo, dir), path.join(project, dir), { recursive: true });
  fs.mkdirSync(path.join(project, "examples/data"), { recursive: true });
  fs.copyFileSync(path.join(repo, "examples/data/iris.csv"), path.join(project, "examples/data/iris.csv"));
  fs.mkdirSync(path.join(project, "node_modules/@tern"), { recursive: true });
  for (const p of ["core", "plugin-k8s", "plugin-ray", "plugin-spark"])
    fs.symlinkSync(path.join(repo, "packages", p), path.join(project, "node_modules/@tern", p), "dir");
  fs.symlinkSync(zodDir, path.join(project, "node_modules/zod"), "dir");
}, 60_000);

afterAll(async () => {
  await ray?.close();
  await k8s?.close();
  if (project) fs.rmSync(project, { recursive: true, force: true });
});

describe("examples/spark-ray", () => {
  it("prepares in TypeScript, trains on Ray, aggregates on Spark: typed outputs end to end", async () => {
    const { code, json, stderr } = await ternRun();
    expect(json.error, stderr).toBeNull();
    expect(code).toBe(0);
    expect(json.phase).toBe("succeeded");
    expect(json.nodes.map((n) => [n.id, n.phase])).toEqual([
      ["prepare_iris", "succeeded"],
      ["train_on_ray", "succeeded"],
      ["aggregate_on_spark", "succeeded"],
      ["report_iris", "succeeded"],
    ]);
    expect(Object.values(cached(json)).some(Boolean)).toBe(false);
    // Softmax regression on iris: well above chance (1/3) on the rows it never saw.
    expect(json.outputs!.accuracy).toBeGreaterThanOrEqual(0.85);
    expect(json.outputs!.trainAccuracy).toBeGreaterThanOrEqual(0.9);
    expect(json.outputs!.lines.slice(0, 3).map((l) => l.split(/\s+/)[0])).toEqual([
      "setosa",
      "versicolor",
      "virginica",
    ]);
    expect(json.outputs!.lines[3]).toBe("150 rows; trained 300 epochs on Ray, scored on Spark");
    // The work really went to the fakes: one Ray job (its entrypoint templated from the
    // typed inputs) and one SparkApplication whose driver ran the script.
    const jobs = ray.jobs();
    expect(jobs).toHaveLength(1);
    expect(jobs[0].entrypoint).toBe("python3 train.py --epochs 300 --learning-rate 0.5");
    expect(jobs[0].status).toBe("SUCCEEDED");
    expect(sparkApps()).toBe(1);
  });

  it("runs again from the cache: no new Ray job or Spark application", async () => {
    const { code, json } = await ternRun();
    expect(code).toBe(0);
    expect(cached(json)).toMatchObject({ prepare_iris: true, train_on_ray: true, aggregate_on_spark: true });
    expect(ray.jobs()).toHaveLength(1);
    expect(sparkApps()).toBe(1);
  });

  it("trains again when the training script changes, and nothing before it", async () => {
    const script = path.join(project, "examples/spark-ray/jobs/train.py");
    fs.appendFileSync(script, "\n# edited\n");
    const { code, json } = await ternRun();
    expect(code).toBe(0);
    expect(cached(json)).toMatchObject({ prepare_iris: true, train_on_ray: false });
    expect(ray.jobs()).toHaveLength(2);
  });

  it("a Spark application file that does not exist fails the node, naming it, with exit code 1", async () => {
    // Another learning rate: a new model, so the Spark step cannot come from the cache.
    const { code, json } = await ternRun({ TERN_EXAMPLE_SPARK_APP: "local:///nonexistent/aggregate.py" }, [
      "--learningRate",
      "0.4",
    ]);
    expect(code).toBe(1);
    expect(json.phase).toBe("failed");
    expect(json.error?.node).toBe("aggregate_on_spark");
    // The driver said why before it exited: the end of its log is in the error.
    expect(json.error?.message).toMatch(/driver log ends with:[\s\S]*nonexistent\/aggregate.py/);
  });
});
