#!/usr/bin/env python3
"""Trains the tree-model fixtures of the suite and writes the answers AutoServe must give for them, computed by the
libraries' own `predict` (run once; its outputs are committed, so the suite needs no Python):

    .venv/bin/pip install lightgbm xgboost-cpu scikit-learn pandas
    .venv/bin/python Tests/Fixtures/trees/make_fixtures.py

Every fixture is a model folder (docs/models.md, "Models as data"): `model.yaml` (kind, file, output: raw), the model file
as the library saves it, `rows.jsonl` (1,000 rows to score, with missing values as null or as an absent key, and
unseen categories) and `expected.jsonl` (for each row: `raw`, the raw scores of `predict(raw_score=True)` or
`predict(output_margin=True)`, and `value`, what plain `predict` answers; or `error` when the library refuses the
row, as XGBoost does for a category it never saw). Datasets are made with scikit-learn and numpy, never downloaded.

It also writes models_serve/CreditScore: a small LightGBM classifier on a generated credit-scoring dataset.

`make_fixtures.py --contributions` (run after the fixtures, and by itself whenever the explanations change) writes each
fixture's `contributions.jsonl` from its committed model file and rows: for each row, `contributions`, one list per
class of the library's own TreeSHAP (`predict(pred_contrib=True)`, `predict(pred_contribs=True)`), each holding one
value per feature in the model's order and the expected value last; or `error` where the library refuses the row."""
import json
import os
import shutil

import lightgbm as lgb
import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.datasets import make_classification, make_regression

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
ROWS = 1000


