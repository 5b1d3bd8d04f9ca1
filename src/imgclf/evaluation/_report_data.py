"""What the report and the model card are made of: one frozen dataclass the caller fills with results."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from imgclf.evaluation._audit_types import AuditReport
from imgclf.evaluation._gallery import ErrorExample
from imgclf.metrics import (
    CalibrationReport,
    ClassificationReport,
    ConfidenceHistogram,
    GroupReport,
    Interval,
    RiskCoverage,
)


@dataclass(frozen=True, eq=False)
class ReportData:
    """Inputs of :func:`render_report` and :func:`render_model_card`; every field is optional and a section
    whose data is missing is left out.

    - ``title`` and ``facts`` (ordered key facts for the header: model, dataset, split, run directory...).
    - ``data_summary``: extra data facts (``{"train images": 1000, ...}``); ``audit``: an :class:`AuditReport`;
      ``label_issues``: gallery tiles of likely label errors (``true`` = given label, ``predicted`` =
      suggested).
    - ``history``: per-epoch metric dicts (the lines of ``metrics.jsonl``).
    - ``metrics``: the :class:`ClassificationReport`; ``intervals``: bootstrap :class:`Interval` per headline
      metric name (``accuracy``, ``macro_f1``, ``ece``...); ``split``: the name of the evaluated split.
    - ``calibration_before`` / ``calibration_after`` (with ``temperature``): calibration without and with
      temperature scaling; ``calibration_skipped``: why no temperature was fitted (then there is no "after").
    - ``risk_coverage``, ``confidence``: selective-prediction curve and confidence histograms.
    - ``groups``: per-group metrics; ``errors``: top-loss gallery tiles; ``notes``: extra warnings to show.
    - ``task_kind`` / ``task_metrics``: the kind of label and its :class:`~imgclf.tasks.TaskMetrics` (mAP and
      per-class AP for multi-label, hierarchical F1 and mistake severity for hierarchies); ``probs`` /
      ``targets`` of the evaluated images for curves (multi-label PR curves).
    - ``search``: the hyperparameter search this run is the retrain of (``imgclf tune``): ``{"facts": {...},
      "plots": {name: png_path}}`` -- the study's history, parameter importances and parallel coordinates.

    >>> data = ReportData(title="cifar10 · resnet18", metrics=report, intervals=ci)  # doctest: +SKIP
    >>> render_report(data, "runs/r1/report.html")  # doctest: +SKIP
    PosixPath('runs/r1/report.html')
    """

    title: str = "imgclf report"
    facts: Mapping[str, Any] = field(default_factory=dict)
    data_summary: Mapping[str, Any] = field(default_factory=dict)
    audit: AuditReport | None = None
    label_issues: Sequence[ErrorExample] = ()
    history: Sequence[Mapping[str, Any]] = ()
    metrics: ClassificationReport | None = None
    intervals: Mapping[str, Interval] = field(default_factory=dict)
    split: str | None = None
    calibration_before: CalibrationReport | None = None
    calibration_after: CalibrationReport | None = None
    calibration_skipped: str | None = None
    temperature: float | None = None
    risk_coverage: RiskCoverage | None = None
    confidence: ConfidenceHistogram | None = None
    groups: GroupReport | None = None
    errors: Sequence[ErrorExample] = ()
    notes: Sequence[str] = ()
    task_kind: str = "single"
    task_metrics: Any = None
    probs: Any = None
    targets: Any = None
    search: Mapping[str, Any] | None = None


def calibration_skipped_text(reason: str | None) -> str:
    """The one sentence of the report and the model card for a bundle without a temperature (``reason``: why)."""
    why = f": {reason}" if reason else ""
    return (f"Calibration was skipped{why}. No temperature scaling is applied: the probabilities are the model's "
            "raw softmax.")  # fmt: skip
