"""Drift monitoring: are the images a served model sees still like the ones it was validated on?

At training time :func:`reference_stats` summarises held-out predictions (confidences, predicted classes, a PCA
sample of embeddings); it is stored in the bundle as ``meta.extra["monitor"]``. Later, windows of served
predictions (from the server's audit log or from arrays) are compared with it: KS on confidences, chi-square on
predicted-class counts and an MMD permutation test on projected embeddings, Bonferroni-corrected.

>>> from imgclf import monitor
>>> ref = monitor.reference_stats(val_probs, val_embeddings)             # doctest: +SKIP
>>> monitor.drift_check(ref, window_probs, window_embeddings).verdict     # doctest: +SKIP
'no drift'
>>> monitor.monitor_log(ref, "audit.jsonl", window=200, out_dir="drift")  # doctest: +SKIP
"""

from imgclf.monitor._drift import MIN_WINDOW, TESTS, DriftReport, DriftTest, Window, check_window, drift_check
from imgclf.monitor._log import AuditRead, label_matrix, read_audit_log, read_audit_records, windows
from imgclf.monitor._plots import p_value_figure, plot_p_values, plot_window
from imgclf.monitor._reference import REFERENCE_VERSION, check_reference, project_features, reference_stats
from imgclf.monitor._run import MonitorResult, monitor_log
from imgclf.monitor._stats import chi2_test, ks_test, mmd_test
from imgclf.utils import publish

__all__ = [
    "AuditRead",
    "MIN_WINDOW",
    "REFERENCE_VERSION",
    "TESTS",
    "DriftReport",
    "DriftTest",
    "MonitorResult",
    "Window",
    "check_reference",
    "check_window",
    "chi2_test",
    "drift_check",
    "ks_test",
    "mmd_test",
    "monitor_log",
    "p_value_figure",
    "label_matrix",
    "plot_p_values",
    "plot_window",
    "project_features",
    "read_audit_log",
    "read_audit_records",
    "reference_stats",
    "windows",
]

publish(__name__, globals(), __all__)
