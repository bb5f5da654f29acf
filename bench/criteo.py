"""The Criteo-shaped workload: click-through rows of 13 numeric columns (with missing values)
and 26 categorical columns of hex strings with 10 to 100,000 values each, every categorical
column hashed into `hash_buckets` and embedded in 8 dimensions, a DNN [256, 128] over them,
Adagrad, batches of 512. est against PyTorch eager with the same hashing, initial weights and
batch order; ingest of the same rows as CSV and as Parquet against pandas; a busy core beside
both; peak memory and the checkpoint stall at a million buckets.

Run by bench.py (`bench/run`, or `bench/run --criteo` for this workload alone).
"""

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

NUMERIC, CATEGORICAL = 13, 26
CARDINALITIES = [int(round(10 * (10_000 ** (j / (CATEGORICAL - 1))))) for j in range(CATEGORICAL)]

REFERENCE = r'''
import json, sys, time
import numpy as np, pandas as pd, torch
sys.path.insert(0, sys.argv[2])
from reference import batches, load_safetensors
w = json.load(open(sys.argv[1]))
MASK = (1 << 64) - 1
def mix(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)
def fnv(s):
    h = 0xCBF29CE484222325
    for b in s.encode():
        h = ((h ^ b) * 0x100000001B3) & MASK
    return mix(h)
start = time.perf_counter()
frame = pd.read_parquet(w["parquet"]) if w.get("parquet") else pd.read_csv(w["csv"], na_values=["NA"], keep_default_na=False)
read = time.perf_counter() - start
buckets = w["buckets"]
ids = []
for j in range(1, %(cat)d + 1):
    codes, uniques = pd.factorize(frame[f"c{j:02d}"])
    table = np.array([fnv(u) %% buckets for u in uniques], dtype=np.int64)
    ids.append(torch.from_numpy(table[codes]))
ids = torch.stack(ids, 1)
numeric = []
for j in range(1, %(num)d + 1):
    x = frame[f"i{j:02d}"].to_numpy(np.float64)
    present = x[~np.isnan(x)]
    mean, std = present.mean(), present.std()
    numeric.append(torch.from_numpy(((np.nan_to_num(x, nan=0.0) - mean) / std).astype(np.float32)))
numeric = torch.stack(numeric, 1)
labels = torch.from_numpy(frame["label"].to_numpy(np.float32))
ingest = time.perf_counter() - start
if w.get("ingest_only"):
    print(json.dumps({"read_s": read, "ingest_s": ingest}))
    sys.exit()
initial = load_safetensors(w["checkpoint"])
sparse = w["sparse"]
tables = torch.nn.ModuleList(torch.nn.Embedding(buckets, 8, sparse=sparse) for _ in range(%(cat)d))
dnn = torch.nn.Sequential(torch.nn.Linear(%(cat)d * 8 + %(num)d, 256), torch.nn.ReLU(), torch.nn.Linear(256, 128),
                          torch.nn.ReLU(), torch.nn.Linear(128, 1))
with torch.no_grad():
    for j, t in enumerate(tables):
        t.weight.copy_(initial[f"dnn/input_from_feature_columns/input_layer/c{j + 1:02d}_e/embedding_weights"])
    names = ["dnn/hiddenlayer_0", "dnn/hiddenlayer_1", "dnn/logits"]
    for name, linear in zip(names, [m for m in dnn if isinstance(m, torch.nn.Linear)]):
        linear.weight.copy_(initial[f"{name}/kernel"].T)
        linear.bias.copy_(initial[f"{name}/bias"])
opt = torch.optim.Adagrad(list(tables.parameters()) + list(dnn.parameters()), lr=0.05,
                          initial_accumulator_value=0.1, eps=1e-7)
loss_fn = torch.nn.BCEWithLogitsLoss()
order = batches(1, len(labels), 512, w["steps"])
start = time.perf_counter()
for idx in order:
    rows = ids[idx]
    x = torch.cat([t(rows[:, j]) for j, t in enumerate(tables)] + [numeric[idx]], 1)
    loss = loss_fn(dnn(x).squeeze(1), labels[idx])
    opt.zero_grad()
    loss.backward()
    opt.step()
seconds = time.perf_counter() - start
print(json.dumps({"steps_per_sec": w["steps"] / seconds, "loss": loss.item(), "ingest_s": ingest}))
''' % {"cat": CATEGORICAL, "num": NUMERIC}


