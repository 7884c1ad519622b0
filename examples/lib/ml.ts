/**
 * The math of the ML example, in plain TypeScript: a seeded PRNG, a stratified
 * train/test split, feature standardization, and multinomial logistic regression
 * (softmax regression) trained by full-batch gradient descent.
 *
 * Everything is deterministic: the same data, seed and hyperparameters give the
 * same model bit for bit. That is what makes the training task safe to cache, and
 * what lets training resume from a checkpoint with exactly the result it would
 * have reached without stopping.
 */

// ---------------------------------------------------------------------------
// Randomness

export type Rng = () => number;

/** mulberry32: a small, fast 32-bit PRNG. Not for cryptography; ideal for reproducible shuffles. */
export function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A shuffled copy (Fisher–Yates). */
export function shuffle<T>(items: readonly T[], rng: Rng): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/**
 * Split into train and test so each class keeps its share in both (stratified):
 * with a small dataset a plain random split can leave a class nearly absent from test.
 */
export function stratifiedSplit<T>(
  items: readonly T[],
  labelOf: (item: T) => string,
  testFraction: number,
  seed: number,
): { train: T[]; test: T[] } {
  if (!(testFraction > 0 && testFraction < 1)) {
    throw new RangeError(`testFraction must be in (0, 1), got ${testFraction}`);
  }
  const rng = mulberry32(seed);
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const label = labelOf(item);
    groups.set(label, [...(groups.get(label) ?? []), item]);
  }
  const train: T[] = [];
  const test: T[] = [];
  // Sorted labels: the split must not depend on the order classes first appear in.
  for (const label of [...groups.keys()].sort()) {
    const group = shuffle(groups.get(label)!, rng);
    const nTest = Math.round(group.length * testFraction);
    test.push(...group.slice(0, nTest));
    train.push(...group.slice(nTest));
  }
  return { train: shuffle(train, rng), test: shuffle(test, rng) };
}

// ---------------------------------------------------------------------------
// Standardization

/** Per-feature mean and standard deviation, learned from the training set only. */
export interface Standardizer {
  mean: number[];
  std: number[];
}

export function fitStandardizer(x: readonly number[][]): Standardizer {
  if (x.length === 0) throw new RangeError("cannot standardize an empty dataset");
  const d = x[0].length;
  const mean = Array.from({ length: d }, (_, j) => x.reduce((s, row) => s + row[j], 0) / x.length);
  const std = mean.map((m, j) => {
    const variance = x.reduce((s, row) => s + (row[j] - m) ** 2, 0) / x.length;
    // A constant feature has std 0; leave it unscaled instead of dividing by zero.
    return Math.sqrt(variance) || 1;
  });
  return { mean, std };
}

/** Zero mean, unit variance (by the training set's statistics, so test data never leaks in). */
export function standardize(x: readonly number[][], s: Standardizer): number[][] {
  return x.map((row) => row.map((v, j) => (v - s.mean[j]) / s.std[j]));
}

// ---------------------------------------------------------------------------
// Softmax regression

/**
 * `weights[k][j]`: weight of feature j for class k. (A `type`, not an `interface`,
 * so it is assignable to `Json` and can be saved as a checkpoint as is.)
 */
export type SoftmaxModel = {
  weights: number[][];
  bias: number[];
};

export function zeroModel(numFeatures: number, numClasses: number): SoftmaxModel {
  return {
    weights: Array.from({ length: numClasses }, () => new Array<number>(numFeatures).fill(0)),
    bias: new Array<number>(numClasses).fill(0),
  };
}

/** Softmax, shifted by the largest logit so `exp` cannot overflow. */
export function softmax(logits: readonly number[]): number[] {
  const max = Math.max(...logits);
  const e = logits.map((z) => Math.exp(z - max));
  const sum = e.reduce((s, v) => s + v, 0);
  return e.map((v) => v / sum);
}

/** Class probabilities for one example. */
export function predictProba(m: SoftmaxModel, x: readonly number[]): number[] {
  return softmax(m.weights.map((w, k) => m.bias[k] + w.reduce((s, wj, j) => s + wj * x[j], 0)));
}

