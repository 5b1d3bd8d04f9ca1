"""Inference speed: eager fp32 PyTorch vs torch-fast vs onnxruntime fp32 vs onnxruntime int8, side by side.

    nice .venv/bin/python benchmarks/inference.py [--images DIR] [--models resnet18,mobilenetv3_large_100]
        [--size 224] [--batch-size 32] [--repeats 10] [--warmup 3] [--calibration 32] [--threads N]
        [--tune-malloc] [--compile] [--json FILE]

For each model (timm, random init: no weights are downloaded) it exports ONNX (parity-checked), quantizes it to int8
(static, QDQ, per-channel, calibrated on the first ``--calibration`` images), then times every engine in one run:
batch-1 latency p50/p90/p99 and throughput at ``--batch-size`` (medians after warm-up). It prints the throughput
ratio and the batch-1 p50 latency ratio against eager fp32, and the top-1 agreement of each engine with eager fp32
on the remaining images. Images come from ``--images`` (any folder of JPEG/PNG, searched recursively, e.g. the
extracted ``../shared/datasets/hymenoptera``), preprocessed with the model's eval transform; without it, random
tensors are used. Random-init networks have small logit margins, so the agreement figure is a lower bound of what
a trained model shows.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import timm
import torch
from PIL import Image
from timm.data import create_transform, resolve_data_config

from imgclf.export import (
    benchmark_engines,
    count_flops,
    export_onnx,
    file_size,
    load_engine,
    measure_peak_gflops,
    physical_cores,
    quantize_onnx,
    tune_malloc,
)

SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def cpu_name() -> str:
    """The CPU model name from /proc/cpuinfo (lscpu's 'Model name'), else platform.processor()."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def load_images(folder: Path | None, model: torch.nn.Module, size: int, count: int) -> tuple[torch.Tensor, str]:
    """``count`` preprocessed images ``(count, 3, size, size)`` from ``folder`` (sorted, recursive), or random ones."""
    if folder is None:
        return torch.randn(count, 3, size, size, generator=torch.Generator().manual_seed(0)), "random tensors"
    cfg = resolve_data_config({"input_size": (3, size, size)}, model=model)
    transform = create_transform(**cfg, is_training=False)
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES)
    rng = np.random.default_rng(0)
    files = [files[i] for i in rng.permutation(len(files))]  # mix classes and splits
    tensors = []
    for path in files:
        try:
            with Image.open(path) as im:
                tensors.append(transform(im.convert("RGB")))
        except OSError:
            continue  # the datasets hold a few junk files on purpose
        if len(tensors) == count:
            break
    if len(tensors) < count:
        raise SystemExit(f"{folder} has only {len(tensors)} readable images; need {count}")
    return torch.stack(tensors), f"{count} real images from {folder}"


def agreement(reference: np.ndarray, other: np.ndarray) -> float:
    return float((reference.argmax(1) == other.argmax(1)).mean())


