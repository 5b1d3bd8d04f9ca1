from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from imgclf.bundle import BundleMeta, load_bundle, read_meta, save_bundle, update_meta
from imgclf.config import DataConfig
from imgclf.errors import BundleError
from imgclf.models import create_model


def _save(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    model = create_model("test_cnn", 3).eval()
    meta = BundleMeta("test_cnn", ("a", "b", "c"), DataConfig(input_size=32, resize_size=32), temperature=1.5)
    return save_bundle(tmp_path / "b", model, meta), model


def test_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    path, model = _save(tmp_path)
    bundle = load_bundle(path)
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(bundle.model(x), model(x))
    assert bundle.meta.classes == ("a", "b", "c") and bundle.meta.temperature == 1.5
    data = json.loads((path / "imgclf.json").read_text())
    for key in ("schema_version", "architecture", "classes", "preprocessing", "temperature", "versions",
                "weights_sha256", "training", "metrics", "data"):  # fmt: skip
        assert key in data


def test_update_meta_keeps_weights_valid(tmp_path: Path) -> None:
    path, _ = _save(tmp_path)
    update_meta(path, temperature=2.0)
    assert load_bundle(path).meta.temperature == 2.0


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: (p / "imgclf.json").write_text("{nope"), "not valid JSON"),
        (lambda p: (p / "model.safetensors").unlink(), "missing"),
        (lambda p: (p / "imgclf.json").write_text(json.dumps({"schema_version": 99})), "newer than this imgclf"),
        (lambda p: (p / "imgclf.json").write_text(json.dumps({"architecture": "x"})), "not a valid imgclf bundle"),
    ],
)
def test_damaged_bundles_fail_clearly(tmp_path: Path, damage, message: str) -> None:
    path, _ = _save(tmp_path)
    damage(path)
    with pytest.raises(BundleError, match=message):
        load_bundle(path)


def test_run_dir_instead_of_bundle_gets_a_hint(tmp_path: Path) -> None:
    _save(tmp_path)
    (tmp_path / "b").rename(tmp_path / "bundle")
    with pytest.raises(BundleError, match="RUN_DIR/bundle"):
        read_meta(tmp_path)