/** The most likely class. */
export function predict(m: SoftmaxModel, x: readonly number[]): number {
  const p = predictProba(m, x);
  return p.indexOf(Math.max(...p));
}

/**
 * Mean cross-entropy loss plus `l2/2 · ‖W‖²`, and its gradient. For softmax
 * with cross-entropy the gradient of the logits is simply `p − onehot(y)`.
 */
export function lossAndGradient(
  m: SoftmaxModel,
  x: readonly number[][],
  y: readonly number[],
  l2 = 0,
): { loss: number; gradWeights: number[][]; gradBias: number[] } {
  const n = x.length;
  const gradWeights = m.weights.map((w) => w.map(() => 0));
  const gradBias = m.bias.map(() => 0);
  let loss = 0;
  for (let i = 0; i < n; i++) {
    const p = predictProba(m, x[i]);
    loss -= Math.log(Math.max(p[y[i]], 1e-300));
    for (let k = 0; k < p.length; k++) {
      const g = (p[k] - (k === y[i] ? 1 : 0)) / n;
      gradBias[k] += g;
      for (let j = 0; j < x[i].length; j++) gradWeights[k][j] += g * x[i][j];
    }
  }
  loss /= n;
  for (let k = 0; k < m.weights.length; k++) {
    for (let j = 0; j < m.weights[k].length; j++) {
      loss += (l2 / 2) * m.weights[k][j] ** 2;
      gradWeights[k][j] += l2 * m.weights[k][j];
    }
  }
  return { loss, gradWeights, gradBias };
}

/** Where training stands: what a checkpoint holds. */
export type TrainingState = {
  /** Epochs completed. */
  epoch: number;
  model: SoftmaxModel;
  /** Loss at the start of each completed epoch. */
  losses: number[];
};

export interface TrainOptions {
  epochs: number;
  learningRate: number;
  /** L2 penalty on the weights (not the biases). @default 0 */
  l2?: number;
  /** Continue from here instead of from a zero model (resuming from a checkpoint). */
  resumeFrom?: TrainingState;
  /** Called after every epoch; awaited, so it may save a checkpoint. Read the state there, don't keep it. */
  onEpoch?: (state: TrainingState) => void | Promise<void>;
}

/** Train by full-batch gradient descent; returns the state after the last epoch. */
export async function fitSoftmax(
  x: readonly number[][],
  y: readonly number[],
  numClasses: number,
  opts: TrainOptions,
): Promise<TrainingState> {
  if (x.length === 0) throw new RangeError("cannot train on an empty dataset");
  const l2 = opts.l2 ?? 0;
  const lr = opts.learningRate;
  const start = opts.resumeFrom;
  let epoch = start?.epoch ?? 0;
  let model = start?.model ?? zeroModel(x[0].length, numClasses);
  const losses = [...(start?.losses ?? [])];
  while (epoch < opts.epochs) {
    const { loss, gradWeights, gradBias } = lossAndGradient(model, x, y, l2);
    model = {
      weights: model.weights.map((w, k) => w.map((v, j) => v - lr * gradWeights[k][j])),
      bias: model.bias.map((b, k) => b - lr * gradBias[k]),
    };
    losses.push(loss);
    epoch++;
    await opts.onEpoch?.({ epoch, model, losses });
  }
  return { epoch, model, losses };
}

// ---------------------------------------------------------------------------
// Evaluation

export function accuracy(actual: readonly number[], predicted: readonly number[]): number {
  if (actual.length === 0) throw new RangeError("accuracy of an empty set");
  return actual.filter((a, i) => a === predicted[i]).length / actual.length;
}

/** `m[a][p]`: how many examples of class `a` were predicted as class `p`. */
export function confusionMatrix(
  actual: readonly number[],
  predicted: readonly number[],
  numClasses: number,
): number[][] {
  const m = Array.from({ length: numClasses }, () => new Array<number>(numClasses).fill(0));
  actual.forEach((a, i) => {
    m[a][predicted[i]]++;
  });
  return m;
}
