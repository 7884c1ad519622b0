/**
 * End to end through `createEngine`, loaded as a `tern.config.ts` lists the plugins
 * (`k8s()` and `spark()`): a typed workflow whose TypeScript steps run in-process and whose
 * Spark step is a SparkApplication run by the fake spark-operator; and the retry budgets a
 * user failure and a system failure spend.
 */
import { createEngine, type LocalEngine, task, workflow } from "@tern/core";
import k8s from "@tern/plugin-k8s";
import type { FakeKubernetes } from "@tern/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import spark, { SPARK_APPLICATIONS } from "../src/index.js";
import { APP, clusterOf, k8sOptions, sparkCluster, sparkOptions, tempDir } from "./helpers.js";

const Counts = z.object({ words: z.number(), top: z.string(), app: z.string(), partitions: z.string() });
const FAST_RETRY = { base: "10ms", max: "20ms", jitter: 0 } as const;

const prepare = task(
  { name: "prepare", inputs: { text: z.string() }, output: z.array(z.string()) },
  async ({ text }) => text.split("\n").map((l) => l.trim().toLowerCase()),
);

const wordCount = task(
  {
    name: "word_count",
    type: "spark",
    inputs: { lines: z.array(z.string()), minLength: z.number() },
    output: Counts,
    custom: {
      type: "Scala", // the fake operator runs the .mjs main file with node
      mainApplicationFile: APP,
      arguments: ["count", "{{.inputs.minLength}}"],
      sparkConf: { "spark.sql.shuffle.partitions": 16 },
      executor: { instances: 2, memory: "1g" },
    },
  },
  async (): Promise<z.infer<typeof Counts>> => {
    throw new Error("spark tasks run on the cluster");
  },
);

const report = task(
  { name: "report", inputs: { counts: Counts }, output: z.string() },
  async ({ counts }) => `${counts.words} words; most frequent: ${counts.top}`,
);

const pipeline = workflow(
  {
    name: "spark_pipeline",
    inputs: { text: z.string(), minLength: z.number().default(4) },
    output: z.object({ summary: z.string(), words: z.number(), partitions: z.string() }),
  },
  ({ text, minLength }) => {
    const counts = wordCount({ lines: prepare({ text }), minLength });
    return { summary: report({ counts }), words: counts.words, partitions: counts.partitions };
  },
);

const flaky = task(
  {
    name: "spark_flaky",
    type: "spark",
    output: z.null(),
    retries: { user: 1, system: 0, backoff: FAST_RETRY },
    custom: { type: "Scala", mainApplicationFile: APP, arguments: ["fail", "5"] },
  },
  async () => null,
);

const unsubmittable = task(
  {
    name: "spark_unsubmittable",
    type: "spark",
    output: z.null(),
    retries: { user: 0, system: 2, backoff: FAST_RETRY },
    custom: { type: "Scala", mainApplicationFile: "file:///tmp/tern-no-such-dir/job.mjs" },
  },
  async () => null,
);

let fake: FakeKubernetes;
let local: LocalEngine;

beforeAll(async () => {
  fake = await sparkCluster();
  local = await createEngine({
    workDir: tempDir("tern-spark-e2e-"),
    catalog: false,
    plugins: [k8s(k8sOptions([clusterOf(fake)])), spark(sparkOptions())],
    // `node` tasks could run in-process or as pods: this project keeps them in-process.
    backendConfig: { defaultForTaskTypes: { node: "inline" } },
  });
});

afterAll(async () => {
  await local?.close();
});

describe("spark tasks through the engine", () => {
  it("runs a typed workflow whose middle step is a Spark application", async () => {
    const result = await local.run(pipeline, {
      text: "Spark counts words\nTern types them\nspark reads inputs and writes outputs",
    });
    expect(result.error, JSON.stringify(result.error)).toBeUndefined();
    expect(result.phase).toBe("succeeded");
    expect(result.outputs).toEqual({
      summary: "11 words; most frequent: spark",
      words: 11,
      partitions: "16",
    });
    const node = result.nodes.find((n) => n.id === "word_count");
    expect(node?.attempts).toBe(1);
    // Finished applications are deleted by finalize, and their pods with them.
    await fake.waitFor(
      () => fake.cluster.list(SPARK_APPLICATIONS, "default").length === 0 && fake.pods().length === 0,
      {
        message: "applications and pods left after the run",
      },
    );
  });

  it("a failing driver spends the user retry budget; a failed submission the system budget", async () => {
    const a = await local.run(flaky, {});
    expect(a.phase).toBe("failed");
    expect(a.error).toMatchObject({ kind: "user" });
    expect(a.error?.message).toContain("driver container failed with ExitCode: 5");
    expect(a.nodes[0].attempts).toBe(2);

    const b = await local.run(unsubmittable, {});
    expect(b.phase).toBe("failed");
    expect(b.error).toMatchObject({ kind: "system" });
    expect(b.error?.message).toContain("does not exist");
    expect(b.nodes[0].attempts).toBe(3);
  });

  it("refuses a spark task whose template names an unknown input before running anything", async () => {
    const bad = task(
      {
        name: "spark_bad_template",
        type: "spark",
        inputs: { day: z.string() },
        output: z.null(),
        custom: {
          type: "Python",
          mainApplicationFile: "local:///opt/etl.py",
          arguments: ["{{.inputs.date}}"],
        },
      },
      async () => null,
    );
    fake.resetRequests();
    // The engine asks the plugin to validate every task before the execution starts.
    await expect(local.run(bad, { day: "2024-06-01" })).rejects.toMatchObject({
      code: "TERN_E_SPEC_INVALID",
      message:
        'task "spark_bad_template": custom.arguments refers to {{.inputs.date}}, which is not an input of the task',
      details: { task: "spark_bad_template", field: "custom.arguments", input: "date" },
    });
    expect(fake.requests({ method: "POST" })).toEqual([]);
  });
});
