"""Evaluation you can trust, beyond the numbers in :mod:`imgclf.metrics`: plots, the HTML report, the model
card, the data audit and label-issue detection.

Plots are matplotlib PNGs (Agg canvas, no pyplot state); each ``plot_*`` writes one file and returns its path.
``render_report(ReportData(...), "report.html")`` writes one self-contained page (figures embedded, no network).
``audit_files`` checks file lists for unreadable images, class imbalance, exact and near duplicates and
train/test leakage. Jinja2 and cleanlab are imported only by the functions that need them (``imgclf[eval]``).

>>> from imgclf.evaluation import ReportData, render_report
>>> render_report(ReportData(metrics=report), "report.html")  # doctest: +SKIP
PosixPath('report.html')
"""

from imgclf.evaluation._audit import audit_files
from imgclf.evaluation._audit_types import (
    AuditReport,
    DuplicateGroup,
    FileRef,
    ImageStats,
    Leak,
    NearDuplicate,
    SplitSummary,
    UnreadableFile,
)
from imgclf.evaluation._gallery import ErrorExample, plot_error_gallery
from imgclf.evaluation._imagehash import dhash, hamming, phash
from imgclf.evaluation._label_audit import LabelAudit, audit_labels, crossval_probs
from imgclf.evaluation._label_issues import LabelIssues, find_label_issues
from imgclf.evaluation._model_card import render_model_card
from imgclf.evaluation._plots import (
    plot_confidence_histogram,
    plot_confusion_matrix,
    plot_per_class_accuracy,
    plot_reliability,
    plot_risk_coverage,
    plot_training_curves,
)
from imgclf.evaluation._report import SECTION_IDS, render_report
from imgclf.evaluation._report_data import ReportData

__all__ = [
    "SECTION_IDS",
    "AuditReport",
    "DuplicateGroup",
    "ErrorExample",
    "FileRef",
    "ImageStats",
    "LabelAudit",
    "LabelIssues",
    "Leak",
    "NearDuplicate",
    "ReportData",
    "SplitSummary",
    "UnreadableFile",
    "audit_files",
    "audit_labels",
    "crossval_probs",
    "dhash",
    "find_label_issues",
    "hamming",
    "phash",
    "plot_confidence_histogram",
    "plot_confusion_matrix",
    "plot_error_gallery",
    "plot_per_class_accuracy",
    "plot_reliability",
    "plot_risk_coverage",
    "plot_training_curves",
    "render_model_card",
    "render_report",
]
