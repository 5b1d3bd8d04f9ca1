"""Classical baselines through the CLI: train, list, predict, evaluate, compare with a CNN, refuse ONNX."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.integration._helpers import cli

import imgclf
from imgclf import data as D
from imgclf.bundle import load_bundle
from imgclf.models import ClassicalNet


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    tmp = tmp_path_factory.mktemp("cls")
    src = D.make_synthetic_dataset(tmp / "imgs", per_class=40, size=32, layout="flat", seed=5)
    r = cli("train", str(src), "--model", "hog-knn", "--out", str(tmp / "runs"), "--name", "knn",
            "--set", "data.workers=0")  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    cnn = imgclf.fit(src, model="test_cnn", epochs=2, img_size=32, out=str(tmp / "runs"), name="cnn",
                     sets=["data.workers=0", "train.report=false"])  # fmt: skip
    return src, tmp / "runs" / "knn" / "bundle", cnn.result_.bundle_dir


def test_classical_run_is_an_ordinary_bundle(runs: tuple[Path, Path, Path]) -> None:
    src, knn, _ = runs
    bundle = load_bundle(knn)
    assert isinstance(bundle.model, ClassicalNet) and bundle.meta.architecture == "hog-knn"
    search = bundle.meta.extra["classical"]["search"]
    assert search["val_acc"] == max(g["val_acc"] for g in search["grid"])
    assert (knn.parent / "report.html").is_file() and bundle.meta.metrics["test"]["acc"] >= 0.8
    imgs = [str(p) for p in sorted(Path(src).rglob("*.png"))[:3]]
    preds = json.loads(cli("predict", str(knn), *imgs, "--json").stdout)
    assert [p["label"] for p in preds] == [Path(p).parent.name for p in imgs]
    ev = json.loads(cli("evaluate", str(knn), str(src), "--json", "--resamples", "50").stdout)
    assert ev["accuracy"] >= 0.8 and "accuracy" in ev["intervals"]


def test_models_lists_them_compare_works_and_onnx_is_refused(runs: tuple[Path, Path, Path]) -> None:
    src, knn, cnn = runs
    listing = cli("models", "--filter", "svm").stdout
    assert "hog-svm" in listing and "bovw-svm" in listing and "classical" in listing
    r = cli("compare", str(knn), str(cnn), str(src))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "McNemar p =" in r.stdout and "A = knn: accuracy" in r.stdout
    r = cli("export", str(knn))
    assert r.returncode == 2 and "cannot be exported to ONNX" in r.stderr