def run_model(name: str, args: argparse.Namespace, peak: float, work: Path) -> dict:
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=args.num_classes).eval()
    n_eval = max(args.batch_size, args.eval_images)
    images, source = load_images(args.images, model, args.size, args.calibration + n_eval)
    calib, evals = images[: args.calibration], images[args.calibration :]  # (Nc, 3, S, S), (Ne, 3, S, S)
    t0 = time.perf_counter()
    fp32 = export_onnx(model, work / f"{name}.onnx", input_size=args.size, metadata={"model": name},
                       parity_images=evals[:8])  # fmt: skip
    t1 = time.perf_counter()
    int8 = quantize_onnx(fp32, work / f"{name}.int8.onnx", calibration_images=calib)
    t2 = time.perf_counter()
    print(f"\n== {name}: exported in {t1 - t0:.1f} s, quantized in {t2 - t1:.1f} s; data: {source}")
    flops = count_flops(model, args.size)
    engines = [
        ("torch fp32 (eager)", load_engine("torch", model=model), None),
        ("torch-fast", load_engine("torch-fast", model=model, compile=args.compile), None),
        ("onnxruntime fp32", load_engine("onnxruntime", onnx_path=fp32, threads=args.threads), fp32),
        ("onnxruntime int8", load_engine("onnxruntime", onnx_path=int8, threads=args.threads), int8),
    ]
    outputs = [np.concatenate([e.predict_logits(b) for b in evals.split(args.batch_size)]) for _, e, _ in engines]
    reference = outputs[0]  # eager fp32 (N, C)
    # timed round-robin: load from other processes during the run hits every engine alike
    benches = benchmark_engines([e for _, e, _ in engines], args.size, batch_sizes=(1, args.batch_size),
                                warmup=args.warmup, repeats=args.repeats, images=evals)  # fmt: skip
    rows = []
    for (label, _, path), logits, bench in zip(engines, outputs, benches, strict=True):
        achieved = flops * bench.throughput_ips / 1e9
        rows.append({**bench.to_dict(), "label": label, "top1_agreement": agreement(reference, logits),
                     "max_abs_logit_diff": float(np.abs(reference - logits).max()),
                     "file_mb": file_size(path) / 1e6 if path else None,
                     "gflops_per_s": achieved, "efficiency": achieved / peak})  # fmt: skip
    base = rows[0]
    for r in rows:
        r["throughput_ratio"] = r["throughput_ips"] / base["throughput_ips"]
        r["latency_p50_ratio"] = base["latency_ms_p50"] / r["latency_ms_p50"]  # > 1: faster than eager
    print(f"  {'engine':20s} {'prec':5s} {'p50 ms':>8s} {'p90 ms':>8s} {'p99 ms':>8s} {'img/s':>8s} {'x thr':>6s} "
          f"{'x lat':>6s} {'top-1':>7s} {'eff':>5s} {'MB':>6s}")  # fmt: skip
    for r in rows:
        mb = f"{r['file_mb']:.1f}" if r["file_mb"] is not None else "-"
        print(f"  {r['label']:20s} {r['precision']:5s} {r['latency_ms_p50']:8.2f} {r['latency_ms_p90']:8.2f} "
              f"{r['latency_ms_p99']:8.2f} {r['throughput_ips']:8.1f} {r['throughput_ratio']:6.2f} "
              f"{r['latency_p50_ratio']:6.2f} {100 * r['top1_agreement']:6.1f}% {100 * r['efficiency']:4.0f}% "
              f"{mb:>6s}")  # fmt: skip
    return {"model": name, "gflops_per_image": flops / 1e9, "data": source, "eval_images": len(evals),
            "engines": rows}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=Path, default=None, help="folder of real images (recursive); default: random")
    ap.add_argument("--models", default="resnet18,mobilenetv3_large_100", help="comma-separated timm names")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--num-classes", type=int, default=2, help="2: a hymenoptera-style head (1000 random logits tie)")
    ap.add_argument("--calibration", type=int, default=32, help="images used to calibrate int8 (not for agreement)")
    ap.add_argument("--eval-images", type=int, default=128, help="images for the top-1 agreement")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--threads", type=int, default=None, help="threads for every engine (default: physical cores)")
    ap.add_argument("--tune-malloc", action="store_true",
                    help="keep freed memory in the process (all engines; see imgclf.export.tune_malloc)")  # fmt: skip
    ap.add_argument("--compile", action="store_true", help="torch.compile the torch-fast engine (minutes on CPU)")
    ap.add_argument("--json", type=Path, default=None, help="also write all figures to this JSON file")
    args = ap.parse_args()
    args.threads = args.threads or physical_cores()
    torch.set_num_threads(args.threads)
    if args.tune_malloc and not tune_malloc():
        raise SystemExit("--tune-malloc needs glibc")
    peak = max(measure_peak_gflops(), measure_peak_gflops())  # the better of two: other processes only slow it
    print(f"machine: {cpu_name()}, {physical_cores()} physical cores, torch {torch.__version__}; "
          f"{args.threads} threads per engine; peak fp32 matmul {peak:.0f} GFLOP/s; "
          f"malloc {'tuned' if args.tune_malloc else 'default'}")  # fmt: skip
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="imgclf-bench-") as tmp:
        results = [run_model(name, args, peak, Path(tmp)) for name in args.models.split(",")]
    load_after = os.getloadavg()[0]
    print(f"\n1-minute load average: {load_before:.1f} before, {load_after:.1f} after (other processes slow eager "
          "PyTorch's OpenMP threads most; engines are timed round-robin so all see the same load)")  # fmt: skip
    if args.json:
        summary = {"cpu": cpu_name(), "peak_gflops": peak, "load_before": load_before, "load_after": load_after,
                   "args": {k: str(v) for k, v in vars(args).items()}, "results": results}  # fmt: skip
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
