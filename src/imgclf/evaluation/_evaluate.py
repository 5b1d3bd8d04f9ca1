"""``evaluate`` and ``compare``: a model on a split of some data, with honest uncertainty.

Everything here takes a :class:`~imgclf.bundle.Bundle` (a model with its metadata, loaded or in memory) and runs
the images through :func:`imgclf.engine.run_inference` once; :func:`analyse` turns logits that are already
computed (e.g. by training's held-out pass) into an :class:`Evaluation` without touching the model.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from imgclf import data as D
from imgclf import engine as E
from imgclf import metrics as M
from imgclf.bundle import Bundle, split_samples
from imgclf.errors import DataError
from imgclf.evaluation._gallery import ErrorExample, plot_error_gallery
from imgclf.evaluation._plots import (
    plot_confidence_histogram,
    plot_confusion_matrix,
    plot_per_class_accuracy,
    plot_reliability,
    plot_risk_coverage,
)
from imgclf.tasks import Task, TaskMetrics, needs_features, rejection_scores
from imgclf.utils import atomic_write_text


@dataclass(frozen=True, eq=False)
class Evaluation:
    """Every figure of one evaluation; ``probs`` / ``labels`` are kept for further analysis, not serialised.

    ``task_metrics`` holds the figures of the kind of label (accuracy for single-label, mAP for multi-label,
    hierarchical F1 and mistake severity for hierarchies). The single-answer analyses (``metrics``,
    ``calibration``, ``risk``, confusion, error gallery) are there when each image has one true class.
    """

    split: str
    task: str
    task_metrics: TaskMetrics
    temperature: Any
    skipped: int
    probs: np.ndarray = field(repr=False)
    labels: np.ndarray = field(repr=False)
    metrics: M.ClassificationReport | None = None
    intervals: dict[str, M.Interval] = field(default_factory=dict)
    calibration: M.CalibrationReport | None = None
    calibration_raw: M.CalibrationReport | None = None
    risk: M.RiskCoverage | None = None
    confidence: M.ConfidenceHistogram | None = None
    confused: list[M.ConfusedPair] = field(default_factory=list)
    errors: list[ErrorExample] = field(default_factory=list)
    groups: M.GroupReport | None = None
    plots: dict[str, str] = field(default_factory=dict)
    rejection: dict[str, Any] | None = None  # the bundle's rejection rule on these images (see rejection_summary)

    @property
    def n(self) -> int:
        return int(len(self.labels))

    @property
    def accuracy(self) -> float | None:
        """Top-1 accuracy where it applies (None for multi-label: see ``task_metrics``)."""
        return None if self.metrics is None else self.metrics.accuracy

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"split": self.split, "task": self.task, "n": self.n, "skipped": self.skipped,
                               "temperature": self.temperature, **self.task_metrics.values,
                               "task_metrics": self.task_metrics.to_dict()}  # fmt: skip
        if self.metrics is not None:
            out.update({
                "metrics": self.metrics.to_dict(), "intervals": {k: v.to_dict() for k, v in self.intervals.items()},
                "calibration": self.calibration.to_dict() if self.calibration else None,
                "calibration_uncalibrated": self.calibration_raw.to_dict() if self.calibration_raw else None,
                "risk_coverage": self.risk.to_dict() if self.risk else None,
                "most_confused": [c.to_dict() for c in self.confused],
                "groups": self.groups.to_dict() if self.groups else None,
            })  # fmt: skip
        if self.rejection is not None:
            out["rejection"] = self.rejection
        out["plots"] = self.plots
        return out

    def report_fields(self) -> dict[str, Any]:
        """The :class:`~imgclf.evaluation.ReportData` fields this evaluation fills."""
        return {"metrics": self.metrics, "intervals": self.intervals, "split": self.split,
                "calibration_before": self.calibration_raw,
                # "after" only when a temperature was applied: else it is the same figure as "before"
                "calibration_after": None if self.temperature is None else self.calibration,
                "temperature": self.temperature if isinstance(self.temperature, float) else None,
                "risk_coverage": self.risk, "confidence": self.confidence, "groups": self.groups,
                "errors": self.errors, "task_kind": self.task, "task_metrics": self.task_metrics,
                "probs": self.probs, "targets": self.labels if self.labels.ndim == 2 else None}  # fmt: skip


def analyse(logits: np.ndarray, labels: np.ndarray, task: Task, *, temperature: Any = None, split: str = "test",
            describe: Callable[[int], str] | None = None, groups: Sequence[Any] | None = None, skipped: int = 0,
            n_resamples: int = 1000, seed: int = 0, target_accuracy: float | None = None) -> Evaluation:  # fmt: skip
    """All metrics of ``logits`` ``(N, C)`` and ``labels`` (``(N,)`` classes or ``(N, C)`` targets) for ``task``.

    ``describe(i)`` names the image of row ``i`` (for the error gallery). Nothing is run through a model.

    >>> # ev = analyse(out.logits, out.labels, bundle.task, temperature=bundle.meta.temperature)
    """
    if len(labels) == 0:
        raise DataError("nothing to evaluate: the split has no readable images")
    probs = task.probabilities(logits, temperature)
    task_metrics = task.metrics(probs, labels, n_resamples=n_resamples, seed=seed)
    if labels.ndim != 1:  # several labels per image: the single-answer analyses below do not apply
        return Evaluation(split, task.kind, task_metrics, temperature, skipped, probs, labels)
    classes = list(task.classes)
    report = M.classification_metrics(probs, labels, classes)
    top = M.top_losses(probs, labels, k=min(25, len(labels)))
    errors = [ErrorExample(describe(int(i)) if describe else f"#{int(i)}", classes[int(t)], classes[int(p)],
                           float(c), float(loss)) for i, t, p, c, loss in
              zip(top.indices, top.labels, top.predicted, top.confidence, top.losses)]  # fmt: skip
    # Default abstention target: halve the error rate (e.g. 0.90 -> 0.95), capped at 0.99.
    target = target_accuracy if target_accuracy is not None else min(0.99, round((1 + report.accuracy) / 2, 3))
    return Evaluation(
        split=split, task=task.kind, task_metrics=task_metrics, temperature=temperature, skipped=skipped,
        probs=probs, labels=labels, metrics=report,
        intervals=M.bootstrap_ci(probs, labels, n_resamples=n_resamples, seed=seed),
        calibration=M.calibration_metrics(probs, labels),
        calibration_raw=M.calibration_metrics(task.probabilities(logits, None), labels),
        risk=M.risk_coverage(probs, labels, target_accuracy=target), confidence=M.confidence_histogram(probs, labels),
        confused=M.most_confused(report.confusion, classes), errors=errors,
        groups=M.group_metrics(probs, labels, groups) if groups is not None else None,
    )  # fmt: skip


def write_plots(ev: Evaluation, out_dir: str | Path) -> dict[str, str]:
    """The evaluation's PNGs in ``out_dir`` (confusion, reliability, per-class, confidence, risk, errors)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plots: dict[str, Path] = {}
    if ev.metrics is not None:
        names = ev.metrics.class_names
        plots["confusion"] = plot_confusion_matrix(ev.metrics.confusion, names, out / "confusion_matrix.png")
        plots["per_class"] = plot_per_class_accuracy(ev.metrics, out / "per_class_accuracy.png")
    if ev.calibration_raw is not None:
        plots["reliability"] = plot_reliability(ev.calibration_raw, out / "reliability.png", after=ev.calibration)
    if ev.confidence is not None:
        plots["confidence"] = plot_confidence_histogram(ev.confidence, out / "confidence_histogram.png")
    if ev.risk is not None:
        plots["risk_coverage"] = plot_risk_coverage(ev.risk, out / "risk_coverage.png")
    if ev.errors:
        plots["errors"] = plot_error_gallery(ev.errors, out / "error_gallery.png")
    ev.plots.update({k: str(v) for k, v in plots.items()})
    return ev.plots


