"""Inference engines: the same tensors give the same logits (within each precision's tolerance)."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from imgclf.errors import ConfigError, DataError
from imgclf.export import ENGINES, load_engine, physical_cores
from imgclf.utils import cpu_supports_bf16

from .conftest import stripes

# bf16 keeps 8 mantissa bits: logits of magnitude ~10 move by a few hundredths
TOLERANCE = {"fp32": 1e-4, "bf16": 0.15, "fp16": 0.05}


def test_all_engines_agree_on_the_same_tensors(trained_cnn: nn.Module, exported: Path) -> None:
    x, labels = stripes(24, seed=30)
    with torch.no_grad():
        reference = trained_cnn(x).numpy()
    for kind in ENGINES:
        engine = load_engine(kind, model=trained_cnn, onnx_path=exported)
        got = engine.predict_logits(x)
        assert engine.name == kind
        assert got.dtype == np.float32 and got.shape == (24, 4)
        np.testing.assert_allclose(got, reference, atol=TOLERANCE[engine.precision], err_msg=repr(engine))
        assert (got.argmax(1) == reference.argmax(1)).all()
        np.testing.assert_allclose(engine.predict_logits(x.numpy()), got)  # numpy input works the same


def test_torch_fast_uses_bf16_where_the_cpu_has_it_and_leaves_the_model_alone(trained_cnn: nn.Module) -> None:
    before = {k: v.clone() for k, v in trained_cnn.state_dict().items()}
    engine = load_engine("torch-fast", model=trained_cnn)
    assert engine.precision == ("bf16" if cpu_supports_bf16() else "fp32")
    engine.predict_logits(stripes(2, seed=31)[0])
    for k, v in trained_cnn.state_dict().items():  # no BN folding or dtype change leaked into the caller's model
        assert torch.equal(v, before[k]) and v.dtype == before[k].dtype
    assert trained_cnn.features[0].weight.is_contiguous()


def test_torch_fast_folds_timms_norm_act_layers_into_the_convolutions() -> None:
    """MobileNetV3's BatchNormAct2d layers are folded too (fx alone left all 46 of them, 15% of its time)."""
    import timm

    from imgclf.export._engines import _fold_batchnorm

    torch.manual_seed(0)
    model = timm.create_model("mobilenetv3_small_050", num_classes=3).eval()
    for m in model.modules():  # statistics far from the identity, so an unfolded or misfolded layer shows
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1), m.running_var.uniform_(0.5, 2), m.weight.data.uniform_(0.5, 1.5)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        reference = model(x)
        folded = _fold_batchnorm(copy.deepcopy(model))
        got = folded(x)

    def batch_norms(graph_module: torch.fx.GraphModule) -> int:  # as modules, or traced into F.batch_norm calls
        return sum("batch_norm" in str(n.target) or (n.op == "call_module" and isinstance(
            graph_module.get_submodule(n.target), nn.BatchNorm2d)) for n in graph_module.graph.nodes)  # fmt: skip

    assert batch_norms(torch.fx.symbolic_trace(model)) > 20
    assert batch_norms(folded) == 0
    torch.testing.assert_close(got, reference, rtol=1e-4, atol=1e-4 * float(reference.abs().max()))


def test_onnxruntime_engine_reports_precision_and_runs_batch_one(exported: Path) -> None:
    engine = load_engine("onnxruntime", onnx_path=exported)
    assert engine.precision == "fp32"
    assert engine.predict_logits(stripes(1, seed=32)[0]).shape == (1, 4)
    assert 1 <= physical_cores() <= (os.cpu_count() or 1)
    assert engine.session.get_session_options().intra_op_num_threads == physical_cores()


def test_engine_arguments_are_checked(trained_cnn: nn.Module) -> None:
    with pytest.raises(ConfigError, match="Did you mean 'torch-fast'"):
        load_engine("torch_fast", model=trained_cnn)
    with pytest.raises(ConfigError, match="needs an ONNX file"):
        load_engine("onnxruntime", model=trained_cnn)
    with pytest.raises(ConfigError, match="needs a PyTorch model"):
        load_engine("torch", onnx_path="model.onnx")
    with pytest.raises(DataError, match=r"\(N, 3, H, W\)"):
        load_engine("torch", model=trained_cnn).predict_logits(torch.zeros(2, 1, 32, 32))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_torch_fast_on_cuda_runs_fp16_and_agrees(trained_cnn: nn.Module) -> None:
    x, _ = stripes(8, seed=33)
    with torch.no_grad():
        reference = trained_cnn(x).numpy()
    engine = load_engine("torch-fast", model=trained_cnn, device="cuda", compile=False)
    assert engine.precision == "fp16"
    got = engine.predict_logits(x)
    np.testing.assert_allclose(got, reference, rtol=1e-2, atol=TOLERANCE["fp16"])
    assert (got.argmax(1) == reference.argmax(1)).all()


def test_tune_malloc_stops_page_faults_on_reallocation() -> None:
    """In a fresh process (it is process-wide): re-allocating freed activation-sized buffers faults no pages in."""
    code = textwrap.dedent("""
        import resource, torch
        from imgclf.export import tune_malloc
        def faults_of_a_forward_like_round():
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            buffers = [torch.ones(1 << 24) for _ in range(3)]  # 3 x 64 MB: above glibc's dynamic mmap threshold
            del buffers
            return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
        default = min(faults_of_a_forward_like_round() for _ in range(3))
        applied = tune_malloc()
        tuned = [faults_of_a_forward_like_round() for _ in range(8)]  # the heap settles within a few rounds
        print(default, applied, max(tuned[-2:]))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    default, applied, tuned = int(out[0]), out[1] == "True", int(out[2])
    if not applied:
        pytest.skip("not glibc: tune_malloc() has nothing to tune")
    assert default > 10_000  # 49k pages of 4 KiB faulted in again on every round by default
    assert tuned < 1_000
