"""models_serve/Iris in Python, as a user of the original project wrote it."""
import json
import math
import os

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


class Iris:
    def __init__(self, path):
        with open(os.path.join(path, "weights.json")) as handle:
            weights = json.load(handle)
        self.classes = weights["classes"]
        self.coefficients = weights["coefficients"]
        self.intercepts = weights["intercepts"]

    def transform_predict(self, variables):
        row = [float(variables[feature]) for feature in FEATURES]
        scores = [
            intercept + sum(weight * value for weight, value in zip(coefficients, row))
            for coefficients, intercept in zip(self.coefficients, self.intercepts)
        ]
        largest = max(scores)
        exponentials = [math.exp(score - largest) for score in scores]
        best = max(range(len(scores)), key=lambda index: exponentials[index])
        return {
            "iris_class": self.classes[best],
            "iris_probability": round(exponentials[best] / sum(exponentials), 4),
        }
