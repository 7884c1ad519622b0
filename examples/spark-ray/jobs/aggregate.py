"""Spark driver: score the held-out rows with the trained model and aggregate per species.

    aggregate.py --split test

Inputs (TERN_INPUTS_PATH): {"rows": <dataframe>, "model": {...}}. Output: per-species counts,
feature means and accuracy, and the overall accuracy. (Plain Python here: the fake operator
runs the driver as a local process; on a cluster the same logic is a DataFrame groupBy.)
"""
import argparse

import tern_job

parser = argparse.ArgumentParser()
parser.add_argument("--split", required=True)
args = parser.parse_args()

given = tern_job.inputs()
model = given["model"]
rows = [r for r in tern_job.rows(given["rows"]) if r["split"] == args.split]
if not rows:
    tern_job.fail(f'no rows in split "{args.split}"')


def predict(r):
    x = [(r[f] - m) / s for f, m, s in zip(model["features"], model["means"], model["stds"])]
    z = [sum(wi * xi for wi, xi in zip(wc, x)) + bc for wc, bc in zip(model["weights"], model["bias"])]
    return model["classes"][max(range(len(z)), key=lambda c: z[c])]


groups = {}
for r in rows:
    g = groups.setdefault(r["species"], {"count": 0, "correct": 0, "petal": 0.0, "sepal": 0.0})
    g["count"] += 1
    g["correct"] += predict(r) == r["species"]
    g["petal"] += r["petal_length"]
    g["sepal"] += r["sepal_length"]

species = [
    {
        "species": name,
        "count": g["count"],
        "accuracy": g["correct"] / g["count"],
        "meanPetalLength": round(g["petal"] / g["count"], 4),
        "meanSepalLength": round(g["sepal"] / g["count"], 4),
    }
    for name, g in sorted(groups.items())
]
overall = sum(g["correct"] for g in groups.values()) / len(rows)
print(f"scored {len(rows)} rows of split {args.split}: accuracy {overall:.3f}")
tern_job.write_output({"split": args.split, "rows": len(rows), "accuracy": overall, "species": species})
