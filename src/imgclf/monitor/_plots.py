"""PNG figures for drift monitoring: p-values over windows, and the latest window against the reference.

Each helper draws on a private matplotlib ``Figure`` (Agg canvas, no global backend switch), writes the PNG
atomically and returns its path.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from imgclf.errors import DataError
from imgclf.monitor._drift import DriftReport, Window
from imgclf.utils import atomic_write_bytes


def _save(fig: Any, path: str | os.PathLike) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return atomic_write_bytes(path, buf.getvalue())


def plot_p_values(reports: Sequence[DriftReport], path: str | os.PathLike) -> Path:
    """Bonferroni-adjusted p-values per window (log scale), one line per test, with the ``alpha`` line.

    >>> plot_p_values(reports, "out/drift_p_values.png")  # doctest: +SKIP
    """
    if not reports:
        raise DataError(f"plot_p_values got no windows for {path}.")
    return _save(p_value_figure(reports), path)


def p_value_figure(reports: Sequence[DriftReport]) -> Any:
    """The matplotlib ``Figure`` :func:`plot_p_values` writes: the y axis reaches the smallest p-value, the x
    axis counts whole windows, each test has its own marker and line style."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(6.5, 3.8), dpi=100)
    ax = fig.subplots()
    x = [r.window for r in reports]
    names = list(dict.fromkeys(t.name for r in reports for t in r.tests))  # the tests that ran, in order
    ps = [p for r in reports for p in r.p_values.values()]
    floor = max(min([p for p in ps if p > 0], default=1e-6), 1e-300) / 3  # every point shown, however small
    styles = [("o", "-"), ("s", "--"), ("^", ":"), ("D", "-.")]  # tests with equal p-values stay visible
    for k, name in enumerate(names):
        ys = [r.p_values.get(name) for r in reports]
        marker, line = styles[k % len(styles)]
        ax.plot(x, [max(y, floor) if y is not None else np.nan for y in ys], marker=marker, linestyle=line,
                markersize=7 - 1.5 * k, label=name)  # fmt: skip
    ax.axhline(reports[0].alpha, color="k", linestyle="--", label=f"alpha {reports[0].alpha:g}")
    for r in reports:
        if r.drifted:
            ax.axvspan(r.window - 0.4, r.window + 0.4, color="#d62728", alpha=0.12, lw=0)
    ax.set_yscale("log")
    ax.set_ylim(min(floor, 1e-6) / 2, 1.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # windows are whole numbers
    ax.set_xlabel("window")
    ax.set_ylabel("adjusted p-value")
    ax.set_title("Drift tests per window (shaded: drift)")
    ax.legend(fontsize=8, loc="lower left")
    return fig


def plot_window(reference: dict[str, Any], window: Window, path: str | os.PathLike,
                class_names: Sequence[str] | None = None) -> Path:  # fmt: skip
    """Two panels: confidence histograms (reference vs window) and predicted-class frequencies.

    >>> plot_window(reference, windows[-1], "out/drift_latest.png", meta.classes)  # doctest: +SKIP
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.8), dpi=100)
    ax1, ax2 = fig.subplots(1, 2)
    bins = np.linspace(0, 1, 21)
    ax1.hist(reference["confidence"], bins=bins, density=True, alpha=0.55, label="reference")
    ax1.hist(window.confidences, bins=bins, density=True, alpha=0.55, label=f"window {window.index}")
    ax1.set_xlabel("top-1 confidence")
    ax1.set_ylabel("density")
    ax1.legend(fontsize=8)
    counts = np.asarray(reference["class_counts"], np.float64)
    c = len(counts)
    win = np.bincount(window.predicted, minlength=c)[:c].astype(np.float64)
    pos = np.arange(c)
    ax2.bar(pos - 0.2, counts / max(counts.sum(), 1), width=0.4, label="reference")
    ax2.bar(pos + 0.2, win / max(win.sum(), 1), width=0.4, label=f"window {window.index}")
    names = list(class_names) if class_names is not None and len(class_names) == c else [str(i) for i in pos]
    ax2.set_xticks(pos, names, rotation=45 if c > 6 else 0, ha="right" if c > 6 else "center", fontsize=8)
    ax2.set_ylabel("share of predictions")
    ax2.legend(fontsize=8)
    fig.suptitle(f"Window {window.index} ({window.n} predictions) against the reference")
    return _save(fig, path)
