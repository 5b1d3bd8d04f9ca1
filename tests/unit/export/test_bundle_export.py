"""export_bundle's int8 check: calibration and measurement on disjoint, mixed-class held-out images."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from imgclf import data as D
from imgclf.bundle import BundleMeta, save_bundle
from imgclf.config import DataConfig
from imgclf.errors import BundleError
from imgclf.export import _bundle_export as X
from imgclf.models import create_model


def test_int8_is_measured_on_every_class_and_never_on_its_calibration_images(tmp_path: Path, monkeypatch) -> None:
    """The held-out split lists its images class by class; the int8 accuracy change must not be measured on the
    last class alone (it was: 128 calibration images, then the rest, all one class), nor on calibration images."""
    src = D.make_synthetic_dataset(tmp_path / "d", per_class=200, size=16, layout="split")  # test: 50 per class
    torch.manual_seed(0)
    meta = BundleMeta("test_cnn", ("red", "green", "blue"), DataConfig(input_size=16, resize_size=16))
    bundle = save_bundle(tmp_path / "bundle", create_model("test_cnn", 3), meta)
    seen: dict[str, torch.Tensor] = {}
    quantize, accuracy = X.quantize_onnx, X._accuracy

    def spy_quantize(*args, calibration_images, **kwargs):
        seen["calibration"] = calibration_images
        return quantize(*args, calibration_images=calibration_images, **kwargs)

    def spy_accuracy(logits, labels):
        seen.setdefault("labels", torch.as_tensor(labels))
        return accuracy(logits, labels)

    monkeypatch.setattr(X, "quantize_onnx", spy_quantize)
    monkeypatch.setattr(X, "_accuracy", spy_accuracy)
    result = X.export_bundle(bundle, quantize="int8", data=str(src))
    assert result.quantization["calibration_images"] == len(seen["calibration"]) == 75  # half of 150
    assert result.quantization["held_out_images"] == 75
    assert sorted(torch.unique(seen["labels"]).tolist()) == [0, 1, 2]  # every class is measured
    x, _ = D.sample_tensors(D.load_source(str(src)).test, meta.preprocessing)
    calibrated = {bytes(img.numpy().tobytes()) for img in seen["calibration"]}
    assert len(calibrated) == 75 and len({bytes(img.numpy().tobytes()) for img in x} - calibrated) == 75


def test_an_onnx_file_outside_its_bundle_is_one_clear_error(tmp_path: Path) -> None:
    """``export --out DIR`` writes model.onnx alone; predicting with it named the folder as "not a bundle, train
    one", which sent users to retrain. It now says what is missing and the two ways out."""
    lone = tmp_path / "exported" / "model.onnx"
    lone.parent.mkdir()
    lone.write_bytes(b"onnx")
    with pytest.raises(BundleError, match=r"model.onnx is not inside a bundle .*imgclf.json is missing.*--engine "
                                          r"onnxruntime, or export without --out"):
        X.resolve_model(lone)
