"""Training steps per second of the speed recipe's network against the airbench94 CPU yardstick's, in one process.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/speedrun_steps.py [--rounds 3] [--steps 3]

Random inputs, SGD steps (forward under bf16 autocast, backward, step) of: the anchor's net and forward at batch 1024
(bf16 inputs, as it feeds them), speednet at batch 1024 with float32 or bf16 inputs, and speednet at batch 2000.
Variants run in turns, ``--rounds`` times; prints images/s as median [min-max]. Shows whether a gap between the two
training loops lies in the networks, the input dtype or the batch size (benchmarks/README.md, speedrun section).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

# isort: off
import imgclf  # noqa: F401  (before torch: its OpenMP setting, as in speedrun.py)
import torch
from torch import nn
from vs_plain import SHARED

# isort: on

sys.path.insert(0, str(SHARED / "benchmarks"))
import airbench94_cpu as anchor  # noqa: E402  (the shared yardstick script)

from imgclf.models import create_model  # noqa: E402


def _anchor_step(batch: int):
    model = anchor.make_net()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3, momentum=0.85, nesterov=True)
    images = torch.randint(0, 255, (batch, 3, 32, 32), dtype=torch.uint8).contiguous(memory_format=torch.channels_last)
    x, y = anchor.normalize(images), torch.randint(0, 10, (batch,))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.2, reduction="none")

    def step() -> None:
        loss = loss_fn(anchor.forward(model, x), y).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def _speednet_step(batch: int, bf16_inputs: bool = False):
    model = create_model("speednet", num_classes=10).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3, momentum=0.85, nesterov=True)
    x = torch.randn(batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    x = x.to(torch.bfloat16) if bf16_inputs else x
    y, loss_fn = torch.randint(0, 10, (batch,)), nn.CrossEntropyLoss(label_smoothing=0.2)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    variants = {"anchor net, batch 1024": (_anchor_step(1024), 1024),
                "speednet, batch 1024": (_speednet_step(1024), 1024),
                "speednet, batch 1024, bf16 inputs": (_speednet_step(1024, True), 1024),
                "speednet, batch 2000": (_speednet_step(2000), 2000)}  # fmt: skip
    for step, _ in variants.values():
        step()  # warm-up
    rates: dict[str, list[float]] = {k: [] for k in variants}
    for r in range(args.rounds):
        for name, (step, batch) in variants.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                step()
            rates[name].append(args.steps * batch / (time.perf_counter() - start))
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in rates.items()), flush=True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); images/s, median [min-max]:")
    for name, v in rates.items():
        print(f"  {name:36s} {statistics.median(v):6.0f} [{min(v):.0f}-{max(v):.0f}]")


if __name__ == "__main__":
    main()
