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
from imgclf.evaluation._calibrate import CalibrationResult, calibrate_bundle, calibration_changes
from imgclf.evaluation._evaluate import (
    Evaluation,
    analyse,
    bundle_name,
    compare_bundles,
    evaluate_bundle,
    held_out_split,
    read_groups,
    summary_rows,
    write_plots,
)
from imgclf.evaluation._gallery import ErrorExample, plot_error_gallery
from imgclf.evaluation._imagehash import dhash, hamming, phash
from imgclf.evaluation._label_audit import LabelAudit, audit_labels, crossval_probs
from imgclf.evaluation._label_issues import LabelIssues, find_label_issues
from imgclf.evaluation._label_issues_multilabel import MultilabelLabelIssues, find_multilabel_label_issues
from imgclf.evaluation._model_card import render_model_card
from imgclf.evaluation._plots import (
    plot_confidence_histogram,
    plot_confusion_matrix,
    plot_per_class_accuracy,
    plot_reliability,
    plot_risk_coverage,
    plot_training_curves,
    reliability_figure,
)
from imgclf.evaluation._report import SECTION_IDS, render_report
from imgclf.evaluation._report_data import ReportData
from imgclf.evaluation._run_report import (
    NEAR_DUPLICATE_LIMIT,
    SEARCH_FILE,
    ReportResult,
    audit,
    audit_splits,
    build_report,
    label_issues_of,
)
from imgclf.utils import publish

__all__ = [
    "NEAR_DUPLICATE_LIMIT",
    "SEARCH_FILE",
    "SECTION_IDS",
    "CalibrationResult",
    "Evaluation",
    "ReportResult",
    "analyse",
    "audit",
    "audit_splits",
    "build_report",
    "bundle_name",
    "calibrate_bundle",
    "calibration_changes",
    "compare_bundles",
    "evaluate_bundle",
    "held_out_split",
    "label_issues_of",
    "read_groups",
    "summary_rows",
    "write_plots",
    "AuditReport",
    "DuplicateGroup",
    "ErrorExample",
    "FileRef",
    "ImageStats",
    "LabelAudit",
    "LabelIssues",
    "Leak",
    "MultilabelLabelIssues",
    "NearDuplicate",
    "ReportData",
    "SplitSummary",
    "UnreadableFile",
    "audit_files",
    "audit_labels",
    "crossval_probs",
    "dhash",
    "find_label_issues",
    "find_multilabel_label_issues",
    "hamming",
    "phash",
    "plot_confidence_histogram",
    "plot_confusion_matrix",
    "plot_error_gallery",
    "plot_per_class_accuracy",
    "plot_reliability",
    "reliability_figure",
    "plot_risk_coverage",
    "plot_training_curves",
    "render_model_card",
    "render_report",
]

publish(__name__, globals(), __all__)
