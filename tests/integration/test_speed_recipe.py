"""The cifar-speed recipe end to end on small generated data: it learns, whitens from the data, resumes exactly
and leaves an ordinary bundle (predict with the speedruns' TTA). Its CIFAR-10 figures: benchmarks/speedrun.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from imgclf import data as D
from imgclf.api import train_run
from imgclf.config import recipe, update
from imgclf.engine import Callback
from imgclf.errors import ConfigError, TrainingInterrupted
from imgclf.models import create_model

from ._helpers import StopAt, cli


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return D.make_synthetic_dataset(tmp_path_factory.mktemp("speed") / "imgs", per_class=40, size=32, layout="split",
                                    classes=("red", "green", "blue", "yellow"))  # fmt: skip


def _cfg(images: Path, out: Path, name: str, epochs: int = 3):
    return update(recipe("cifar-speed"), {"data": {"source": str(images), "batch_size": 32, "workers": 0},
                                          "train": {"epochs": epochs, "out": str(out), "name": name,
                                                    "report": False}})  # fmt: skip


class _FirstLayer(Callback):
    name = "first_layer"

    def on_fit_start(self, state) -> None:
        self.at_start = state.raw_model.features[0].weight.detach().clone()


@pytest.fixture(scope="module")
def whole(images: Path, tmp_path_factory: pytest.TempPathFactory):
    first = _FirstLayer()
    return train_run(_cfg(images, tmp_path_factory.mktemp("runs"), "whole"), callbacks=[first]), first


def test_recipe_learns_and_records_itself(whole) -> None:
    result, _ = whole
    assert result.metrics["test"]["acc"] >= 0.9
    cfg = result.config
    assert (cfg.model.name, cfg.optim.optimizer, cfg.data.cache, cfg.data.augment) == ("speednet", "muon", "memory",
                                                                                       "shift")  # fmt: skip
    saved = (result.run_dir / "config.yaml").read_text()
    assert "optimizer: muon" in saved and "cache: memory" in saved  # a resume or a rerun gets the same recipe


def test_whitening_filters_come_from_the_training_images(whole, images: Path) -> None:
    result, first = whole
    fresh = create_model("speednet", 4).features[0].weight
    assert not torch.allclose(first.at_start, fresh)  # set before the first step ...
    trained = load_file(str(result.bundle_dir / "model.safetensors"))["features.0.weight"]
    assert torch.equal(trained, first.at_start)  # ... and never trained
    # the filters whiten: on training images the first layer's outputs are decorrelated with unit second moment
    splits = D.load_source(str(images), val_fraction=0.0, test_fraction=0.0, seed=0)
    pre = result.bundle.meta.preprocessing
    x, _, _ = D.decode_to_memory(splits.train, pre, workers=0)
    x = D.normalize(x.float() / 255, pre.mean, pre.std)
    out = torch.nn.functional.conv2d(x, trained)[:, :12].permute(0, 2, 3, 1).reshape(-1, 12)
    cov = out.T @ out / len(out)  # the (uncentred) second moment, as the whitening is computed
    assert torch.allclose(torch.diag(cov), torch.ones(12), atol=0.25)
    assert (cov - torch.diag(torch.diag(cov))).abs().max() < 0.25


def test_interrupted_and_resumed_equals_uninterrupted(whole, images: Path, tmp_path: Path) -> None:
    result, _ = whole
    with pytest.raises(TrainingInterrupted, match="--resume"):
        train_run(_cfg(images, tmp_path, "cut"), callbacks=[StopAt(6)])  # 5 steps an epoch: mid epoch 2
    resumed = train_run(None, resume=tmp_path / "cut")
    a = load_file(str(result.bundle_dir / "model.safetensors"))
    b = load_file(str(resumed.bundle_dir / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_bundle_predicts_with_flip_shift_tta(whole, images: Path) -> None:
    result, _ = whole
    files = sorted((images / "test" / "blue").iterdir())[:3]
    r = cli("predict", str(result.bundle_dir), *map(str, files), "--tta", "flip+shift", "--json")
    assert r.returncode == 0, r.stderr
    answers = json.loads(r.stdout)
    assert [a["label"] for a in answers] == ["blue"] * 3
    assert all(a["uncertainty"] >= 0 for a in answers)


def test_recipe_errors_name_the_fix() -> None:
    with pytest.raises(ConfigError, match="cifar-speed"):
        recipe("cifar-sped")
    r = cli("train", "digits", "--recipe", "cifar-speed", "--config", "x.yaml")
    assert r.returncode != 0 and "not both" in r.stderr + r.stdout


@pytest.mark.parametrize("native", [True, False])
def test_recipe_asks_for_bf16_only_where_the_cpu_has_it(native: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Emulated bf16 is ~7x slower than fp32 (Zen 3): there the recipe falls back to ``auto`` (fp32 on a CPU)."""
    from imgclf.config import _recipes

    monkeypatch.setattr(_recipes, "cpu_supports_bf16", lambda: native)
    assert recipe("cifar-speed").train.amp == ("bf16" if native else "auto")
    assert update(recipe("cifar-speed"), {"train": {"amp": "bf16"}}).train.amp == "bf16"  # asked for: kept
