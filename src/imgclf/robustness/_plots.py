"""PNG figures for the robustness report: robust-accuracy curves, the corruption heatmap, OOD histograms.

Each helper draws on a private matplotlib ``Figure`` (Agg canvas, no global backend switch), writes the PNG
atomically and returns its path.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from imgclf.errors import DataError
from imgclf.robustness._corruption_eval import CorruptionReport
from imgclf.robustness._curve import RobustCurve
from imgclf.robustness._ood_metrics import OODReport, as_1d
from imgclf.robustness._smoothing import CertifiedCurve
from imgclf.utils import save_figure


def plot_robust_curve(curves: RobustCurve | Sequence[RobustCurve], path: str | os.PathLike) -> Path:
    """Robust accuracy against epsilon, one line per curve (e.g. FGSM, PGD and APGD on the same axes).

    >>> plot_robust_curve([fgsm_curve, pgd_curve], "out/robust_accuracy.png")  # doctest: +SKIP
    PosixPath('out/robust_accuracy.png')
    """
    from matplotlib.figure import Figure

    items = [curves] if isinstance(curves, RobustCurve) else list(curves)
    if not items:
        raise DataError(f"plot_robust_curve got no curves for {path}; pass at least one RobustCurve.")
    fig = Figure(figsize=(5.5, 4), dpi=100)
    ax = fig.subplots()
    for curve in items:
        eps_255 = [e * 255 for e in curve.epsilons] if curve.norm == "linf" else list(curve.epsilons)
        ax.plot(eps_255, curve.accuracies, marker="o", label=f"{curve.attack} ({curve.norm})")
    ax.set_xlabel("epsilon (x 1/255)" if all(c.norm == "linf" for c in items) else "epsilon")
    ax.set_ylabel("accuracy under attack")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(f"robust accuracy (n = {items[0].n})")
    return _save(fig, path)


def plot_corruption_heatmap(report: CorruptionReport, path: str | os.PathLike) -> Path:
    """Heatmap of accuracy, corruptions down and severities across, each cell annotated.

    >>> plot_corruption_heatmap(corruption_accuracy(pixel_model, loader), "out/corruptions.png")  # doctest: +SKIP
    PosixPath('out/corruptions.png')
    """
    from matplotlib.figure import Figure

    table = np.array([report.accuracies[name] for name in report.names])  # (corruptions, severities)
    fig = Figure(figsize=(1.1 * len(report.severities) + 3, 0.38 * len(report.names) + 1.6), dpi=100)
    ax = fig.subplots()
    image = ax.imshow(table, vmin=0, vmax=1, cmap="RdYlGn", aspect="auto")
    ax.set_xticks(range(len(report.severities)), [str(s) for s in report.severities])
    ax.set_yticks(range(len(report.names)), list(report.names))
    ax.set_xlabel("severity")
    for (i, j), value in np.ndenumerate(table):
        ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7)
    fig.colorbar(image, ax=ax, label="accuracy")
    ax.set_title(
        f"clean {report.clean_accuracy:.3f}, mean corrupted {report.mean_corruption_accuracy:.3f} "
        f"(drop {report.relative_drop:.1%})",
        fontsize=9,
    )
    return _save(fig, path)


def plot_ood_histogram(
    scores_in: Any,
    scores_out: Any,
    path: str | os.PathLike,
    *,
    score_name: str = "score",
    report: OODReport | None = None,
    threshold: float | None = None,
) -> Path:
    """Overlaid histograms of in-distribution and OOD scores, with the rejection threshold when given.

    >>> plot_ood_histogram(energy(z_in), energy(z_out), "out/ood.png", score_name="energy")  # doctest: +SKIP
    PosixPath('out/ood.png')
    """
    from matplotlib.figure import Figure

    s_in, s_out = as_1d(scores_in, "scores_in"), as_1d(scores_out, "scores_out")
    lo, hi = min(s_in.min(), s_out.min()), max(s_in.max(), s_out.max())
    bins = np.linspace(lo, hi if hi > lo else lo + 1, 40)
    fig = Figure(figsize=(5.5, 3.8), dpi=100)
    ax = fig.subplots()
    ax.hist(s_in, bins=bins, alpha=0.6, density=True, label=f"in-distribution (n = {s_in.size})")
    ax.hist(s_out, bins=bins, alpha=0.6, density=True, label=f"out-of-distribution (n = {s_out.size})")
    if threshold is not None:
        ax.axvline(threshold, color="k", linestyle="--", label=f"threshold {threshold:.3g}")
    ax.set_xlabel(f"{score_name} (higher = more in-distribution)")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    if report is not None:
        ax.set_title(f"{score_name}: AUROC {report.auroc:.3f}, FPR@95%TPR {report.fpr_at_95_tpr:.3f}", fontsize=9)
    return _save(fig, path)


def plot_certified_curve(curve: CertifiedCurve, path: str | os.PathLike) -> Path:
    """Certified accuracy against L2 radius (a step curve over every certified radius, dots at the table's radii).

    >>> plot_certified_curve(certified_accuracy(pixel_model, data, 0.25), "out/certified.png")  # doctest: +SKIP
    PosixPath('out/certified.png')
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 4), dpi=100)
    ax = fig.subplots()
    top = max([*curve.radii, *curve.certified_radii, 0.1])
    grid = np.linspace(0, top * 1.05, 200)
    ax.plot(grid, [curve.accuracy_at(r) for r in grid], label=f"sigma = {curve.sigma:g}")
    ax.plot(curve.radii, curve.accuracies, "o", color="C0")
    ax.set_xlabel("L2 radius (pixels in [0, 1])")
    ax.set_ylabel("certified accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(f"randomized smoothing, n = {curve.samples} draws, alpha = {curve.alpha:g}, "
                 f"{curve.n} images", fontsize=9)  # fmt: skip
    ax.legend(fontsize=8)
    return _save(fig, path)


def _save(fig: Any, path: str | os.PathLike) -> Path:
    fig.tight_layout()
    return save_figure(fig, path)
