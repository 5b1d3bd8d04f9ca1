"""``calibrate``: refit a model's calibration on a split, and keep what depends on it consistent."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from imgclf import engine as E
from imgclf import metrics as M
from imgclf.bundle import Bundle, same_source, split_samples
from imgclf.errors import DataError
from imgclf.tasks import fit_rejection, needs_features


@dataclass(frozen=True)
class CalibrationResult:
    """The calibration fitted on a split, calibration before and after, and the bundle fields it changes
    (``changes``: the temperature, the rejection rule re-chosen at it). ``logits`` / ``features`` of the split
    are kept (not serialised) for whatever else follows the calibration, e.g. the drift reference."""

    temperature: Any
    split: str
    before: M.CalibrationReport | None
    after: M.CalibrationReport | None
    changes: dict[str, Any]
    warnings: tuple[str, ...] = ()
    logits: np.ndarray | None = field(default=None, repr=False)
    features: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "split": self.split,
                "before": self.before.to_dict() if self.before else None,
                "after": self.after.to_dict() if self.after else None, "warnings": list(self.warnings)}  # fmt: skip


def calibration_changes(bundle: Bundle, temperature: Any, logits: np.ndarray) -> dict[str, Any]:
    """The bundle fields that follow the calibration: the temperature, and the rejection threshold re-chosen at
    it on the same held-out ``logits`` (so it still accepts its target share of in-distribution images)."""
    changes: dict[str, Any] = {"temperature": temperature}
    rejection = bundle.meta.rejection
    if rejection and "threshold" in rejection and not needs_features(rejection.get("score")):
        # a feature rule does not depend on the temperature: its threshold stays
        rule = {k: v for k, v in rejection.items() if k not in ("threshold", "temperature")}
        changes["rejection"] = fit_rejection(logits, temperature=temperature, **rule)
    return changes


def calibrate_bundle(bundle: Bundle, source: str, *, split: str = "val") -> CalibrationResult:
    """Fit the task's calibration (temperature scaling) on ``split`` of ``source``; the caller stores
    ``result.changes`` in the bundle. Fitting on the test split, or on data other than the training data, is
    allowed but warned about (the test split is then no longer held out)."""
    samples, split, _ = split_samples(bundle.meta, source, split)
    out = E.run_inference(bundle.model, samples, bundle.meta.preprocessing, features="monitor" in bundle.meta.extra)
    task = bundle.task
    t, reason = task.fit_calibration(out.logits, out.labels)
    if t is None:
        raise DataError(f"cannot calibrate on split {split!r} of {source}: {reason}. "
                        "Use a larger or harder split (--split), e.g. more validation images")  # fmt: skip
    warnings = []
    if split in ("test", "all"):
        warnings.append(f"calibrating on the {split} split: its images are no longer held out, so later test "
                        "figures of this bundle are optimistic")  # fmt: skip
    trained_on = bundle.meta.training.get("data", {}).get("source")
    if trained_on and not same_source(source, trained_on):
        warnings.append(f"calibrating on {source}, not the training data {trained_on}: the temperature then fits "
                        "that data")  # fmt: skip
    before = after = None
    if out.labels.ndim == 1:
        before = M.calibration_metrics(task.probabilities(out.logits, None), out.labels)
        after = M.calibration_metrics(task.probabilities(out.logits, t), out.labels)
    return CalibrationResult(t, split, before, after, calibration_changes(bundle, t, out.logits), tuple(warnings),
                             out.logits, out.features)  # fmt: skip
