"""The design AutoServe replaces, as the benchmark's peer: Flask + gunicorn, one `etls.py` per model folder.

It reproduces the original project's request path: every request constructs the model object (which reads its
artifacts from disk), calls `transform_predict`, and `/all` merges every model's result into one object.
Run as it was deployed: `gunicorn -w 1 --threads 18 app:app` with MODELS_DIR pointing at the folders.
"""
import importlib.util
import os

from flask import Flask, jsonify, request

MODELS_DIR = os.environ.get("MODELS_DIR", os.path.join(os.path.dirname(__file__), "models"))


def load_models(root):
    """Imports each folder's etls.py once; the class is what the folder is named."""
    models = {}
    for name in sorted(os.listdir(root)):
        folder = os.path.join(root, name)
        source = os.path.join(folder, "etls.py")
        if not os.path.isfile(source):
            continue
        spec = importlib.util.spec_from_file_location(f"etls_{name}", source)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        models[name] = (getattr(module, name), folder)
    return models


MODELS = load_models(MODELS_DIR)
app = Flask(__name__)


@app.get("/hello")
def hello():
    return "hello"


@app.post("/<name>")
def predict(name):
    variables = request.get_json(force=True)["variables"]
    if name == "all":
        merged = {}
        for model, folder in MODELS.values():
            merged.update(model(folder).transform_predict(variables))
        return jsonify(merged)
    model, folder = MODELS[name]
    return jsonify(model(folder).transform_predict(variables))
