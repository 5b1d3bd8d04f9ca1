"""The robustness figures are written as PNG files that open and show something."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgclf.errors import DataError
from imgclf.robustness import (
    CorruptionReport,
    RobustCurve,
    ood_metrics,
    plot_corruption_heatmap,
    plot_ood_histogram,
    plot_robust_curve,
)


def check_png(path: Path) -> None:
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 200 and image.height > 150
        assert np.asarray(image.convert("L")).std() > 5, "the figure is blank"


def test_plots_write_pngs_and_return_their_paths(tmp_path: Path) -> None:
    curves = [
        RobustCurve("fgsm", "linf", (0.0, 2 / 255, 8 / 255), (0.9, 0.6, 0.3), 0.9, 100),
        RobustCurve("pgd", "linf", (0.0, 2 / 255, 8 / 255), (0.9, 0.4, 0.02), 0.9, 100),
    ]
    report = CorruptionReport(0.9, {"fog": (0.8, 0.7, 0.6, 0.5, 0.4), "snow": (0.85, 0.8, 0.7, 0.6, 0.5)},
                              (1, 2, 3, 4, 5), 100, 0)  # fmt: skip
    rng = np.random.default_rng(0)
    s_in, s_out = rng.normal(2, 1, 300), rng.normal(0, 1, 200)
    paths = [
        plot_robust_curve(curves, tmp_path / "robust.png"),
        plot_robust_curve(curves[0], tmp_path / "one" / "robust.png"),
        plot_corruption_heatmap(report, tmp_path / "corruptions.png"),
        plot_ood_histogram(
            s_in, s_out, tmp_path / "ood.png", score_name="energy", report=ood_metrics(s_in, s_out), threshold=0.5
        ),  # fmt: skip
    ]
    for path in paths:
        assert path.is_file()
        check_png(path)
    with pytest.raises(DataError, match="no curves"):
        plot_robust_curve([], tmp_path / "empty.png")
