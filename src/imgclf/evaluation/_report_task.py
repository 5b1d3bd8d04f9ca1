"""The report's section for the kind of label: multi-label (per-class AP, PR curves) and hierarchical (hierarchical
precision / recall / F1, mistake severity, accuracy per level). Single-label needs nothing beyond the usual."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from imgclf.evaluation._figure import new_figure, save_png, short
from imgclf.evaluation._report_data import ReportData

NAMES = {
    "mAP": "mean average precision (macro, classes with positives)", "micro_mAP": "micro mAP",
    "macro_f1": "macro F1 (at the tuned thresholds)", "micro_f1": "micro F1", "exact_match": "exact-match ratio",
    "hamming_loss": "Hamming loss", "lrap": "label-ranking average precision",
    "hierarchical_precision": "hierarchical precision", "hierarchical_recall": "hierarchical recall",
    "hierarchical_f1": "hierarchical F1",
    "mistake_severity": "mistake severity (mean LCA height of the mistakes)",
    "mean_lca_height": "mean LCA height over all images", "n_mistakes": "mistakes",
}  # fmt: skip


def plot_pr_curves(probs: np.ndarray, targets: np.ndarray, classes: list[str], path: str | os.PathLike,
                   max_classes: int = 12) -> Path:  # fmt: skip
    """Precision-recall curves per class (the ``max_classes`` with the lowest AP when there are more)."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    present = [k for k in range(len(classes)) if targets[:, k].any()]
    ap = {k: average_precision_score(targets[:, k], probs[:, k]) for k in present}
    shown = sorted(present, key=lambda k: ap[k])[:max_classes]
    fig = new_figure(6.5, 5.0)
    ax = fig.add_subplot()
    for k in shown:
        precision, recall, _ = precision_recall_curve(targets[:, k], probs[:, k])
        ax.step(recall, precision, where="post", lw=1.2, label=f"{short(classes[k])} (AP {ap[k]:.2f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    more = f" — lowest {len(shown)} of {len(present)}" if len(present) > len(shown) else ""
    ax.set_title(f"Precision-recall per class{more}", fontsize=11)
    ax.legend(fontsize=7, loc="lower left", ncol=2)
    return save_png(fig, path)


def task_section(d: ReportData, figs: Any) -> dict[str, Any] | None:
    """The ``task`` section: figures that apply to this kind of label (None for single-label runs)."""
    tm = d.task_metrics
    if tm is None or d.task_kind == "single":
        return None
    rows = []
    for name, value in tm.values.items():
        if name in NAMES:
            iv = tm.intervals.get(name)
            ci = f"[{iv[0]:.3f}, {iv[1]:.3f}]" if iv else "-"
            rows.append([NAMES[name], f"{value:.3f}" if isinstance(value, float) else str(value), ci])
    blocks: list[dict[str, Any]] = [{"kind": "table", "header": ["metric", "value", "95% interval"], "rows": rows,
                                     "id": "task-headline"}]  # fmt: skip
    if d.task_kind == "multilabel":
        per = [[c["name"], c["support"], _n(c["average_precision"]), _n(c["precision"]), _n(c["recall"]),
                _n(c["f1"]), _n(c["threshold"])] for c in tm.detail.get("per_class", [])]  # fmt: skip
        blocks.append({"kind": "table", "header": ["class", "positives", "AP", "precision", "recall", "F1",
                                                   "threshold"], "rows": per, "id": "per-class-ap"})  # fmt: skip
        excluded = tm.detail.get("map_excluded_classes")
        if excluded:
            blocks.append({"kind": "note", "text": f"No positives in this split, so AP is undefined and left out "
                           f"of mAP: {', '.join(excluded)}.", "id": None})  # fmt: skip
        if d.probs is not None and d.targets is not None:
            classes = [c["name"] for c in tm.detail.get("per_class", [])]
            blocks.append(figs.block("pr_curves", lambda p: plot_pr_curves(d.probs, d.targets, classes, p),
                                     "Precision-recall curve of each class; a curve hugging the top right is a "
                                     "class the model ranks well."))  # fmt: skip
    levels = tm.detail.get("level_accuracy")
    if levels:
        blocks.append({"kind": "table", "header": ["level", "accuracy"],
                       "rows": [[level, _n(a)] for level, a in levels.items()], "id": "level-accuracy"})  # fmt: skip
    title = {"multilabel": "Multi-label metrics", "hierarchical": "Hierarchical metrics"}.get(d.task_kind, "Task")
    return {"id": "task", "title": title, "blocks": blocks}


def _n(x: Any) -> str:
    return "n/a" if x is None else f"{float(x):.3f}"
