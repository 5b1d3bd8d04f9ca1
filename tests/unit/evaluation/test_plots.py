"""Every plot writes a readable PNG whose shape follows its data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgclf.errors import DataError
from imgclf.evaluation import (
    ErrorExample,
    plot_confidence_histogram,
    plot_confusion_matrix,
    plot_error_gallery,
    plot_per_class_accuracy,
    plot_reliability,
    plot_risk_coverage,
    plot_training_curves,
)
from imgclf.metrics import (
    calibration_metrics,
    classification_metrics,
    confidence_histogram,
    risk_coverage,
)

from .conftest import smooth_image, write


def _preds(n: int, c: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    z = rng.normal(size=(n, c))
    z[np.arange(n), y] += 2
    return np.exp(z) / np.exp(z).sum(1, keepdims=True), y


def _size(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size


def test_confusion_matrix_small_and_fifty_classes(tmp_path: Path) -> None:
    p, y = _preds(300, 5)
    r = classification_metrics(p, y)
    small = plot_confusion_matrix(r.confusion, r.class_names, tmp_path / "cm5.png")
    p, y = _preds(2000, 50, seed=1)
    r = classification_metrics(p, y, [f"a rather long class name {i}" for i in range(50)])
    big = plot_confusion_matrix(r.confusion, r.class_names, tmp_path / "plots" / "cm50.png")
    (w5, h5), (w50, h50) = _size(small), _size(big)
    assert w5 > h5  # side by side
    assert h50 > w50 > w5 // 2  # stacked, and large enough to read 50 labels
    with pytest.raises(DataError, match="class names"):
        plot_confusion_matrix(np.zeros((3, 3)), ["a", "b"], tmp_path / "bad.png")


def test_reliability_per_class_confidence_and_risk_coverage(tmp_path: Path) -> None:
    p, y = _preds(500, 4)
    sharp = p**3 / (p**3).sum(1, keepdims=True)
    one = plot_reliability(calibration_metrics(sharp, y), tmp_path / "rel1.png")
    two = plot_reliability(calibration_metrics(sharp, y), tmp_path / "rel2.png", after=calibration_metrics(p, y))
    assert _size(two)[0] > 1.5 * _size(one)[0]
    assert _size(plot_per_class_accuracy(classification_metrics(p, y), tmp_path / "pc.png"))[1] > 100
    assert _size(plot_confidence_histogram(confidence_histogram(p, y), tmp_path / "ch.png"))[0] > 300
    reachable = plot_risk_coverage(risk_coverage(p, y, target_accuracy=0.9), tmp_path / "rc.png")
    unreachable = plot_risk_coverage(risk_coverage(p, y, target_accuracy=1.0 + 0.0), tmp_path / "rc2.png")
    assert _size(reachable) and _size(unreachable)


def test_training_curves_from_history_lines(tmp_path: Path) -> None:
    history = [
        {"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "train_acc": 1 - 1 / (e + 1), "val_acc": None}
        for e in range(1, 6)
    ]
    assert _size(plot_training_curves(history, tmp_path / "curves.png"))[0] > 600  # two panels
    loss_only = plot_training_curves([{"train_loss": 1.0}, {"train_loss": 0.5}], tmp_path / "loss.png")
    assert _size(loss_only)[0] < _size(tmp_path / "curves.png")[0]
    with pytest.raises(DataError, match="no training history"):
        plot_training_curves([], tmp_path / "none.png")
    with pytest.raises(DataError, match="loss or"):
        plot_training_curves([{"lr": 0.1}], tmp_path / "none.png")


def test_error_gallery_takes_paths_arrays_and_survives_a_broken_file(tmp_path: Path) -> None:
    path = write(smooth_image(3), tmp_path / "img.png")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    examples = [
        ErrorExample(path, "cat", "dog", 0.93, loss=2.7, caption="img.png"),
        ErrorExample(np.asarray(smooth_image(4)), "dog", "cat", 0.81),
        ErrorExample(np.random.default_rng(0).random((3, 28, 28)), "cat", "cat", 0.55),  # CHW float
        ErrorExample(np.zeros((28, 28), np.uint8), "cat", "fox", 0.4),
        ErrorExample(str(broken), "fox", "cat", 0.99),
    ]
    out = plot_error_gallery(examples, tmp_path / "gallery.png", columns=3)
    w, h = _size(out)
    assert h > w * 0.5  # two rows of three
    assert examples[0].to_dict()["image"] == path and examples[1].to_dict()["image"] is None
    with pytest.raises(DataError, match="at least one example"):
        plot_error_gallery([], tmp_path / "empty.png")


def test_reliability_gaps_are_drawn_in_the_colours_the_legend_shows() -> None:
    """#18: an under-confident gap was a translucent pink bar over the dark accuracy bar: brown on the plot."""
    from matplotlib.colors import to_rgba

    from imgclf.evaluation import reliability_figure
    from imgclf.metrics import calibration_metrics

    rng = np.random.default_rng(0)
    n = 4000
    conf = rng.uniform(0.5, 1.0, n)
    right = rng.random(n) < np.where(conf < 0.75, conf + 0.2, conf - 0.2)  # low bins under-, high over-confident
    probs = np.stack([conf, 1 - conf], 1)
    labels = np.where(right, 0, 1)
    ax = reliability_figure(calibration_metrics(probs, labels, n_bins=10)).axes[0]
    handles, names = ax.get_legend_handles_labels()
    legend = dict(zip(names, handles))
    assert {"gap: over-confident", "gap: under-confident"} <= set(legend)
    under = legend["gap: under-confident"]
    for bar in under.patches:  # solid: the colour drawn over the accuracy bar is the legend's colour
        assert bar.get_facecolor() == to_rgba(under.patches[0].get_facecolor()) and bar.get_facecolor()[3] == 1.0
        lo, hi = bar.get_y(), bar.get_y() + bar.get_height()
        assert hi > lo  # drawn between confidence (below) and accuracy (above), never with a negative height
