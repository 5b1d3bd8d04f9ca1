"""calibrate_bundle(): the warning about calibrating on other data fires for other data only, however it is named."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from imgclf.bundle import BundleMeta, load_bundle, save_bundle
from imgclf.data import load_source, make_synthetic_dataset, sample_tensors
from imgclf.evaluation import calibrate_bundle
from imgclf.models import create_model, model_data_config


def test_other_data_warning_compares_resolved_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = make_synthetic_dataset(tmp_path / "d", per_class=12, size=16)  # 36 images: enough to calibrate on
    torch.manual_seed(0)
    model = create_model("test_cnn", 3)
    pre = model_data_config(model)
    x, y = sample_tensors(load_source(str(data), val_fraction=0.0, test_fraction=0.0).train, pre)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(8):  # a few steps learn the easy synthetic classes
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    for cls, wrong in (("red", "green"), ("green", "blue"), ("blue", "red")):  # label noise: a temperature to fit
        for f in sorted((data / cls).iterdir())[:3]:
            f.rename(data / wrong / f"moved_{f.name}")
    meta = BundleMeta("test_cnn", ("blue", "green", "red"), pre, training={"data": {"source": str(data.resolve())}})
    bundle = load_bundle(save_bundle(tmp_path / "bundle", model.eval(), meta))
    monkeypatch.chdir(tmp_path)
    same = calibrate_bundle(bundle, "d", split="all")  # the training folder, by a relative path
    assert same.temperature is not None
    assert not [w for w in same.warnings if "not the training data" in w], same.warnings
    shutil.copytree(data, tmp_path / "other")
    warned = calibrate_bundle(bundle, "other", split="all").warnings
    assert any("calibrating on other, not the training data" in w for w in warned), warned