def data(work, rows):
    """The seeded rows as CSV and as Parquet (pyarrow), once: (csv, parquet)."""
    csv = os.path.join(work, f"criteo-{rows}.csv")
    parquet = os.path.join(work, f"criteo-{rows}.parquet")
    if os.path.exists(csv) and os.path.exists(parquet):
        return csv, parquet
    import numpy as np
    import pandas as pd
    import pyarrow
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    columns = {"label": None}
    score = np.zeros(rows)
    for j in range(NUMERIC):
        x = np.floor(np.expm1(rng.exponential(2.0, rows))).astype(np.float64)
        score += 0.1 * np.log1p(x) * (1 if j % 2 else -1)
        x[rng.random(rows) < 0.1] = np.nan
        columns[f"i{j + 1:02d}"] = x
    for j, card in enumerate(CARDINALITIES):
        # Skewed, as click logs are: a few values are most of the rows.
        code = np.minimum((card * rng.random(rows) ** 3).astype(np.int64), card - 1)
        vocabulary = np.array([f"{(v * 2654435761 + j * 40503) & 0xFFFFFFFF:08x}" for v in range(card)], dtype=object)
        score += 0.5 * np.sin(code * (j + 1.7))
        columns[f"c{j + 1:02d}"] = vocabulary[code]
    columns["label"] = (rng.random(rows) < 1 / (1 + np.exp(-(score - 1.5)))).astype(np.int64)
    frame = pd.DataFrame(columns)
    frame.to_csv(csv + ".tmp", index=False, na_rep="NA", float_format="%.0f")
    os.replace(csv + ".tmp", csv)
    pq.write_table(pyarrow.Table.from_pandas(frame, preserve_index=False), parquet + ".tmp")
    os.replace(parquet + ".tmp", parquet)
    return csv, parquet


def pipeline(work, name, train, buckets, steps, save_every=None):
    numeric = "\n    ".join(f"numeric i{j + 1:02d} {{ default = 0, normalize = zscore }}" for j in range(NUMERIC))
    categorical = "\n    ".join(
        f"categorical c{j + 1:02d} {{ hash_buckets = {buckets} }}\n    embedding c{j + 1:02d}_e = c{j + 1:02d} {{ dimension = 8 }}"
        for j in range(CATEGORICAL))
    text = f"""pipeline {name} {{
  data {{ train = "{train}", label = label, missing = "NA" }}
  features {{
    {numeric}
    {categorical}
  }}
  model dnn_classifier {{ hidden_units = [256, 128], n_classes = 2 }}
  optimizer adagrad {{ learning_rate = 0.05 }}
  train {{ batch_size = 512, steps = {steps}, seed = 1 }}
  checkpoint {{ save_every = {save_every or max(steps // 2, 1)} steps, keep_max = 1000 }}
  summaries {{ every = 1000000, log_every = 50 }}
}}
"""
    path = os.path.join(work, f"{name}.est")
    with open(path, "w") as f:
        f.write(text)
    return path


