"""`imgclf pretrain` end to end on tiny synthetic images: the CLI, exact resume, and the embedding bundle that
`imgclf embed` reads and `imgclf train --weights RUN_DIR [--freeze backbone]` starts from."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from imgclf.api import Classifier, train_run
from imgclf.bundle import load_bundle
from imgclf.data import make_synthetic_dataset
from imgclf.engine import Callback
from imgclf.errors import BundleError, ConfigError, TrainingInterrupted
from imgclf.pretrain import PretrainConfig, pretrain

from ._helpers import StopAt, cli

pytest.importorskip("lightly")


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    return make_synthetic_dataset(tmp_path_factory.mktemp("syn") / "syn", per_class=16, size=32)


@pytest.fixture(scope="module")
def ssl_run(images, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("ssl") / "run"
    pretrain(PretrainConfig(str(images), method="simclr", model="test_cnn", epochs=2, batch_size=16, img_size=32,
                            workers=0), run)  # fmt: skip
    return run


def _cfg(images: Path, method: str, epochs: int = 2) -> PretrainConfig:
    local = 2 if method == "dino" else 0  # DINO with its multi-crop: packed views of two sizes resume exactly too
    return PretrainConfig(str(images), method=method, model="test_cnn", epochs=epochs, batch_size=8, img_size=32,
                          workers=0, lr=3e-3, local_views=local)  # fmt: skip


def test_cli_pretrains_loose_images_and_the_bundle_embeds(images, tmp_path):
    loose = tmp_path / "loose"
    loose.mkdir()
    for i, f in enumerate(sorted(images.rglob("*.png"))):
        shutil.copy(f, loose / f"{i:03d}.png")  # no class folders: unlabelled images
    run = tmp_path / "run"
    r = cli("pretrain", str(loose), "--method", "simclr", "--model", "test_cnn", "--epochs", "2", "-b", "16",
            "--img-size", "32", "--workers", "0", "--out", str(run), "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr + r.stdout
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2]
    assert all(m["embed_std"] > 0 and np.isfinite(m["train_loss"]) for m in lines)
    assert "knn_acc" not in lines[0]  # no labels, no kNN check
    assert (run / "checkpoints" / "last.safetensors").is_file()
    r = cli("embed", str(run / "bundle"), str(loose), "--out", str(tmp_path / "e.npy"))
    assert r.returncode == 0, r.stderr + r.stdout
    vectors = np.load(tmp_path / "e.npy")
    assert vectors.shape == (48, 32) and np.isfinite(vectors).all()
    # the bundle records its images, so `fewshot` names them for --base (a folder of loose files: total covariance)
    assert load_bundle(run / "bundle").meta.data == {"kind": "pretrain", "root": str(loose.resolve())}
    episodes = ["fewshot", str(run / "bundle"), str(images), "--episodes", "5", "--ways", "3", "--shots", "1",
                "--queries", "3"]  # fmt: skip
    r = cli(*episodes)
    assert r.returncode == 0 and f"--base {loose.resolve()}" in r.stdout, r.stderr + r.stdout
    r = cli(*episodes, "--base", str(loose))
    assert r.returncode == 0 and "tip:" not in r.stdout, r.stderr + r.stdout


def test_cli_refuses_a_model_it_cannot_pretrain_in_one_line(images, tmp_path):
    from typer.testing import CliRunner

    from imgclf.cli import app

    res = CliRunner().invoke(app, ["pretrain", str(images), "--method", "dino", "--model", "ensemble", "--out",
                                   str(tmp_path / "r")])  # fmt: skip
    assert res.exit_code == 2
    assert "ensemble" in res.output and len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()
    res = CliRunner().invoke(app, ["pretrain", str(images), "--method", "simclr", "--local-views", "4", "--out",
                                   str(tmp_path / "r")])  # fmt: skip
    assert res.exit_code == 2 and "--method dino" in res.output and len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_labelled_folder_logs_knn_accuracy_each_epoch(ssl_run):
    lines = [json.loads(x) for x in (ssl_run / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 2 and all(0.0 <= m["knn_acc"] <= 1.0 and m["embed_std"] > 0 for m in lines)
    assert "train_acc" not in lines[0]


@pytest.mark.parametrize("method", ["byol", "dino"])  # dino with two local crops (see _cfg)
def test_a_run_killed_mid_epoch_and_resumed_ends_with_the_same_weights(images, tmp_path, method):
    whole = pretrain(_cfg(images, method), tmp_path / "whole")
    with pytest.raises(TrainingInterrupted, match="--resume"):
        pretrain(_cfg(images, method), tmp_path / "cut", callbacks=[StopAt(8)])  # 6 steps an epoch: in epoch 2
    resumed = pretrain(None, resume=tmp_path / "cut")
    a = load_file(str(whole.bundle_dir / "model.safetensors"))
    b = load_file(str(resumed.bundle_dir / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [m["train_loss"] for m in whole.history] == [m["train_loss"] for m in resumed.history]


def test_embedding_bundle_is_not_a_classifier(ssl_run):
    bundle = load_bundle(ssl_run / "bundle")
    assert bundle.meta.classes == () and bundle.model(torch.zeros(1, 3, 32, 32)).shape == (1, 32)
    with pytest.raises(BundleError, match="embedding bundle"):
        _ = bundle.task


class _Snapshot(Callback):
    name = "snapshot"

    def on_fit_start(self, state) -> None:
        self.start = {k: v.clone() for k, v in state.raw_model.state_dict().items()}


def _backbone(state: dict) -> dict:
    return {k: v for k, v in state.items() if not k.startswith("fc.")}


@pytest.mark.parametrize("freeze", [True, False])
def test_train_weights_run_dir_starts_from_the_pretrained_backbone(images, ssl_run, tmp_path, freeze):
    pretrained = load_file(str(ssl_run / "bundle" / "model.safetensors"))
    clf = Classifier(weights=str(ssl_run), epochs=1, batch_size=16, out=str(tmp_path), name="t", seed=0, lr=1e-2,
                     freeze="backbone" if freeze else None)  # fmt: skip
    cfg = clf.resolved_config(str(images))
    assert cfg.model.name == "test_cnn"  # --model left out: the pretrained architecture
    snap = _Snapshot()
    result = train_run(cfg, callbacks=[snap])
    start = _backbone(snap.start)
    assert start.keys() == pretrained.keys()
    assert all(torch.equal(start[k], pretrained[k]) for k in pretrained)  # loaded before training began
    final = _backbone(load_file(str(result.bundle_dir / "model.safetensors")))
    same = [torch.equal(final[k], pretrained[k]) for k in pretrained]
    if freeze:
        assert all(same)  # a linear probe: weights and norm statistics untouched
        assert result.bundle.meta.preprocessing.input_size == 32
    else:
        assert not all(same)  # fine-tuning moved the backbone


def test_train_weights_run_dir_with_another_model_is_one_clear_error(images, ssl_run, tmp_path):
    with pytest.raises(ConfigError, match="holds a test_cnn backbone, but --model is lenet5; pass --model test_cnn"):
        Classifier(model="lenet5", weights=str(ssl_run), epochs=1, out=str(tmp_path)).fit(str(images))
