#!/usr/bin/env python3
"""Writes the drift fixtures and the values `autoserve drift` must find in them, computed independently with numpy
and scipy (run once; its outputs are committed): python3 make_fixture.py (numpy, scipy).

reference.jsonl: 2,000 rows (JSON Lines of row objects). current-shifted.jsonl: 1,500 lines of an inference log in
which `income` moved up by 0.8 standard deviations and `segment` changed its mix and gained a value; `age` and
`region` did not move; the model's numeric output `score` moved with income. current-unshifted.csv: 1,500 rows of
the reference's distribution, as CSV. expected.json: PSI (bins at the reference's deciles by numpy's default
quantile, right-closed, an empty bin as 1e-4) and the two-sample Kolmogorov-Smirnov statistic (scipy.stats.ks_2samp)
with its asymptotic p-value (scipy.stats.kstwobign.sf of sqrt(nm/(n+m)) D)."""
import json
import os

import numpy as np
from scipy import stats

HERE = os.path.dirname(os.path.abspath(__file__))
EPSILON = 1e-4


def rows(generator, count, shifted):
    income = generator.normal(58 if shifted else 50, 10, count).round(3)
    age = generator.normal(40, 10, count).round(1)
    segments = ["a", "b", "c", "d"] if shifted else ["a", "b", "c"]
    mix = [0.2, 0.3, 0.3, 0.2] if shifted else [0.5, 0.3, 0.2]
    segment = generator.choice(segments, count, p=mix)
    region = generator.choice(["north", "south"], count, p=[0.6, 0.4])
    return [{"income": float(i), "age": float(a), "segment": str(s), "region": str(r)} for i, a, s, r in zip(income, age, segment, region)]


def shares(counts):
    total = counts.sum()
    return np.where(counts == 0, EPSILON, counts / total)


def numeric(reference, current):
    edges = np.unique(np.quantile(reference, np.arange(1, 10) / 10))
    a = np.bincount(np.searchsorted(edges, reference, side="left"), minlength=len(edges) + 1)
    b = np.bincount(np.searchsorted(edges, current, side="left"), minlength=len(edges) + 1)
    p, q = shares(a), shares(b)
    result = stats.ks_2samp(reference, current)
    n, m = len(reference), len(current)
    return {"psi": float(np.sum((q - p) * np.log(q / p))), "ks_statistic": float(result.statistic),
            "ks_p_value": float(stats.kstwobign.sf(np.sqrt(n * m / (n + m)) * result.statistic))}


def categorical(reference, current):
    categories = sorted(set(reference))
    a = np.array([reference.count(c) for c in categories] + [0])
    b = np.array([current.count(c) for c in categories] + [sum(1 for v in current if v not in categories)])
    p, q = shares(a), shares(b)
    return {"psi": float(np.sum((q - p) * np.log(q / p)))}


def main():
    generator = np.random.default_rng(20261129)
    reference = rows(generator, 2000, shifted=False)
    shifted = rows(generator, 1500, shifted=True)
    unshifted = rows(generator, 1500, shifted=False)
    with open(os.path.join(HERE, "reference.jsonl"), "w") as file:
        for row in reference:
            file.write(json.dumps(row) + "\n")
    with open(os.path.join(HERE, "current-shifted.jsonl"), "w") as file:
        for index, row in enumerate(shifted):
            output = {"score": round(row["income"] / 100, 4), "label": "high" if row["income"] > 55 else "low"}
            file.write(json.dumps({"time": "2026-11-29T12:00:00.000Z", "request_id": f"r{index}", "model": "Churn", "version": "v1", "commit": None,
                                   "route": "model", "variables": row, "output": output, "status": 200, "latency_ms": 0.5}) + "\n")
        # Lines the report leaves out: another model, and an error answer.
        file.write(json.dumps({"time": "2026-11-29T12:00:00.000Z", "request_id": "x1", "model": "Other", "version": "v1", "commit": None,
                               "route": "all", "variables": {"income": 1e9}, "output": {}, "status": 200, "latency_ms": 0.5}) + "\n")
        file.write(json.dumps({"time": "2026-11-29T12:00:00.000Z", "request_id": "x2", "model": "Churn", "version": "v1", "commit": None,
                               "route": "model", "variables": {"income": 1e9}, "error": {"status": 422, "code": "invalid_input", "message": "no"},
                               "status": 422, "latency_ms": 0.5}) + "\n")
    with open(os.path.join(HERE, "current-unshifted.csv"), "w") as file:
        file.write("income,age,segment,region\n")
        for row in unshifted:
            file.write(f"{row['income']},{row['age']},{row['segment']},{row['region']}\n")

    # The expectations, from the files as written (read back, as the report reads them).
    ref = [json.loads(line) for line in open(os.path.join(HERE, "reference.jsonl"))]
    cur = [json.loads(line) for line in open(os.path.join(HERE, "current-shifted.jsonl"))]
    cur = [line["variables"] for line in cur if line["model"] == "Churn" and line["status"] == 200]
    csv = [line.strip().split(",") for line in open(os.path.join(HERE, "current-unshifted.csv"))][1:]
    flat = [{"income": float(i), "age": float(a), "segment": s, "region": r} for i, a, s, r in csv]
    expected = {}
    for name, current in (("shifted", cur), ("unshifted", flat)):
        expected[name] = {
            feature: numeric(np.array([r[feature] for r in ref]), np.array([r[feature] for r in current]))
            for feature in ("income", "age")
        }
        expected[name].update({feature: categorical([r[feature] for r in ref], [r[feature] for r in current]) for feature in ("segment", "region")})
    with open(os.path.join(HERE, "expected.json"), "w") as file:
        json.dump(expected, file, indent=2, sort_keys=True)
        file.write("\n")


if __name__ == "__main__":
    main()
