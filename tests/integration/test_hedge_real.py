"""Ensembles, test-time augmentation and MC dropout on the shared CIFAR-10 (small LeNet-5 models)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import imgclf
from imgclf.api import hedge
from imgclf.workflows import build_ensemble

pytestmark = [pytest.mark.real, pytest.mark.slow]
SETS = ["data.max_per_class=200", "train.label_smoothing=0.0", "train.ema=false", "train.patience=100",
        "optim.lr=2e-3", "train.report=false", "train.calibrate=false"]  # fmt: skip


def _fit(cifar10_dir: Path, out: Path, name: str, seed: int, *sets: str, epochs: int = 15) -> Path:
    clf = imgclf.fit(cifar10_dir, model="lenet5", epochs=epochs, batch_size=64, seed=seed, out=str(out), name=name,
                     sets=[*SETS, *sets])  # fmt: skip
    return clf.result_.bundle_dir


def _acc_nll(clf: imgclf.Classifier, cifar10_dir: Path) -> tuple[float, float]:
    """Test accuracy and NLL of the uncalibrated probabilities (members and ensemble compared as they come)."""
    ev = clf.evaluate(cifar10_dir, split="test", raw=True, n_resamples=0)
    p_true = ev.probs[np.arange(ev.n), ev.labels].clip(1e-12)
    return float((ev.probs.argmax(1) == ev.labels).mean()), float(-np.log(p_true).mean())


@pytest.fixture(scope="module")
def members(cifar10_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three independently seeded members that overfit (1,000 images, 30 epochs, no augmentation), so each is
    overconfident in its own way: the regime deep ensembles are for."""
    out = tmp_path_factory.mktemp("ens")
    overfit = ("data.augment=none", "data.max_per_class=100", "optim.lr=5e-3", "optim.warmup_epochs=0")
    return [_fit(cifar10_dir, out, f"m{s}", s, *overfit, epochs=30) for s in (0, 1, 2)]


@pytest.fixture(scope="module")
def dropout_model(cifar10_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained with dropout and horizontal flips (what MC dropout and flip TTA assume), long enough on
    1,000 images to be overconfident (where averaging dropout masks helps)."""
    return _fit(cifar10_dir, tmp_path_factory.mktemp("drop"), "drop", 0, "data.augment=flip", "model.drop_rate=0.5",
                "data.max_per_class=100", "optim.lr=5e-3", "optim.warmup_epochs=0", epochs=30)  # fmt: skip


def test_three_member_ensemble_beats_its_members(members: list[Path], cifar10_dir: Path, tmp_path: Path) -> None:
    res = build_ensemble(members, tmp_path / "ens")
    rows = [_acc_nll(imgclf.load(b), cifar10_dir) for b in members]
    ens_acc, ens_nll = _acc_nll(imgclf.load(res.bundle_dir), cifar10_dir)
    print({"members": rows, "ensemble": (ens_acc, ens_nll), "auroc": res.disagreement_auroc})
    assert ens_nll <= 0.9 * np.mean([nll for _, nll in rows]), (rows, ens_nll)
    assert ens_acc >= max(acc for acc, _ in rows), (rows, ens_acc)
    assert res.disagreement_auroc is not None and res.disagreement_auroc > 0.5  # disagreement flags errors


def test_flip_tta_is_not_worse_and_mc_dropout_lowers_nll(dropout_model: Path, cifar10_dir: Path) -> None:
    base_acc, base_nll = _acc_nll(imgclf.load(dropout_model), cifar10_dir)
    tta_acc, tta_nll = _acc_nll(hedge(imgclf.load(dropout_model), tta="flip"), cifar10_dir)
    mc_acc, mc_nll = _acc_nll(hedge(imgclf.load(dropout_model), mc_dropout=20), cifar10_dir)
    print({"base": (base_acc, base_nll), "flip": (tta_acc, tta_nll), "mc20": (mc_acc, mc_nll)})
    assert tta_acc >= base_acc and tta_nll <= base_nll
    assert mc_nll <= base_nll