def read_groups(path: str | Path, samples: Any) -> list[str]:
    """Group of each sample from a CSV ``path,group`` (paths as in the data, or file names); missing -> DataError."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"--groups {p} does not exist; give a CSV with columns path,group")
    with open(p, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"path", "group"} <= set(rows[0]):
        raise DataError(f"{p} needs a header with columns path,group")
    table: dict[str, str] = {}
    for r in rows:
        table[str((p.parent / r["path"]).resolve())] = r["group"]
        table.setdefault(Path(r["path"]).name, r["group"])
    out = []
    for i in range(len(samples)):
        d = samples.describe(i)
        g = table.get(str(Path(d).resolve())) or table.get(Path(d).name)
        if g is None:
            raise DataError(f"{p} has no group for {d}; list every evaluated image (path,group)")
        out.append(g)
    return out


def rejection_summary(bundle: Bundle, out: E.InferenceOutput) -> dict[str, Any] | None:
    """What the bundle's rejection rule does to in-distribution images ``out`` (logits, and features for a
    feature rule): the share accepted, and the accuracy on the accepted ones (one class per image); None
    without a rule."""
    rule = bundle.meta.rejection if bundle.task.supports_rejection else None
    if not rule or "threshold" not in rule or len(out.logits) == 0:
        return None
    scores = rejection_scores(rule, out.logits, bundle.meta.temperature, features=out.features,
                              stats=bundle.rejection_stats)  # fmt: skip
    accepted = scores >= float(rule["threshold"])
    summary: dict[str, Any] = {"score": rule["score"], "threshold": float(rule["threshold"]),
                               "accepted": float(accepted.mean()), "unknown": int((~accepted).sum())}  # fmt: skip
    if out.labels.ndim == 1 and accepted.any():
        right = out.logits.argmax(1) == out.labels
        summary["accuracy_accepted"] = float(right[accepted].mean())
    return summary


def evaluate_bundle(bundle: Bundle, source: str, *, split: str | None = None, raw: bool = False,
                    groups_csv: str | Path | None = None, out_dir: str | Path | None = None,
                    n_resamples: int = 1000, batch_size: int = 64, runner: E.Runner | None = None,
                    shuffle_seed: int | None = None) -> Evaluation:  # fmt: skip
    """Evaluate ``bundle`` on ``split`` of ``source``; with ``out_dir``, write plots and ``evaluation.json``.

    ``runner`` replaces the eager model for the logits (an export engine's ``predict_logits`` / ``predict_outputs``).
    With a rejection rule in the bundle, the share of these images it accepts is reported (``rejection``).
    ``shuffle_seed`` runs the images in a seeded random order, in batches of at least 256: a test-time-adapted
    model learns from each batch and needs mixed ones (the split is stored class by class).

    >>> # ev = evaluate_bundle(imgclf.bundle.load_bundle("runs/x/bundle"), "data/"); ev.task_metrics.values
    """
    samples, split, _ = split_samples(bundle.meta, source, split)
    if shuffle_seed is not None:
        samples = samples.subset(np.random.default_rng(shuffle_seed).permutation(len(samples)).tolist())
        batch_size = max(batch_size, 256)
    rule = bundle.meta.rejection if bundle.task.supports_rejection else None
    features = bool(rule) and needs_features(rule.get("score"))
    out = E.run_inference(bundle.model, samples, bundle.meta.preprocessing, batch_size=batch_size, runner=runner,
                          features=features)  # fmt: skip
    groups = read_groups(groups_csv, samples) if groups_csv else None
    if groups is not None:
        groups = [groups[int(i)] for i in out.indices]
    ev = analyse(out.logits, out.labels, bundle.task, temperature=None if raw else bundle.meta.temperature,
                 split=split, describe=samples.describe, groups=groups, skipped=out.skipped,
                 n_resamples=n_resamples)  # fmt: skip
    ev = replace(ev, rejection=rejection_summary(bundle, out))
    if out_dir is not None:
        write_plots(ev, Path(out_dir) / "plots")
        atomic_write_text(Path(out_dir) / "evaluation.json", json.dumps(ev.to_dict(), indent=2) + "\n")
    return ev


def compare_bundles(a: Bundle, b: Bundle, source: str, *, split: str | None = None,
                    names: tuple[str, str] | None = None) -> M.Comparison:  # fmt: skip
    """Paired comparison (exact McNemar + paired bootstrap) of two bundles on the same images.

    ``names`` default to each bundle's name (its run directory, else its architecture), the same in the text
    and the JSON.
    """
    if a.meta.classes != b.meta.classes:
        raise DataError("the two models have different classes; a paired comparison needs the same label set")
    samples, split, _ = split_samples(a.meta, source, split)
    outs = [E.run_inference(x.model, samples, x.meta.preprocessing) for x in (a, b)]
    if not np.array_equal(outs[0].indices, outs[1].indices):
        raise DataError("the two models could not read the same images; compare needs identical inputs")
    if outs[0].labels.ndim != 1:
        raise DataError("compare needs one true class per image (a paired test of correct/incorrect answers); "
                        "for multi-label models compare their evaluate --json figures")  # fmt: skip
    probs = [x.task.probabilities(o.logits, x.meta.temperature) for o, x in zip(outs, (a, b))]
    return M.compare_predictions(probs[0], probs[1], outs[0].labels, names=names or (bundle_name(a), bundle_name(b)))


def bundle_name(bundle: Bundle) -> str:
    """A short human name: the run directory of ``RUN_DIR/bundle``, else the bundle folder, else the architecture."""
    if bundle.path is None:
        return bundle.meta.architecture
    p = Path(bundle.path).resolve()
    return p.parent.name if p.name == "bundle" else p.name


def summary_rows(ev: Evaluation) -> list[tuple[str, str]]:
    """Headline figures with intervals, as (name, "0.912 [0.901, 0.923]") rows."""
    if ev.metrics is None:
        iv = ev.task_metrics.intervals
        return [(k, f"{v:.3f}" + (f" [{iv[k][0]:.3f}, {iv[k][1]:.3f}]" if k in iv else ""))
                for k, v in ev.task_metrics.values.items()]  # fmt: skip
    rows = [(name, str(iv)) for name, iv in ev.intervals.items()]
    rows += [(f"top-{k} accuracy", f"{v:.3f}") for k, v in ev.metrics.top_k.items() if k > 1]
    rows += [(k, f"{v:.3f}") for k, v in ev.task_metrics.values.items() if k not in ev.intervals]
    rows += [("kappa", f"{ev.metrics.kappa:.3f}"), ("MCC", f"{ev.metrics.mcc:.3f}"),
             ("Brier", f"{ev.metrics.brier:.3f}")]  # fmt: skip
    if ev.calibration is not None:
        rows += [("ECE (equal mass)", f"{ev.calibration.ece_equal_mass:.3f}"), ("MCE", f"{ev.calibration.mce:.3f}")]
    return rows


def held_out_split(splits: D.Splits) -> tuple[str, D.SampleList] | tuple[None, None]:
    """The split a run reports on: test, else val."""
    for name in ("test", "val"):
        part = getattr(splits, name)
        if part is not None and len(part):
            return name, part
    return None, None
