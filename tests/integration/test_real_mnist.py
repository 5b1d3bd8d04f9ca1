"""Real data: the shared MNIST archive, full test set."""

from __future__ import annotations

from pathlib import Path

import pytest

import imgclf


@pytest.mark.real
@pytest.mark.slow
def test_mnist_reaches_98_percent_on_full_test_set(mnist_dir: Path, tmp_path: Path) -> None:
    clf = imgclf.fit(mnist_dir, model="lenet5", epochs=3, batch_size=128, out=str(tmp_path), name="mnist",
                     sets=["data.augment=none", "optim.lr=2e-3", "train.label_smoothing=0.0"])  # fmt: skip
    test = clf.result_.metrics["test"]
    assert test["n"] == 10_000
    assert test["acc"] >= 0.98, test
