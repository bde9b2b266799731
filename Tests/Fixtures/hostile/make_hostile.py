#!/usr/bin/env python3
"""Writes the hostile model folders of Tests/Fixtures/hostile: one per way a models repository once crashed, hung or
exhausted the server (issue "Treat everything from the models repository as untrusted input"). Each folder is a
model that must fail with its reason while the others serve. The fuzzers start from the same files
(fuzz/corpus/lightgbm, fuzz/corpus/xgboost, fuzz/corpus/schema). Standard library only; run from anywhere."""
import copy
import json
import os
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
FUZZ = os.path.join(HERE, "..", "..", "..", "fuzz", "corpus")

# A valid LightGBM text model: a numerical split on `a`, a categorical one on `b`.
LIGHTGBM = """tree
version=v4
num_class=1
num_tree_per_iteration=1
label_index=0
max_feature_idx=1
objective=binary sigmoid:1
feature_names=a b
feature_infos=[0:1] -1:0:1
tree_sizes=400

Tree=0
num_leaves=3
num_cat=1
split_feature=0 1
split_gain=1 1
threshold=0.5 0
decision_type=2 1
left_child=1 -1
right_child=-2 -3
leaf_value=0.1 0.2 0.3
leaf_weight=1 1 1
leaf_count=1 1 1
internal_value=0 0
internal_weight=0 0
internal_count=3 2
cat_boundaries=0 1
cat_threshold=2
is_linear=0
shrinkage=1


end of trees

pandas_categorical:null
"""

# A valid XGBoost JSON model: a categorical split on `colour` (categories by name), then leaves.
XGBOOST = {
    "learner": {
        "attributes": {},
        "feature_names": ["length", "colour"],
        "feature_types": ["float", "c"],
        "gradient_booster": {
            "model": {
                "cats": {
                    "enc": [{"offsets": [], "values": []}, {"offsets": [0, 3, 7], "values": list(b"redblue")}],
                    "feature_segments": [0, 0, 2],
                    "sorted_idx": [0, 1],
                },
                "gbtree_model_param": {"num_parallel_tree": "1", "num_trees": "1"},
                "iteration_indptr": [0, 1],
                "tree_info": [0],
                "trees": [
                    {
                        "base_weights": [0, 0.5, -0.5],
                        "categories": [1],
                        "categories_nodes": [0],
                        "categories_segments": [0],
                        "categories_sizes": [1],
                        "default_left": [1, 0, 0],
                        "id": 0,
                        "left_children": [1, -1, -1],
                        "loss_changes": [1, 0, 0],
                        "parents": [2147483647, 0, 0],
                        "right_children": [2, -1, -1],
                        "split_conditions": [1e-45, 0.5, -0.5],
                        "split_indices": [1, 0, 0],
                        "split_type": [1, 0, 0],
                        "sum_hessian": [2, 1, 1],
                        "tree_param": {"num_deleted": "0", "num_feature": "2", "num_nodes": "3", "size_leaf_vector": "1"},
                    }
                ],
            },
            "name": "gbtree",
        },
        "learner_model_param": {"base_score": "[5E-1]", "boost_from_average": "1", "num_class": "0", "num_feature": "2", "num_target": "1"},
        "objective": {"name": "binary:logistic", "reg_loss_param": {"scale_pos_weight": "1"}},
    },
    "version": [3, 0, 0],
}


def lightgbm(**changes):
    """The valid model with some lines replaced: key -> new value (None drops the line)."""
    lines = []
    for line in LIGHTGBM.split("\n"):
        key = line.split("=", 1)[0]
        if "=" in line and key in changes:
            if changes[key] is not None:
                lines.append(f"{key}={changes[key]}")
        else:
            lines.append(line)
    return "\n".join(lines)


def xgboost(change):
    model = copy.deepcopy(XGBOOST)
    change(model)
    return json.dumps(model)


def tree(model):
    return model["learner"]["gradient_booster"]["model"]["trees"][0]


def params(model):
    return model["learner"]["learner_model_param"]


