"""est against PyTorch eager, side by side on this machine, and est's own input, start-up,
checkpoint and memory figures. Runs alternate (est, PyTorch, est, ...); the table shows medians
and ratios.

Usage: bench/run [ROUNDS]   (builds est in release mode first)
       bench/run --criteo [--criteo-rows N] [ROUNDS]   (the Criteo-shaped workload alone)
       bench.py --device cuda [--steps N] [ROUNDS]   (the synthetic workload only, on a GPU)
"""

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import criteo

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EST = os.environ.get("EST_BIN", os.path.join(ROOT, "target/release/est"))
PYTHON = os.environ.get("EST_PYTHON", sys.executable)
WORK = os.path.join(ROOT, "target/bench")

SYNTH_ROWS, SYNTH_COLUMNS, SYNTH_CLASSES = 200_000, 32, 8


def synthetic_csv():
    """200k rows of 32 floats and a class in 0..8, the same bytes every time (64 MB). Made with
    torch alone, which every machine that runs the benchmark has."""
    path = os.path.join(WORK, "synthetic.csv")
    if os.path.exists(path):
        return path
    import torch

    g = torch.Generator().manual_seed(0)
    x = torch.randn(SYNTH_ROWS, SYNTH_COLUMNS, generator=g)
    w = torch.randn(SYNTH_COLUMNS, SYNTH_CLASSES, generator=g)
    y = (x @ w + 0.5 * torch.randn(SYNTH_ROWS, SYNTH_CLASSES, generator=g)).argmax(1)
    header = ",".join([f"f{i}" for i in range(SYNTH_COLUMNS)] + ["label"])
    with open(path + ".tmp", "w") as f:
        f.write(header + "\n")
        for row, label in zip(x.tolist(), y.tolist()):
            f.write(",".join(f"{v:.7f}" for v in row) + f",{label}\n")
    os.replace(path + ".tmp", path)
    return path


def pipeline(name, csv, label, features, hidden, classes, batch, steps, device="auto"):
    text = f"""pipeline {name} {{
  data {{ train = "{csv}", label = {label} }}
  features {{ {", ".join("numeric " + f for f in features)} }}
  model dnn_classifier {{ hidden_units = {hidden}, n_classes = {classes} }}
  optimizer adagrad {{ learning_rate = 0.05 }}
  train {{ batch_size = {batch}, steps = {steps}, seed = 1, device = {device} }}
  checkpoint {{ save_every = 100 steps, keep_max = 1000 }}
  summaries {{ every = 1000000, log_every = 1000000 }}
}}
"""
    path = os.path.join(WORK, f"{name}.est")
    with open(path, "w") as f:
        f.write(text)
    return path


