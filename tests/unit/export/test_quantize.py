"""int8 quantization: static QDQ keeps the trained tiny CNN's decisions; dynamic runs; arguments are checked."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from imgclf.errors import ConfigError, DataError
from imgclf.export import load_engine, quantize_onnx, read_onnx_metadata

from .conftest import stripes


def test_static_int8_keeps_top1_agreement(trained_cnn: nn.Module, exported: Path, tmp_path: Path) -> None:
    calibration, _ = stripes(32, seed=40)
    held_out, labels = stripes(128, seed=41)  # different images from calibration
    out = quantize_onnx(exported, tmp_path / "model.int8.onnx", calibration_images=calibration)
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # QDQ format
    engine = load_engine("onnxruntime", onnx_path=out)
    assert engine.precision == "int8"
    with torch.no_grad():
        reference = trained_cnn(held_out).numpy()
    got = engine.predict_logits(held_out)
    agreement = (got.argmax(1) == reference.argmax(1)).mean()
    assert agreement >= 0.98
    assert (got.argmax(1) == labels.numpy()).mean() >= 0.95
    assert np.abs(got - reference).max() > 0  # it really is a different (quantized) computation
    meta = read_onnx_metadata(out)
    assert meta["class_names"] == read_onnx_metadata(exported)["class_names"]  # metadata carried over
    settings = json.loads(meta["imgclf.quantization"])
    assert settings["per_channel"] and settings["format"] == "QDQ" and settings["calibration_images"] == 32
    assert [p.name for p in tmp_path.iterdir()] == ["model.int8.onnx"]


def test_per_channel_weight_scales(exported: Path, tmp_path: Path) -> None:
    out = quantize_onnx(exported, tmp_path / "q.onnx", calibration_images=stripes(8, seed=42)[0])
    proto = onnx.load(str(out))
    inits = {t.name: t for t in proto.graph.initializer}
    weight_dq = [n for n in proto.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits
                 and len(inits[n.input[0]].dims) == 4]  # fmt: skip
    assert weight_dq, "conv weights should be stored quantized"
    scale = inits[weight_dq[0].input[1]]
    assert len(scale.dims) == 1 and scale.dims[0] == inits[weight_dq[0].input[0]].dims[0]  # one scale per channel


@pytest.mark.parametrize("reduce_range", [True, False])
def test_weights_keep_to_7_bits_by_default(exported: Path, tmp_path: Path, reduce_range: bool) -> None:
    """7-bit weights by default: CPUs without VNNI saturate 16-bit pair sums of 8-bit weights."""
    out = quantize_onnx(exported, tmp_path / "q.onnx", calibration_images=stripes(8, seed=42)[0],
                        reduce_range=reduce_range)  # fmt: skip
    proto = onnx.load(str(out))
    inits = {t.name: t for t in proto.graph.initializer}
    weights = [onnx.numpy_helper.to_array(inits[n.input[0]]) for n in proto.graph.node
               if n.op_type == "DequantizeLinear" and n.input[0] in inits and len(inits[n.input[0]].dims) == 4]
    peak = max(int(np.abs(w.astype(np.int32)).max()) for w in weights)
    assert peak == (64 if reduce_range else 127), peak  # the largest weight of some channel uses the full range
    assert json.loads(read_onnx_metadata(out)["imgclf.quantization"])["weight_bits"] == (7 if reduce_range else 8)


def test_dynamic_quantization_runs_without_calibration(trained_cnn: nn.Module, exported: Path, tmp_path: Path) -> None:
    out = quantize_onnx(exported, tmp_path / "dyn.onnx", mode="dynamic")
    engine = load_engine("onnxruntime", onnx_path=out)
    x, _ = stripes(16, seed=43)
    with torch.no_grad():
        reference = trained_cnn(x).numpy()
    assert engine.precision == "int8"
    assert (engine.predict_logits(x).argmax(1) == reference.argmax(1)).mean() >= 0.9


def test_quantize_arguments_are_checked(exported: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="calibration_images"):
        quantize_onnx(exported, tmp_path / "q.onnx")
    with pytest.raises(ConfigError, match="Did you mean 'static'"):
        quantize_onnx(exported, tmp_path / "q.onnx", mode="statik")
    assert not (tmp_path / "q.onnx").exists()


def test_bundle_export_measures_int8_agreement_and_warns_when_answers_change(
        trained_cnn: nn.Module, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """The int8 record's agreement is top-1 agreement with the fp32 export on held-out images; below 99% the
    export adds a note (a trained MobileNetV3 changed 24% of its answers under int8 on real photos)."""
    from imgclf.bundle import BundleMeta, save_bundle
    from imgclf.data import make_synthetic_dataset
    from imgclf.export import _bundle_export, export_bundle
    from imgclf.models import model_data_config

    from .conftest import CLASSES

    images = make_synthetic_dataset(tmp_path / "imgs", classes=CLASSES, per_class=50, size=32, seed=0)
    save_bundle(tmp_path / "b", trained_cnn, BundleMeta("test_cnn", CLASSES, model_data_config(trained_cnn)))
    real = _bundle_export.load_engine

    class Altered:
        def __init__(self, engine: object, sign: float) -> None:
            self.engine, self.sign = engine, sign

        def __getattr__(self, name: str) -> object:
            return getattr(self.engine, name)

        def predict_logits(self, x: torch.Tensor) -> np.ndarray:
            return self.sign * np.asarray(self.engine.predict_logits(x))

    for sign, want in ((1.0, 1.0), (-1.0, None)):  # int8 swapped for the fp32 model itself, then negated
        def engine(name: str, sign: float = sign, **kw: object) -> object:
            path = str(kw.get("onnx_path", ""))
            fp32 = str(kw["onnx_path"]).replace(".int8.onnx", ".onnx") if path.endswith(".int8.onnx") else path
            return Altered(real(name, **{**kw, "onnx_path": fp32}), sign) if fp32 != path else real(name, **kw)

        monkeypatch.setattr(_bundle_export, "load_engine", engine)
        res = export_bundle(tmp_path / "b", quantize="int8", data=str(images), out=tmp_path / f"out{sign}")
        warned = any("other answers than fp32" in n for n in res.notes)
        if want is not None:
            assert res.quantization["agreement"] == want and not warned, (res.quantization, res.notes)
        else:
            assert res.quantization["agreement"] < 0.5 and warned, (res.quantization, res.notes)
