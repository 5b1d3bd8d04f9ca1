"""Drift gauges for ``/metrics``: windows of served predictions tested against the bundle's reference."""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np

from imgclf import monitor
from imgclf.errors import ImgclfError
from imgclf.serve._metrics import ServerMetrics
from imgclf.serve._predictor import ImageResult

log = logging.getLogger("imgclf.serve")


class DriftTracker:
    """Collects predictions; every ``window`` of them is tested on a background thread, and the verdict and
    adjusted p-values land in the metrics' drift gauges. At most one test runs at a time; a window that fills
    while one runs waits for it.

    >>> # tracker = DriftTracker(meta.extra["monitor"], metrics, window=200); tracker.add(results)
    """

    def __init__(self, reference: dict[str, Any], metrics: ServerMetrics, *, window: int = 200,
                 alpha: float = 0.05, classes: tuple[str, ...] | None = None) -> None:  # fmt: skip
        self.reference, self.metrics, self.window, self.alpha = reference, metrics, window, alpha
        self.classes = classes  # a multi-label model's windows also test each label's rate
        self._rows: list[ImageResult] = []
        self._lock = threading.Lock()
        self._busy = threading.Lock()
        self._count = 0
        self.latest: monitor.DriftReport | None = None

    def add(self, results: list[ImageResult]) -> None:
        with self._lock:
            self._rows.extend(results)
            self.metrics.drift_window_fill.set(min(len(self._rows), self.window))
            if len(self._rows) < self.window or self._busy.locked():
                return
            rows, self._rows = self._rows[: self.window], self._rows[self.window :]
            self._busy.acquire()
            index, self._count = self._count, self._count + 1
        threading.Thread(target=self._check, args=(rows, index), name="imgclf-drift", daemon=True).start()

    def _check(self, rows: list[ImageResult], index: int) -> None:
        try:
            feats = None
            if all(r.features is not None for r in rows):
                feats = np.asarray([r.features for r in rows], np.float64)  # (N, k)
            labels = None
            if self.classes is not None and all(r.answer.labels is not None for r in rows):
                labels = monitor.label_matrix([r.answer.labels for r in rows], self.classes)  # (N, C)
            win = monitor.Window(np.asarray([r.confidence for r in rows]),
                                 np.asarray([r.class_index for r in rows], np.int64), feats, index,
                                 labels=labels)  # fmt: skip
            report = monitor.check_window(self.reference, win, alpha=self.alpha)
            self.latest = report
            for name, p in report.p_values.items():
                self.metrics.drift_p.set(p, name)
            self.metrics.drift_detected.set(1.0 if report.drifted else 0.0)
            self.metrics.drift_windows.inc()
            if report.drifted:
                log.warning("window %d: %s", index, report.describe())
        except ImgclfError as exc:  # a reference that does not fit this model: say so, keep serving
            log.error("drift check failed: %s", exc)
        finally:
            self._busy.release()
