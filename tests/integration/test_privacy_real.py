"""Privacy on real data: DP-SGD on MNIST within (8, 1e-5), a membership-inference audit of an overfit CIFAR-10 model.

Measured on the shared 2-core CPU: the MNIST run takes about 9 minutes (20,000 images, 4 epochs, ~260 img/s with
per-sample gradients), the CIFAR-10 audit a few minutes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("opacus")

import imgclf  # noqa: E402


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
