"""Reference optimizer steps for est's optimizer tests.

Runs a few updates of torch.optim's Adagrad, Adam, SGD and RMSprop (and FTRL as Keras computes
it: torch has none) on fixed parameters with fixed gradients, and prints JSON: each case's est
optimizer config, the gradients, and the parameters and state after every step. The test
replays the same gradients through est's optimizers and compares.

Usage: python optimizers.py > optimizers.json
"""

import json
import math

import torch

STEPS = 5
SHAPES = [(3, 2), (2,)]


def initial():
    return [
        torch.tensor([[0.5, -1.0], [0.25, 2.0], [-0.75, 0.1]], dtype=torch.float32),
        torch.tensor([0.3, -0.2], dtype=torch.float32),
    ]


def gradients(step):
    out = []
    for k, shape in enumerate(SHAPES):
        n = math.prod(shape)
        values = [math.sin(1.3 * i + 0.7 * step + k) * (0.5 + 0.1 * step) for i in range(n)]
        out.append(torch.tensor(values, dtype=torch.float32).reshape(shape))
    return out


def config(kind, learning_rate, weight_decay=0.0, clip_norm=None, **params):
    return dict(scope="all", kind=kind, learning_rate=learning_rate, decay=None, clip_norm=clip_norm,
                weight_decay=weight_decay, **params)


CASES = [
    ("adagrad", config("adagrad", 0.05, initial_accumulator=0.1, epsilon=1e-7)),
    ("adagrad_weight_decay", config("adagrad", 0.1, weight_decay=0.01, initial_accumulator=0.5, epsilon=1e-6)),
    ("adam", config("adam", 0.01, beta1=0.9, beta2=0.999, epsilon=1e-7, amsgrad=False)),
    ("adam_amsgrad_weight_decay", config("adam", 0.02, weight_decay=0.1, beta1=0.8, beta2=0.99, epsilon=1e-8, amsgrad=True)),
    ("sgd", config("sgd", 0.1, momentum=0.0, nesterov=False)),
    ("sgd_momentum", config("sgd", 0.1, momentum=0.9, nesterov=False)),
    ("sgd_nesterov_weight_decay", config("sgd", 0.05, weight_decay=0.01, momentum=0.8, nesterov=True)),
    ("sgd_clip_norm", config("sgd", 0.1, clip_norm=0.5, momentum=0.0, nesterov=False)),
    ("rmsprop", config("rmsprop", 0.01, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False)),
    ("rmsprop_momentum_centered", config("rmsprop", 0.01, rho=0.8, momentum=0.5, epsilon=1e-6, centered=True)),
    ("ftrl", config("ftrl", 0.1, learning_rate_power=-0.5, initial_accumulator=0.1, l1=0.0, l2=0.0, l2_shrinkage=0.0, beta=0.0)),
    ("ftrl_regularised", config("ftrl", 0.2, learning_rate_power=-0.7, initial_accumulator=0.2, l1=0.05, l2=0.1, l2_shrinkage=0.01, beta=0.3)),
]


def torch_optimizer(c, params):
    kind = c["kind"]
    if kind == "adagrad":
        return torch.optim.Adagrad(params, lr=c["learning_rate"], weight_decay=c["weight_decay"],
                                   initial_accumulator_value=c["initial_accumulator"], eps=c["epsilon"])
    if kind == "adam":
        return torch.optim.Adam(params, lr=c["learning_rate"], betas=(c["beta1"], c["beta2"]), eps=c["epsilon"],
                                weight_decay=c["weight_decay"], amsgrad=c["amsgrad"])
    if kind == "sgd":
        return torch.optim.SGD(params, lr=c["learning_rate"], momentum=c["momentum"], weight_decay=c["weight_decay"],
                               nesterov=c["nesterov"])
    if kind == "rmsprop":
        return torch.optim.RMSprop(params, lr=c["learning_rate"], alpha=c["rho"], eps=c["epsilon"],
                                   weight_decay=c["weight_decay"], momentum=c["momentum"], centered=c["centered"])
    raise ValueError(kind)


STATE_NAMES = {"sum": "accumulator", "exp_avg": "exp_avg", "exp_avg_sq": "exp_avg_sq",
               "max_exp_avg_sq": "max_exp_avg_sq", "momentum_buffer": "momentum_buffer",
               "square_avg": "square_avg", "grad_avg": "grad_avg"}


class Ftrl:
    """tf.keras.optimizers.Ftrl's update (ApplyFtrlV2), in float32 torch."""

    def __init__(self, c, params):
        self.c = c
        self.params = params
        self.accumulator = [torch.full_like(p, c["initial_accumulator"]) for p in params]
        self.linear = [torch.zeros_like(p) for p in params]

    def step(self):
        c = self.c
        lr, power = c["learning_rate"], -c["learning_rate_power"]
        with torch.no_grad():
            for p, acc, lin in zip(self.params, self.accumulator, self.linear):
                g = p.grad + c["weight_decay"] * p
                shrunk = g + 2 * c["l2_shrinkage"] * p
                new_acc = acc + g * g
                sigma = (new_acc ** power - acc ** power) / lr
                lin += shrunk - sigma * p
                quadratic = (new_acc ** power + c["beta"]) / lr + 2 * c["l2"]
                p.copy_((lin.clamp(-c["l1"], c["l1"]) - lin) / quadratic)
                acc.copy_(new_acc)

    def state(self):
        return {"accumulator": self.accumulator, "linear": self.linear}


def clip_global_norm(grads, clip):
    """tf.clip_by_global_norm: scale by clip / max(norm, clip)."""
    norm = torch.sqrt(sum((g * g).sum() for g in grads))
    scale = clip / torch.clamp(norm, min=clip)
    return [g * scale for g in grads]


def run(name, c):
    params = [p.clone().requires_grad_(True) for p in initial()]
    optimizer = Ftrl(c, params) if c["kind"] == "ftrl" else torch_optimizer(c, params)
    steps = []
    for step in range(STEPS):
        raw = gradients(step)
        grads = raw if c["clip_norm"] is None else clip_global_norm(raw, c["clip_norm"])
        for p, g in zip(params, grads):
            p.grad = g.clone()
        optimizer.step()
        # The unclipped gradients: est clips them itself.
        steps.append({"grads": [g.flatten().tolist() for g in raw],
                      "params": [p.detach().flatten().tolist() for p in params]})
    if c["kind"] == "ftrl":
        state = {k: [t.flatten().tolist() for t in v] for k, v in optimizer.state().items()}
    else:
        state = {}
        for key, new in STATE_NAMES.items():
            values = [optimizer.state[p].get(key) for p in params]
            if all(v is not None for v in values):
                state[new] = [v.flatten().tolist() for v in values]
    return {"name": name, "optimizer": c, "initial": [p.flatten().tolist() for p in initial()],
            "shapes": [list(s) for s in SHAPES], "steps": steps, "state": state}


if __name__ == "__main__":
    torch.set_num_threads(1)
    cases = [json.dumps(run(n, c), separators=(",", ":")) for n, c in CASES]
    print('{"torch":%s,"cases":[\n%s\n]}' % (json.dumps(torch.__version__), ",\n".join(cases)))