def many_category_nodes(model):
    # 400 categorical nodes, each naming category 16777215: a 2 MiB bitset apiece (1.1 GB from 205 KB).
    count = 401
    t = tree(model)
    nodes = 2 * count + 1
    t["left_children"] = [2 * i + 1 if 2 * i + 2 < nodes else -1 for i in range(nodes)]
    t["right_children"] = [2 * i + 2 if 2 * i + 2 < nodes else -1 for i in range(nodes)]
    splits = [i for i in range(nodes) if t["left_children"][i] != -1]
    t["split_type"] = [1 if i in splits else 0 for i in range(nodes)]
    t["split_indices"] = [1 if i in splits else 0 for i in range(nodes)]
    t["split_conditions"] = [1e-45 if i in splits else 0.25 for i in range(nodes)]
    t["default_left"] = [0] * nodes
    t["categories_nodes"] = splits
    t["categories_segments"] = list(range(len(splits)))
    t["categories_sizes"] = [1] * len(splits)
    t["categories"] = [16777215] * len(splits)
    for key in ["base_weights", "loss_changes", "sum_hessian"]:
        t[key] = [0] * nodes
    t["parents"] = [2147483647] + [(i - 1) // 2 for i in range(1, nodes)]
    t["tree_param"]["num_nodes"] = str(nodes)


def multiclass(classes):
    """A multi:softprob model of `classes` classes (a count, as XGBoost writes it: a string)."""
    def change(model):
        model["learner"]["objective"] = {"name": "multi:softprob", "softmax_multiclass_param": {"num_class": classes}}
        model["learner"]["learner_model_param"]["num_class"] = classes
    return change


def set_path(path, value):
    def change(model):
        target = model
        for key in path[:-1]:
            target = target[key] if not callable(key) else key(target)
        target[path[-1]] = value
    return change


SWIFT_HEADER = "import AutoServeModel\nimport Foundation\n\n"

# name -> (files, the words the failure's reason must hold)
CASES = {
    "LgbCategoryInf": ({"model.txt": lightgbm(threshold="0.5 inf")}, "category set"),
    "LgbCategoryHuge": ({"model.txt": lightgbm(threshold="0.5 1e300")}, "category set"),
    "LgbNumCatMax": ({"model.txt": lightgbm(num_cat="9223372036854775807")}, "num_cat"),
    "LgbNumLeaves": ({"model.txt": lightgbm(num_leaves="100000000000000000")}, "num_leaves"),
    "LgbFeatureIndex": ({"model.txt": lightgbm(max_feature_idx="999999999999", feature_names=None, feature_infos=None)}, "max_feature_idx"),
    "LgbTinyWide": ({"model.txt": lightgbm(max_feature_idx="2999999", feature_names=None, feature_infos=None)}, "max_feature_idx"),
    "LgbSigmoidNan": ({"model.txt": lightgbm(objective="binary sigmoid:nan")}, "sigmoid"),
    "XgbSegmentOverflow": (
        {"model.json": xgboost(set_path(["learner", "gradient_booster", "model", "trees", 0, "categories_segments"], [9223372036854775807]))},
        "categories_segments",
    ),
    "XgbNegativeOffsets": (
        {"model.json": xgboost(set_path(["learner", "gradient_booster", "model", "cats", "enc", 1, "offsets"], [-5, 3, 7]))},
        "offsets",
    ),
    "XgbNumFeature": ({"model.json": xgboost(set_path(["learner", "learner_model_param", "num_feature"], "1000000000000"))}, "num_feature"),
    "XgbNumFeatureExponent": ({"model.json": xgboost(set_path(["learner", "learner_model_param", "num_feature"], "1e12"))}, "num_feature"),
    "XgbNumClass": ({"model.json": xgboost(multiclass("1000000000000"))}, "num_class"),
    "XgbNumClassExponent": ({"model.json": xgboost(multiclass("1e12"))}, "num_class"),
    "XgbCategoryBitsets": ({"model.json": xgboost(many_category_nodes)}, "MiB of bitsets"),
    "XgbBaseScoreNan": ({"model.json": xgboost(set_path(["learner", "learner_model_param", "base_score"], "nan"))}, "base_score"),
    "SwiftEnumIntMax": (
        {
            "etls.swift": SWIFT_HEADER
            + "enum Level: Int, Decodable { case a = 9223372036854775807 }\n\n"
            + "struct Model {\n    struct Variables: Decodable { var level: Level }\n    init(path: String) {}\n"
            + "    func transform_predict(_ variables: Variables) -> [String: JSON] { [\"level\": .number(Double(variables.level.rawValue))] }\n}\n"
        },
        None,  # a valid type: it builds and serves
    ),
    # 30 types each holding two of the next: 2^30 paths through the types. The schema was walked (and grew without
    # bound) before the compiler ran; now it is 30 definitions, and the compiler refuses the folder at once because
    # the types are not Decodable. (Classes, not structs: swiftc itself takes time exponential in the depth of
    # structs nested by value, or made Decodable, 16 s at 16 levels; the build's timeout bounds that.)
    "SwiftSchemaBomb": (
        {
            "etls.swift": SWIFT_HEADER
            + "".join(f"final class S{i} {{ var a: S{i + 1}?; var b: S{i + 1}? }}\n" for i in range(30))
            + "final class S30 { var x: Double? }\n\n"
            + "struct Model {\n    init(path: String) {}\n"
            + "    func transform_predict(_ variables: S0) -> [String: JSON] { [\"ok\": true] }\n}\n"
        },
        "Decodable",
    ),
}

KINDS = {"model.txt": "lightgbm", "model.json": "xgboost"}


def main():
    for corpus, name, text in [("lightgbm", "valid", LIGHTGBM), ("xgboost", "valid", json.dumps(XGBOOST))]:
        os.makedirs(os.path.join(FUZZ, corpus), exist_ok=True)
        with open(os.path.join(FUZZ, corpus, name), "w") as out:
            out.write(text)
    reasons = {}
    for name, (files, reason) in CASES.items():
        folder = os.path.join(HERE, name)
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        for file, text in files.items():
            with open(os.path.join(folder, file), "w") as out:
                out.write(text)
            if file in KINDS:
                with open(os.path.join(folder, "model.yaml"), "w") as out:
                    out.write(f"kind: {KINDS[file]}\n")
            corpus = {"model.txt": "lightgbm", "model.json": "xgboost", "etls.swift": "schema"}[file]
            os.makedirs(os.path.join(FUZZ, corpus), exist_ok=True)
            with open(os.path.join(FUZZ, corpus, f"hostile-{name}"), "w") as out:
                out.write(text)
        reasons[name] = reason
    with open(os.path.join(HERE, "reasons.json"), "w") as out:
        json.dump(reasons, out, indent=1, sort_keys=True)
        out.write("\n")


if __name__ == "__main__":
    main()
