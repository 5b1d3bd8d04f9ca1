"""Runs never overwrite each other, a resume refuses changed data, and saved files follow the umask."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tests.integration._helpers import cli

import imgclf
from imgclf import data as D


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

    (src / "red" / "late_addition.png").write_bytes(next((src / "blue").iterdir()).read_bytes())
    resumed = cli("train", "--resume", str(run))
    assert resumed.returncode == 2, resumed.stderr
    assert "1 file(s) added (e.g. red/late_addition.png)" in resumed.stderr, resumed.stderr
    assert all(p.read_bytes() == data for p, data in kept.items())
