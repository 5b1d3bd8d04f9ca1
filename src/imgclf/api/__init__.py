"""The Python API mirroring the CLI verbs: ``fit``, ``load``, ``Classifier``."""

from imgclf.api._classifier import Classifier, Prediction, expand_inputs, fit, load
from imgclf.api._compress import DistillResult, PruneResult, distill, prune_bundle
from imgclf.api._evaluate import (
    CalibrationResult,
    Evaluation,
    analyse,
    calibrate,
    compare,
    evaluate,
    sample_tensors,
    split_logits,
    summary_rows,
)
from imgclf.api._explain import ExplainedImage, ExplainReport, explain_files
from imgclf.api._export import ExportResult, benchmark_bundle, export_bundle
from imgclf.api._fit import FitResult, RepeatResult, train_repeated, train_run
from imgclf.api._report import ReportResult, audit, audit_splits, build_report
from imgclf.api._robustness import LOGIT_SCORES, RobustnessResult, ood_score, robustness, stress_test

__all__ = [
    "LOGIT_SCORES",
    "DistillResult",
    "PruneResult",
    "distill",
    "prune_bundle",
    "ExportResult",
    "benchmark_bundle",
    "export_bundle",
    "RobustnessResult",
    "ood_score",
    "robustness",
    "stress_test",
    "ReportResult",
    "audit",
    "audit_splits",
    "build_report",
    "CalibrationResult",
    "Classifier",
    "Evaluation",
    "analyse",
    "calibrate",
    "compare",
    "evaluate",
    "sample_tensors",
    "split_logits",
    "summary_rows",
    "ExplainReport",
    "ExplainedImage",
    "FitResult",
    "Prediction",
    "expand_inputs",
    "explain_files",
    "fit",
    "load",
    "RepeatResult",
    "train_repeated",
    "train_run",
]
