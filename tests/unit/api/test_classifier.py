from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from imgclf.api import Classifier
from imgclf.api._fit import auto_img_size
from imgclf.config import RunConfig, update
from imgclf.data import expand_inputs, load_source, make_synthetic_dataset
from imgclf.errors import ConfigError, DataError


def test_precedence_config_shortcuts_sets(tmp_path: Path) -> None:
    yaml = tmp_path / "c.yaml"
    yaml.write_text("train:\n  epochs: 9\nmodel:\n  name: lenet5\n")
    clf = Classifier(yaml, epochs=4, sets=["train.epochs=2", "optim.lr=0.01"])
    cfg = clf.resolved_config("digits")
    assert cfg.train.epochs == 2 and cfg.model.name == "lenet5" and cfg.optim.lr == 0.01
    assert cfg.data.source == "digits"
    base = update(RunConfig(), {"data": {"batch_size": 16}})
    assert Classifier(base, batch_size=8).resolved_config().data.batch_size == 8


def test_unknown_shortcut_suggests() -> None:
    with pytest.raises(ConfigError, match="epochs"):
        Classifier(epoch=3).resolved_config()


def test_no_data_is_a_clear_error() -> None:
    with pytest.raises(DataError, match="no data given"):
        Classifier().fit()


def test_expand_inputs_files_folders_globs(tmp_path: Path) -> None:
    root = make_synthetic_dataset(tmp_path / "d", per_class=2, size=16, layout="flat")
    files = expand_inputs([str(root / "red"), str(root / "blue" / "*.png"), str(root / "red")])
    assert len(files) == 4 and len(set(files)) == 4
    with pytest.raises(DataError, match="missing.png"):
        expand_inputs([str(tmp_path / "missing.png")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no images found in .*empty \(looked for \.jpg"):
        expand_inputs([str(root / "red"), str(tmp_path / "empty")])  # not passed over in silence among others


def test_auto_img_size_follows_small_images() -> None:
    digits = load_source("digits", seed=0).train  # 8x8 images
    console = Console(file=open("/dev/null", "w"))  # noqa: SIM115
    assert auto_img_size(digits, 224, pretrained=False, console=console) == 16
    assert auto_img_size(digits, 224, pretrained=True, console=console) == 224
