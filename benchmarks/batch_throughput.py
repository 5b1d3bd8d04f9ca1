"""Batch inference throughput: `imgclf predict` (decode in the main process) vs `imgclf batch` (decode workers
feeding the model, parquet parts), and optionally `imgclf batch --ray local`.

    nice .venv/bin/python benchmarks/batch_throughput.py --images DIR [--model resnet18] [--size 224] [--n 256]
        [--repeats 5] [--workers N] [--batch-size 32] [--ray] [--json FILE]

A random-init bundle of ``--model`` (no weights downloaded) at ``--size`` px is written to a temporary folder; the
first ``--n`` images of ``--images`` (sorted, recursive; e.g. the extracted ``../shared/datasets/hymenoptera``) are
predicted. Each figure is a whole library call as a user makes it (bundle load included): ``load(bundle).predict``
against ``workflows.batch_predict`` into a fresh output folder. The variants run in turns, ``--repeats`` times
each, and the table shows the median images/s with the min-max spread. With ``--ray`` a local Ray instance is
started once beforehand (its start-up is not timed; the actors' model loading is).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import imgclf  # first: it sets the OpenMP wait policy before torch loads
from imgclf import data as D
from imgclf import workflows as W
from imgclf.bundle import BundleMeta, save_bundle
from imgclf.models import create_model, model_data_config


def make_bundle(folder: Path, model_name: str, size: int) -> Path:
    model = create_model(model_name, 2).eval()
    pre = model_data_config(model)
    pre = pre if pre.input_size == size else pre.with_size(size)
    return save_bundle(folder / "bundle", model, BundleMeta(model_name, ("a", "b"), pre))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=Path, required=True)
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--workers", type=int, default=None, help="decode workers (default: CPUs - 1)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--ray", action="store_true", help="also time --ray local")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    import torch  # after imgclf

    paths = [str(p) for p in D.list_images(args.images)][: args.n]
    tmp = Path(tempfile.mkdtemp(prefix="imgclf-batch-bench-"))
    bundle = make_bundle(tmp, args.model, args.size)
    workers = D.default_workers() if args.workers is None else args.workers
    runs = {"predict": [], f"batch (workers={workers})": []}
    if args.ray:
        import ray

        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
        runs["batch --ray local"] = []

    def run(name: str, i: int) -> float:
        start = time.perf_counter()
        if name == "predict":
            preds = imgclf.load(bundle).predict(paths, top_k=2)
            assert len(preds) == len(paths)
        else:
            result = W.batch_predict(bundle, paths, tmp / f"out-{name.split()[0]}-{name[-6:]}-{i}", workers=workers,
                                     batch_size=args.batch_size, progress=False,
                                     ray_address="local" if "ray" in name else None)  # fmt: skip
            assert result.images == len(paths)
        return len(paths) / (time.perf_counter() - start)

    for i in range(args.repeats):
        for name in runs:
            runs[name].append(run(name, i))
            print(f"  run {i + 1}: {name}: {runs[name][-1]:.1f} img/s", flush=True)
    base = statistics.median(runs["predict"])
    print(f"\n{args.model} at {args.size} px, {len(paths)} images from {args.images}, batch {args.batch_size}, "
          f"torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs, median of {args.repeats} runs in turns")
    print("| pipeline | images/s (median) | spread (min-max) | vs predict |\n|---|---|---|---|")
    summary = {}
    for name, values in runs.items():
        med = statistics.median(values)
        summary[name] = {"median": med, "min": min(values), "max": max(values), "ratio": med / base}
        print(f"| {name} | {med:.1f} | {min(values):.1f}-{max(values):.1f} | {med / base:.2f}x |")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "runs": summary},
                                        indent=2) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
