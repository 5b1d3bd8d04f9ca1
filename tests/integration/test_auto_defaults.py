"""A run records what 'auto' resolved to: config.yaml and the bundle hold concrete values, and --resume keeps them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from imgclf import data as D
from imgclf.api import train_run
from imgclf.bundle import read_meta
from imgclf.config import load_config, parse_set


@pytest.mark.slow
def test_run_records_resolved_auto_values(tmp_path: Path) -> None:
    root = D.make_synthetic_dataset(tmp_path / "imgs", per_class=12, size=24, layout="flat")
    cfg = load_config(None, parse_set([f"data.source={root}", "model.name=test_cnn", "train.epochs=2",
                                       "data.workers=0", "train.report=false", f"train.out={tmp_path}",
                                       "train.name=auto"]))  # fmt: skip
    assert cfg.data.augment == "auto" and cfg.optim.lr == "auto"
    result = train_run(cfg)
    written = yaml.safe_load((result.run_dir / "config.yaml").read_text())
    # 24-px images, 2 epochs, 30 training images: no augmentation, batch 16 (the smallest auto batch), so AdamW
    # 2e-3 * sqrt(16 / 64) = 1e-3, EMA off (4 optimizer steps)
    assert written["data"]["augment"] == "none" and written["data"]["batch_size"] == 16
    assert written["optim"]["lr"] == pytest.approx(1e-3) and written["optim"]["warmup_epochs"] == pytest.approx(0.4)
    assert written["train"]["ema"] is False and isinstance(written["train"]["ema_decay"], float)
    assert read_meta(result.bundle_dir).training["data"]["augment"] == "none"
    assert load_config(result.run_dir / "config.yaml") == result.config  # resolving again changes nothing
