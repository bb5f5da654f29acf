"""Reference weighted losses for est's loss tests.

For fixed logits, labels and example weights, prints JSON: per head, the batch loss as
tf.estimator's SUM_OVER_BATCH_SIZE reduces a weighted loss, sum(w * loss) / n (the rows, not the
weights), computed with torch.nn.functional, and its gradient with respect to the logits. The test
computes both with est, through autograd and through the written-out step, and compares.

Usage: python losses.py > losses.json
"""

import json
import math

import torch
import torch.nn.functional as F

ROWS = 9
# Zeros, fractions and weights above 1; their sum (10) is not the rows.
WEIGHTS = [0.0, 0.5, 1.0, 2.5, 1.0, 0.0, 3.0, 0.25, 1.75]


def logits(width):
    return [[math.sin(1.7 * i + 0.9 * j + 0.3) * 3.0 for j in range(width)] for i in range(ROWS)]


def per_example(head, z, labels):
    if head == "multi_class":
        return F.cross_entropy(z, torch.tensor(labels, dtype=torch.int64), reduction="none")
    y = torch.tensor(labels, dtype=torch.float32)
    if head == "binary":
        return F.binary_cross_entropy_with_logits(z[:, 0], y, reduction="none")
    return F.mse_loss(z[:, 0], y, reduction="none")


def case(head, width, labels):
    z = torch.tensor(logits(width), dtype=torch.float32, requires_grad=True)
    w = torch.tensor(WEIGHTS, dtype=torch.float32)
    loss = (per_example(head, z, labels) * w).sum() / ROWS
    (grad,) = torch.autograd.grad(loss, z)
    return {"head": head, "width": width, "logits": z.detach().flatten().tolist(), "labels": labels,
            "weights": w.tolist(), "loss": loss.item(), "grad": grad.flatten().tolist()}


CASES = [
    ("multi_class", 3, [(2 * i + 1) % 3 for i in range(ROWS)]),
    ("binary", 1, [float(i % 3 == 0 or i == 4) for i in range(ROWS)]),
    ("regression", 1, [float(torch.tensor(math.cos(0.8 * i) * 2.5, dtype=torch.float32)) for i in range(ROWS)]),
]


if __name__ == "__main__":
    torch.set_num_threads(1)
    cases = [json.dumps(case(*c), separators=(",", ":")) for c in CASES]
    print('{"torch":%s,"cases":[\n%s\n]}' % (json.dumps(torch.__version__), ",\n".join(cases)))
