/**
 * ML training: fit a classifier to the iris dataset, from CSV to test accuracy,
 * with the model math written out in lib/ml.ts (no ML library).
 *
 *   pnpm tern run examples/ml-training.ts train_model
 *   pnpm tern run examples/ml-training.ts train_model --learningRate 0.1 --epochs 500
 *
 * What it shows:
 * - a cached training task: running again with the same data and hyperparameters
 *   reuses the trained model; a different learning rate, epoch count or split trains anew;
 * - checkpoints: training saves its state every few epochs and a retried attempt
 *   resumes where the failed one stopped;
 * - an object output consumed field by field (`split.train`, `split.test`);
 * - typed hyperparameters with defaults, given on the command line as `--name value`.
 */
import { readFile } from "node:fs/promises";
import * as path from "node:path";
import { dataframe, readDataFrame, t, task, workflow } from "@tern/core";
import { z } from "zod";
import { FEATURES, featuresOf, IrisRowSchema, parseIris } from "./lib/iris.js";
import {
  accuracy,
  confusionMatrix,
  fitSoftmax,
  fitStandardizer,
  lossAndGradient,
  predict,
  standardize,
  stratifiedSplit,
  type TrainingState,
} from "./lib/ml.js";

const IrisRows = t.dataframe({ columns: IrisRowSchema.shape });

/** Standardized features and class indices: what the model trains and is tested on. */
const LabeledSchema = z.object({
  x: z.array(z.array(z.number())),
  y: z.array(z.number().int().nonnegative()),
});

const ModelSchema = z.object({
  /** `weights[class][feature]` of a softmax regression over standardized features. */
  weights: z.array(z.array(z.number())),
  bias: z.array(z.number()),
  epochs: z.number().int(),
  trainedOn: z.number().int(),
  /** Training loss (cross-entropy + L2) after the last epoch. */
  finalLoss: z.number(),
  /** Loss every 25 epochs, to see it fall. */
  lossCurve: z.array(z.object({ epoch: z.number().int(), loss: z.number() })),
  /** Epoch a checkpoint let this run start from (0: trained from scratch). */
  resumedFromEpoch: z.number().int(),
});

/** L2 penalty on the weights: keeps them finite on separable classes (setosa is). */
const L2 = 1e-3;
/** How often training saves a checkpoint. Cheap here; for hours-long training it is what saves the day. */
const CHECKPOINT_EVERY = 50;

// ---------------------------------------------------------------------------
// Tasks

/**
 * Not cached: the input is a path, which says nothing about the file's contents.
 * The dataframe it returns is stored under a digest of its rows, so the steps after
 * it are keyed on the data itself.
 */
export const loadIris = task(
  {
    name: "load_iris",
    inputs: { dataset: z.string() },
    output: z.object({ rows: IrisRows, classes: z.array(z.string()), features: z.array(z.string()) }),
  },
  async ({ dataset }) => {
    const rows = parseIris(await readFile(path.resolve(dataset), "utf8"));
    const classes = [...new Set(rows.map((r) => r.species))].sort();
    return { rows: dataframe(rows), classes, features: [...FEATURES] };
  },
);

export const splitDataset = task(
  {
    name: "split_dataset",
    description: "Stratified train/test split with a seeded shuffle.",
    inputs: { rows: IrisRows, testFraction: z.number().gt(0).lt(1), seed: z.number().int() },
    output: z.object({ train: IrisRows, test: IrisRows }),
  },
  async ({ rows, testFraction, seed }) => {
    const { train, test } = stratifiedSplit(await readDataFrame(rows), (r) => r.species, testFraction, seed);
    return { train: dataframe(train), test: dataframe(test) };
  },
);

export const prepareFeatures = task(
  {
    name: "standardize",
    description: "Scale features to zero mean and unit variance, with statistics of the training set only.",
    inputs: { train: IrisRows, test: IrisRows, classes: z.array(z.string()) },
    output: z.object({
      train: LabeledSchema,
      test: LabeledSchema,
      scaler: z.object({ mean: z.array(z.number()), std: z.array(z.number()) }),
    }),
  },
  async ({ train, test, classes }) => {
    const [trainRows, testRows] = await Promise.all([readDataFrame(train), readDataFrame(test)]);
    const scaler = fitStandardizer(trainRows.map(featuresOf));
    const labeled = (rows: typeof trainRows) => ({
      x: standardize(rows.map(featuresOf), scaler),
      y: rows.map((r) => {
        const k = classes.indexOf(r.species);
        if (k < 0) throw new Error(`unknown class "${r.species}"`);
        return k;
      }),
    });
    return { train: labeled(trainRows), test: labeled(testRows), scaler };
  },
);

