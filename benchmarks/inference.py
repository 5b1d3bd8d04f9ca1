"""Inference speed of trained models: tuned eager fp32 PyTorch vs torch-fast vs onnxruntime fp32 vs int8, in turns.

    nice .venv/bin/python benchmarks/inference.py [--models resnet18,mobilenetv3_large_100] [--size 224]
        [--batch-size 32] [--rounds 5] [--repeats 5] [--warmup 3] [--calibration 32] [--threads N]
        [--no-tune-malloc] [--compile] [--train-epochs 6] [--profile] [--json FILE]

Each model is first trained briefly on the shared ants/bees photos (``imgclf.fit`` at ``--size`` from scratch:
no weights can be downloaded here), once: the bundle is cached in ``~/.cache/imgclf/bench/``. Its images are
preprocessed with the bundle's eval transform. The script exports ONNX (parity-checked), quantizes it to int8
(static, QDQ, per-channel, calibrated on ``--calibration`` images), and measures on every other image the top-1
agreement of each engine with eager fp32 (and each engine's accuracy against the labels).

Timing: the baseline is *tuned* eager fp32 (glibc told to keep freed memory, :func:`imgclf.export.tune_malloc`,
for every engine; ``--no-tune-malloc`` drops it). ``--rounds`` rounds; in each, every engine is timed in turn
(``--repeats`` batch-1 calls for the p50 latency, ``--repeats`` calls at ``--batch-size`` for the throughput).
Each figure is the median over rounds with its range; each ratio the median of the per-round ratios against
eager fp32. ``import imgclf`` comes first, so its ``OMP_WAIT_POLICY=PASSIVE`` is in place before torch loads.
``--profile`` prints where the time goes (op types) for each engine at ``--batch-size``.
"""

import imgclf  # first: sets OMP_WAIT_POLICY=PASSIVE before torch starts its OpenMP threads

# isort: split
import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from imgclf.bundle import load_bundle
from imgclf.data import build_eval_transform, load_source
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

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
BENCH_CACHE = Path.home() / ".cache" / "imgclf" / "bench"
TARGETS = {"resnet18": 4.0, "mobilenetv3_large_100": 3.0}  # batch throughput vs tuned eager fp32
LATENCY_TARGET = 3.0
AGREEMENT_TARGET = 0.99
#: part of the cached models' key: the training defaults they were trained under (rename when a default that
#: changes the weights changes; "autobatch": data.batch_size=auto, 16 for the 245 ants/bees photos, not 64)
DEFAULTS_TAG = "autobatch"


def cpu_name() -> str:
    """The CPU model name from /proc/cpuinfo (lscpu's 'Model name'), else platform.processor()."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def hymenoptera() -> Path:
    """The shared ants/bees folder, extracted once into the cache (as tests/conftest.py does)."""
    import hashlib
    import tarfile

    archive = SHARED / "hymenoptera.tar.gz"
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()[:16]
    target = Path.home() / ".cache" / "imgclf" / "datasets" / f"hymenoptera-{digest}"
    if not (target / ".complete").exists():
        tmp = target.with_suffix(".partial")
        tmp.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        tmp.rename(target)
        (target / ".complete").touch()
    return target / "hymenoptera"


def trained_bundle(name: str, data: Path, size: int, epochs: int) -> Path:
    """A ``name`` model trained ``epochs`` epochs on ``data`` at ``size`` px with imgclf's defaults; cached."""
    out = BENCH_CACHE / f"{name}-{data.name}-{size}px-{epochs}ep-{DEFAULTS_TAG}"
    bundle = out / "run" / "bundle"
    if not (bundle / "imgclf.json").is_file():
        print(f"training {name} on {data} ({epochs} epochs, {size} px) once; cached in {out}", flush=True)
        start = time.perf_counter()
        imgclf.fit(str(data), model=name, epochs=epochs, img_size=size, out=str(out), name="run",
                   sets=["train.report=false"])  # fmt: skip
        print(f"trained in {time.perf_counter() - start:.0f} s", flush=True)
    return bundle


def load_images(bundle_dir: Path, data: Path) -> tuple[torch.Tensor, np.ndarray]:
    """Every readable image of ``data`` (train and val), shuffled with a fixed seed, through the bundle's eval
    transform: ``(N, 3, S, S)``, and the labels ``(N,)`` with -1 for training images (accuracy counts only
    held-out ones; agreement counts all)."""
    meta = load_bundle(bundle_dir).meta
    transform = build_eval_transform(meta.preprocessing)
    splits = load_source(str(data), val_fraction=0.0, seed=0)
    images, labels = [], []
    for part, held_out in ((splits.train, False), (splits.val, True)):
        for i in range(len(part) if part is not None else 0):
            image, label = part[i]
            images.append(transform(image))
            labels.append(label if held_out else -1)
    order = np.random.default_rng(0).permutation(len(images))
    return torch.stack([images[i] for i in order]), np.asarray(labels)[order]


