"""Timing inference engines: batch-1 latency percentiles, large-batch throughput, and this machine's peak GFLOP/s."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imgclf.errors import BundleError, ConfigError
from imgclf.export._engines import Engine


@dataclass(frozen=True)
class BenchResult:
    """Speed of one engine: latency in ms at batch 1 (p50/p90/p99 over ``repeats`` calls) and images/s at
    ``batch_size`` (median over ``repeats`` calls), after ``warmup`` untimed calls each."""

    engine: str
    precision: str
    input_size: int
    latency_ms_p50: float
    latency_ms_p90: float
    latency_ms_p99: float
    batch_size: int
    throughput_ips: float
    warmup: int
    repeats: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _timed(fn: Any, warmup: int, repeats: int) -> list[float]:
    """Seconds per call of ``fn()`` over ``repeats`` calls, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def measure_peak_gflops(device: str = "cpu", *, size: int = 1024, warmup: int = 3, repeats: int = 10) -> float:
    """Achieved fp32 GFLOP/s of a square ``size`` x ``size`` matmul on ``device`` (median of ``repeats`` runs).

    The practical peak this machine reaches with PyTorch's BLAS, to put a model's achieved GFLOP/s in proportion.

    >>> measure_peak_gflops(size=256, repeats=3) > 0
    True
    """
    dev = torch.device(device)
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(dev)
    b = torch.randn(size, size, generator=gen).to(dev)

    def run() -> None:
        torch.mm(a, b)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    seconds = statistics.median(_timed(run, warmup, repeats))
    return 2.0 * size**3 / seconds / 1e9


def _batches(images: Any, input_size: int, small: int, large: int) -> tuple[np.ndarray, np.ndarray]:
    """A ``(small, 3, S, S)`` and a ``(large, 3, S, S)`` float32 batch, cycling ``images`` (random when None)."""
    if images is None:
        images = torch.randn(large, 3, input_size, input_size, generator=torch.Generator().manual_seed(0))
    x = torch.as_tensor(images, dtype=torch.float32)
    reps = -(-large // x.shape[0])
    big = x.repeat(reps, 1, 1, 1)[:large].numpy().copy()  # (large, 3, S, S)
    return big[:small].copy(), big


def benchmark_engines(engines: Sequence[Engine], input_size: int, *, batch_sizes: Sequence[int] = (1, 32),
                      warmup: int = 3, repeats: int = 10, images: Any = None) -> list[BenchResult]:  # fmt: skip
    """:func:`benchmark_engine` for several engines, timed round-robin so that load from other processes
    during the run affects every engine alike (a fair side-by-side comparison on a shared machine).

    >>> fp32, int8 = benchmark_engines([load_engine("torch", model=m), load_engine("onnxruntime", onnx_path=p)],
    ...                                224)  # doctest: +SKIP
    """
    if len(batch_sizes) < 1 or min(batch_sizes) < 1 or warmup < 0 or repeats < 1:
        raise ConfigError(
            f"need batch sizes >= 1, warmup >= 0 and repeats >= 1; got {batch_sizes}, {warmup}, {repeats}."
        )
    small, large = int(batch_sizes[0]), int(batch_sizes[-1])
    x1, x = _batches(images, input_size, small, large)
    latency: list[list[float]] = [[] for _ in engines]
    rates: list[list[float]] = [[] for _ in engines]
    for batch, out in ((x1, latency), (x, rates)):
        for engine in engines:
            for _ in range(warmup):
                engine.predict_logits(batch)
        for _ in range(repeats):
            for i, engine in enumerate(engines):
                start = time.perf_counter()
                engine.predict_logits(batch)
                elapsed = time.perf_counter() - start
                out[i].append(elapsed * 1e3 if out is latency else len(batch) / elapsed)
    results = []
    for engine, lat, rate in zip(engines, latency, rates, strict=True):
        p50, p90, p99 = (float(v) for v in np.percentile(lat, [50, 90, 99]))
        thr = float(statistics.median(rate))
        results.append(BenchResult(engine.name, engine.precision, input_size, p50, p90, p99, large, thr, warmup,
                                   repeats))  # fmt: skip
    return results


def benchmark_engine(engine: Engine, input_size: int, *, batch_sizes: Sequence[int] = (1, 32), warmup: int = 3,
                     repeats: int = 10, images: Any = None) -> BenchResult:  # fmt: skip
    """Latency at ``batch_sizes[0]`` (p50/p90/p99, ms) and throughput at ``batch_sizes[-1]`` (median images/s).

    Each figure follows ``warmup`` untimed calls and comes from ``repeats`` timed calls. ``images`` (normalised
    ``(N, 3, S, S)``) are cycled to fill the batches; without them a fixed random tensor is used (speed does not
    depend on pixel values for these models).

    >>> r = benchmark_engine(load_engine("torch", model=model), 224, repeats=20)  # doctest: +SKIP
    >>> r.latency_ms_p50, r.throughput_ips  # doctest: +SKIP
    (12.3, 410.0)
    """
    return benchmark_engines([engine], input_size, batch_sizes=batch_sizes, warmup=warmup, repeats=repeats,
                             images=images)[0]  # fmt: skip


def file_size(path: str | os.PathLike) -> int:
    """Size in bytes of a model file, or the total of the files in a model directory.

    >>> file_size("bundle/model.onnx")  # doctest: +SKIP
    46742311
    """
    p = Path(path)
    if not p.exists():
        raise BundleError(f"cannot measure the size of {p}: it does not exist.")
    if p.is_dir():
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return p.stat().st_size
