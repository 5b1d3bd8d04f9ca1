"""Classical baselines on the shared MNIST and CIFAR-10 (HOG features, SVM chosen on val)."""

from __future__ import annotations

from pathlib import Path

import pytest

import imgclf
from imgclf.bundle import load_bundle
from imgclf.evaluation import compare_bundles

pytestmark = [pytest.mark.real, pytest.mark.slow]


def test_hog_linear_svm_reaches_98_percent_on_mnist(mnist_dir: Path, tmp_path: Path) -> None:
    clf = imgclf.fit(mnist_dir, model="hog-svm", out=str(tmp_path), name="hog")  # all 54,000 training images
    test, search = clf.result_.metrics["test"], clf.meta_.extra["classical"]["search"]
    assert test["n"] == 10_000  # the whole official test set
    assert search["params"]["kernel"] == "linear"  # 54k images: only the linear kernel is searched
    assert test["acc"] >= 0.98, (test, search)


def test_hog_colour_svm_on_cifar10_and_the_cnn_is_significantly_better(cifar10_dir: Path, tmp_path: Path) -> None:
    sets = ["data.max_per_class=1000"]  # 10,000 training images
    hog = imgclf.fit(cifar10_dir, model="hog-svm", out=str(tmp_path), name="hog", sets=sets)
    assert hog.result_.metrics["test"]["acc"] >= 0.50, hog.meta_.extra["classical"]["search"]
    cnn = imgclf.fit(cifar10_dir, model="resnet20_cifar", epochs=10, batch_size=128, out=str(tmp_path), name="cnn",
                     sets=[*sets, "train.report=false"])  # fmt: skip
    cmp = compare_bundles(load_bundle(hog.result_.bundle_dir), load_bundle(cnn.result_.bundle_dir), str(cifar10_dir),
                          names=("hog-svm", "cnn"))  # fmt: skip
    assert cmp.better == "cnn" and cmp.verdict.startswith("cnn is better"), cmp.verdict
