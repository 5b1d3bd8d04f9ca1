"""SimCLR on unlabelled real CIFAR-10 images, then a linear probe and a 1%-label fine-tune from it.

Measured here (2 heavily loaded CPU cores, 12 min for both tests): linear probe 31.9% vs 23.9% on a random
backbone; 1% of the labels, fine-tuned from SimCLR 28.1% vs 25.2% from scratch (1,000 test images each; also in
docs/tutorials/fewer-labels.md and the README). The thresholds are the issue's: the probe beats the same probe on a
randomly initialised backbone by >= 5 points, and fine-tuning with 1% of the labels beats training from scratch on
the same 1%.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from imgclf.api import Classifier
from imgclf.pretrain import PretrainConfig, pretrain

pytestmark = [pytest.mark.real, pytest.mark.slow]
pytest.importorskip("lightly")

MODEL, UNLABELLED, SSL_EPOCHS = "test_cnn", 3000, 8
PROBE_PER_CLASS, FEW_PER_CLASS, TEST_PER_CLASS = 100, 50, 100  # 50 per class = 1% of CIFAR-10's 50,000 labels


def _link(folder: Path, files: list[Path], *, prefix: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        (folder / (f"{f.parent.name}_{f.name}" if prefix else f.name)).symlink_to(f)
    return folder


@pytest.fixture(scope="module")
def cifar(cifar10_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Disjoint subsets: unlabelled loose images (no class folders) and two small labelled folders."""
    root = tmp_path_factory.mktemp("cifar")
    rng = random.Random(0)
    classes = sorted(p.name for p in (cifar10_dir / "train").iterdir())
    train = {c: sorted((cifar10_dir / "train" / c).iterdir()) for c in classes}
    test = {c: sorted((cifar10_dir / "test" / c).iterdir()) for c in classes}
    for c in classes:
        rng.shuffle(train[c])
        rng.shuffle(test[c])
    per = UNLABELLED // len(classes)
    pool = [f for c in classes for f in train[c][:per]]
    rng.shuffle(pool)
    _link(root / "unlabelled", pool, prefix=True)
    for c in classes:
        labelled = train[c][per:]
        _link(root / "probe" / "train" / c, labelled[:PROBE_PER_CLASS])
        _link(root / "probe" / "test" / c, test[c][:TEST_PER_CLASS])
        _link(root / "few" / "train" / c, labelled[:FEW_PER_CLASS])
        _link(root / "few" / "test" / c, test[c][:TEST_PER_CLASS])
    return {"unlabelled": root / "unlabelled", "probe": root / "probe", "few": root / "few", "runs": root / "runs"}


@pytest.fixture(scope="module")
def ssl_run(cifar: dict[str, Path]) -> Path:
    cfg = PretrainConfig(str(cifar["unlabelled"]), method="simclr", model=MODEL, epochs=SSL_EPOCHS, batch_size=128,
                         img_size=32, lr=1e-2, temperature=0.2, workers=1)  # fmt: skip
    result = pretrain(cfg, cifar["runs"] / "simclr")
    assert result.metrics["embed_std_ratio"] > 0.1  # not collapsed
    return result.run_dir


def _test_acc(data: Path, out: Path, name: str, weights: Path | None, *, freeze: bool, epochs: int,
              lr: float) -> float:  # fmt: skip
    # a probe on fixed features; a fine-tune trains the pretrained backbone at the head's learning rate
    sets = ["data.augment=none"] if freeze else ["optim.backbone_lr_scale=1.0"]
    clf = Classifier(sets=sets, model=MODEL, epochs=epochs, batch_size=64,
                     img_size=32, out=str(out), name=name, seed=0, lr=lr, weights=str(weights) if weights else None,
                     freeze="backbone" if freeze else None)  # fmt: skip
    clf.fit(str(data))
    return float(clf.result_.metrics["test"]["acc"])


def test_linear_probe_on_simclr_beats_a_random_backbone_by_5_points(cifar, ssl_run):
    ssl = _test_acc(cifar["probe"], cifar["runs"], "probe-ssl", ssl_run, freeze=True, epochs=20, lr=3e-2)
    rand = _test_acc(cifar["probe"], cifar["runs"], "probe-rand", None, freeze=True, epochs=20, lr=3e-2)
    print(f"linear probe test acc: SimCLR {ssl:.3f}, random init {rand:.3f}")
    assert ssl >= rand + 0.05


def test_finetuning_from_simclr_with_1_percent_of_labels_beats_scratch(cifar, ssl_run):
    ssl = _test_acc(cifar["few"], cifar["runs"], "ft-ssl", ssl_run, freeze=False, epochs=15, lr=3e-3)
    scratch = _test_acc(cifar["few"], cifar["runs"], "ft-scratch", None, freeze=False, epochs=15, lr=3e-3)
    print(f"1% labels test acc: fine-tuned from SimCLR {ssl:.3f}, from scratch {scratch:.3f}")
    assert ssl > scratch