/**
 * The expensive step, so the cached one. Its cache key covers every input (data,
 * classes, epochs, learning rate) and the code of this task and lib/ml.ts:
 * change any of them and it trains again.
 */
export const train = task(
  {
    name: "train",
    description: "Softmax regression by full-batch gradient descent.",
    inputs: {
      data: LabeledSchema,
      classes: z.array(z.string()).min(2),
      epochs: z.number().int().positive(),
      learningRate: z.number().positive(),
    },
    output: ModelSchema,
    cache: true,
    retries: 2,
  },
  async ({ data, classes, epochs, learningRate }, ctx) => {
    // A checkpoint exists only when an earlier attempt of this node got part-way
    // (checkpoints belong to one node of one execution), so it matches these inputs.
    const saved = await ctx.checkpoint.loadJson<TrainingState>();
    const resumeFrom = saved && saved.epoch <= epochs ? saved : undefined;
    if (resumeFrom) ctx.logger.info(`resuming from the checkpoint at epoch ${resumeFrom.epoch}`);

    const final = await fitSoftmax(data.x, data.y, classes.length, {
      epochs,
      learningRate,
      l2: L2,
      resumeFrom,
      onEpoch: async (state) => {
        ctx.signal.throwIfAborted(); // stop promptly on timeout or abort
        if (state.epoch % CHECKPOINT_EVERY === 0) {
          await ctx.checkpoint.save(state);
          ctx.logger.info(`epoch ${state.epoch}: loss ${state.losses[state.epoch - 1].toFixed(4)}`);
        }
      },
    });

    return {
      weights: final.model.weights,
      bias: final.model.bias,
      epochs: final.epoch,
      trainedOn: data.x.length,
      finalLoss: lossAndGradient(final.model, data.x, data.y, L2).loss,
      lossCurve: final.losses
        .map((loss, i) => ({ epoch: i + 1, loss }))
        .filter(({ epoch }) => epoch === 1 || epoch % 25 === 0),
      resumedFromEpoch: resumeFrom?.epoch ?? 0,
    };
  },
);

export const evaluate = task(
  {
    name: "evaluate",
    inputs: { model: ModelSchema, data: LabeledSchema, classes: z.array(z.string()) },
    output: z.object({
      accuracy: z.number(),
      /** `confusionMatrix[actual][predicted]`, classes in the order of `classes`. */
      confusionMatrix: z.array(z.array(z.number().int())),
      testSize: z.number().int(),
    }),
  },
  ({ model, data, classes }) => {
    const predicted = data.x.map((x) => predict(model, x));
    return {
      accuracy: accuracy(data.y, predicted),
      confusionMatrix: confusionMatrix(data.y, predicted, classes.length),
      testSize: data.y.length,
    };
  },
);

// ---------------------------------------------------------------------------
// The workflow

export const TrainingReportSchema = z.object({
  accuracy: z.number(),
  confusionMatrix: z.array(z.array(z.number().int())),
  classes: z.array(z.string()),
  epochs: z.number().int(),
  learningRate: z.number(),
  finalLoss: z.number(),
  trainSize: z.number().int(),
  testSize: z.number().int(),
});
export type TrainingReport = z.infer<typeof TrainingReportSchema>;

export const trainModel = workflow(
  {
    name: "train_model",
    description: "Train and evaluate a softmax classifier on iris.",
    inputs: {
      // A path, resolved against the current directory: run from the project root.
      dataset: z.string().default("examples/data/iris.csv").describe("iris CSV file"),
      testFraction: z.number().gt(0).lt(1).default(0.3).describe("share of each class held out for testing"),
      seed: z.number().int().default(42).describe("seed of the train/test shuffle"),
      epochs: z.number().int().positive().default(300).describe("gradient descent steps"),
      learningRate: z.number().positive().default(0.5).describe("gradient descent step size"),
    },
    output: TrainingReportSchema,
  },
  ({ dataset, testFraction, seed, epochs, learningRate }) => {
    const data = loadIris({ dataset });
    const split = splitDataset({ rows: data.rows, testFraction, seed });
    const features = prepareFeatures({ train: split.train, test: split.test, classes: data.classes });
    const model = train({ data: features.train, classes: data.classes, epochs, learningRate });
    const evaluation = evaluate({ model, data: features.test, classes: data.classes });
    return {
      accuracy: evaluation.accuracy,
      confusionMatrix: evaluation.confusionMatrix,
      classes: data.classes,
      epochs: model.epochs,
      learningRate,
      finalLoss: model.finalLoss,
      trainSize: model.trainedOn,
      testSize: evaluation.testSize,
    };
  },
);
