/**
 * Control flow: tune a classifier, score every candidate, and deploy the best one
 * only if it is good enough and a person approves.
 *
 *   pnpm tern run examples/control-flow.ts tune_and_deploy --signal review=true
 *   pnpm tern run examples/control-flow.ts tune_and_deploy --minAccuracy 0.99   # nothing to approve
 *   pnpm tern run examples/control-flow.ts tune_and_deploy --rates '[0.01, 0.3]' --signal review=false
 *
 * It reuses the iris tasks of ml-training.ts (load, split, standardize, train) and adds:
 * - `dynamic`: the sweep runs with the real list of learning rates, so it can shape the
 *   graph by them: one training node per distinct rate, named after it, each with its own
 *   epoch budget (small steps need more of them). Its sub-DAG is type-checked before any
 *   training starts, and its nodes show up as `sweep/train_lr_0_05`, …;
 * - `map`: every candidate is scored on the test set, several at once;
 * - `when`: the best model is promoted only if its accuracy beats `minAccuracy`;
 *   otherwise the run ends with a report and nobody is asked anything;
 * - `gate.approve`: "deploy" waits for the "review" signal. `--signal review=true`
 *   approves, `=false` rejects (the execution then fails with TERN_E_GATE_REJECTED).
 *
 * Training is cached: run it again with one more rate and only that rate trains.
 */
import { mkdir, writeFile } from "node:fs/promises";
import * as path from "node:path";
import { dynamic, gate, gt, map, task, when, workflow } from "@tern/core";
import { z } from "zod";
import { accuracy, predict } from "./lib/ml.js";
import { loadIris, prepareFeatures, splitDataset, train } from "./ml-training.js";

// Schemas of the values the reused tasks pass around.
const Labeled = prepareFeatures.outputSchema!.shape.train;
const Model = train.outputSchema!;

/** A trained model and how it was trained. */
const Candidate = z.object({ learningRate: z.number(), epochs: z.number().int(), model: Model });

/** A candidate with its test accuracy. */
const Scored = Candidate.extend({ accuracy: z.number() });

const Summary = z.object({ learningRate: z.number(), epochs: z.number().int(), accuracy: z.number() });

/** What the run did with the best model. */
export const OutcomeSchema = z.object({
  action: z.enum(["deployed", "kept-current"]),
  learningRate: z.number(),
  accuracy: z.number(),
  detail: z.string(),
});
export type Outcome = z.infer<typeof OutcomeSchema>;

// ---------------------------------------------------------------------------
// Tasks

/**
 * A dynamic workflow: its body runs when the execution reaches it, with real values
 * (`rates` is a plain number[] here, not a placeholder), and returns the sub-DAG to run.
 */
export const sweep = dynamic(
  {
    name: "sweep",
    description: "One training run per distinct learning rate.",
    inputs: {
      data: Labeled,
      classes: z.array(z.string()),
      rates: z.array(z.number().positive()).min(1),
      epochs: z.number().int().positive(),
    },
    output: z.array(Candidate),
  },
  ({ data, classes, rates, epochs }) => {
    const distinct = [...new Set(rates)].sort((a, b) => a - b);
    return distinct.map((learningRate) => {
      // Gradient descent with small steps needs more of them: up to 4× the budget.
      const runEpochs = Math.round(epochs * Math.min(4, Math.max(1, 0.5 / learningRate)));
      const model = train(
        { data, classes, epochs: runEpochs, learningRate },
        { id: `train_lr_${String(learningRate).replace(/[^0-9a-z]/gi, "_")}` },
      );
      return { learningRate, epochs: runEpochs, model };
    });
  },
);

export const scoreCandidate = task(
  {
    name: "score_candidate",
    description: "Accuracy of one candidate on the held-out set.",
    inputs: { candidate: Candidate, data: Labeled },
    output: Scored,
  },
  ({ candidate, data }) => {
    const predicted = data.x.map((x) => predict(candidate.model, x));
    return { ...candidate, accuracy: accuracy(data.y, predicted) };
  },
);

