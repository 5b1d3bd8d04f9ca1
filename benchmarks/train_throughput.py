"""Training throughput: imgclf's loop vs a bare PyTorch loop, same model, data, batch and environment, in turns.

    .venv/bin/python benchmarks/train_throughput.py [--model resnet18] [--img-size 64] [--images 512] [--runs 5]

Four loops, each in a fresh Python process with the same environment (``OMP_WAIT_POLICY=PASSIVE`` set for every
process, as ``import imgclf`` sets it; the bare loops import torch after reading it from that environment):
(1) a bare loop a user writes by hand: torchvision ImageFolder + DataLoader + AdamW + cross-entropy, fp32,
torchvision's resnet18 (the same architecture as timm's); (2) `imgclf train` with its loop as a long run uses it
(EMA on, label smoothing; validation off for the timing); (3) the bare loop with bf16 autocast and channels-last;
(4) imgclf's CPU fast path (``train.amp=bf16``, ``train.channels_last=true``). Fast paths are compared with the
bare fast loop, fp32 with fp32. One process's figure is the median images/s of its epochs after a warm-up epoch;
the four loops run in turns ``--runs`` times, and each figure is the median over runs with its range, each ratio
the median of the per-turn ratios with its range.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

BARE = r"""
import contextlib, statistics, sys, time, torch, torchvision
from torchvision.transforms import v2
root, size, batch, epochs, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
fast = sys.argv[7] == "1"
torch.manual_seed(0)
tf = v2.Compose([v2.RandomResizedCrop(size, scale=(0.6, 1.0), antialias=True), v2.RandomHorizontalFlip(),
                 v2.ToImage(), v2.ToDtype(torch.float32, scale=True),
                 v2.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
ds = torchvision.datasets.ImageFolder(root, transform=tf)
loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers,
                                     persistent_workers=workers > 0)
model = torchvision.models.resnet18(num_classes=len(ds.classes))
if fast:
    model = model.to(memory_format=torch.channels_last)
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
rates = []
for _ in range(epochs):
    model.train()
    seen, start = 0, time.perf_counter()
    for x, y in loader:
        if fast:
            x = x.contiguous(memory_format=torch.channels_last)
        amp = torch.autocast("cpu", dtype=torch.bfloat16) if fast else contextlib.nullcontext()
        with amp:
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        seen += y.shape[0]
    rates.append(seen / (time.perf_counter() - start))
print(statistics.median(rates[1:]))
"""

IMGCLF = r"""
import json, statistics, sys, time
import imgclf  # first: it sets OMP_WAIT_POLICY before torch loads (the harness sets it for every loop anyway)
root, size, batch, epochs, workers, out, fast = sys.argv[1:8]
sets = [f"data.workers={workers}", "data.augment=light", "data.val_fraction=0.0", "data.test_fraction=0.0",
        "train.calibrate=false", "train.report=false", "optim.warmup_epochs=0", "train.ema=true"]
if fast == "1":
    sets += ["train.amp=bf16", "train.channels_last=true"]
clf = imgclf.fit(root, model="resnet18", epochs=int(epochs), img_size=int(size), batch_size=int(batch), out=out,
                 name=f"fast{fast}-{time.time_ns()}", sets=sets)
lines = (clf.result_.run_dir / "metrics.jsonl").read_text().splitlines()
print(statistics.median(json.loads(x)["images_per_s"] for x in lines[1:]))
"""


def run(code: str, *args: object) -> float:
    # every loop gets the same environment: the OpenMP setting imgclf would choose, set before any torch import
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    out = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(out.stdout + out.stderr)
    return float(out.stdout.strip().splitlines()[-1])


def spread(values: list[float], fmt: str) -> str:
    return f"{fmt.format(statistics.median(values))} [{fmt.format(min(values))}-{fmt.format(max(values))}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--img-size", type=int, default=64)
    ap.add_argument("--images", type=int, default=512, help="generated training images (4 classes)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=3, help="first epoch is warm-up, the rest are timed")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--runs", type=int, default=5, help="turns: each loop runs once per turn, in a fresh process")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    from imgclf.data import make_synthetic_dataset
    from imgclf.utils import cpu_supports_bf16

    loops = {"bare": (BARE, 0), "imgclf": (IMGCLF, 0), "bare_fast": (BARE, 1), "imgclf_fast": (IMGCLF, 1)}
    rates: dict[str, list[float]] = {k: [] for k in loops}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        root = make_synthetic_dataset(Path(tmp) / "imgs", classes=("a", "b", "c", "d"),
                                      per_class=args.images // 4, size=args.img_size, layout="flat")  # fmt: skip
        common = (root, args.img_size, args.batch_size, args.epochs, args.workers, Path(tmp) / "runs")
        for turn in range(args.runs):
            for name, (code, fast) in loops.items():
                rates[name].append(run(code, *common, fast))
            print(f"turn {turn + 1}/{args.runs}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in rates.items()),
                  flush=True)  # fmt: skip
    load_after = os.getloadavg()[0]
    print(f"resnet18 @ {args.img_size}px, batch {args.batch_size}, {args.images} images, {args.workers} loader "
          f"worker(s), {os.cpu_count()} cores, bf16 supported: {cpu_supports_bf16()}; OMP_WAIT_POLICY=PASSIVE for "
          f"every loop; {args.runs} turns; 1-min load {load_before:.1f} before, {load_after:.1f} after")  # fmt: skip
    ratio = {k: [a / b for a, b in zip(rates[k], rates[base], strict=True)]
             for k, base in (("imgclf", "bare"), ("bare_fast", "bare"), ("imgclf_fast", "bare_fast"))}  # fmt: skip
    print(f"{'loop':<34}{'images/s median [range]':>28}{'ratio median [range]':>28}")
    rows = (("bare PyTorch (fp32)", "bare", None), ("imgclf (fp32, EMA on)", "imgclf", "vs bare"),
            ("bare + bf16 + channels-last", "bare_fast", "vs bare"),
            ("imgclf fast path (bf16 + cl)", "imgclf_fast", "vs bare fast"))  # fmt: skip
    for label, key, against in rows:
        r = f"{spread(ratio[key], '{:.2f}')}x {against}" if against else ""
        print(f"{label:<34}{spread(rates[key], '{:.1f}'):>28}{r:>28}")
    print(f"targets: imgclf >= 0.95x bare -> {'met' if statistics.median(ratio['imgclf']) >= 0.95 else 'NOT met'}; "
          f"imgclf fast >= 0.95x bare fast -> "
          f"{'met' if statistics.median(ratio['imgclf_fast']) >= 0.95 else 'NOT met'}")  # fmt: skip
    summary = {"rates": rates, "ratios": ratio, "load_before": load_before, "load_after": load_after}
    print(json.dumps(summary))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
