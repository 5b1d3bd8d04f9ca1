"""The CLI in a subprocess, as a user runs it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from tests.integration._helpers import cli

from imgclf import data as D


@pytest.mark.parametrize("verb", ["train", "predict", "models", "demo", "embed", "neighbours", "fewshot", "zeroshot"])
def test_every_verb_has_help_with_examples(verb: str) -> None:
    res = cli(verb, "--help")
    assert res.returncode == 0, res.stderr
    assert "Usage" in res.stdout
    if verb in ("train", "predict", "embed", "neighbours", "fewshot", "zeroshot"):
        assert "Examples" in res.stdout


def test_bad_data_is_one_clear_line_with_exit_2(tmp_path: Path) -> None:
    res = cli("train", str(tmp_path / "nowhere"), "--model", "test_cnn")
    assert res.returncode == 2
    assert "nowhere" in res.stderr and "Traceback" not in res.stderr
    res = cli("train", "digits", "--set", "train.epoch=3")
    assert res.returncode == 2 and "Did you mean 'epochs'" in res.stderr


def test_unknown_model_suggests_close_names() -> None:
    res = cli("train", "digits", "--model", "resnet18x")
    assert res.returncode == 2 and "resnet18" in res.stderr


def test_models_filter() -> None:
    res = cli("models", "--filter", "resnet20*")
    assert res.returncode == 0 and "resnet20_cifar" in res.stdout


def test_version() -> None:
    import imgclf

    res = cli("--version")
    assert res.returncode == 0 and res.stdout.strip() == f"imgclf {imgclf.__version__}", res.stdout + res.stderr


@pytest.mark.slow
def test_train_then_predict_json_and_csv(tmp_path: Path) -> None:
    src = D.make_synthetic_dataset(tmp_path / "imgs", per_class=15, size=32, layout="flat")
    res = cli("train", str(src), "--model", "test_cnn", "--epochs", "2", "--img-size", "32", "--out",
              str(tmp_path / "runs"), "--name", "cli", "--set", "data.workers=0")  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    bundle = tmp_path / "runs" / "cli" / "bundle"
    assert (tmp_path / "runs" / "cli" / "config.yaml").read_text().count("test_cnn") == 1
    res = cli("predict", str(bundle), str(src / "red"), "--json", "--top-k", "2", "--csv", str(tmp_path / "p.csv"))
    assert res.returncode == 0, res.stderr
    preds = json.loads(res.stdout)
    assert len(preds) == 15 and all(len(p["topk"]) == 2 for p in preds)
    assert (tmp_path / "p.csv").read_text().splitlines()[0] == "path,label,score,error"
    (tmp_path / "bad.jpg").write_text("hello")
    res = cli("predict", str(bundle), str(tmp_path / "bad.jpg"), str(src / "red" / sorted(os.listdir(src / "red"))[0]))
    assert res.returncode == 1 and "bad.jpg" in res.stdout and "could not be read" in res.stderr