export const pickBest = task(
  {
    name: "pick_best",
    description: "The most accurate candidate (the smaller rate on a tie), and a table of all.",
    inputs: { scored: z.array(Scored).min(1) },
    output: z.object({ best: Scored, table: z.array(Summary) }),
  },
  ({ scored }) => {
    const best = scored.reduce((a, b) => (b.accuracy > a.accuracy ? b : a));
    return {
      best,
      table: scored.map(({ learningRate, epochs, accuracy }) => ({ learningRate, epochs, accuracy })),
    };
  },
);

/** "Deploying" writes the model to a registry directory, where a server would pick it up. */
export const deploy = task(
  {
    name: "deploy",
    inputs: { candidate: Scored, registry: z.string() },
    output: OutcomeSchema,
    retries: 2,
  },
  async ({ candidate, registry }, ctx) => {
    await mkdir(registry, { recursive: true });
    const file = path.join(registry, `iris-softmax-lr${candidate.learningRate}.json`);
    await writeFile(file, JSON.stringify({ ...candidate, execution: ctx.execution.id }, null, 2));
    ctx.logger.info(`deployed to ${file}`);
    return {
      action: "deployed" as const,
      learningRate: candidate.learningRate,
      accuracy: candidate.accuracy,
      detail: file,
    };
  },
);

export const keepCurrent = task(
  {
    name: "keep_current",
    inputs: { candidate: Scored, minAccuracy: z.number() },
    output: OutcomeSchema,
  },
  ({ candidate, minAccuracy }) => ({
    action: "kept-current" as const,
    learningRate: candidate.learningRate,
    accuracy: candidate.accuracy,
    detail: `best accuracy ${candidate.accuracy.toFixed(3)} does not beat ${minAccuracy}: nothing deployed`,
  }),
);

// ---------------------------------------------------------------------------
// The workflow

export const tuneAndDeploy = workflow(
  {
    name: "tune_and_deploy",
    description: "Sweep learning rates, score each model, deploy the best after review if it is good enough.",
    inputs: {
      dataset: z.string().default("examples/data/iris.csv").describe("iris CSV file"),
      rates: z
        .array(z.number().positive())
        .min(1)
        .default([0.05, 0.2, 0.5, 1.5])
        .describe("learning rates to try"),
      epochs: z
        .number()
        .int()
        .positive()
        .default(150)
        .describe("training epochs at rate 0.5 (more for smaller rates)"),
      minAccuracy: z
        .number()
        .min(0)
        .max(1)
        .default(0.9)
        .describe("the best model must beat this to be deployed"),
      registry: z.string().default(".tern/models").describe("where deployed models are written"),
      testFraction: z.number().gt(0).lt(1).default(0.3),
      seed: z.number().int().default(42),
    },
    output: z.object({ candidates: z.array(Summary), outcome: OutcomeSchema }),
  },
  ({ dataset, rates, epochs, minAccuracy, registry, testFraction, seed }) => {
    const data = loadIris({ dataset });
    const split = splitDataset({ rows: data.rows, testFraction, seed });
    const features = prepareFeatures({ train: split.train, test: split.test, classes: data.classes });

    // dynamic: as many training nodes as there are distinct rates, decided at run time.
    const candidates = sweep({ data: features.train, classes: data.classes, rates, epochs }, { id: "sweep" });

    // map: score each candidate; the test set is the same for all (bound).
    const scored = map(
      scoreCandidate,
      { candidate: candidates },
      { bound: { data: features.test }, concurrency: 4, id: "score" },
    );
    const pick = pickBest({ scored }, { id: "pick" });

    // when + gate: only a good enough model is put up for review, and only an approved one deployed.
    const outcome = when(gt(pick.best.accuracy, minAccuracy))
      .then(() => {
        const approved = gate.approve(pick.best, { name: "review" });
        return deploy({ candidate: approved, registry }, { id: "deploy" });
      })
      .else(() => keepCurrent({ candidate: pick.best, minAccuracy }, { id: "keep_current" }));

    return { candidates: pick.table, outcome };
  },
);
