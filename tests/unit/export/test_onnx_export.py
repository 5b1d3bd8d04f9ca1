"""ONNX export: round trip, dynamic batch, metadata, exporter choice and fallback, argument checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from imgclf.errors import ConfigError, ImgclfError
from imgclf.export import ExportParityError, export_onnx, load_engine, read_onnx_metadata

from .conftest import SIZE, stripes


def _torch_logits(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model(x).numpy()


def test_round_trip_matches_torch_for_batch_1_and_5(trained_cnn: nn.Module, exported: Path) -> None:
    engine = load_engine("onnxruntime", onnx_path=exported)
    for n in (1, 5):
        x, _ = stripes(n, seed=10 + n)
        got = engine.predict_logits(x)
        assert got.shape == (n, 4)
        np.testing.assert_allclose(got, _torch_logits(trained_cnn, x), atol=1e-4)


def test_export_is_one_file_with_dynamic_batch_and_opset_17_or_newer(exported: Path) -> None:
    assert [p.name for p in exported.parent.iterdir()] == ["model.onnx"]  # no external data, no temp files
    proto = onnx.load(str(exported))
    onnx.checker.check_model(proto)
    assert max(o.version for o in proto.opset_import if o.domain == "") >= 17
    batch_dim = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param and not batch_dim.HasField("dim_value")
    assert [i.name for i in proto.graph.input] == ["images"] and [o.name for o in proto.graph.output] == ["logits"]


def test_metadata_reads_back_with_exporter_and_parity(exported: Path, metadata: dict[str, str]) -> None:
    meta = read_onnx_metadata(exported)
    for key, value in metadata.items():
        assert meta[key] == value
    assert json.loads(meta["class_names"])[0] == "red-horizontal"
    assert meta["imgclf.exporter"] == "dynamo"
    parity = json.loads(meta["imgclf.parity"])
    assert parity["passed"] and parity["n"] == 16 and parity["max_abs_logit_diff"] < 1e-3


def test_torchscript_exporter_round_trip_and_training_mode_restored(trained_cnn: nn.Module, tmp_path: Path) -> None:
    trained_cnn.train()
    try:
        path = export_onnx(trained_cnn, tmp_path / "ts.onnx", input_size=SIZE, metadata={}, exporter="torchscript")
        assert trained_cnn.training  # export ran in eval mode and gave the mode back
    finally:
        trained_cnn.eval()
    assert read_onnx_metadata(path)["imgclf.exporter"] == "torchscript"
    x, _ = stripes(3, seed=4)
    np.testing.assert_allclose(load_engine("onnxruntime", onnx_path=path).predict_logits(x),
                               _torch_logits(trained_cnn, x), atol=1e-4)  # fmt: skip


class _BranchOnData(nn.Module):
    """forward() branches on pixel values: torch.export refuses it, TorchScript tracing bakes one branch in."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.b = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.mean() > 0.5:  # the export example has mean ~0, so the traced graph always takes branch b
            return self.a(x)
        return -10 * self.b(x)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_fallback_to_torchscript_and_parity_catches_the_baked_in_branch(tmp_path: Path) -> None:
    torch.manual_seed(0)
    bright = torch.randn(8, 3, 16, 16) + 1.0  # takes branch a in PyTorch
    out = tmp_path / "branchy.onnx"
    with pytest.raises(ExportParityError) as info:
        export_onnx(_BranchOnData(), out, input_size=16, metadata={}, parity_images=bright)
    msg = str(info.value)
    assert "torchscript exporter" in msg and "dynamo" in msg  # says what was used and why
    assert f"{info.value.parity.max_abs_logit_diff:.3g}" in msg and "tolerance 0.001" in msg
    assert info.value.parity.max_abs_logit_diff > 1 and not info.value.parity.passed
    assert isinstance(info.value, ImgclfError) and info.value.exit_code == 1
    assert not out.exists() and list(tmp_path.iterdir()) == []
    # without parity images the same (wrong for bright inputs) file is written: the check is what protects users
    export_onnx(_BranchOnData(), out, input_size=16, metadata={})
    assert read_onnx_metadata(out)["imgclf.exporter"] == "torchscript"


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"metadata": {"temperature": 1.5}}, "must be strings"),
        ({"metadata": {"imgclf.parity": "{}"}}, "written by imgclf"),
        ({"metadata": {}, "opset": 13}, "opset 13"),
        ({"metadata": {}, "exporter": "dynamoo"}, "Did you mean 'dynamo'"),
    ],
)
def test_bad_arguments_fail_before_export(trained_cnn: nn.Module, tmp_path: Path, kwargs: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        export_onnx(trained_cnn, tmp_path / "m.onnx", input_size=SIZE, **kwargs)
    assert list(tmp_path.iterdir()) == []
