"""Ray job: fit a softmax regression to standardized iris features (batch gradient descent).

    python3 train.py --epochs 300 --learning-rate 0.5

Inputs (TERN_INPUTS_PATH): {"rows": <dataframe of prepared rows>, ...}. Output: the model.
"""
import argparse
import math

import tern_job

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, required=True)
parser.add_argument("--learning-rate", type=float, required=True)
args = parser.parse_args()
if args.epochs < 1:
    tern_job.fail(f"--epochs must be at least 1, got {args.epochs}")

data = [r for r in tern_job.rows(tern_job.inputs()["rows"]) if r["split"] == "train"]
classes = sorted({r["species"] for r in data})
x = [[r[f] for f in FEATURES] for r in data]
y = [classes.index(r["species"]) for r in data]
means = [sum(col) / len(col) for col in zip(*x)]
stds = [math.sqrt(sum((v - m) ** 2 for v in col) / len(col)) or 1.0 for col, m in zip(zip(*x), means)]
xs = [[(v - m) / s for v, m, s in zip(row, means, stds)] for row in x]

k, d, n = len(classes), len(FEATURES), len(xs)
w = [[0.0] * d for _ in range(k)]
b = [0.0] * k


def probabilities(row):
    z = [sum(wi * xi for wi, xi in zip(w[c], row)) + b[c] for c in range(k)]
    top = max(z)
    e = [math.exp(v - top) for v in z]
    total = sum(e)
    return [v / total for v in e]


loss = 0.0
for epoch in range(args.epochs):
    gw = [[0.0] * d for _ in range(k)]
    gb = [0.0] * k
    loss = 0.0
    for row, label in zip(xs, y):
        p = probabilities(row)
        loss -= math.log(max(p[label], 1e-12))
        for c in range(k):
            err = p[c] - (1.0 if c == label else 0.0)
            gb[c] += err
            for j in range(d):
                gw[c][j] += err * row[j]
    for c in range(k):
        b[c] -= args.learning_rate * gb[c] / n
        for j in range(d):
            w[c][j] -= args.learning_rate * (gw[c][j] / n + 1e-3 * w[c][j])
    loss /= n

correct = sum(1 for row, label in zip(xs, y) if max(range(k), key=lambda c: probabilities(row)[c]) == label)
print(f"trained on {n} rows, {args.epochs} epochs: loss {loss:.4f}, train accuracy {correct / n:.3f}")
tern_job.write_output(
    {
        "classes": classes,
        "features": FEATURES,
        "means": means,
        "stds": stds,
        "weights": w,
        "bias": b,
        "epochs": args.epochs,
        "finalLoss": loss,
        "trainAccuracy": correct / n,
    }
)
