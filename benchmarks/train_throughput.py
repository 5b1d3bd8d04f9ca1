"""Training throughput: imgclf's loop vs a bare PyTorch loop, same model, data and batch, side by side.

    .venv/bin/python benchmarks/train_throughput.py [--model resnet18] [--img-size 64] [--images 1024]

Prints images/s of (1) a bare loop (torchvision ImageFolder + DataLoader + AdamW, fp32), (2) imgclf with its
defaults (EMA, label smoothing, validation off for the timing), (3) imgclf's CPU fast path (channels-last + bf16
autocast), and the ratios to the bare loop. Each figure is the median of the timed epochs after a warm-up epoch.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torchvision
from torch import nn

import imgclf
from imgclf import data as D
from imgclf.config import DataConfig
from imgclf.models import create_model


def bare_loop(root: Path, model_name: str, size: int, batch: int, epochs: int, workers: int) -> float:
    """The loop a user writes by hand: ImageFolder, DataLoader, AdamW, cross-entropy, fp32."""
    torch.manual_seed(0)
    pre = DataConfig(input_size=size, resize_size=size)
    ds = torchvision.datasets.ImageFolder(str(root), transform=D.build_train_transform(pre, "light"))
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers,
                                         persistent_workers=workers > 0, drop_last=False)  # fmt: skip
    model = create_model(model_name, len(ds.classes))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    rates = []
    for _ in range(epochs):
        model.train()
        seen, start = 0, time.perf_counter()
        for x, y in loader:
            loss = loss_fn(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += y.shape[0]
        rates.append(seen / (time.perf_counter() - start))
    return statistics.median(rates[1:])


def imgclf_loop(root: Path, model_name: str, size: int, batch: int, epochs: int, workers: int, out: Path,
                fast: bool) -> float:  # fmt: skip
    sets = [f"data.workers={workers}", "data.augment=light", "data.val_fraction=0.0", "data.test_fraction=0.0",
            "train.calibrate=false", "optim.warmup_epochs=0"]  # fmt: skip
    if fast:
        sets += ["train.amp=bf16", "train.channels_last=true"]
    clf = imgclf.fit(root, model=model_name, epochs=epochs, img_size=size, batch_size=batch, out=str(out),
                     name=f"fast{fast}", sets=sets)  # fmt: skip
    return statistics.median(m["images_per_s"] for m in _history(clf)[1:])


def _history(clf: imgclf.Classifier) -> list[dict]:
    import json

    lines = (clf.result_.run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(x) for x in lines]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--img-size", type=int, default=64)
    ap.add_argument("--images", type=int, default=1024, help="generated training images (4 classes)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=3, help="first epoch is warm-up, the rest are timed")
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = D.make_synthetic_dataset(Path(tmp) / "imgs", classes=("a", "b", "c", "d"),
                                        per_class=args.images // 4, size=args.img_size, layout="flat")  # fmt: skip
        common = (root, args.model, args.img_size, args.batch_size, args.epochs, args.workers)
        bare = bare_loop(*common)
        default = imgclf_loop(*common, Path(tmp) / "runs", fast=False)
        fast = imgclf_loop(*common, Path(tmp) / "runs", fast=True)
    print(f"model {args.model} @ {args.img_size}px, batch {args.batch_size}, {args.images} images, "
          f"{torch.get_num_threads()} threads, bf16 supported: {imgclf.engine.cpu_supports_bf16()}")  # fmt: skip
    print(f"{'loop':<28}{'images/s':>10}{'ratio':>8}")
    for name, value in (("bare PyTorch (fp32)", bare), ("imgclf default", default),
                        ("imgclf fast path (cl+bf16)", fast)):  # fmt: skip
        print(f"{name:<28}{value:>10.1f}{value / bare:>8.2f}x")
    print(f"targets: default >= 0.95x -> {'met' if default / bare >= 0.95 else 'NOT met'}; "
          f"fast path >= 1.5x -> {'met' if fast / bare >= 1.5 else 'NOT met'}")


if __name__ == "__main__":
    main()
