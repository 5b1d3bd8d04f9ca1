"""Training throughput: imgclf's loop vs a bare PyTorch loop, same model, data and batch, side by side.

    .venv/bin/python benchmarks/train_throughput.py [--model resnet18] [--img-size 64] [--images 1024]

Each loop runs in a fresh Python process (so imgclf's process settings never help the bare loop):
(1) a bare loop a user writes by hand: torchvision ImageFolder + DataLoader + AdamW + cross-entropy, fp32,
torchvision's resnet18 (the same architecture as timm's); (2) `imgclf train` defaults (EMA, label smoothing,
validation off for the timing); (3) imgclf's CPU fast path (channels-last + bf16 autocast). Each figure is the
median images/s of the timed epochs after a warm-up epoch; ratios are against the bare loop.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

BARE = r"""
import statistics, sys, time, torch, torchvision
from torchvision.transforms import v2
root, size, batch, epochs, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
torch.manual_seed(0)
tf = v2.Compose([v2.RandomResizedCrop(size, scale=(0.6, 1.0), antialias=True), v2.RandomHorizontalFlip(),
                 v2.ToImage(), v2.ToDtype(torch.float32, scale=True),
                 v2.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
ds = torchvision.datasets.ImageFolder(root, transform=tf)
loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers,
                                     persistent_workers=workers > 0)
model = torchvision.models.resnet18(num_classes=len(ds.classes))
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
rates = []
for _ in range(epochs):
    model.train()
    seen, start = 0, time.perf_counter()
    for x, y in loader:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        seen += y.shape[0]
    rates.append(seen / (time.perf_counter() - start))
print(statistics.median(rates[1:]))
"""

IMGCLF = r"""
import json, statistics, sys
import imgclf
root, size, batch, epochs, workers, out, fast = sys.argv[1:8]
sets = [f"data.workers={workers}", "data.augment=light", "data.val_fraction=0.0", "data.test_fraction=0.0",
        "train.calibrate=false", "train.report=false", "optim.warmup_epochs=0"]
if fast == "1":
    sets += ["train.amp=bf16", "train.channels_last=true"]
clf = imgclf.fit(root, model="resnet18", epochs=int(epochs), img_size=int(size), batch_size=int(batch), out=out,
                 name=f"fast{fast}", sets=sets)
lines = (clf.result_.run_dir / "metrics.jsonl").read_text().splitlines()
print(statistics.median(json.loads(x)["images_per_s"] for x in lines[1:]))
"""


def run(code: str, *args: object) -> float:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}  # each loop gets the default environment
    out = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(out.stdout + out.stderr)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--img-size", type=int, default=64)
    ap.add_argument("--images", type=int, default=1024, help="generated training images (4 classes)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=3, help="first epoch is warm-up, the rest are timed")
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    from imgclf.data import make_synthetic_dataset
    from imgclf.engine import cpu_supports_bf16

    with tempfile.TemporaryDirectory() as tmp:
        root = make_synthetic_dataset(Path(tmp) / "imgs", classes=("a", "b", "c", "d"),
                                      per_class=args.images // 4, size=args.img_size, layout="flat")  # fmt: skip
        common = (root, args.img_size, args.batch_size, args.epochs, args.workers)
        bare = run(BARE, *common)
        default = run(IMGCLF, *common, Path(tmp) / "runs", 0)
        fast = run(IMGCLF, *common, Path(tmp) / "runs", 1)
    print(f"resnet18 @ {args.img_size}px, batch {args.batch_size}, {args.images} images, {args.workers} loader "
          f"worker(s), {os.cpu_count()} cores, bf16 supported: {cpu_supports_bf16()}")  # fmt: skip
    print(f"{'loop':<30}{'images/s':>10}{'ratio':>8}")
    rows = (("bare PyTorch (fp32)", bare), ("imgclf default", default), ("imgclf fast path (cl + bf16)", fast))
    for name, value in rows:
        print(f"{name:<30}{value:>10.1f}{value / bare:>8.2f}x")
    print(f"targets: default >= 0.95x -> {'met' if default / bare >= 0.95 else 'NOT met'}; "
          f"fast path >= 1.5x -> {'met' if fast / bare >= 1.5 else 'NOT met'}")
    print(json.dumps({"bare": bare, "default": default, "fast": fast}))


if __name__ == "__main__":
    main()
