"""The Open Inference Protocol v2 routes through a real client (docs/http-api.md, "Open Inference Protocol v2").

tritonclient[http] (PyPI) against a live server of models_serve/: health, server and model metadata, readiness,
infer of 1 and of 100 rows, a version in the path, and bad requests; every answer of infer is compared with the
native route's answer for the same rows. Usage: tritonclient_check.py HOST:PORT
"""

import json
import random
import sys
import urllib.request

import numpy as np
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

URL = sys.argv[1]
client = triton.InferenceServerClient(url=URL)


def native(model, rows):
    """The native batch route's outputs for the same rows."""
    request = urllib.request.Request(
        f"http://{URL}/{model}", data=json.dumps({"rows": rows}).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request) as answer:
        return json.load(answer)["outputs"]


def infer(model, rows, types, version="", outputs=None):
    inputs = []
    for name, datatype in types.items():
        values = [row[name] for row in rows]
        array = np.array(values, dtype=object if datatype == "BYTES" else {"FP64": np.float64, "INT64": np.int64}[datatype])
        tensor = triton.InferInput(name, [len(rows)], datatype)
        tensor.set_data_from_numpy(array, binary_data=False)
        inputs.append(tensor)
    requested = [triton.InferRequestedOutput(name, binary_data=False) for name in outputs] if outputs else None
    return client.infer(model, inputs, model_version=version, outputs=requested, request_id="check-1")


def same(result, expected, names):
    """Each output tensor equals the native route's value of that key, row by row."""
    for name in names:
        values = result.as_numpy(name)
        assert values is not None, f"no output tensor {name}"
        assert values.shape == (len(expected),), f"{name}: shape {values.shape}"
        for row, (got, want) in enumerate(zip(values, expected)):
            if isinstance(got, bytes):
                got = got.decode()
            assert got == want[name], f"{name}, row {row}: {got!r} != {want[name]!r}"


def expect_error(call, status_word, text):
    try:
        call()
    except InferenceServerException as error:
        message = str(error)
        assert text in message, f"the error says {message!r}, not {text!r}"
        return message
    raise AssertionError(f"no error; expected one saying {text!r}")


assert client.is_server_live()
assert client.is_server_ready()
metadata = client.get_server_metadata()
assert metadata["name"] == "autoserve", metadata

iris = client.get_model_metadata("Iris")
assert sorted(tensor["name"] for tensor in iris["inputs"]) == ["petal_length", "petal_width", "sepal_length", "sepal_width"], iris
assert all(tensor["datatype"] == "FP64" for tensor in iris["inputs"]), iris
version = iris["versions"][0]
assert client.is_model_ready("Iris")
assert client.is_model_ready("Iris", model_version=version)
assert not client.is_model_ready("Iris", model_version="0" * 64)
churn = client.get_model_metadata("ChurnRisk")
assert sorted(tensor["name"] for tensor in churn["outputs"]) == ["churn_probability", "reasons", "risk"], churn

random.seed(3)
iris_types = {"sepal_length": "FP64", "sepal_width": "FP64", "petal_length": "FP64", "petal_width": "FP64"}
for count in (1, 100):
    rows = [{name: round(random.uniform(0.2, 7.5), 1) for name in iris_types} for _ in range(count)]
    result = infer("Iris", rows, iris_types)
    assert result.get_response()["id"] == "check-1", result.get_response()
    same(result, native("Iris", rows), ["iris_class", "iris_probability"])
    print(f"Iris: infer of {count} row(s) equals the native route")

house_types = {"area_sqm": "FP64", "year_built": "INT64", "rooms": "INT64", "neighbourhood": "BYTES"}
rows = [
    {"area_sqm": 40.0 + 7 * index, "year_built": 1900 + index, "rooms": 1 + index % 5, "neighbourhood": ["centre", "harbour", "suburb"][index % 3]}
    for index in range(100)
]
result = infer("HousePrice", rows, house_types, outputs=["price"])
same(result, native("HousePrice", rows), ["price"])
assert result.as_numpy("features_used") is None, "only the output asked for"
print("HousePrice: 100 rows with INT64 and BYTES inputs, one output asked for, equal to the native route")

result = infer("Iris", [{name: 5.0 for name in iris_types}], iris_types, version=version)
same(result, native("Iris", [{name: 5.0 for name in iris_types}]), ["iris_class"])

message = expect_error(lambda: infer("Iris", [{"sepal_length": 5.1}], {"sepal_length": "FP64"}), "400", "missing field")
print(f"a row without its variables: {message}")
expect_error(lambda: infer("Iris", [{name: 5.0 for name in iris_types}], iris_types, version="0" * 64), "404", "has no version")
expect_error(lambda: infer("Nope", [{"a": 1.0}], {"a": "FP64"}), "404", "no model named 'Nope'")
expect_error(lambda: infer("Iris", [{name: -1.0 for name in iris_types}], iris_types), "422", "non-negative")
print("tritonclient: every check passed")