def run_est(est_file, model_dir, *args, fresh=True):
    """One `est train`, from scratch unless not `fresh`: wall-clock marks from its stderr, its own
    summary."""
    if fresh:
        shutil.rmtree(model_dir, ignore_errors=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    child = subprocess.Popen([EST, "train", est_file, "--model-dir", model_dir, *args], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    first_step = None
    lines = []
    for line in child.stderr:
        lines.append(line)
        if first_step is None and line.startswith("step = 1,"):
            first_step = time.perf_counter() - start
    out = child.stdout.read()
    child.wait()
    if child.returncode != 0:
        sys.exit(f"est failed:\n{''.join(lines)}{out}")
    rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    text = "".join(lines)
    rate = float(re.search(r"\(([\d.]+) steps/s\)", out).group(1))
    loss = float(re.search(r"loss ([-\d.e]+);", out).group(1))
    read = re.search(r"read (\d+) rows from .* in ([\d.]+) s", text)
    # The longest pause of a save: its start, or a copy between steps of a big table.
    stall = re.search(r"paused the training thread for at most ([\d.]+) ms.*?(?:at most ([\d.]+) ms a step)?$", text, re.M)
    intervals = [float(r) for r in re.findall(r"^step = \d+, .*steps/sec = ([\d.]+)", text, re.M)]
    return {
        "steps_per_sec": rate,
        # Between log lines, past the start (model initialisation, the first checkpoint's copy).
        "interval_rate": statistics.median(intervals) if intervals else rate,
        "loss": loss,
        "first_step": first_step,
        "read_s": float(read.group(2)) if read else None,
        "stall_ms": max(float(g) for g in stall.groups() if g) if stall else None,
        "rss_mb": rss_mb if rss_mb > before / 1024 else None,
    }


def run_torch(workload):
    path = os.path.join(WORK, "workload.json")
    with open(path, "w") as f:
        json.dump(workload, f)
    out = subprocess.run([PYTHON, os.path.join(ROOT, "bench/reference.py"), path], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"reference.py failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def pandas_read(csv):
    code = ("import time, pandas as pd, torch, numpy as np; t=time.perf_counter(); f=pd.read_csv(%r); "
            "x=torch.from_numpy(f.to_numpy(np.float32)); print(time.perf_counter()-t)") % csv
    return float(subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, check=True).stdout)


def ingest(est_file, csv, rounds):
    """CSV to tensors, est against pandas, alternating: (est's runs, pandas' runs), in seconds.
    Each est run is a fresh `est train --steps 1` into a fresh model directory; its own timing
    covers reading the file and handing the columns to libtorch."""
    est, pandas = [], []
    model_dir = os.path.join(WORK, "ingest")
    for _ in range(rounds):
        est.append(run_est(est_file, model_dir, "--steps", "1")["read_s"])
        pandas.append(pandas_read(csv))
    shutil.rmtree(model_dir, ignore_errors=True)
    return est, pandas


ORT_RUN = """
import json, sys, time
import numpy as np, onnxruntime as ort, pandas as pd
export, csv = sys.argv[1], sys.argv[2]
signature = json.load(open(export + "/signature.json"))
start = time.perf_counter()
frame = pd.read_csv(csv)
feeds = {i["name"]: frame[i["column"]].to_numpy(np.float32).reshape(-1, 1) for i in signature["inputs"]}
read = time.perf_counter() - start
session = ort.InferenceSession(export + "/model.onnx", providers=["CPUExecutionProvider"])
session.run(None, {k: v[:256] for k, v in feeds.items()})
start = time.perf_counter()
session.run(None, feeds)
print(json.dumps({"run_s": time.perf_counter() - start, "read_s": read, "rows": len(frame)}))
"""


def serving(est_file, model_dir, csv, rounds):
    """The synthetic model exported, then predictions per second, alternating: `est predict` on
    the CSV (start-up, reading, writing JSON lines), and onnxruntime on the same rows (one run
    over all of them, and pandas' reading of the CSV before it)."""
    out = os.path.join(WORK, "export-synthetic")
    shutil.rmtree(out, ignore_errors=True)
    subprocess.run([EST, "export", est_file, "--model-dir", model_dir, "--out", out], check=True, capture_output=True)
    est, ort = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        subprocess.run([EST, "predict", est_file, "--model-dir", model_dir, "--input", csv, "--output", os.devnull],
                       check=True, capture_output=True)
        est.append(time.perf_counter() - start)
        done = subprocess.run([PYTHON, "-c", ORT_RUN, out, csv], check=True, capture_output=True, text=True)
        ort.append(json.loads(done.stdout))
    return est, ort


def peak_rss(args):
    """Peak resident memory of one child, in MB."""
    out = subprocess.run(["/usr/bin/time", "-f", "%M"] + args, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{out.stderr}")
    return int(out.stderr.strip().splitlines()[-1]) / 1024


def compare(workloads, rounds, device):
    """Alternating est and PyTorch runs of each workload: (name, est, PyTorch, loss gap, runs)."""
    rows = []
    for name, csv, label, features, hidden, classes, batch, steps in workloads:
        est_file = pipeline(name, csv, label, features, hidden, classes, batch, steps, device)
        model_dir = os.path.join(WORK, f"models-{name}")
        est_runs, torch_runs = [], []
        for _ in range(rounds):
            est_runs.append(run_est(est_file, model_dir))
            shutil.copy(os.path.join(model_dir, "ckpt-0.safetensors"), os.path.join(WORK, "init.safetensors"))
            workload = dict(csv=csv, label=label, hidden_units=hidden, n_classes=classes, batch_size=batch,
                            steps=steps, learning_rate=0.05, seed=1, checkpoint=os.path.join(WORK, "init.safetensors"),
                            save_to=os.path.join(WORK, "torch-save.pt"), device=device)
            torch_runs.append(run_torch(workload))
            if name == "iris":
                # PyTorch with one thread too: est picks one for models this small.
                one = run_torch(dict(workload, threads=1))
                torch_runs[-1]["one_thread"] = one["steps_per_sec"]
        med = lambda runs, key: statistics.median(r[key] for r in runs if r[key] is not None)
        e, t = med(est_runs, "steps_per_sec"), med(torch_runs, "steps_per_sec")
        loss_gap = max(abs(a["loss"] - b["loss"]) for a, b in zip(est_runs, torch_runs))
        rows.append((name, e, t, loss_gap, est_runs, torch_runs))

    print(f"Medians of {rounds} alternating runs; est {EST}, PyTorch {PYTHON}, device {torch_runs[-1]['device']}\n")
    print("| workload | est steps/s | PyTorch eager steps/s | est / PyTorch | final loss, est − PyTorch |")
    print("| --- | --- | --- | --- | --- |")
    for name, e, t, gap, _, _ in rows:
        print(f"| {name} | {e:,.0f} | {t:,.0f} | {e / t:.2f}x | {gap:.1e} |")
    return rows


def main():
    args = argparse.ArgumentParser(description="est against PyTorch eager, side by side")
    args.add_argument("rounds", nargs="?", type=int, default=3)
    args.add_argument("--device", default="cpu", help="cpu (every workload and measure) or cuda (synthetic only)")
    args.add_argument("--steps", type=int, help="steps of the synthetic workload (1,000 on the CPU, 5,000 on CUDA)")
    args.add_argument("--criteo", action="store_true", help="the Criteo-shaped workload alone")
    args.add_argument("--criteo-rows", type=int, default=1_000_000, help="its rows (1,000,000)")
    args = args.parse_args()
    rounds = args.rounds
    os.makedirs(WORK, exist_ok=True)
    synth = synthetic_csv()
    iris_csv = os.path.join(ROOT, "pipelines/data/iris_training.csv")
    synth_steps = args.steps or (1000 if args.device == "cpu" else 5000)
    synthetic = ("synthetic", synth, "label", [f"f{i}" for i in range(SYNTH_COLUMNS)], [256, 128], SYNTH_CLASSES, 256, synth_steps)
    if args.device != "cpu":
        compare([synthetic], rounds, args.device)
        return
    iris = ("iris", iris_csv, "Species", ["SepalLength", "SepalWidth", "PetalLength", "PetalWidth"], [10, 10], 3, 100, 5000)
    if args.criteo:
        pipeline(*iris)
        criteo.run(sys.modules[__name__], rounds, args.criteo_rows)
        return
    rows = compare([iris, synthetic], rounds, args.device)
    one = statistics.median(r["one_thread"] for r in rows[0][5])
    print(f"| iris, PyTorch limited to one thread | {rows[0][1]:,.0f} | {one:,.0f} | {rows[0][1] / one:.2f}x | |")

    synth_runs = rows[1][4]
    synth_file = os.path.join(WORK, "synthetic.est")
    est_reads, pandas_reads = ingest(synth_file, synth, rounds)
    ingest_est, ingest_pandas = statistics.median(est_reads), statistics.median(pandas_reads)
    in_training = statistics.median(r["read_s"] for r in synth_runs)
    first = statistics.median(r["first_step"] for r in synth_runs)
    stall = max(r["stall_ms"] for r in synth_runs)
    torch_save = statistics.median(r["save_ms"] for r in rows[1][5])
    predicts, ort_runs = serving(synth_file, os.path.join(WORK, "models-synthetic"), synth, rounds)
    iris_file = os.path.join(WORK, "iris.est")
    for d in ("rss-base", "rss-synth"):
        shutil.rmtree(os.path.join(WORK, d), ignore_errors=True)
    baseline = statistics.median(peak_rss([EST, "train", iris_file, "--steps", "1", "--model-dir", os.path.join(WORK, "rss-base")]) for _ in range(rounds))
    peak = statistics.median(peak_rss([EST, "train", synth_file, "--steps", "50", "--model-dir", os.path.join(WORK, "rss-synth")]) for _ in range(rounds))
    dataset_mb = SYNTH_ROWS * (SYNTH_COLUMNS * 4 + 8) / 2**20
    print()
    print("| measure | est | reference | ratio or limit |")
    print("| --- | --- | --- | --- |")
    print(f"| CSV ingest, {os.path.getsize(synth) / 2**20:.0f} MB, {SYNTH_ROWS:,} × {SYNTH_COLUMNS} | {ingest_est * 1000:.0f} ms | pandas.read_csv + tensor: {ingest_pandas * 1000:.0f} ms | {ingest_pandas / ingest_est:.1f}x faster |")
    print(f"| the same, inside the training runs above | {in_training * 1000:.0f} ms | | |")
    print(f"| `est train` to the first step, synthetic | {first * 1000:.0f} ms | | limit 500 ms |")
    print(f"| checkpoint stall of the training thread, synthetic | {stall:.2f} ms (worst) | torch.save, no fsync: {torch_save:.2f} ms | limit 1 ms |")
    predict_rate = SYNTH_ROWS / statistics.median(predicts)
    ort_rate = SYNTH_ROWS / statistics.median(r["run_s"] for r in ort_runs)
    ort_read_rate = SYNTH_ROWS / statistics.median(r["run_s"] + r["read_s"] for r in ort_runs)
    print(f"| predictions/s, synthetic model, {SYNTH_ROWS:,} rows: `est predict` (CSV in, JSON lines out) | {predict_rate:,.0f} | onnxruntime on the export, one run: {ort_rate:,.0f}; with pandas reading the CSV: {ort_read_rate:,.0f} | {ort_rate / predict_rate:.1f}x; {ort_read_rate / predict_rate:.1f}x |")
    print(f"| peak RSS, synthetic | {peak:.0f} MB | libtorch baseline (iris, 1 step): {baseline:.0f} MB; dataset tensors {dataset_mb:.1f} MB | limit {baseline + 1.5 * dataset_mb:.0f} MB |")
    criteo.run(sys.modules[__name__], rounds, args.criteo_rows)


if __name__ == "__main__":
    main()
