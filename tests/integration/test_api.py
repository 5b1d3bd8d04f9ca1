"""The Python API a data scientist expects: every verb on the model in memory, inputs as they come, one pass.

The trained bundle's directory is deleted before the verbs run: nothing may quietly reload it.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import imgclf
from imgclf import data as D
from imgclf.bundle import read_meta, split_samples, update_meta
from imgclf.evaluation import build_report
from imgclf.tasks import fit_rejection, rejection_scores


@pytest.fixture(scope="module")
def digits_clf(tmp_path_factory: pytest.TempPathFactory) -> imgclf.Classifier:
    """lenet5 on the bundled digits (offline), 3 epochs: good but not perfect, so calibration has work to do."""
    out = tmp_path_factory.mktemp("runs")
    return imgclf.fit("digits", model="lenet5", epochs=3, out=str(out), name="digits", seed=0,
                      sets=["data.workers=0", "data.val_fraction=0.3", "data.max_per_class=120", "train.ema=false",
                            "optim.lr=0.003"])  # fmt: skip


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    root = D.make_synthetic_dataset(tmp_path_factory.mktemp("imgs") / "shapes", per_class=3, size=24, seed=3)
    return root, sorted(root.rglob("*.png"))


def test_predict_accepts_paths_folders_pil_arrays_and_tensors(digits_clf: imgclf.Classifier,
                                                               images: tuple[Path, list[Path]]) -> None:  # fmt: skip
    root, files = images
    pil = Image.open(files[0])
    arr = np.asarray(pil.convert("RGB"))  # (H, W, 3) uint8
    ten = torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255  # (3, H, W) in [0, 1]
    preds = digits_clf.predict([str(files[0]), pil, arr, ten], reject=False)
    assert [p.path for p in preds] == [str(files[0]), "input[1]", "input[2]", "input[3]"]
    assert len({p.label for p in preds}) == 1  # the same picture, four ways in: one answer
    assert {round(p.score, 5) for p in preds} == {round(preds[0].score, 5)}
    by_folder = digits_clf.predict([root])
    assert [p.path for p in by_folder] == [str(f) for f in files]
    batch = digits_clf.predict_proba(np.stack([arr, arr]))  # a (N, H, W, C) batch
    assert batch.shape == (2, 10) and np.allclose(batch.sum(1), 1)
    broken = root / "broken.png"
    broken.write_bytes(b"not a png")
    out = digits_clf.predict([broken, arr])
    assert out[0].error and out[0].label is None and out[1].label is not None
    assert out[0].to_dict()["path"] == str(broken) and "error" in out[0].to_dict()


def test_every_verb_works_in_memory_without_the_bundle_on_disk(digits_clf: imgclf.Classifier,
                                                                 tmp_path: Path) -> None:  # fmt: skip
    clf = imgclf.Classifier()  # the trained model, uncalibrated; then every file it came from is removed
    clf.bundle_ = replace(digits_clf.bundle_, meta=replace(digits_clf.bundle_.meta, temperature=None))
    moved = tmp_path / "gone"
    shutil.move(str(digits_clf.result_.bundle_dir), moved)
    try:
        ev = clf.evaluate("digits", n_resamples=50)
        assert ev.task == "single" and ev.accuracy > 0.6 and ev.to_dict()["accuracy"] == ev.accuracy
        res = clf.calibrate("digits")
        assert clf.meta_.temperature == res.temperature is not None
        assert res.after.ece <= res.before.ece
        x = np.zeros((16, 16, 3), np.uint8)
        report = clf.explain([x], tmp_path / "explain")
        assert Path(report.images[0].overlay).is_file()
        exported = clf.export(tmp_path / "onnx")
        assert exported.parity.top1_agreement == 1.0
        saved = clf.save(tmp_path / "saved")
        assert read_meta(saved).temperature == res.temperature
        assert imgclf.load(saved).predict([x])[0].label == clf.predict([x])[0].label
    finally:
        shutil.move(str(moved), digits_clf.result_.bundle_dir)


def test_training_stores_a_rejection_rule_and_calibrate_keeps_its_acceptance(digits_clf: imgclf.Classifier,
                                                                              tmp_path: Path) -> None:  # fmt: skip
    assert digits_clf.meta_.rejection["score"] == "msp" and digits_clf.meta_.rejection["target_acceptance"] == 0.95
    # A bundle whose rule was chosen before calibration (at T = 1), as `imgclf train --set train.calibrate=false`
    # writes it; then `imgclf calibrate` changes the temperature the msp score is computed at.
    bundle = tmp_path / "bundle"
    shutil.copytree(digits_clf.result_.bundle_dir, bundle)
    val, _, _ = split_samples(read_meta(bundle), "digits", "val")
    x = [np.asarray(val[i][0]) for i in range(len(val))]
    uncalibrated = fit_rejection(digits_clf.predict_logits(x)[1], temperature=None)
    update_meta(bundle, temperature=None, rejection=uncalibrated)
    res = imgclf.load(bundle).calibrate(split="val", save=True)
    stored = read_meta(bundle)
    assert stored.rejection["temperature"] == pytest.approx(res.temperature) != 1.0
    accepted = np.mean([not p.unknown for p in imgclf.load(bundle).predict(x)])
    assert 0.94 <= accepted <= 0.97  # still ~95% of in-distribution images at the new temperature
    # keeping the old threshold but scoring at the new temperature (the old bug) accepts a very different share
    stale = dict(stored.rejection, threshold=uncalibrated["threshold"])
    stale_share = float((rejection_scores(stale, digits_clf.predict_logits(x)[1]) >= stale["threshold"]).mean())
    assert abs(stale_share - accepted) > 0.03


def test_report_evaluates_the_same_capped_test_split_as_the_bundle(tmp_path: Path) -> None:
    src = D.make_synthetic_dataset(tmp_path / "shapes", per_class=40, size=24, seed=2)  # flat: 4 test per class
    clf = imgclf.fit(src, model="test_cnn", epochs=1, img_size=24, out=str(tmp_path / "runs"), name="capped",
                     sets=["data.workers=0", "data.max_per_class=3"])  # fmt: skip
    run = clf.result_.run_dir
    n_bundle = read_meta(run / "bundle").metrics["test"]["n"]
    assert n_bundle == 9  # 3 classes x the cap of 3 (the uncapped test split has 12)
    assert clf.result_.evaluation.n == n_bundle  # training's report: from its one held-out pass
    rebuilt = build_report(run, n_resamples=0)  # `imgclf report RUN_DIR`: rebuilt from disk
    assert rebuilt.evaluation.n == n_bundle
    assert f"test ({n_bundle} images)" in (run / "report.html").read_text()


def test_fit_result_and_predictions_serialise(digits_clf: imgclf.Classifier) -> None:
    d = digits_clf.result_.to_dict()
    assert json.loads(json.dumps(d))["metrics"]["test"]["n"] > 0
    p = digits_clf.predict([np.zeros((8, 8), np.uint8)])[0].to_dict()
    assert set(p) >= {"path", "label", "score", "topk", "unknown"}
