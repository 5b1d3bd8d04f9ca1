"""Privacy on real data: DP-SGD on MNIST within (8, 1e-5), a membership-inference audit of an overfit CIFAR-10 model.

Measured on the shared 2-core CPU: the MNIST run takes 9-14 minutes (20,000 images, 4 epochs, ~260 img/s with
per-sample gradients; 95.7% test accuracy at epsilon 8), the overfit CIFAR-10 audit about 14 minutes (target + 4
LiRA shadows; loss AUC 0.818, LiRA TPR@1%FPR 0.158 vs 0.024, control 0.517), the DP CIFAR-10 audit 25 minutes on a
loaded machine (target + 4 LiRA shadows, all DP-SGD at epsilon 8: loss AUC 0.496 [0.468, 0.522], LiRA AUC 0.507
[0.482, 0.532] with TPR@1%FPR 0.013, control 0.502).
"""

from __future__ import annotations

from pathlib import Path

import pytest

import imgclf


@pytest.mark.real
@pytest.mark.slow
def test_mnist_with_epsilon_8_reaches_95_percent_in_4_epochs(mnist_dir: Path, tmp_path: Path) -> None:
    clf = imgclf.fit(mnist_dir, model="lenet5", epochs=4, batch_size=256, out=str(tmp_path), name="dp",
                     sets=["train.dp_epsilon=8", "train.dp_delta=1e-5", "data.max_per_class=2000",
                           "train.report=false"])  # fmt: skip
    dp = clf.result_.bundle.meta.extra["privacy"]
    assert dp["epsilon"] <= 8.0 and dp["delta"] == 1e-5
    assert clf.result_.metrics["epochs_run"] <= 5
    assert clf.result_.metrics["test"]["acc"] >= 0.95, clf.result_.metrics["test"]


def _cifar_manifest(cifar10_dir: Path, out: Path, per_class: int = 100) -> Path:
    """1,000 members (train), 1,000 val and 1,000 test images of CIFAR-10 as a ``path,label,split`` manifest."""
    import csv
    import random

    rng = random.Random(0)
    rows = []
    for c in sorted(p.name for p in (cifar10_dir / "train").iterdir()):
        files = rng.sample(sorted((cifar10_dir / "train" / c).iterdir()), 2 * per_class)
        rows += [(f, c, "train") for f in files[:per_class]] + [(f, c, "val") for f in files[per_class:]]
        rows += [(f, c, "test") for f in rng.sample(sorted((cifar10_dir / "test" / c).iterdir()), per_class)]
    with out.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "split"])
        w.writerows(rows)
    return out


OVERFIT = ["data.augment=none", "train.ema=false", "train.label_smoothing=0", "optim.weight_decay=0",
           "train.report=false", "train.patience=1000"]  # fmt: skip


@pytest.mark.real
@pytest.mark.slow
def test_overfit_cifar10_leaks_and_lira_beats_the_loss_attack_control_at_chance(cifar10_dir: Path,
                                                                                tmp_path: Path) -> None:  # fmt: skip
    from imgclf.workflows import audit_bundle

    data = _cifar_manifest(cifar10_dir, tmp_path / "cifar.csv")
    clf = imgclf.fit(data, model="lenet5", epochs=40, batch_size=32, out=str(tmp_path), name="target", sets=OVERFIT)
    audit = audit_bundle(clf.result_.bundle_dir, shadows=4)
    print(audit.summary())
    assert audit.loss.n_members == 1000
    assert audit.loss.auc.value >= 0.70
    assert audit.lira.tpr_at_fpr["1%"] >= 2 * audit.loss.tpr_at_fpr["1%"]
    assert abs(audit.control.auc.value - 0.5) <= 0.03


@pytest.mark.real
@pytest.mark.slow
def test_the_same_cifar10_setting_with_dp_epsilon_8_does_not_leak_to_loss_or_lira(cifar10_dir: Path,
                                                                                   tmp_path: Path) -> None:  # fmt: skip
    from imgclf.bundle import load_bundle
    from imgclf.workflows import audit_bundle

    data = _cifar_manifest(cifar10_dir, tmp_path / "cifar.csv")
    clf = imgclf.fit(data, model="lenet5", epochs=40, batch_size=32, out=str(tmp_path), name="dp",
                     sets=[*OVERFIT, "train.dp_epsilon=8"])  # fmt: skip
    assert clf.result_.bundle.meta.extra["privacy"]["epsilon"] <= 8
    # LiRA's shadows train with the target's own algorithm (DP-SGD at the same epsilon): the attack models the
    # distribution of the statistic under that training, which is what the DP guarantee bounds.
    audit = audit_bundle(clf.result_.bundle_dir, shadows=4)
    print(audit.summary())
    for i in range(4):
        shadow = load_bundle(audit.out_dir / "shadows" / f"shadow{i}" / "bundle")
        assert 0 < shadow.meta.extra["privacy"]["epsilon"] <= 8
    assert audit.loss.auc.value <= 0.55
    assert audit.lira.auc.value <= 0.55
