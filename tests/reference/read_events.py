"""Reads event files with TensorBoard's own EventAccumulator and prints what it sees, as JSON:
scalars as [step, value], histograms as [step, count], text as [step, text].

Usage: python read_events.py DIR
"""

import json
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.util import tensor_util

KEEP_ALL = {"scalars": 0, "histograms": 0, "tensors": 0, "compressedHistograms": 0}

accumulator = EventAccumulator(sys.argv[1], size_guidance=KEEP_ALL, purge_orphaned_data=True)
accumulator.Reload()
tags = accumulator.Tags()
out = {
    "scalars": {t: [[e.step, e.value] for e in accumulator.Scalars(t)] for t in tags["scalars"]},
    "histograms": {t: [[e.step, e.histogram_value.num] for e in accumulator.Histograms(t)] for t in tags["histograms"]},
    "text": {
        t: [[e.step, tensor_util.make_ndarray(e.tensor_proto).item().decode()] for e in accumulator.Tensors(t)]
        for t in tags["tensors"]
    },
}
print(json.dumps(out))