def reference(bench, work, **workload):
    path = os.path.join(work, "criteo-workload.json")
    with open(path, "w") as f:
        json.dump(workload, f)
    out = subprocess.run([bench.PYTHON, "-c", REFERENCE, path, os.path.join(bench.ROOT, "bench")],
                         capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"the Criteo reference failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def busy():
    """A single-threaded job competing for a core, until killed."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def run(bench, rounds, rows):
    work = bench.WORK
    csv, parquet = data(work, rows)
    steps, big_steps = 300, 200
    small = pipeline(work, "criteo", csv, 10_000, steps)
    big = pipeline(work, "criteo_1m", csv, 1_000_000, big_steps)
    from_parquet = pipeline(work, "criteo_parquet", parquet, 10_000, 1)
    init = os.path.join(work, "criteo-init.safetensors")
    m = lambda name: os.path.join(work, f"models-{name}")

    est, est_busy, dense, sparse, dense_busy, sparse_busy = [], [], [], [], [], []
    for _ in range(rounds):
        est.append(bench.run_est(small, m("criteo"), "--no-cache"))
        shutil.copy(os.path.join(m("criteo"), "ckpt-0.safetensors"), init)
        common = dict(csv=csv, buckets=10_000, steps=steps, checkpoint=init)
        dense.append(reference(bench, work, sparse=False, **common))
        sparse.append(reference(bench, work, sparse=True, **common))
        job = busy()
        try:
            est_busy.append(bench.run_est(small, m("criteo"), "--no-cache"))
            dense_busy.append(reference(bench, work, sparse=False, **common))
            sparse_busy.append(reference(bench, work, sparse=True, **common))
        finally:
            job.kill()
            job.wait()
    med = lambda runs, key="steps_per_sec": statistics.median(r[key] for r in runs)
    rate = lambda runs: med(runs, "interval_rate")
    est_rate, torch_rate = rate(est), max(med(dense), med(sparse))
    faster = "sparse=True" if med(sparse) > med(dense) else "dense"

    # A million buckets a column: est's rate, PyTorch's sparse embeddings, the checkpoint stall.
    est_1m = [bench.run_est(big, m("criteo_1m"), "--no-cache") for _ in range(rounds)]
    shutil.copy(os.path.join(m("criteo_1m"), "ckpt-0.safetensors"), init)
    sparse_1m = [reference(bench, work, sparse=True, csv=csv, buckets=1_000_000, steps=big_steps, checkpoint=init)
                 for _ in range(rounds)]
    # A million-bucket model_dir holds gigabytes: a few runs filled this machine's disk.
    shutil.rmtree(m("criteo_1m"), ignore_errors=True)
    os.remove(init)
    # The step alone at a million buckets: a run resumed from its first step, so no save is
    # being written while it is timed (its only other save is its last step's).
    steady = pipeline(work, "criteo_1m_steady", csv, 1_000_000, 1000, save_every=1_000_000)
    est_1m_steady = []
    for _ in range(rounds):
        bench.run_est(steady, m("criteo_1m_steady"), "--steps", "1", "--no-cache")
        est_1m_steady.append(bench.run_est(steady, m("criteo_1m_steady"), "--no-cache", fresh=False))
    shutil.rmtree(m("criteo_1m_steady"), ignore_errors=True)
    state_mb = 2 * CATEGORICAL * 1_000_000 * 8 * 4 / 2**20
    memcpy = subprocess.run([bench.PYTHON, "-c", (
        "import time, torch; x = torch.ones(%d); y = torch.empty_like(x); y.copy_(x); t = time.perf_counter(); "
        "y.copy_(x); print(time.perf_counter() - t)") % int(state_mb * 2**20 / 4)], capture_output=True, text=True,
        check=True)
    memcpy_ms = float(memcpy.stdout) * 1000

    # Ingest: est parsing (no cache), est from its cache, pandas with the same hashing.
    est_csv, est_cached, est_parquet, pandas_csv, pandas_parquet = [], [], [], [], []
    for _ in range(rounds):
        est_csv.append(bench.run_est(small, m("ingest"), "--steps", "1", "--no-cache")["read_s"])
        bench.run_est(small, m("ingest"), "--steps", "1")
        est_cached.append(bench.run_est(small, m("ingest"), "--steps", "1")["read_s"])
        est_parquet.append(bench.run_est(from_parquet, m("ingest"), "--steps", "1", "--no-cache")["read_s"])
        pandas_csv.append(reference(bench, work, csv=csv, buckets=10_000, ingest_only=True)["ingest_s"])
        pandas_parquet.append(reference(bench, work, parquet=parquet, buckets=10_000, ingest_only=True)["ingest_s"])

    baseline = statistics.median(bench.peak_rss([bench.EST, "train", os.path.join(work, "iris.est"), "--steps", "1",
                                                 "--model-dir", m("rss-base")]) for _ in range(rounds))
    peak = statistics.median(bench.peak_rss([bench.EST, "train", small, "--steps", "20", "--no-cache", "--model-dir",
                                             m("rss-criteo")]) for _ in range(rounds))
    dataset_mb = rows * (NUMERIC * 4 + CATEGORICAL * 8 + 8) / 2**20
    model_mb = 3 * (CATEGORICAL * 10_000 * 8 + 221 * 256 + 256 + 256 * 128 + 128 + 129) * 4 / 2**20

    size = os.path.getsize(csv) / 2**20
    print(f"\nCriteo-shaped, {rows:,} rows ({size:.0f} MB CSV, {os.path.getsize(parquet) / 2**20:.0f} MB Parquet), "
          f"medians of {rounds} alternating runs\n")
    print("| measure | est | PyTorch eager / pandas | ratio |")
    print("| --- | --- | --- | --- |")
    print(f"| training, 10k buckets, steps/s | {est_rate:,.0f} | dense {med(dense):,.0f}, sparse=True {med(sparse):,.0f} "
          f"| {est_rate / torch_rate:.2f}x the faster ({faster}) |")
    print(f"| the same beside a busy core | {rate(est_busy):,.0f} ({rate(est_busy) / est_rate:.0%} of quiet) "
          f"| dense {med(dense_busy):,.0f}, sparse=True {med(sparse_busy):,.0f} "
          f"({max(med(dense_busy), med(sparse_busy)) / torch_rate:.0%} of quiet) | |")
    print(f"| training, 1M buckets, steps/s | {rate(est_1m):,.0f} ({rate(est_1m) / est_rate:.2f}x its 10k rate; "
          f"{med(est_1m):,.0f} over the whole run, with its saves) "
          f"| sparse=True {med(sparse_1m):,.0f} | {rate(est_1m) / med(sparse_1m):.2f}x |")
    print(f"| the same, no save being written (resumed, 1,000 steps) | {rate(est_1m_steady):,.0f} "
          f"({rate(est_1m_steady) / est_rate:.2f}x its 10k rate) | | |")
    stall = max(r["stall_ms"] for r in est_1m if r["stall_ms"] is not None)
    print(f"| checkpoint stall of the training thread, 1M buckets ({state_mb:,.0f} MB of weights and accumulators) "
          f"| {stall:.2f} ms (worst) | a plain copy of that state: {memcpy_ms:,.0f} ms | {stall / memcpy_ms:.1%} |")
    print(f"| CSV to tensors | {statistics.median(est_csv) * 1000:,.0f} ms | read_csv + hashing + z-score: "
          f"{statistics.median(pandas_csv) * 1000:,.0f} ms | {statistics.median(pandas_csv) / statistics.median(est_csv):.1f}x |")
    print(f"| Parquet to tensors | {statistics.median(est_parquet) * 1000:,.0f} ms | read_parquet + hashing + z-score: "
          f"{statistics.median(pandas_parquet) * 1000:,.0f} ms | "
          f"{statistics.median(pandas_parquet) / statistics.median(est_parquet):.1f}x |")
    print(f"| a cached start | {statistics.median(est_cached) * 1000:,.0f} ms | est parsing the CSV: "
          f"{statistics.median(est_csv) * 1000:,.0f} ms | {statistics.median(est_cached) / statistics.median(est_csv):.0%} |")
    print(f"| peak RSS, 10k buckets | {peak:,.0f} MB | libtorch baseline {baseline:,.0f} MB + model and Adagrad state "
          f"{model_mb:,.0f} MB + 1.3 × dataset tensors ({dataset_mb:,.0f} MB: ids as i64) | limit "
          f"{baseline + model_mb + 1.3 * dataset_mb:,.0f} MB |")
    print(f"| final loss, 10k buckets | {statistics.median(r['loss'] for r in est):.5f} | "
          f"dense {statistics.median(r['loss'] for r in dense):.5f} | |")
