"""Issue 4: prune and distill through the CLI, producing normal bundles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.integration._helpers import cli

import imgclf
from imgclf import data as D
from imgclf.bundle import load_bundle, read_meta
from imgclf.models import count_parameters


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, imgclf.Classifier]:
    tmp = tmp_path_factory.mktemp("cmp")
    src = D.make_synthetic_dataset(tmp / "imgs", per_class=40, size=32, layout="flat", seed=6)
    clf = imgclf.fit(src, model="lenet5", epochs=4, img_size=32, out=str(tmp / "runs"), name="teacher",
                     sets=["data.workers=0", "optim.lr=3e-3", "data.augment=light", "train.report=false"])  # fmt: skip
    return src, clf


@pytest.mark.slow
def test_prune_shrinks_and_stays_usable(teacher, tmp_path: Path) -> None:
    src, clf = teacher
    res = cli("prune", str(clf.result_.bundle_dir), "--amount", "0.4", "--finetune-epochs", "1", "--out",
              str(tmp_path / "p"))  # fmt: skip
    assert res.returncode == 0, res.stderr
    report = json.loads((tmp_path / "p" / "prune.json").read_text())
    after, before = report["rows"][report["kept"]], report["rows"]["before"]
    assert after["parameters"] < before["parameters"]
    assert after["gflops"] < before["gflops"]
    pruned = load_bundle(report["bundle_dir"])  # rebuilt from the name + the smaller saved shapes
    assert count_parameters(pruned.model) == after["parameters"]
    assert imgclf.load(report["bundle_dir"]).predict([str(src / "red")])[0].label in clf.classes
    exp = cli("export", report["bundle_dir"], "--format", "onnx", "--data", str(src))
    assert exp.returncode == 0, exp.stderr


@pytest.mark.slow
def test_distill_trains_student_and_compares(teacher, tmp_path: Path) -> None:
    src, clf = teacher
    res = cli("distill", str(src), "--teacher", str(clf.result_.bundle_dir), "--student", "test_cnn", "--epochs",
              "2", "--img-size", "32", "--out", str(tmp_path), "--set", "data.workers=0", "--set",
              "train.report=false")  # fmt: skip
    assert res.returncode == 0, res.stderr
    out = json.loads((tmp_path / "distill-test_cnn" / "distill.json").read_text())
    student = load_bundle(out["student_bundle"])
    assert student.meta.architecture == "test_cnn"
    # The three accuracies are those of the bundles the run wrote, on the same held-out split
    # (that distillation beats the no-teacher student is shown on real MNIST over 3 seeds in test_real_data).
    acc = out["accuracies"]
    assert acc["student (distilled)"] == pytest.approx(student.meta.metrics["test"]["acc"])
    baseline = read_meta(tmp_path / "distill-test_cnn-baseline" / "bundle")
    assert acc["student (no teacher)"] == pytest.approx(baseline.metrics["test"]["acc"])
    assert acc["teacher"] == pytest.approx(clf.result_.metrics["test"]["acc"])
    cfg = (tmp_path / "distill-test_cnn" / "config.yaml").read_text()
    assert "distill_teacher:" in cfg and "teacher/bundle" in cfg
