"""predict on inputs that are all unreadable, empty or out of range: rows with errors or one clear error, never a
traceback. An untrained test_cnn bundle (instant) is enough: these tests check the handling, not the answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import imgclf
from imgclf.bundle import BundleMeta, save_bundle
from imgclf.cli import app
from imgclf.data import InputImages
from imgclf.errors import DataError
from imgclf.models import create_model, model_data_config

CLASSES = ("a", "b", "c")


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = create_model("test_cnn", len(CLASSES)).eval()
    return save_bundle(tmp_path_factory.mktemp("b") / "bundle", model,
                       BundleMeta("test_cnn", CLASSES, model_data_config(model)))  # fmt: skip


@pytest.fixture()
def allbad(tmp_path: Path) -> Path:
    """A folder whose image files are all unreadable: a 0-byte jpg and a text file named .png."""
    folder = tmp_path / "allbad"
    folder.mkdir()
    (folder / "zero.jpg").write_bytes(b"")
    (folder / "fake.png").write_text("not an image")
    return folder


def test_only_unreadable_files_give_one_error_row_each(bundle_dir: Path, allbad: Path) -> None:
    clf = imgclf.load(bundle_dir)
    preds = clf.predict([allbad])
    assert [Path(p.path).name for p in preds] == ["fake.png", "zero.jpg"]
    assert all(p.error and p.label is None for p in preds)
    assert clf.predict([allbad / "zero.jpg"])[0].error == "empty file"


def test_no_inputs_is_an_empty_answer(bundle_dir: Path) -> None:
    clf = imgclf.load(bundle_dir)
    assert clf.predict([]) == []
    assert clf.predict_proba([]).shape == (0, len(CLASSES))
    names, logits, errors = clf.predict_logits([])
    assert names == [] and logits.shape == (0, len(CLASSES)) and errors == {}


@pytest.mark.parametrize("content", [None, "a.txt"])
def test_a_folder_without_images_is_a_clear_error(tmp_path: Path, content: str | None) -> None:
    folder = tmp_path / "nothing"
    folder.mkdir()
    if content:
        (folder / content).write_text("hi")
    with pytest.raises(DataError, match=r"no images found in .*nothing \(looked for \.jpg, \.jpeg, .*\.png"):
        InputImages([folder])


def test_float_arrays_outside_0_1_and_empty_images_are_named_errors(bundle_dir: Path) -> None:
    clf = imgclf.load(bundle_dir)
    img = np.random.default_rng(0).integers(0, 256, (24, 24, 3)).astype(np.uint8)
    preds = clf.predict([img.astype(np.float32), np.zeros((0, 0, 3), np.uint8), img / 255.0, img,
                         Image.new("RGB", (0, 0))])  # fmt: skip
    assert "float arrays must be in [0, 1]" in preds[0].error and "divide by 255" in preds[0].error
    assert preds[1].path == "input[1]" and "empty image" in preds[1].error
    assert preds[2].error is None and preds[2].score == pytest.approx(preds[3].score, abs=1e-3)  # /255: the same
    assert "empty image" in preds[4].error
    with pytest.raises(DataError, match=r"input\[0\].*divide by 255"):
        clf.predict_proba([img.astype(np.float32)])
    with pytest.raises(DataError, match=r"input\[0\].*\[0, 1\]"):
        clf.predict_proba([img / 127.5 - 1.0])  # normalised pixels are not silently clipped either


def test_cli_reports_unreadable_rows_and_empty_folders(bundle_dir: Path, allbad: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["predict", str(bundle_dir), str(allbad)])
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit), res.output  # not a crash's exit 1
    assert "fake.png" in res.output and "zero.jpg" in res.output and "2 of 2 input(s) could not be read" in res.output
    (tmp_path / "empty").mkdir()
    res = runner.invoke(app, ["predict", str(bundle_dir), str(tmp_path / "empty")])
    assert res.exit_code == 2 and "no images found in" in res.output and "Traceback" not in res.output
