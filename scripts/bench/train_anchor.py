#!/usr/bin/env python3
"""PyTorch CPU reference for Quern's training-speed benchmark.

Times Adam training epochs of the same two models Quern's benchmark trains (mlp, cnn) on
random digits-sized data and prints one JSON line. Needs the venv from
scripts/setup-torch.sh:  /tmp/quern-torch/bin/python scripts/bench/train_anchor.py --model cnn
"""
import argparse
import json
import statistics
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def make_model(name):
    if name == "mlp":
        return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    # LeNet-style on 1x8x8: 8x8 -> pool 4x4 -> pool 2x2, so 16*2*2 = 64 features.
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=["mlp", "cnn"], required=True)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--samples", type=int, default=1437)  # sklearn digits' 80 % train split
    a = ap.parse_args()

    # Both must be set before any parallel work; interop threads only matter for
    # torch.jit/async ops, pinned to 1 so --threads is the only knob.
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(0)  # fixed weight init

    rng = np.random.default_rng(0)
    shape = (a.samples, 64) if a.model == "mlp" else (a.samples, 1, 8, 8)
    x = torch.from_numpy(rng.random(shape, dtype=np.float32))
    y = torch.from_numpy(rng.integers(0, 10, a.samples)).long()

    model = make_model(a.model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)

    def epoch():
        perm = torch.randperm(a.samples, generator=gen)
        for i in range(0, a.samples, a.batch):  # last partial batch included
            idx = perm[i:i + a.batch]
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()

    epoch()  # warm-up: first-call allocations, oneDNN kernel selection, Adam state
    times = []
    for _ in range(a.epochs):
        t0 = time.perf_counter()
        epoch()
        times.append(time.perf_counter() - t0)

    best = min(times)
    print(json.dumps({
        "model": a.model, "batch": a.batch, "threads": a.threads, "samples": a.samples,
        "epoch_seconds_best": round(best, 6),
        "epoch_seconds_median": round(statistics.median(times), 6),
        "samples_per_second": round(a.samples / best, 1),
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
