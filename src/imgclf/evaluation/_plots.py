"""The evaluation figures as PNG files: confusion matrix, reliability diagram, per-class accuracy, confidence
histogram, risk-coverage curve and training curves. Each function writes one PNG and returns its path."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from imgclf.errors import DataError
from imgclf.evaluation._figure import new_figure, save_png, short
from imgclf.metrics import CalibrationReport, ClassificationReport, ConfidenceHistogram, RiskCoverage, to_numpy

RIGHT, WRONG, ACCENT = "#2a9d8f", "#e76f51", "#264653"
UNDER = "#e9c46a"  # an under-confident gap, drawn solid inside the accuracy bar


def plot_confusion_matrix(
    confusion: Any, class_names: Sequence[str], path: str | os.PathLike, *, title: str = "Confusion matrix"
) -> Path:
    """Counts (left) and row-normalised rates (right) of a confusion matrix ``(C, C)``, rows true, columns
    predicted. Up to 20 classes the panels sit side by side with numbers in the cells; past that they are
    stacked, and tick labels shrink (and thin out past 50 classes) so the figure stays readable.

    >>> plot_confusion_matrix(report.confusion, report.class_names, "plots/confusion.png")  # doctest: +SKIP
    PosixPath('plots/confusion.png')
    """
    m = to_numpy(confusion).astype(np.int64)
    c = m.shape[0]
    if m.ndim != 2 or m.shape != (c, c) or len(class_names) != c:
        raise DataError(f"confusion must be (C, C) with C class names, got {m.shape} and {len(class_names)} names.")
    rows = m.sum(axis=1, keepdims=True)
    rates = np.divide(m, rows, out=np.zeros((c, c)), where=rows > 0)  # (C, C)
    side = float(np.clip(2.5 + 0.22 * c, 4.5, 13.0))
    stacked = c > 20  # large matrices one above the other, so each keeps the page width
    fig = new_figure(side + 1.0, 2 * side + 1.2) if stacked else new_figure(2 * side + 1.0, side + 0.6)
    axes = fig.subplots(2, 1) if stacked else fig.subplots(1, 2)
    tick_font = float(np.clip(side * 72 * 0.45 / c, 4.5, 10))  # ~60% of a cell's height in points
    step = max(1, math.ceil(c / 50))
    ticks = np.arange(0, c, step)
    labels = [short(class_names[i]) for i in ticks]
    for ax, data, name, fmt in ((axes[0], m, "counts", "d"), (axes[1], rates, "row-normalised", ".2f")):
        im = ax.imshow(data, cmap="Blues", vmin=0, vmax=(1.0 if fmt != "d" else max(int(data.max()), 1)))
        ax.set_title(f"{title} ({name})", fontsize=11)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_xticks(ticks, labels, rotation=90, fontsize=tick_font)
        ax.set_yticks(ticks, labels, fontsize=tick_font)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
        if c <= 20:
            high = data.max() / 2 if data.max() > 0 else 1
            for i in range(c):
                for j in range(c):
                    text = format(data[i, j], fmt)
                    colour = "white" if data[i, j] > high else "black"
                    ax.text(j, i, text, ha="center", va="center", fontsize=max(5.0, 11 - 0.3 * c), color=colour)
    return save_png(fig, path)


def plot_reliability(
    before: CalibrationReport,
    path: str | os.PathLike,
    *,
    after: CalibrationReport | None = None,
    titles: tuple[str, str] = ("before calibration", "after calibration"),
) -> Path:
    """Reliability diagram: accuracy per confidence bin against the diagonal, with the gap shaded and the
    share of predictions per bin underneath; ``after`` adds a second panel (e.g. after temperature scaling).

    >>> plot_reliability(cal_raw, "plots/reliability.png", after=cal_scaled)  # doctest: +SKIP
    PosixPath('plots/reliability.png')
    """
    return save_png(reliability_figure(before, after=after, titles=titles), path)


def reliability_figure(before: CalibrationReport, *, after: CalibrationReport | None = None,
                       titles: tuple[str, str] = ("before calibration", "after calibration")) -> Any:  # fmt: skip
    """The figure :func:`plot_reliability` writes. Over-confident bins show their gap above the accuracy bar
    (translucent red), under-confident bins inside it (solid, so the colour on the plot is the legend's)."""
    reports = [before] if after is None else [before, after]
    fig = new_figure(5.0 * len(reports), 5.6)
    grid = fig.add_gridspec(2, len(reports), height_ratios=(3, 1))
    for col, rep in enumerate(reports):
        ax = fig.add_subplot(grid[0, col])
        bins = rep.bins
        width = bins.upper - bins.lower
        centre = (bins.lower + bins.upper) / 2
        filled = bins.count > 0
        acc = np.where(filled, bins.accuracy, 0.0)
        conf = np.where(filled, bins.confidence, centre)
        over = filled & (conf > acc)
        under = filled & (conf < acc)
        ax.bar(centre, acc, width=width, color=ACCENT, edgecolor="white", label="accuracy")
        if over.any():
            ax.bar(centre[over], (conf - acc)[over], bottom=acc[over], width=width[over], color=WRONG, alpha=0.35,
                   label="gap: over-confident")  # fmt: skip
        if under.any():
            ax.bar(centre[under], (acc - conf)[under], bottom=conf[under], width=width[under], color=UNDER,
                   edgecolor="white", label="gap: under-confident")  # fmt: skip
        ax.plot([0, 1], [0, 1], "--", color="grey", lw=1, label="perfect calibration")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_ylabel("accuracy")
        name = titles[col] if len(reports) > 1 else "reliability"
        ax.set_title(f"{name}\nECE {rep.ece:.3f} · MCE {rep.mce:.3f} · NLL {rep.nll:.3f}", fontsize=10)
        ax.legend(loc="upper left", fontsize=8)
        hist = fig.add_subplot(grid[1, col], sharex=ax)
        hist.bar(centre, bins.count / max(rep.n, 1), width=width, color="grey", edgecolor="white")
        hist.set_xlabel("confidence")
        hist.set_ylabel("share")
    return fig


def plot_per_class_accuracy(report: ClassificationReport, path: str | os.PathLike, *, max_classes: int = 60) -> Path:
    """Horizontal bars of per-class accuracy (recall), worst class on top, with the overall accuracy as a line.
    Past ``max_classes`` classes only the worst ``max_classes`` are drawn (the title says so).

    >>> plot_per_class_accuracy(report, "plots/per_class.png")  # doctest: +SKIP
    PosixPath('plots/per_class.png')
    """
    rows = report.worst_classes()
    shown = rows[:max_classes]
    fig = new_figure(7.0, float(np.clip(0.9 + 0.24 * len(shown), 2.5, 16)))
    ax = fig.add_subplot()
    y = np.arange(len(shown))
    acc = np.array([r.recall for r in shown])
    colours = [WRONG if a < report.accuracy else RIGHT for a in acc]
    ax.barh(y, acc, color=colours)
    ax.axvline(report.accuracy, color=ACCENT, ls="--", lw=1, label=f"overall {report.accuracy:.3f}")
    ax.set_yticks(y, [f"{short(r.name)} (n={r.support})" for r in shown], fontsize=8 if len(shown) > 25 else 9)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("accuracy (recall)")
    more = f" — worst {len(shown)} of {len(rows)}" if len(rows) > len(shown) else ""
    ax.set_title(f"Per-class accuracy{more}", fontsize=11)
    ax.legend(loc="lower right", fontsize=8)
    return save_png(fig, path)


def plot_confidence_histogram(hist: ConfidenceHistogram, path: str | os.PathLike) -> Path:
    """Histograms of top-label confidence for right and wrong predictions (share of each group per bin).

    >>> plot_confidence_histogram(confidence_histogram(probs, labels), "plots/confidence.png")  # doctest: +SKIP
    PosixPath('plots/confidence.png')
    """
    fig = new_figure(6.5, 4.0)
    ax = fig.add_subplot()
    centre = (hist.edges[1:] + hist.edges[:-1]) / 2
    width = np.diff(hist.edges)
    for counts, colour, name in ((hist.correct, RIGHT, "right"), (hist.wrong, WRONG, "wrong")):
        total = int(counts.sum())
        share = counts / total if total else counts.astype(float)
        ax.bar(centre, share, width=width, color=colour, alpha=0.55, edgecolor="white", label=f"{name} (n={total})")
    ax.set_xlim(0, 1)
    ax.set_xlabel("confidence of the predicted class")
    ax.set_ylabel("share of predictions")
    ax.set_title("Confidence: right vs wrong", fontsize=11)
    ax.legend(fontsize=9)
    return save_png(fig, path)


def plot_risk_coverage(rc: RiskCoverage, path: str | os.PathLike) -> Path:
    """Risk (error rate) against coverage when the model abstains below a confidence, with the AURC and, when
    set, the threshold that reaches the target accuracy.

    >>> plot_risk_coverage(risk_coverage(probs, labels, target_accuracy=0.95), "plots/rc.png")  # doctest: +SKIP
    PosixPath('plots/rc.png')
    """
    fig = new_figure(6.5, 4.2)
    ax = fig.add_subplot()
    ax.step(np.r_[0.0, rc.coverage], np.r_[rc.risk[0], rc.risk], where="post", color=ACCENT, label="risk")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, max(float(rc.risk.max()) * 1.15, 0.05))
    ax.set_xlabel("coverage (share of images answered)")
    ax.set_ylabel("risk (error rate on answered images)")
    title = f"Risk-coverage · AURC {rc.aurc:.4f}"
    if rc.target_accuracy is not None:
        if rc.threshold is not None and rc.threshold_coverage is not None:
            ax.axvline(rc.threshold_coverage, color=WRONG, ls="--", lw=1)
            ax.plot(
                [rc.threshold_coverage],
                [1 - (rc.accuracy_at_threshold or 0.0)],
                "o",
                color=WRONG,
                label=f"accuracy ≥ {rc.target_accuracy:.3f}: confidence ≥ {rc.threshold:.3f}, "
                f"coverage {rc.threshold_coverage:.1%}",
            )
        else:
            title += f"\ntarget accuracy {rc.target_accuracy:.3f} is not reachable"
    ax.set_title(title, fontsize=11)
    ax.legend(fontsize=8, loc="upper left")
    return save_png(fig, path)


