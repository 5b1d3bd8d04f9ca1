"""Which images `evaluate` and `report --data` score (the training data's held-out split, or every image of data
the model never saw), and what the model card says about calibration that never happened."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from imgclf import data as D
from imgclf.bundle import BundleMeta, read_meta, save_bundle, split_samples
from imgclf.cli import app
from imgclf.config import DataConfig, RunConfig, to_dict, to_yaml, update
from imgclf.evaluation import ReportData, analyse, build_report, render_model_card
from imgclf.models import create_model
from imgclf.tasks import SingleLabelTask

CLASSES = ("blue", "green", "red")


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Path]:
    """An (untrained) run on a flat folder ``train`` (10 per class), and a flat folder ``other`` of new images, 12
    per class (the synthetic files are named alike: with 10 per class it would look like a copy of ``train``)."""
    train = D.make_synthetic_dataset(tmp_path / "train", classes=CLASSES, per_class=10, size=16, seed=0)
    other = D.make_synthetic_dataset(tmp_path / "other", classes=CLASSES, per_class=12, size=16, seed=1)
    cfg = update(RunConfig(), {"data": {"source": str(train)}})
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(to_yaml(cfg))
    torch.manual_seed(0)
    splits = D.load_source(train, seed=cfg.train.seed)
    meta = BundleMeta("test_cnn", CLASSES, DataConfig(input_size=16, resize_size=16), temperature=None,
                      training=to_dict(cfg), data=splits.info)  # fmt: skip
    bundle = save_bundle(run / "bundle", create_model("test_cnn", len(CLASSES)).eval(), meta)
    return {"tmp": tmp_path, "train": train, "other": other, "run": run, "bundle": bundle}


def test_data_the_model_never_saw_is_scored_whole_and_the_training_data_by_its_test_split(world: dict) -> None:
    meta = read_meta(world["bundle"])
    samples, split, _ = split_samples(meta, str(world["other"]), None)
    assert (split, len(samples)) == ("all", 36)  # not the 10% a flat folder's seeded "test" part would hold
    samples, split, _ = split_samples(meta, str(world["other"]), "test")  # asked for: still given
    assert (split, len(samples)) == ("test", 3)
    spelled_otherwise = str(world["tmp"] / "." / "run" / ".." / "train")
    samples, split, _ = split_samples(meta, spelled_otherwise, None)  # the same folder: its held-out split
    assert (split, len(samples)) == ("test", 3)
    moved = shutil.copytree(world["train"], world["tmp"] / "moved")  # the training data elsewhere: never scored
    samples, split, _ = split_samples(meta, str(moved), None)  # whole (its training images would flatter it)
    assert (split, len(samples)) == ("test", 3)
    with_splits = D.make_synthetic_dataset(world["tmp"] / "split", classes=CLASSES, per_class=8, size=16,
                                           layout="split", seed=2)  # fmt: skip
    samples, split, _ = split_samples(meta, str(with_splits), None)  # its own test folder
    assert (split, len(samples)) == ("test", 6)


def test_evaluate_cli_scores_every_new_image_and_says_why(world: dict) -> None:
    res = CliRunner().invoke(app, ["evaluate", str(world["bundle"]), str(world["other"]), "--resamples", "20"],
                             env={"COLUMNS": "200"})  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "36 images, split all" in res.output
    assert "is not the model's training data and has no train/val/test split" in res.output
    res = CliRunner().invoke(app, ["evaluate", str(world["bundle"]), str(world["train"]), "--resamples", "20"],
                             env={"COLUMNS": "200"})  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "3 images, split test" in res.output and "not the model's training data" not in res.output
    helped = CliRunner().invoke(app, ["evaluate", "--help"], env={"COLUMNS": "200"})
    assert "all images of other data" in " ".join(helped.output.split())


def test_model_card_without_a_temperature_says_calibration_was_skipped() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 90)
    logits = rng.normal(0, 1, (90, 3)) + 2 * np.eye(3)[labels]
    ev = analyse(logits, labels, SingleLabelTask(CLASSES), temperature=None, n_resamples=20)
    card = render_model_card(ReportData(**ev.report_fields(), calibration_skipped="train.calibrate was off"))
    assert "after temperature scaling" not in card and "ECE before" not in card
    assert "Calibration was skipped: train.calibrate was off. No temperature scaling is applied" in card
    fitted = analyse(logits, labels, SingleLabelTask(CLASSES), temperature=1.4, n_resamples=20)
    card = render_model_card(ReportData(**fitted.report_fields()))
    assert "ECE after temperature scaling" in card and "skipped" not in card


@pytest.mark.slow  # ~10 s: the whole report, seven plots rendered
def test_report_on_other_data_and_a_model_card_without_temperature(world: dict) -> None:
    res = build_report(world["run"], source=str(world["other"]), n_resamples=20)
    assert (res.evaluation.split, res.evaluation.n) == ("all", 36)
    card = res.model_card.read_text()
    assert "**evaluated split**: all (36 images: not the training data" in card
    assert "train images" not in card  # none of these images was trained on
    assert "- split `all`: 36 files" in card and "split `train`" not in card  # audited as one, not seeded splits
    # no temperature was fitted (a validation split of 3 images): the card says so and shows no "after" figure
    assert "after temperature scaling" not in card and "ECE before" not in card
    assert "Calibration was skipped: the validation split has 3 images and fitting a temperature needs 30" in card
    assert "**temperature**: none: calibration skipped" in card
    html = res.html.read_text()
    assert "temperature-scaled" not in html and "Calibration was skipped" in html
