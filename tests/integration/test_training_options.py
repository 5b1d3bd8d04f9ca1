"""Every training option a user can switch on works together on a real (small) run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import imgclf
from imgclf import data as D


@pytest.mark.parametrize(
    "sets",
    [
        ["train.amp=bf16", "train.channels_last=true", "train.grad_clip=1.0", "train.accumulate=2",
         "data.mixup=0.2", "data.cutmix=1.0", "data.augment=strong"],
        ["optim.optimizer=sgd", "optim.schedule=step", "optim.step_epochs=1", "train.loss=focal",
         "train.class_weights=balanced", "data.sampler=balanced", "train.ema=false", "train.label_smoothing=0"],
        ["model.freeze=backbone", "train.monitor=val_loss", "train.patience=1"],
    ],
    ids=["bf16-channels-last-clip-accumulate-mixing", "sgd-step-focal-balanced", "linear-probe"],
)
def test_training_options_run_and_are_recorded(sets: list[str], tmp_path: Path) -> None:
    src = D.make_synthetic_dataset(tmp_path / "d", per_class=20, size=32, layout="flat")
    clf = imgclf.fit(src, model="test_cnn", epochs=3, img_size=32, out=str(tmp_path), name="r",
                     sets=["data.workers=0", "train.report=false", *sets])  # fmt: skip
    lines = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert lines and all(m["train_loss"] == m["train_loss"] for m in lines)  # finite, not NaN
    config = (tmp_path / "r" / "config.yaml").read_text()
    for item in sets:
        key = item.split("=")[0].split(".")[1]
        assert f"{key}:" in config
    assert clf.predict([str(src / "red")])[0].label in clf.classes


def test_imbalance_is_flagged_with_the_fix(tmp_path: Path) -> None:
    src = D.make_synthetic_dataset(tmp_path / "d", per_class=4, size=32, layout="flat")
    first = sorted((src / "red").iterdir())[0].read_bytes()
    for i in range(40):  # make 'red' 10x larger than the other classes
        (src / "red" / f"extra_{i}.png").write_bytes(first)
    from rich.console import Console

    console = Console(file=open(tmp_path / "log.txt", "w"), width=200)  # noqa: SIM115
    imgclf.fit(src, model="test_cnn", epochs=1, img_size=32, out=str(tmp_path), name="imb", console=console,
               sets=["data.workers=0", "train.report=false"])  # fmt: skip
    console.file.close()
    log = (tmp_path / "log.txt").read_text()
    assert "imbalanced" in log and "data.sampler=balanced" in log
