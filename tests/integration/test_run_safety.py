"""Runs never overwrite each other, a resume refuses changed data, and saved files follow the umask."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest
from tests.integration._helpers import cli
from typer.testing import CliRunner

import imgclf
from imgclf import data as D
from imgclf.api import Classifier, train_run
from imgclf.cli._app import app
from imgclf.engine import Callback
from imgclf.errors import ConfigError, ModelError


def test_a_second_run_with_the_same_name_and_a_resume_on_changed_data_are_refused(tmp_path: Path) -> None:
    src = D.make_synthetic_dataset(tmp_path / "d", per_class=6, size=16, layout="flat", seed=0)
    common = ["--model", "test_cnn", "--img-size", "16", "--out", str(tmp_path / "runs"), "--name", "exp",
              "--set", "data.workers=0", "--set", "train.report=false"]  # fmt: skip
    mask = os.umask(0o022)
    try:
        first = imgclf.fit(src, model="test_cnn", epochs=1, img_size=16, out=str(tmp_path / "runs"), name="exp",
                           sets=["data.workers=0", "train.report=false"])  # fmt: skip
    finally:
        os.umask(mask)
    run = first.result_.run_dir
    for name in ("bundle/model.safetensors", "bundle/imgclf.json", "config.yaml", "checkpoints/last.safetensors"):
        assert stat.S_IMODE((run / name).stat().st_mode) == 0o644, name  # servable by another user
    kept = {p: p.read_bytes() for p in (run / "bundle" / "model.safetensors", run / "config.yaml", run / "split.json")}

    again = cli("train", str(src), *common, "--epochs", "2")
    assert again.returncode == 2, again.stderr
    lines = [ln for ln in again.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "already exists" in lines[0] and "--name" in lines[0], again.stderr
    assert all(p.read_bytes() == data for p, data in kept.items())  # the first run is untouched

    cut = tmp_path / "cut"  # checkpoints without a bundle: a run still to finish (a finished one has nothing to resume)
    shutil.copytree(run, cut)
    shutil.rmtree(cut / "bundle")
    (src / "red" / "late_addition.png").write_bytes(next((src / "blue").iterdir()).read_bytes())
    resumed = cli("train", "--resume", str(cut))
    assert resumed.returncode == 2, resumed.stderr
    assert "1 file(s) added (e.g. red/late_addition.png)" in resumed.stderr, resumed.stderr
    assert all(p.read_bytes() == data for p, data in kept.items())


class _FailFirstStep(Callback):
    def on_step_end(self, state, stats) -> None:
        raise RuntimeError("out of memory (planted)")


def test_failed_starts_leave_no_directory_and_a_finished_run_is_never_rewritten(tmp_path: Path) -> None:
    src = D.make_synthetic_dataset(tmp_path / "d", per_class=6, size=16, layout="flat", seed=0)
    out = tmp_path / "runs"
    kw = {"epochs": 1, "img_size": 16, "out": str(out), "name": "exp", "sets": ["data.workers=0",
                                                                                "train.report=false"]}  # fmt: skip
    with pytest.raises(ModelError, match=r"lenet5 cannot be built for 8-pixel images \(--img-size 8\)"):
        imgclf.fit(src, model="lenet5", **{**kw, "img_size": 8})  # two 5x5 kernels do not fit in 8 pixels
    assert not out.exists()  # refused before any run directory is written
    with pytest.raises(ModelError, match="use --img-size 32 or 48"):
        imgclf.fit(src, model="vit_tiny_patch16_224", **{**kw, "img_size": 40})  # 16-pixel patches leave 8 unseen
    with pytest.raises(RuntimeError, match="planted"):
        train_run(Classifier(model="test_cnn", **kw).resolved_config(str(src)), callbacks=[_FailFirstStep()])
    assert not (out / "exp").exists()  # failed before its first checkpoint: the --name is free again

    run = imgclf.fit(src, model="test_cnn", **kw).result_.run_dir
    bundle = {p.name: p.read_bytes() for p in (run / "bundle").iterdir()}
    runner = CliRunner()
    more = runner.invoke(app, ["train", "--resume", str(run), "--epochs", "3"])
    assert more.exit_code == 2, more.output
    assert "is complete" in more.output and "--epochs 3" in more.output and "model.init=" in more.output
    again = runner.invoke(app, ["train", "--resume", str(run)])
    assert again.exit_code == 0, again.output
    assert "is complete" in again.output and "nothing to resume" in again.output
    assert {p.name: p.read_bytes() for p in (run / "bundle").iterdir()} == bundle  # not rewritten

    shutil.copytree(run, tmp_path / "cut")  # checkpoints without a bundle: a run still to finish
    shutil.rmtree(tmp_path / "cut" / "bundle")
    with pytest.raises(ConfigError, match="cannot apply --epochs 3"):
        Classifier(epochs=3).fit(resume=tmp_path / "cut")
