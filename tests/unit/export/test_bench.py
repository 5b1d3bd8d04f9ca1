"""Benchmark core: well-formed results (no timing assertions), peak matmul rate, file sizes."""

from __future__ import annotations

from pathlib import Path

import pytest
from torch import nn

from imgclf.errors import BundleError, ConfigError
from imgclf.export import BenchResult, benchmark_engine, benchmark_engines, file_size, load_engine, measure_peak_gflops

from .conftest import stripes


def test_benchmark_engines_reports_percentiles_and_throughput(trained_cnn: nn.Module, exported: Path) -> None:
    images, _ = stripes(3, seed=50)  # fewer than the batch: cycled to fill it
    engines = [load_engine("torch", model=trained_cnn), load_engine("onnxruntime", onnx_path=exported)]
    results = benchmark_engines(engines, 32, batch_sizes=(1, 8), warmup=1, repeats=5, images=images)
    assert [r.engine for r in results] == ["torch", "onnxruntime"]  # one result per engine, in order
    results.append(benchmark_engine(engines[0], 32, batch_sizes=(1, 8), warmup=0, repeats=5))  # random input
    for engine, r in zip([*engines, engines[0]], results, strict=True):
        assert isinstance(r, BenchResult) and r.engine == engine.name and r.precision == engine.precision
        assert 0 < r.latency_ms_p50 <= r.latency_ms_p90 <= r.latency_ms_p99
        assert r.throughput_ips > 0 and r.batch_size == 8 and r.repeats == 5
        assert r.to_dict()["latency_ms_p50"] == r.latency_ms_p50


def test_benchmark_arguments_are_checked(trained_cnn: nn.Module) -> None:
    with pytest.raises(ConfigError, match="repeats"):
        benchmark_engine(load_engine("torch", model=trained_cnn), 32, repeats=0)


def test_peak_gflops_is_positive() -> None:
    assert measure_peak_gflops(size=128, warmup=1, repeats=3) > 0


def test_file_size(tmp_path: Path) -> None:
    (tmp_path / "a.onnx").write_bytes(b"x" * 10)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.bin").write_bytes(b"y" * 5)
    assert file_size(tmp_path / "a.onnx") == 10
    assert file_size(tmp_path) == 15
    with pytest.raises(BundleError, match="does not exist"):
        file_size(tmp_path / "missing.onnx")
