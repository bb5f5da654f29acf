"""The PyTorch side of the benchmark: the same model, initial weights (read from est's first
checkpoint), optimizer and batch order as est, trained eagerly the way PyTorch users write it.

Usage: python reference.py WORKLOAD.json
WORKLOAD.json names the CSV, the label column, the hidden units, classes, batch size, steps,
learning rate, seed, est's initial checkpoint and the device. Prints one JSON line of timings and
the loss. Needs torch only: pandas reads the CSV where it is installed (as PyTorch users would
read it), plain Python where it is not (a bare GPU machine); reading is not timed.
"""

import json
import sys
import time

import torch

MASK = (1 << 64) - 1


def mix(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


class Rng:
    """est's SplitMix64, so batches come in est's order."""

    def __init__(self, seed, labels):
        state = mix(seed ^ 0x6A09E667F3BCC909)
        for label in labels:
            state = mix(state ^ label)
        self.state = state

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        return mix(self.state)

    def below(self, n):
        zone = MASK - MASK % n
        while True:
            x = self.next()
            if x < zone:
                return x % n


def permutation(seed, epoch, rows):
    perm = list(range(rows))
    rng = Rng(seed, [0x64617461, epoch])
    for i in range(rows - 1, 0, -1):
        j = rng.below(i + 1)
        perm[i], perm[j] = perm[j], perm[i]
    return perm


def batches(seed, rows, batch, steps):
    """est's stream: one permutation per epoch, batches running across epochs."""
    out, epoch, offset, perm = [], 0, 0, permutation(seed, 0, rows)
    for _ in range(steps):
        idx = []
        while len(idx) < batch:
            if offset == rows:
                epoch, offset = epoch + 1, 0
                perm = permutation(seed, epoch, rows)
            take = min(batch - len(idx), rows - offset)
            idx.extend(perm[offset:offset + take])
            offset += take
        out.append(torch.tensor(idx, dtype=torch.int64))
    return out


def read_csv(path, label):
    """Features (columns in name order, as est's input block has them) and integer labels."""
    try:
        import numpy as np
        import pandas as pd
    except ImportError:
        with open(path) as f:
            names = f.readline().strip().split(",")
            rows = [line.split(",") for line in f if line.strip()]
        y = names.index(label)
        order = sorted((n, i) for i, n in enumerate(names) if i != y)
        features = torch.tensor([[float(r[i]) for _, i in order] for r in rows], dtype=torch.float32)
        return features, torch.tensor([int(r[y]) for r in rows], dtype=torch.int64)
    frame = pd.read_csv(path)
    labels = torch.from_numpy(frame.pop(label).to_numpy(np.int64, copy=True))
    return torch.from_numpy(frame[sorted(frame.columns)].to_numpy(np.float32)), labels


def load_safetensors(path):
    """The float tensors of a safetensors file (8-byte header length, JSON header, data)."""
    with open(path, "rb") as f:
        header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name != "__metadata__" and info["dtype"] == "F32":
            begin, end = info["data_offsets"]
            out[name] = torch.frombuffer(bytearray(data[begin:end]), dtype=torch.float32).reshape(info["shape"])
    return out


def main():
    w = json.load(open(sys.argv[1]))
    if w.get("threads"):
        torch.set_num_threads(w["threads"])
    device = torch.device(w.get("device", "cpu"))
    features, labels = read_csv(w["csv"], w["label"])
    order = [idx.to(device) for idx in batches(w["seed"], len(labels), w["batch_size"], w["steps"])]
    features, labels = features.to(device), labels.to(device)

    initial = load_safetensors(w["checkpoint"])
    layers, width = [], features.shape[1]
    for i, units in enumerate(w["hidden_units"]):
        layers += [torch.nn.Linear(width, units), torch.nn.ReLU()]
        width = units
    layers.append(torch.nn.Linear(width, w["n_classes"]))
    model = torch.nn.Sequential(*layers).to(device)
    names = [f"dnn/hiddenlayer_{i}" for i in range(len(w["hidden_units"]))] + ["dnn/logits"]
    with torch.no_grad():
        for name, linear in zip(names, [m for m in model if isinstance(m, torch.nn.Linear)]):
            linear.weight.copy_(initial[f"{name}/kernel"].T)
            linear.bias.copy_(initial[f"{name}/bias"])
    optimizer = torch.optim.Adagrad(model.parameters(), lr=w["learning_rate"], initial_accumulator_value=0.1, eps=1e-7)
    loss_fn = torch.nn.CrossEntropyLoss()

    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for idx in order:
        xb, yb = features[idx], labels[idx]
        loss = loss_fn(model(xb), yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    final = loss.item()
    seconds = time.perf_counter() - start

    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
    saves = []
    for _ in range(5):
        t = time.perf_counter()
        torch.save(state, w["save_to"])
        saves.append(time.perf_counter() - t)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(json.dumps({"steps_per_sec": w["steps"] / seconds, "loss": final, "save_ms": 1000 * sorted(saves)[2],
                      "device": name}))


if __name__ == "__main__":
    main()
