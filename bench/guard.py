"""How long the fingerprint guard takes to refuse an incompatible checkpoint, next to `est check`.

The guard reads the checkpoint's header only and runs in `est`, before libtorch is loaded, so a
refused `est train` should cost `est check` plus a few milliseconds. Runs alternate; medians.

Usage: python3 bench/guard.py [path/to/est] [runs]
"""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed(args, cwd, expect):
    start = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    if done.returncode != expect:
        sys.exit(f"{' '.join(args)} exited {done.returncode}, expected {expect}")
    return elapsed


def main():
    est = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/release/est"))
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(os.path.join(ROOT, "pipelines/data"), os.path.join(tmp, "data"))
        shutil.copy(os.path.join(ROOT, "pipelines/iris.est"), tmp)
        subprocess.run([est, "train", "iris.est", "--steps", "10"], cwd=tmp, check=True, capture_output=True)
        path = os.path.join(tmp, "iris.est")
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text.replace("hidden_units = [10, 10]", "hidden_units = [20, 20]"))
        check, refused = [], []
        for _ in range(runs):
            check.append(timed([est, "check", "iris.est"], tmp, 0))
            refused.append(timed([est, "train", "iris.est"], tmp, 3))
    c, r = statistics.median(check), statistics.median(refused)
    print(f"| command | median of {runs} |")
    print("| --- | --- |")
    print(f"| est check iris.est | {c * 1000:.2f} ms |")
    print(f"| est train iris.est, refused by the guard | {r * 1000:.2f} ms |")
    print(f"| difference | {(r - c) * 1000:.2f} ms ({r / c:.2f}x) |")


if __name__ == "__main__":
    main()
