"""Monitoring an audit log end to end: read, cut into windows, test each, plot."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from imgclf.errors import DataError
from imgclf.monitor._drift import MIN_WINDOW, DriftReport, Window, check_window
from imgclf.monitor._log import read_audit_records, windows
from imgclf.monitor._plots import plot_p_values, plot_window
from imgclf.monitor._reference import check_reference


@dataclass(frozen=True)
class MonitorResult:
    """Per-window drift reports of one audit log, the records used, and the plots written."""

    reports: tuple[DriftReport, ...]
    records: int
    skipped_other_model: int
    plots: tuple[Path, ...] = ()
    torn_lines: int = 0

    @property
    def drifted(self) -> bool:
        return any(r.drifted for r in self.reports)

    def to_dict(self) -> dict[str, Any]:
        return {"drifted": self.drifted, "records": self.records, "skipped_other_model": self.skipped_other_model,
                "torn_lines": self.torn_lines, "windows": [r.to_dict() for r in self.reports],
                "plots": [str(p) for p in self.plots]}  # fmt: skip


def monitor_log(reference: dict[str, Any], log: str | os.PathLike, *, window: int = 200, alpha: float = 0.05,
                model: str | None = None, out_dir: str | os.PathLike | None = None,
                class_names: Sequence[str] | None = None, permutations: int = 200) -> MonitorResult:  # fmt: skip
    """Read ``log`` (and its rotated parts), test every window of ``window`` records against ``reference``.

    ``model`` (a weights sha256) ignores records written by other model versions; torn lines are skipped and
    counted in ``torn_lines``. With ``out_dir``, writes
    ``drift_p_values.png`` and ``drift_latest.png``.

    >>> # res = monitor_log(meta.extra["monitor"], "audit.jsonl", window=200, model=meta.weights_sha256)
    >>> # [r.verdict for r in res.reports]
    """
    ref = check_reference(reference)
    read = read_audit_records(log)
    everything = read.records
    records = [r for r in everything if model is None or r.get("model") == model]
    wins = windows(records, window, class_names)
    others = len(everything) - len(records)
    if not wins:
        usable = f"{len(records)} usable prediction record(s), fewer than the {MIN_WINDOW} a window needs"
        if others:  # the log is (mostly) another model's: more traffic or a smaller window would not help
            versions = sorted({str(r.get("model"))[:12] for r in everything if r.get("model") != model})
            raise DataError(f"{log}: {usable}; {others} record(s) belong to another model version "
                            f"({', '.join(versions[:3])}{', ...' if len(versions) > 3 else ''}; this bundle is "
                            f"{str(model)[:12]}). Pass the bundle that served them, or --all-models to include "
                            "them if that model is a retrain of this one")  # fmt: skip
        raise DataError(f"{log}: {usable}; wait for more traffic")
    _check_feature_width(ref, wins, log)
    reports = tuple(check_window(ref, w, alpha=alpha, permutations=permutations) for w in wins)
    plots: tuple[Path, ...] = ()
    if out_dir is not None:
        out = Path(out_dir)
        plots = (plot_p_values(reports, out / "drift_p_values.png"),
                 plot_window(ref, wins[-1], out / "drift_latest.png", class_names))  # fmt: skip
    return MonitorResult(reports, len(records), others, plots, read.torn)


def _check_feature_width(ref: dict[str, Any], wins: list[Window], log: str | os.PathLike) -> None:
    """Logged features of another width than the reference's: the records came from a different model."""
    if ref.get("features") is None:
        return
    width = np.asarray(ref["features"]["sample"]).shape[1]  # (S, k)
    for w in wins:
        if w.features is not None and w.features.shape[1] != width:
            raise DataError(f"{log}: window {w.index} logged {w.features.shape[1]}-wide features but this bundle's "
                            f"reference has {width}: these predictions come from a different model; pass the "
                            "bundle that served them")  # fmt: skip