def number(value):
    """A JSON value for one cell: null for NaN, a string for a category, a number otherwise."""
    if value is None:
        return None
    if isinstance(value, (np.floating, float)):
        return None if np.isnan(value) else float(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    return str(value)


def json_rows(frame, generator):
    """One object per row; a missing cell is null, or (one time in three) an absent key."""
    rows = []
    for record in frame.to_dict(orient="records"):
        row = {}
        for key, value in record.items():
            cell = number(value)
            if cell is None and generator.random() < 1 / 3:
                continue
            row[key] = cell
        rows.append(row)
    return rows


def write_folder(name, model_file, manifest, rows, expected):
    folder = os.path.join(HERE, name)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    shutil.move(model_file, os.path.join(folder, os.path.basename(model_file)))
    with open(os.path.join(folder, "model.yaml"), "w") as out:
        out.write(manifest)
    with open(os.path.join(folder, "rows.jsonl"), "w") as out:
        for row in rows:
            out.write(json.dumps(row, separators=(",", ":")) + "\n")
    with open(os.path.join(folder, "expected.jsonl"), "w") as out:
        for answer in expected:
            out.write(json.dumps(answer, separators=(",", ":")) + "\n")
    print(f"{name}: {os.path.getsize(os.path.join(folder, os.path.basename(model_file)))} bytes of model, {len(rows)} rows")


def with_missing(frame, generator, fraction):
    """The frame with `fraction` of its numeric cells replaced by NaN."""
    frame = frame.copy()
    for column in frame.columns:
        if frame[column].dtype.kind == "f":
            frame.loc[generator.random(len(frame)) < fraction, column] = np.nan
    return frame


def lists(values):
    return [[float(v) for v in np.atleast_1d(row)] for row in values]


def lightgbm_fixture(name, train, target, test, params, rounds, manifest_extra="", categorical=False, rows_frame=None):
    dataset = lgb.Dataset(train, target, params={"verbose": -1}, categorical_feature="auto" if categorical else None, free_raw_data=False)
    booster = lgb.train({"verbose": -1, "seed": 7, "deterministic": True, "num_threads": 1, **params}, dataset, num_boost_round=rounds)
    booster.save_model("/tmp/model.txt")
    raw = booster.predict(test, raw_score=True)
    value = booster.predict(test)
    generator = np.random.default_rng(11)
    rows = json_rows(test if rows_frame is None else rows_frame, generator)
    expected = [{"raw": r, "value": v} for r, v in zip(lists(raw), lists(value))]
    manifest = f"description: LightGBM fixture {name}\nkind: lightgbm\nfile: model.txt\noutput: raw\n{manifest_extra}"
    write_folder(name, "/tmp/model.txt", manifest, rows, expected)


def xgboost_fixture(name, train, target, test, params, rounds, unseen=None, rows_frame=None):
    dtrain = xgb.DMatrix(train, target, enable_categorical=True)
    booster = xgb.train({"seed": 7, "nthread": 1, **params}, dtrain, num_boost_round=rounds)
    booster.save_model("/tmp/model.json")
    unseen = np.zeros(len(test), dtype=bool) if unseen is None else unseen
    known = test[~unseen]
    dtest = xgb.DMatrix(known, enable_categorical=True)
    raw = iter(lists(booster.predict(dtest, output_margin=True)))
    value = iter(lists(booster.predict(dtest)))
    generator = np.random.default_rng(11)
    rows = json_rows(test if rows_frame is None else rows_frame, generator)
    expected = [{"error": "a category not seen in training"} if bad else {"raw": next(raw), "value": next(value)} for bad in unseen]
    manifest = f"description: XGBoost fixture {name}\nkind: xgboost\nfile: model.json\noutput: raw\n"
    write_folder(name, "/tmp/model.json", manifest, rows, expected)


def frame(X, prefix="x"):
    return pd.DataFrame(X, columns=[f"{prefix}{i}" for i in range(X.shape[1])])


def categorical_frame(generator, count, unseen_rate=0.0):
    colours = np.array(["red", "green", "blue", "amber"])
    sizes = np.array(["S", "M", "L", "XL", "XXL"])
    data = pd.DataFrame({
        "length": generator.normal(10, 3, count),
        "colour": generator.choice(colours, count, p=[0.4, 0.3, 0.2, 0.1]),
        "weight": generator.gamma(2, 2, count),
        "size": generator.choice(sizes, count),
    })
    if unseen_rate:
        data.loc[generator.random(count) < unseen_rate, "colour"] = "violet"
        data.loc[generator.random(count) < unseen_rate / 2, "size"] = None
    score = data["length"] / 3 + (data["colour"] == "red") * 1.5 - (data["colour"] == "blue") + data["size"].isin(["L", "XL"]) * 1.2
    return data, score


def main():
    generator = np.random.default_rng(2026)

    # LightGBM, binary: numeric features, no missing value in training (missing type None: NaN scores as 0).
    X, y = make_classification(n_samples=3000 + ROWS, n_features=8, n_informative=5, random_state=1)
    data = frame(X)
    test = with_missing(data[3000:], generator, 0.08)
    lightgbm_fixture("lgb_binary", data[:3000], y[:3000], test, {"objective": "binary", "num_leaves": 15}, 40)

    # LightGBM, multiclass (softmax) with class names.
    X, y = make_classification(n_samples=3000 + ROWS, n_features=6, n_informative=4, n_redundant=0, n_classes=3, random_state=2)
    data = frame(X, "f")
    lightgbm_fixture(
        "lgb_multiclass", data[:3000], y[:3000], with_missing(data[3000:], generator, 0.05), {"objective": "multiclass", "num_class": 3, "num_leaves": 7}, 30,
        "class_names: [low, medium, high]\n")

    # LightGBM, regression (L2).
    X, y = make_regression(n_samples=3000 + ROWS, n_features=5, noise=5, random_state=3)
    data = frame(X, "r")
    lightgbm_fixture("lgb_regression", data[:3000], y[:3000], with_missing(data[3000:], generator, 0.05), {"objective": "regression", "num_leaves": 31}, 50)

    # LightGBM, a random forest: average_output.
    lightgbm_fixture(
        "lgb_rf", data[:3000], y[:3000], data[3000:],
        {"objective": "regression", "boosting": "rf", "bagging_fraction": 0.7, "bagging_freq": 1, "feature_fraction": 0.8, "num_leaves": 15}, 20)

    # LightGBM, categorical features from pandas (the model keeps the categories: strings score by name; an unseen
    # value or a missing one goes where the library sends it).
    train, score = categorical_frame(generator, 4000)
    target = (score + generator.normal(0, 0.5, len(score)) > 4).astype(int)
    for column in ("colour", "size"):
        train[column] = pd.Categorical(train[column])
    test, _ = categorical_frame(generator, ROWS, unseen_rate=0.1)
    rows_frame = with_missing(test, generator, 0.05)
    # The rows carry the unseen value itself; the library is given it as pandas gives it, a missing category.
    test = rows_frame.copy()
    for column in ("colour", "size"):
        known = train[column].cat.categories
        test[column] = pd.Categorical(test[column].where(test[column].isin(known)), categories=known)
    lightgbm_fixture("lgb_categorical", train, target, test, {"objective": "binary", "num_leaves": 15, "min_data_per_group": 20, "cat_smooth": 5}, 40,
                     categorical=True, rows_frame=rows_frame)

    # LightGBM, missing values in training (missing type NaN, learned default directions) and in scoring.
    X, y = make_classification(n_samples=3000 + ROWS, n_features=6, n_informative=4, random_state=4)
    data = with_missing(frame(X, "m"), generator, 0.2)
    lightgbm_fixture("lgb_missing", data[:3000], y[:3000], data[3000:], {"objective": "binary", "num_leaves": 15}, 40)

    # LightGBM, zero as missing (missing type Zero).
    data0 = frame(X, "z")
    data0[generator.random(data0.shape) < 0.2] = 0.0
    lightgbm_fixture("lgb_zero", data0[:3000], y[:3000], data0[3000:], {"objective": "binary", "num_leaves": 15, "zero_as_missing": True}, 30)

    # LightGBM, large: 500 trees of 63 leaves.
    X, y = make_classification(n_samples=20000 + ROWS, n_features=20, n_informative=12, random_state=5)
    data = frame(X, "v")
    lightgbm_fixture(
        "lgb_large", data[:20000], y[:20000], with_missing(data[20000:], generator, 0.02),
        {"objective": "binary", "num_leaves": 63, "min_data_in_leaf": 5, "learning_rate": 0.05}, 500)

    # XGBoost, binary:logistic, trained with missing values (learned default directions).
    X, y = make_classification(n_samples=3000 + ROWS, n_features=8, n_informative=5, random_state=6)
    data = with_missing(frame(X), generator, 0.1)
    xgboost_fixture("xgb_binary", data[:3000], y[:3000], data[3000:], {"objective": "binary:logistic", "max_depth": 5, "eta": 0.2}, 40)

    # XGBoost, multi:softprob.
    X, y = make_classification(n_samples=3000 + ROWS, n_features=6, n_informative=4, n_redundant=0, n_classes=4, random_state=7)
    data = with_missing(frame(X, "f"), generator, 0.05)
    xgboost_fixture("xgb_multiclass", data[:3000], y[:3000], data[3000:], {"objective": "multi:softprob", "num_class": 4, "max_depth": 4}, 25)

    # XGBoost, reg:squarederror.
    X, y = make_regression(n_samples=3000 + ROWS, n_features=5, noise=5, random_state=8)
    data = with_missing(frame(X, "r"), generator, 0.05)
    xgboost_fixture("xgb_regression", data[:3000], y[:3000], data[3000:], {"objective": "reg:squarederror", "max_depth": 6}, 60)

    # XGBoost, categorical features (the model keeps the categories; an unseen one is refused, as XGBoost does).
    train, score = categorical_frame(generator, 4000)
    target = (score + generator.normal(0, 0.5, len(score)) > 4).astype(int)
    for column in ("colour", "size"):
        train[column] = pd.Categorical(train[column])
    test, _ = categorical_frame(generator, ROWS, unseen_rate=0.05)
    unseen = (test["colour"] == "violet").to_numpy()
    rows_frame = with_missing(test, generator, 0.05)
    test = rows_frame.copy()
    for column in ("colour", "size"):
        known = train[column].cat.categories
        test[column] = pd.Categorical(test[column].where(test[column].isin(known)), categories=known)
    xgboost_fixture("xgb_categorical", train, target, test,
                    {"objective": "binary:logistic", "max_depth": 4, "max_cat_to_onehot": 1, "tree_method": "hist"}, 30, unseen=unseen,
                    rows_frame=rows_frame)

    credit_score(generator)


def credit_score(generator):
    """models_serve/CreditScore: P(default) from a generated application, LightGBM, 60 trees of 15 leaves."""
    count = 6000
    data = pd.DataFrame({
        "income": generator.lognormal(10.8, 0.5, count).round(0),
        "debt_ratio": generator.beta(2, 5, count).round(3),
        "age": generator.integers(18, 80, count).astype(float),
        "months_employed": generator.integers(0, 360, count).astype(float),
        "late_payments": generator.poisson(0.6, count).astype(float),
        "home": pd.Categorical(generator.choice(["rent", "own", "mortgage"], count, p=[0.45, 0.2, 0.35])),
        "purpose": pd.Categorical(generator.choice(["car", "home", "education", "business", "other"], count)),
    })
    logit = (-1.2 - (np.log(data["income"]) - 10.8) * 1.5 + data["debt_ratio"] * 3 - data["months_employed"] / 120 + data["late_payments"] * 0.8
             + (data["home"] == "rent") * 0.4 + (data["purpose"] == "business") * 0.5 - (data["age"] - 40) / 60)
    target = (generator.random(count) < 1 / (1 + np.exp(-logit))).astype(int)
    data.loc[generator.random(count) < 0.05, "months_employed"] = np.nan
    booster = lgb.train({"objective": "binary", "num_leaves": 15, "verbose": -1, "seed": 7, "deterministic": True, "num_threads": 1},
                        lgb.Dataset(data, target), num_boost_round=60)
    folder = os.path.join(ROOT, "models_serve", "CreditScore")
    os.makedirs(folder, exist_ok=True)
    booster.save_model(os.path.join(folder, "model.txt"))
    applicant = pd.DataFrame([{"income": 42000.0, "debt_ratio": 0.45, "age": 29.0, "months_employed": 14.0, "late_payments": 2.0, "home": "rent",
                               "purpose": "business"},
                              {"income": 95000.0, "debt_ratio": 0.1, "age": 51.0, "months_employed": np.nan, "late_payments": 0.0, "home": "own",
                               "purpose": "car"}])
    for column in ("home", "purpose"):
        applicant[column] = pd.Categorical(applicant[column], categories=data[column].cat.categories)
    risky, safe = booster.predict(applicant)
    with open(os.path.join(folder, "model.yaml"), "w") as out:
        out.write(f"""description: Probability that a loan applicant defaults (LightGBM, 60 trees, trained by Tests/Fixtures/trees/make_fixtures.py)
kind: lightgbm
file: model.txt
class_names: [repays, defaults]
examples:
  - variables: {{income: 42000, debt_ratio: 0.45, age: 29, months_employed: 14, late_payments: 2, home: rent, purpose: business}}
    expect: {{probability: {float(risky)!r}}}
  - variables: {{income: 95000, debt_ratio: 0.1, age: 51, late_payments: 0, home: own, purpose: car}}
    expect: {{probability: {float(safe)!r}}}
explain:
  names:
    income: Income
    debt_ratio: Debt over income
    age: Age
    months_employed: Time in the current job
    late_payments: Late payments
    home: Home ownership
    purpose: Purpose of the loan
""")
    print(f"CreditScore: {os.path.getsize(os.path.join(folder, 'model.txt'))} bytes of model; examples {risky!r}, {safe!r}")


def library_frame(rows, names, categories=None):
    """The rows as the library is given them: columns in the model's order, a missing value NaN, and the categorical
    columns as pandas categories (an unseen one becomes missing for LightGBM, which re-codes by the model's lists)."""
    data = pd.DataFrame([{name: row.get(name) for name in names} for row in rows], columns=names)
    for name in names:
        if categories and name in categories:
            known = data[name].where(data[name].isin(categories[name]))
            data[name] = pd.Categorical(known, categories=categories[name])
        else:
            data[name] = pd.to_numeric(data[name], errors="coerce").astype(float)
    return data


def contributions():
    """Writes contributions.jsonl for every fixture folder from its model file and rows."""
    for name in sorted(os.listdir(HERE)):
        folder = os.path.join(HERE, name)
        if not os.path.isdir(folder):
            continue
        with open(os.path.join(folder, "rows.jsonl")) as source:
            rows = [json.loads(line) for line in source]
        with open(os.path.join(folder, "expected.jsonl")) as source:
            expected = [json.loads(line) for line in source]
        answers = []
        if name.startswith("lgb"):
            booster = lgb.Booster(model_file=os.path.join(folder, "model.txt"))
            names = booster.feature_name()
            categories = None
            with open(os.path.join(folder, "model.txt")) as model:
                infos = next(line for line in model if line.startswith("feature_infos=")).split("=", 1)[1].split()
            if booster.pandas_categorical:
                categorical = [n for n, info in zip(names, infos) if not info.startswith("[") and info != "none"]
                categories = dict(zip(categorical, booster.pandas_categorical))
            values = booster.predict(library_frame(rows, names, categories), pred_contrib=True)
            classes = booster.num_model_per_iteration()
            for row in values:
                per_class = np.asarray(row).reshape(classes, len(names) + 1)
                answers.append({"contributions": [[float(v) for v in c] for c in per_class]})
        else:
            booster = xgb.Booster(model_file=os.path.join(folder, "model.json"))
            names = booster.feature_names
            categorical = [n for n, t in zip(names, booster.feature_types or []) if t == "c"]
            known = [i for i, answer in enumerate(expected) if "error" not in answer]
            frame_rows = [rows[i] for i in known]
            data = pd.DataFrame([{n: row.get(n) for n in names} for row in frame_rows], columns=names)
            for n in names:
                data[n] = data[n].astype("category") if n in categorical else pd.to_numeric(data[n], errors="coerce").astype(float)
            values = booster.predict(xgb.DMatrix(data, enable_categorical=True), pred_contribs=True)
            by_row = {}
            for i, row in zip(known, values):
                per_class = np.asarray(row).reshape(-1, len(names) + 1)
                by_row[i] = {"contributions": [[float(v) for v in c] for c in per_class]}
            answers = [by_row.get(i, {"error": "a category not seen in training"}) for i in range(len(rows))]
        with open(os.path.join(folder, "contributions.jsonl"), "w") as out:
            for answer in answers:
                out.write(json.dumps(answer, separators=(",", ":")) + "\n")
        print(f"{name}: contributions of {len(answers)} rows")


if __name__ == "__main__":
    import sys
    if sys.argv[1:] == ["--contributions"]:
        contributions()
    else:
        main()
