from __future__ import annotations

from pathlib import Path

import pytest

from imgclf.config import DataConfig, RunConfig, from_dict, load_config, parse_set, to_dict, to_yaml, update
from imgclf.errors import ConfigError


def test_round_trip_through_yaml(tmp_path: Path) -> None:
    cfg = update(RunConfig(), {"train": {"epochs": 3}, "model": {"name": "lenet5"}, "optim": {"lr": 0.01}})
    path = tmp_path / "c.yaml"
    path.write_text(to_yaml(cfg))
    assert load_config(path) == cfg
    assert from_dict(RunConfig, to_dict(cfg)) == cfg


def test_precedence_defaults_yaml_set(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epochs: 7\n  seed: 3\n")
    cfg = load_config(path, parse_set(["train.epochs=2", "optim.lr=1e-3"]))
    assert cfg.train.epochs == 2  # --set beats YAML
    assert cfg.train.seed == 3  # YAML beats defaults
    assert cfg.optim.lr == pytest.approx(1e-3)
    assert cfg.data.batch_size == RunConfig().data.batch_size  # default kept


@pytest.mark.parametrize(
    ("item", "fragment"),
    [
        ("train.epoch=5", "Did you mean 'epochs'"),
        ("trian.epochs=5", "Did you mean 'train'"),
        ("train.epochs=abc", "wrong type"),
        ("train.epochs=0", "must be > 0"),
        ("data.augment=heavy", "choose one of auto, none, flip, shift, light, small, standard, strong"),
        ("optim.lr=fast", "give a number or 'auto'"),
        ("train.ema=sometimes", "choose true, false or auto"),
        ("optim.optimizer=adam", "choose one of adamw, sgd"),
    ],
)
def test_bad_keys_and_values_fail_with_a_hint(item: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        load_config(None, parse_set([item]))


def test_parse_set_rejects_missing_equals() -> None:
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_set(["train.epochs"])


def test_yaml_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_config(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_data_config_with_size_keeps_crop_fraction() -> None:
    d = DataConfig(input_size=224, resize_size=256)
    small = d.with_size(32)
    assert small.input_size == 32 and small.resize_size == 36
    assert d.with_size(32, crop_pct=1.0).resize_size == 32
    with pytest.raises(ConfigError):
        DataConfig(input_size=64, resize_size=32)
