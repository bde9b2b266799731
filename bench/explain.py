#!/usr/bin/env python3
"""Explanations, measured (BENCHMARKS.md, docs/explanations.md): one row's explanation over HTTP against the library's own
TreeSHAP on one numpy row, in the same run.

1. LightGBM: the 500-tree, 63-leaf model of Tests/Fixtures/trees/lgb_large; `Booster.predict(row, pred_contrib=True)`
   on a one-row numpy array, against `POST /<Model> {"variables": {...}, "explain": true}` to the release server (one
   keep-alive client, the whole round trip: the request's JSON, the server, the worker's TreeSHAP, the answer).
2. XGBoost: a model of 500 trees of depth 6 trained here on the same kind of data; `Booster.predict(DMatrix(row),
   pred_contribs=True)` against the same request.
3. The answers compared: the server's contributions against the library's for every row timed (within 1e-9).

The library and the server take turns, a pass over the rows each (which goes first alternates from round to round), so
that the machine's drift falls on both alike; each figure is the median of its rows' times over --rounds passes, and the
ratio is library / AutoServe (higher: AutoServe is faster). Usage: make bench-explain, or .venv/bin/python bench/explain.py [--bin .build/release/autoserve]
(needs lightgbm, xgboost, numpy, scikit-learn in the interpreter)."""
import argparse
import http.client
import json
import os
import shutil
import statistics
import tempfile
import time

import lightgbm as lgb
import numpy as np
import xgboost as xgb
from sklearn.datasets import make_classification

from trees import LARGE, read_rows, start_server, stop, wait_ready

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def paired_times(explain, matrix, port, path, rows, rounds):
    """Passes over the rows, the library's and the server's in turn (which goes first alternates from round to round),
    so that the machine's drift falls on both alike while each pass runs warm: the medians of each one's times, and
    the server's answers of its last pass."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def served(row):
        body = json.dumps({"variables": row, "explain": True})
        start = time.perf_counter()
        connection.request("POST", path, body, {"Content-Type": "application/json"})
        answer = connection.getresponse()
        text = answer.read()
        elapsed = time.perf_counter() - start
        if answer.status != 200:
            raise SystemExit(f"POST {path}: {answer.status} {text[:500]!r}")
        return elapsed, text

    def library(index):
        start = time.perf_counter()
        explain(matrix[index:index + 1])
        return time.perf_counter() - start

    def library_pass():
        library_times.extend(library(index) for index in range(len(rows)))

    def server_pass():
        answers.clear()
        for row in rows:
            elapsed, text = served(row)
            server_times.append(elapsed)
            answers.append(json.loads(text))

    library_times, server_times, answers = [], [], []
    # A warm-up pass of each, not counted.
    library_pass()
    server_pass()
    library_times.clear()
    server_times.clear()
    for round in range(rounds):
        for one_pass in ([library_pass, server_pass] if round % 2 == 0 else [server_pass, library_pass]):
            one_pass()
    connection.close()
    return statistics.median(library_times), statistics.median(server_times), answers


def largest_difference(answers, contributions, names):
    worst = 0.0
    for answer, wanted in zip(answers, contributions):
        explanation = answer["_explanation"]
        got = [explanation["contributions"][name] for name in names] + [explanation["base"]]
        worst = max(worst, max(abs(a - b) / max(1.0, abs(b)) for a, b in zip(got, wanted)))
    return worst


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin", default=os.path.join(ROOT, ".build", "release", "autoserve"))
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--port", type=int, default=18490)
    arguments = parser.parse_args()
    work = tempfile.mkdtemp(prefix="autoserve-explain-")
    try:
        run(os.path.abspath(arguments.bin), work, arguments)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(binary, work, arguments):
    print(f"machine: {os.cpu_count()} cores, {os.uname().sysname} {os.uname().release}; {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC; "
          f"lightgbm {lgb.__version__}, xgboost {xgb.__version__}, numpy {np.__version__}")
    models = os.path.join(work, "models")
    os.makedirs(os.path.join(models, "Large"))
    shutil.copy(os.path.join(LARGE, "model.txt"), os.path.join(models, "Large", "model.txt"))
    with open(os.path.join(models, "Large", "model.yaml"), "w") as out:
        out.write("kind: lightgbm\nfile: model.txt\noutput: raw\n")
    lightgbm_booster = lgb.Booster(model_file=os.path.join(LARGE, "model.txt"))
    names = lightgbm_booster.feature_name()
    # XGBoost: 500 trees of depth 6 on data like the LightGBM model's.
    X, y = make_classification(n_samples=20000, n_features=len(names), n_informative=12, random_state=5)
    xgboost_booster = xgb.train({"objective": "binary:logistic", "max_depth": 6, "eta": 0.05, "nthread": 1, "seed": 7},
                                xgb.DMatrix(X, y, feature_names=names), num_boost_round=500)
    os.makedirs(os.path.join(models, "XLarge"))
    xgboost_booster.save_model(os.path.join(models, "XLarge", "model.json"))
    with open(os.path.join(models, "XLarge", "model.yaml"), "w") as out:
        out.write("kind: xgboost\nfile: model.json\noutput: raw\n")
    leaves = sum(tree["num_leaves"] for tree in lightgbm_booster.dump_model()["tree_info"]) / lightgbm_booster.num_trees()
    print(f"models: LightGBM {lightgbm_booster.num_trees()} trees, {leaves:.1f} leaves on average; XGBoost {xgboost_booster.num_boosted_rounds()} "
          f"trees of depth 6; {len(names)} features")

    rows, matrix = read_rows(os.path.join(LARGE, "rows.jsonl"), names, arguments.rows)
    log = open(os.path.join(work, "server.log"), "w")
    server = start_server(binary, models, os.path.join(work, "state"), os.path.join(work, "cache"), arguments.port, log)
    try:
        wait_ready(arguments.port, ["Large", "XLarge"])
        results = []
        for label, path, explain, contributions in [
            ("LightGBM", "/Large", lambda row: lightgbm_booster.predict(row, pred_contrib=True),
             lightgbm_booster.predict(matrix, pred_contrib=True)),
            ("XGBoost", "/XLarge", lambda row: xgboost_booster.predict(xgb.DMatrix(row, feature_names=names), pred_contribs=True),
             xgboost_booster.predict(xgb.DMatrix(matrix, feature_names=names), pred_contribs=True)),
        ]:
            library, served, answers = paired_times(explain, matrix, arguments.port, path, rows, arguments.rounds)
            difference = largest_difference(answers, contributions, names)
            results.append((label, library, served, difference))
        print("| library | its TreeSHAP, one numpy row (ms) | AutoServe over HTTP (ms) | library / AutoServe | largest difference |")
        print("|---|---|---|---|---|")
        for label, library, served, difference in results:
            print(f"| {label} | {library * 1e3:.2f} | {served * 1e3:.2f} | {library / served:.1f}x | {difference:.1e} |")
    finally:
        stop(server)
        log.close()


if __name__ == "__main__":
    main()
