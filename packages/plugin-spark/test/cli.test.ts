/**
 * The plugin loaded the way users load it: a project's `tern.config.ts` lists `k8s()` and
 * `spark()`, and `tern run` (the CLI, in its own process) runs a typed workflow whose Spark
 * step becomes a SparkApplication on the fake cluster.
 */
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import { createRequire } from "node:module";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import type { FakeKubernetes } from "@tern/testkit";
import { beforeAll, describe, expect, it } from "vitest";
import { SPARK_APPLICATIONS } from "../src/index.js";
import { FIXTURES, sparkCluster, tempDir } from "./helpers.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const pkgDir = path.resolve(here, "..");
const coreDir = path.dirname(createRequire(import.meta.url).resolve("@tern/core/package.json"));
const k8sDir = path.dirname(createRequire(import.meta.url).resolve("@tern/plugin-k8s/package.json"));
const zodDir = fs.realpathSync(path.join(coreDir, "node_modules/zod"));
const ternBin = path.resolve(coreDir, "../cli/dist/bin/tern.js");

let project: string;
let fake: FakeKubernetes;

beforeAll(async () => {
  fake = await sparkCluster();
  project = tempDir("tern-spark-cli-");
  fs.writeFileSync(
    path.join(project, "package.json"),
    JSON.stringify({ name: "spark-cli", private: true, type: "module" }),
  );
  fs.mkdirSync(path.join(project, "node_modules/@tern"), { recursive: true });
  fs.symlinkSync(coreDir, path.join(project, "node_modules/@tern/core"), "dir");
  fs.symlinkSync(k8sDir, path.join(project, "node_modules/@tern/plugin-k8s"), "dir");
  fs.symlinkSync(pkgDir, path.join(project, "node_modules/@tern/plugin-spark"), "dir");
  fs.symlinkSync(zodDir, path.join(project, "node_modules/zod"), "dir");
  fs.copyFileSync(path.join(FIXTURES, "app.mjs"), path.join(project, "app.mjs"));
  fs.writeFileSync(
    path.join(project, "tern.config.ts"),
    `import k8s from "@tern/plugin-k8s";
import spark from "@tern/plugin-spark";

export default {
  plugins: [
    k8s({ clusters: [{ name: "fake", kubeconfig: ${JSON.stringify(fake.kubeconfig())}, namespace: "default" }] }),
    spark({ defaultImage: "apache/spark:3.5.1", sparkConf: { "spark.sql.shuffle.partitions": "4" } }),
  ],
  backendConfig: { defaultForTaskTypes: { node: "inline" } },
};
`,
  );
  fs.writeFileSync(
    path.join(project, "flows.ts"),
    `import { task, workflow } from "@tern/core";
import { z } from "zod";

const Counts = z.object({ words: z.number(), top: z.string(), app: z.string(), partitions: z.string() });

export const wordCount = task(
  {
    name: "word_count",
    type: "spark",
    inputs: { lines: z.array(z.string()), minLength: z.number() },
    output: Counts,
    custom: {
      type: "Scala",
      mainApplicationFile: ${JSON.stringify(`local://${path.join(project, "app.mjs")}`)},
      arguments: ["count", "{{.inputs.minLength}}"],
    },
  },
  async (): Promise<z.infer<typeof Counts>> => { throw new Error("runs on Spark"); },
);

export const split = task(
  { name: "split", inputs: { text: z.string() }, output: z.array(z.string()) },
  async ({ text }) => text.split(";"),
);

export const words = workflow(
  { name: "words", inputs: { text: z.string() }, output: z.object({ words: z.number(), top: z.string(), partitions: z.string() }) },
  ({ text }) => {
    const c = wordCount({ lines: split({ text }), minLength: 2 });
    return { words: c.words, top: c.top, partitions: c.partitions };
  },
);
`,
  );
});

function tern(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: "1" };
    delete env.FORCE_COLOR;
    execFile(process.execPath, [ternBin, ...args], { cwd: project, env }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}

describe("spark() from tern.config.ts", () => {
  it("tern run runs the Spark step on the cluster and returns typed outputs", async () => {
    const r = await tern([
      "run",
      "flows.ts",
      "words",
      "--text",
      "to be or not;to be",
      "--json",
      "--no-cache",
    ]);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim());
    expect(out.outputs).toEqual({ words: 6, top: "be", partitions: "4" });
    const posted = fake.requests({ method: "POST", path: /\/sparkapplications$/ });
    expect(posted).toHaveLength(1);
    expect(
      (posted[0].body as { metadata: { labels: Record<string, string> } }).metadata.labels,
    ).toMatchObject({
      "tern.dev/task": "word_count",
    });
    await fake.waitFor(() => fake.cluster.list(SPARK_APPLICATIONS, "default").length === 0, {
      message: "the finished application deleted",
    });
  });
});
