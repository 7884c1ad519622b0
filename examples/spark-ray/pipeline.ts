/**
 * Iris on Spark and Ray: a TypeScript task prepares the data, a Ray job trains a model
 * (jobs/train.py), a Spark application scores and aggregates the held-out rows
 * (jobs/aggregate.py), and a TypeScript task reports. Typed end to end: each job reads
 * its inputs from Tern and writes a JSON output that is checked against the task's schema.
 *
 * The backends come from ./tern.config.ts (k8s + spark + ray). On the loopback fakes:
 *
 *   pnpm build
 *   node packages/testkit/dist/bin/tern-fake.js kubernetes --operators spark --kubeconfig /tmp/fake-kube.yaml &
 *   node packages/testkit/dist/bin/tern-fake.js ray --port 8265 &
 *   TERN_KUBECONFIG=/tmp/fake-kube.yaml RAY_ADDRESS=http://127.0.0.1:8265 \
 *     pnpm tern run examples/spark-ray/pipeline.ts iris_spark_ray \
 *       --config examples/spark-ray/tern.config.ts --dataset examples/data/iris.csv
 *
 * Run it twice: the second run is all cache hits. Edit jobs/train.py and only training and
 * what follows it run again (the job tasks' cache versions are digests of their scripts).
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { dataframe, readDataFrame, t, task, workflow } from "@tern/core";
import { z } from "zod";
import { FEATURES, parseIris } from "../lib/iris.js";

/** Where the job scripts are: the fakes run them from here; a real cluster from its image or working_dir. */
const JOBS_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), "jobs");
const RAY_WORKING_DIR = process.env.TERN_EXAMPLE_RAY_WORKING_DIR ?? JOBS_DIR;
const SPARK_APP = process.env.TERN_EXAMPLE_SPARK_APP ?? `local://${JOBS_DIR}/aggregate.py`;

/** A job's cache version: its script and the helper it imports, so editing them invalidates its entries. */
function scriptVersion(...files: string[]): string {
  const h = createHash("sha256");
  for (const f of files) h.update(readFileSync(path.join(JOBS_DIR, f)));
  return h.digest("hex").slice(0, 16);
}

const PreparedRow = z.object({
  sepal_length: z.number(),
  sepal_width: z.number(),
  petal_length: z.number(),
  petal_width: z.number(),
  species: z.string(),
  split: z.enum(["train", "test"]),
});
const PreparedRows = t.dataframe({ columns: PreparedRow.shape });

const Model = z.object({
  classes: z.array(z.string()),
  features: z.array(z.string()),
  means: z.array(z.number()),
  stds: z.array(z.number()),
  weights: z.array(z.array(z.number())),
  bias: z.array(z.number()),
  epochs: z.number().int(),
  finalLoss: z.number(),
  trainAccuracy: z.number().min(0).max(1),
});

const SpeciesStats = z.object({
  species: z.string(),
  count: z.number().int(),
  accuracy: z.number().min(0).max(1),
  meanPetalLength: z.number(),
  meanSepalLength: z.number(),
});
const Scores = z.object({
  split: z.enum(["train", "test"]),
  rows: z.number().int(),
  accuracy: z.number().min(0).max(1),
  species: z.array(SpeciesStats),
});

/** TypeScript: parse the CSV, keep complete rows, and hold out every fifth row of each species for testing. */
export const prepare = task(
  {
    name: "prepare_iris",
    inputs: { dataset: t.file({ format: "csv" }) },
    output: z.object({ rows: PreparedRows, train: z.number().int(), test: z.number().int() }),
    cache: true,
  },
  async ({ dataset }, ctx) => {
    const parsed = parseIris(readFileSync(dataset.path!, "utf8"));
    const seen = new Map<string, number>();
    const rows = parsed
      .filter((r) => FEATURES.every((f) => Number.isFinite(r[f])))
      .map((r) => {
        const i = seen.get(r.species) ?? 0;
        seen.set(r.species, i + 1);
        return { ...r, split: i % 5 === 4 ? ("test" as const) : ("train" as const) };
      });
    const test = rows.filter((r) => r.split === "test").length;
    ctx.logger.info(`prepared ${rows.length} rows: ${rows.length - test} to train on, ${test} held out`);
    return { rows: dataframe(rows), train: rows.length - test, test };
  },
);

/** Ray: train on the training rows, on an existing cluster through its Jobs API. */
export const train = task(
  {
    name: "train_on_ray",
    type: "ray",
    inputs: { rows: PreparedRows, epochs: z.number().int().min(1), learningRate: z.number().positive() },
    output: Model,
    cache: { version: scriptVersion("train.py", "tern_job.py") },
    retries: { user: 0, system: 2 },
    custom: {
      entrypoint: "python3 train.py --epochs {{.inputs.epochs}} --learning-rate {{.inputs.learningRate}}",
      runtimeEnv: { working_dir: RAY_WORKING_DIR, env_vars: { PYTHONDONTWRITEBYTECODE: "1" } },
      numCpus: 1,
    },
  },
  async (): Promise<z.infer<typeof Model>> => {
    throw new Error("train_on_ray runs as a Ray job: load @tern/plugin-ray in tern.config.ts");
  },
);

/** Spark: score the held-out rows with the model and aggregate per species. */
export const aggregate = task(
  {
    name: "aggregate_on_spark",
    type: "spark",
    inputs: { rows: PreparedRows, model: Model },
    output: Scores,
    cache: { version: scriptVersion("aggregate.py", "tern_job.py") },
    retries: { user: 0, system: 2 },
    custom: {
      mainApplicationFile: SPARK_APP,
      arguments: ["--split", "test"],
      sparkConf: { "spark.sql.shuffle.partitions": 4 },
      driver: { cores: 1, memory: "512m" },
      executor: { instances: 1, cores: 1, memory: "512m" },
    },
  },
  async (): Promise<z.infer<typeof Scores>> => {
    throw new Error(
      "aggregate_on_spark runs as a Spark application: load @tern/plugin-spark in tern.config.ts",
    );
  },
);

/** TypeScript: one line per species and the headline numbers. */
export const report = task(
  {
    name: "report_iris",
    inputs: { scores: Scores, model: Model, rows: PreparedRows },
    output: z.object({ accuracy: z.number(), trainAccuracy: z.number(), lines: z.array(z.string()) }),
  },
  async ({ scores, model, rows }) => {
    const all = await readDataFrame(rows);
    const lines = scores.species.map(
      (s) =>
        `${s.species.padEnd(16)} ${String(s.count).padStart(3)} held out  accuracy ${s.accuracy.toFixed(3)}  mean petal ${s.meanPetalLength} cm`,
    );
    lines.push(`${all.length} rows; trained ${model.epochs} epochs on Ray, scored on Spark`);
    return { accuracy: scores.accuracy, trainAccuracy: model.trainAccuracy, lines };
  },
);

export const irisSparkRay = workflow(
  {
    name: "iris_spark_ray",
    inputs: {
      dataset: t.file({ format: "csv" }).describe("iris CSV (examples/data/iris.csv)"),
      epochs: z.number().int().min(1).default(300),
      learningRate: z.number().positive().default(0.5),
    },
    output: z.object({ accuracy: z.number(), trainAccuracy: z.number(), lines: z.array(z.string()) }),
  },
  ({ dataset, epochs, learningRate }) => {
    const prepared = prepare({ dataset });
    const model = train({ rows: prepared.rows, epochs, learningRate });
    const scores = aggregate({ rows: prepared.rows, model });
    return report({ scores, model, rows: prepared.rows });
  },
);