def plot_training_curves(history: Sequence[Mapping[str, Any]], path: str | os.PathLike) -> Path:
    """Loss (left) and accuracy (right) per epoch from per-epoch metric dicts such as the lines of
    ``metrics.jsonl`` (keys ending in ``loss`` and ``acc`` / ``accuracy``; ``epoch`` gives the x axis).

    >>> history = [{"epoch": 1, "train_loss": 1.2, "val_loss": 1.1, "val_acc": 0.6}]  # doctest: +SKIP
    >>> plot_training_curves(history, "c.png")  # doctest: +SKIP
    PosixPath('c.png')
    """
    if not history:
        raise DataError("no training history to plot: metrics.jsonl has no epochs (did training run?).")
    keys = list(dict.fromkeys(k for row in history for k in row))
    losses = [k for k in keys if k.endswith("loss")]
    accs = [k for k in keys if k.endswith(("acc", "accuracy"))]
    if not losses and not accs:
        raise DataError(f"the training history has no *loss or *acc keys to plot (keys: {keys}).")
    epochs = [float(row.get("epoch", i + 1)) for i, row in enumerate(history)]
    panels = [(name, ks) for name, ks in (("loss", losses), ("accuracy", accs)) if ks]
    fig = new_figure(5.5 * len(panels), 4.0)
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, (name, ks) in zip(axes, panels, strict=True):
        for k in ks:
            pts = [(e, float(row[k])) for e, row in zip(epochs, history, strict=True) if _finite(row.get(k))]
            if pts:
                xs, ys = zip(*pts, strict=True)
                ax.plot(xs, ys, marker="o", ms=3, ls="--" if k.startswith("train") else "-", label=k)
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.set_title(f"Training {name}", fontsize=11)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return save_png(fig, path)


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