def profile_torch(model: torch.nn.Module, x: torch.Tensor, dtype: torch.dtype | None, top: int = 6) -> list[str]:
    """Top op types by self CPU time for one forward at ``x``'s batch size."""
    from torch.profiler import ProfilerActivity, profile

    cl = dtype is not None
    x = x.contiguous(memory_format=torch.channels_last) if cl else x
    with torch.inference_mode(), torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        model(x)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            model(x)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1
    return [f"{e.key} {100 * e.self_cpu_time_total / total:.0f}%" for e in events[:top]]


def profile_ort(onnx_path: Path, x: np.ndarray, threads: int, top: int = 6) -> list[str]:
    """Top ONNX op types by time for one run at ``x``'s batch size (onnxruntime's own profiler)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.enable_profiling = True
    opts.intra_op_num_threads = threads
    opts.profile_file_prefix = str(onnx_path.with_suffix(""))
    sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    sess.run(None, {name: x})
    sess.run(None, {name: x})
    trace = json.loads(Path(sess.end_profiling()).read_text())
    by_op: dict[str, float] = defaultdict(float)
    for event in trace:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            by_op[event.get("args", {}).get("op_name", "?")] += event["dur"]
    total = sum(by_op.values()) or 1
    return [f"{k} {100 * v / total:.0f}%" for k, v in sorted(by_op.items(), key=lambda kv: -kv[1])[:top]]


def agreement(reference: np.ndarray, other: np.ndarray) -> float:
    return float((reference.argmax(1) == other.argmax(1)).mean())


def spread(values: list[float], fmt: str = "{:.2f}") -> str:
    return f"{fmt.format(statistics.median(values))} [{fmt.format(min(values))}-{fmt.format(max(values))}]"


def run_model(name: str, args: argparse.Namespace, peak: float, work: Path, data: Path) -> dict:
    torch.manual_seed(0)
    bundle_dir = trained_bundle(name, data, args.size, args.train_epochs)
    model = load_bundle(bundle_dir).model.eval()
    images, labels = load_images(bundle_dir, data)
    calib, evals, eval_labels = images[: args.calibration], images[args.calibration :], labels[args.calibration :]
    t0 = time.perf_counter()
    fp32 = export_onnx(model, work / f"{name}.onnx", input_size=args.size, metadata={"model": name},
                       parity_images=evals[:8])  # fmt: skip
    t1 = time.perf_counter()
    int8 = quantize_onnx(fp32, work / f"{name}.int8.onnx", calibration_images=calib)
    t2 = time.perf_counter()
    print(f"\n== {name} (trained: {bundle_dir}): exported in {t1 - t0:.1f} s, quantized in {t2 - t1:.1f} s; "
          f"{len(evals)} agreement images", flush=True)  # fmt: skip
    flops = count_flops(model, args.size)
    engines = [
        ("torch fp32 (eager, tuned)", load_engine("torch", model=model), None),
        ("torch-fast", load_engine("torch-fast", model=model, compile=args.compile), None),
        ("onnxruntime fp32", load_engine("onnxruntime", onnx_path=fp32, threads=args.threads), fp32),
        ("onnxruntime int8", load_engine("onnxruntime", onnx_path=int8, threads=args.threads), int8),
    ]
    outputs = [np.concatenate([e.predict_logits(b) for b in evals.split(args.batch_size)]) for _, e, _ in engines]
    reference = outputs[0]  # eager fp32 (N, C)
    rounds = []
    for r in range(args.rounds):  # every round times every engine in turn; load from others hits all alike
        rounds.append(benchmark_engines([e for _, e, _ in engines], args.size, batch_sizes=(1, args.batch_size),
                                        warmup=args.warmup if r == 0 else 1, repeats=args.repeats,
                                        images=evals))  # fmt: skip
    rows = []
    for i, ((label, engine, path), logits) in enumerate(zip(engines, outputs, strict=True)):
        thr = [rnd[i].throughput_ips for rnd in rounds]
        p50 = [rnd[i].latency_ms_p50 for rnd in rounds]
        rows.append({"label": label, "engine": engine.name, "precision": engine.precision,
                     "throughput_ips": thr, "latency_ms_p50": p50,
                     "throughput_ratio": [rnd[i].throughput_ips / rnd[0].throughput_ips for rnd in rounds],
                     "latency_p50_ratio": [rnd[0].latency_ms_p50 / rnd[i].latency_ms_p50 for rnd in rounds],
                     "top1_agreement": agreement(reference, logits),
                     "accuracy": float((logits.argmax(1) == eval_labels)[eval_labels >= 0].mean()),
                     "max_abs_logit_diff": float(np.abs(reference - logits).max()),
                     "file_mb": file_size(path) / 1e6 if path else None,
                     "efficiency": flops * statistics.median(thr) / 1e9 / peak})  # fmt: skip
    print(f"  {'engine':26s} {'prec':5s} {'img/s @' + str(args.batch_size):>22s} {'x thr':>18s} {'p50 ms @1':>20s} "
          f"{'x lat':>18s} {'top-1 agr':>9s} {'val acc':>7s} {'eff':>5s}")  # fmt: skip
    for r in rows:
        print(f"  {r['label']:26s} {r['precision']:5s} {spread(r['throughput_ips'], '{:.1f}'):>22s} "
              f"{spread(r['throughput_ratio']):>18s} {spread(r['latency_ms_p50'], '{:.1f}'):>20s} "
              f"{spread(r['latency_p50_ratio']):>18s} {100 * r['top1_agreement']:8.1f}% {100 * r['accuracy']:6.1f}% "
              f"{100 * r['efficiency']:4.0f}%")  # fmt: skip
    ok = [r for r in rows[1:] if r["top1_agreement"] >= AGREEMENT_TARGET]
    best_thr = max(ok, key=lambda r: statistics.median(r["throughput_ratio"]), default=None)
    best_lat = max(ok, key=lambda r: statistics.median(r["latency_p50_ratio"]), default=None)
    target = TARGETS.get(name, 3.0)
    verdict = {
        "throughput": (best_thr["label"], statistics.median(best_thr["throughput_ratio"])) if best_thr else None,
        "latency": (best_lat["label"], statistics.median(best_lat["latency_p50_ratio"])) if best_lat else None,
    }
    thr_met = bool(best_thr) and verdict["throughput"][1] >= target
    lat_met = bool(best_lat) and verdict["latency"][1] >= LATENCY_TARGET
    print(f"  targets (engines with >= {AGREEMENT_TARGET:.0%} agreement): throughput >= {target}x -> "
          f"{'met' if thr_met else 'NOT met'} {verdict['throughput']}; batch-1 p50 >= {LATENCY_TARGET}x lower -> "
          f"{'met' if lat_met else 'NOT met'} {verdict['latency']}")  # fmt: skip
    profiles = {}
    if args.profile:
        x = evals[: args.batch_size]
        profiles["torch fp32"] = profile_torch(engines[0][1].model, x, None)
        profiles["torch-fast"] = profile_torch(engines[1][1].model, x, engines[1][1].dtype)
        profiles["onnxruntime fp32"] = profile_ort(fp32, x.numpy(), args.threads)
        profiles["onnxruntime int8"] = profile_ort(int8, x.numpy(), args.threads)
        for k, v in profiles.items():
            print(f"  profile {k:18s}: {', '.join(v)}")
    return {"model": name, "bundle": str(bundle_dir), "gflops_per_image": flops / 1e9, "eval_images": len(evals),
            "engines": rows, "throughput_met": thr_met, "latency_met": lat_met, "profiles": profiles}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="resnet18,mobilenetv3_large_100", help="comma-separated timm names")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--calibration", type=int, default=32, help="images used to calibrate int8 (not for agreement)")
    ap.add_argument("--rounds", type=int, default=5, help="rounds of timing every engine in turn (>= 5)")
    ap.add_argument("--repeats", type=int, default=5, help="timed calls per engine, batch size and round")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="threads for every engine (default: physical cores)")
    ap.add_argument("--no-tune-malloc", action="store_true", help="the lax eager baseline (glibc's default malloc)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the torch-fast engine (minutes on CPU)")
    ap.add_argument("--train-epochs", type=int, default=6, help="epochs of the cached ants/bees training")
    ap.add_argument("--profile", action="store_true", help="print the top op types of every engine")
    ap.add_argument("--json", type=Path, default=None, help="also write all figures to this JSON file")
    args = ap.parse_args()
    args.threads = args.threads or physical_cores()
    torch.set_num_threads(args.threads)
    if not args.no_tune_malloc and not tune_malloc():
        raise SystemExit("tuning malloc needs glibc; pass --no-tune-malloc")
    data = hymenoptera()
    peak = max(measure_peak_gflops(), measure_peak_gflops())  # the better of two: other processes only slow it
    print(f"machine: {cpu_name()}, {physical_cores()} physical cores, torch {torch.__version__}; "
          f"{args.threads} threads per engine; peak fp32 matmul {peak:.0f} GFLOP/s; OMP_WAIT_POLICY="
          f"{os.environ.get('OMP_WAIT_POLICY')}; malloc {'default' if args.no_tune_malloc else 'tuned'}")  # fmt: skip
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="imgclf-bench-") as tmp:
        results = [run_model(name, args, peak, Path(tmp), data) for name in args.models.split(",")]
    load_after = os.getloadavg()[0]
    print(f"\n1-minute load average: {load_before:.1f} before, {load_after:.1f} after (engines are timed in turns, "
          "so all see the same load)")  # fmt: skip
    if args.json:
        summary = {"cpu": cpu_name(), "peak_gflops": peak, "load_before": load_before, "load_after": load_after,
                   "args": {k: str(v) for k, v in vars(args).items()}, "results": results}  # fmt: skip
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
