"""Runs exported models in onnxruntime, building every input from signature.json alone, as a
program that has never read est's docs would.

Usage: onnx_run.py JOBS.json

JOBS.json is a list of {"export": DIR, "csv": PATH, "ids": PATH, "out": PATH, "delimiter": ",",
"replace": [[row, input, value], ...]}: the export folder, the rows (a CSV with a header), what
`est featurize` printed for them, where to write one JSON object of outputs per row, the CSV's
delimiter, and input values to put in place of what the CSV says. Each model is first checked
with onnx.checker.check_model(full_check=True). Prints one JSON object per job: the model's
metadata_props, opsets and initializer names.
"""

import csv
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort


def feeds(signature, header, rows, ids):
    missing = set(signature["missing"])
    out = {}
    for spec in signature["inputs"]:
        name, feed = spec["name"], spec["feed"]
        kind = feed["kind"]
        if kind == "rows":
            out[name] = np.zeros(len(rows), np.int64)
            continue
        if kind == "ids":
            lists = [line[name] for line in ids]
            width = max([1] + [len(l) for l in lists])
            out[name] = np.array([l + [-1] * (width - len(l)) for l in lists], np.int64).reshape(len(rows), width)
            continue
        column = header.index(spec["column"])
        fields = [row[column].strip() for row in rows]
        if kind == "numbers":
            shape = feed["shape"]
            values = [[float("nan")] * shape if f in missing else [float(v) for v in f.split()] for f in fields]
            out[name] = np.array(values, np.float32).reshape(len(rows), shape)
        elif kind == "vocabulary":
            out[name] = np.array([["" if f in missing else f] for f in fields], object)
        elif kind == "identity":
            out[name] = np.array([[-1 if f in missing else int(f)] for f in fields], np.int64)
        else:
            raise SystemExit(f"unknown feed kind {kind}")
    return out


def run(job):
    path = job["export"] + "/model.onnx"
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    with open(job["export"] + "/signature.json") as f:
        signature = json.load(f)
    with open(job["csv"], newline="") as f:
        table = list(csv.reader(f, delimiter=job.get("delimiter", ",")))
    header, rows = [h.strip() for h in table[0]], [r for r in table[1:] if r]
    ids = []
    if job.get("ids"):
        with open(job["ids"]) as f:
            ids = [json.loads(line) for line in f]
        assert len(ids) == len(rows), (len(ids), len(rows))
    inputs = feeds(signature, header, rows, ids)
    for row, name, value in job.get("replace", []):
        inputs[name][row] = value
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    assert names == [o["name"] for o in signature["outputs"]], names
    assert [i.name for i in session.get_inputs()] == [i["name"] for i in signature["inputs"]]
    results = session.run(None, inputs)
    with open(job["out"], "w") as f:
        for r in range(len(rows)):
            line = {}
            for name, value in zip(names, results):
                line[name] = [v.item() if hasattr(v, "item") else v for v in value[r]]
            f.write(json.dumps(line) + "\n")
    return {
        "metadata": {p.key: p.value for p in model.metadata_props},
        "opsets": {o.domain or "ai.onnx": o.version for o in model.opset_import},
        "initializers": [t.name for t in model.graph.initializer],
        "batch": [d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim][:1],
    }


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        jobs = json.load(f)
    for job in jobs:
        print(json.dumps(run(job)))
