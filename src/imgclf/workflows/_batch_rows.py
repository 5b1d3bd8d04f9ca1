"""Rows of a batch-inference result: one per input image, the fields of ``imgclf predict --json``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from imgclf import engine as E
from imgclf.api import Classifier, ood_score
from imgclf.bundle import BundleMeta
from imgclf.metrics import apply_temperature
from imgclf.utils import optional_import


@dataclass(frozen=True)
class RowSettings:
    """How logits become answers, as for ``imgclf predict``: ``top_k``, uncalibrated ``raw`` probabilities,
    ``reject`` (answer ``unknown`` below the bundle's rejection threshold), and whether to keep every class's
    probability in a ``probabilities`` column."""

    top_k: int = 5
    raw: bool = False
    reject: bool = True
    probabilities: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"top_k": self.top_k, "raw": self.raw, "reject": self.reject, "probabilities": self.probabilities}


def arrow_schema(settings: RowSettings) -> Any:
    """The parquet schema: path, label, score, topk [{label, score}], probabilities, unknown, ood_score, error."""
    pa = optional_import("pyarrow", "batch")
    fields = [
        ("path", pa.string()), ("label", pa.string()), ("score", pa.float64()),
        ("topk", pa.list_(pa.struct([("label", pa.string()), ("score", pa.float64())]))),
    ]  # fmt: skip
    if settings.probabilities:
        fields.append(("probabilities", pa.list_(pa.float64())))
    fields += [("unknown", pa.bool_()), ("ood_score", pa.float64()), ("error", pa.string())]
    return pa.schema(fields)


def prediction_rows(meta: BundleMeta, paths: Sequence[str], logits: np.ndarray, errors: dict[int, str],
                    settings: RowSettings) -> list[dict[str, Any]]:  # fmt: skip
    """One row per entry of ``paths``, in order: ``logits`` ``(N, C)`` belong to the positions not in ``errors``.

    Labels, scores, top-k and the rejection rule are decided exactly as :meth:`imgclf.api.Classifier.predict`
    does, so a row compares field by field with ``imgclf predict --json``.
    """
    probs = apply_temperature(logits, 1.0 if settings.raw else meta.temperature or 1.0) if len(logits) else logits
    scores: list[float | None] = [None] * len(logits)
    if meta.rejection and len(logits):
        scores = ood_score(meta.rejection["score"], torch.from_numpy(logits), meta.temperature or 1.0).tolist()
    k = min(settings.top_k, meta.num_classes)
    answers = iter(zip(probs, scores))
    rows = []
    for i, path in enumerate(paths):
        row: dict[str, Any] = {"path": path, "label": None, "score": None, "topk": [], "unknown": None,
                               "ood_score": None, "error": errors.get(i)}  # fmt: skip
        if settings.probabilities:
            row["probabilities"] = None
        if i not in errors:
            p, ood = next(answers)
            best = np.argsort(-p)[:k]
            row["topk"] = [{"label": meta.classes[j], "score": float(p[j])} for j in best]
            unknown = ood is not None and ood < meta.rejection["threshold"]
            row["label"] = "unknown" if unknown and settings.reject else row["topk"][0]["label"]
            row["score"] = row["topk"][0]["score"]
            if ood is not None:
                row["unknown"], row["ood_score"] = unknown, float(ood)
            if settings.probabilities:
                row["probabilities"] = [float(x) for x in p]
        rows.append(row)
    return rows


def rows_table(rows: list[dict[str, Any]], settings: RowSettings) -> Any:
    """The rows as a ``pyarrow.Table`` with :func:`arrow_schema` (the same schema for every shard)."""
    pa = optional_import("pyarrow", "batch")
    return pa.Table.from_pylist(rows, schema=arrow_schema(settings))


def engine_forward(clf: Classifier) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """What replaces ``model(x)`` for the classifier's inference engine (None: the eager model), as predict does."""
    if clf.engine_ is None:
        return None
    return lambda x: torch.from_numpy(np.asarray(clf.engine_.predict_logits(x)))


def chunks_table(meta: BundleMeta, paths: Sequence[str], start: int, chunks: Sequence[E.StreamChunk],
                 settings: RowSettings) -> Any:  # fmt: skip
    """The table of ``paths`` (input positions ``start ..``) from the stream chunks that cover exactly them."""
    logits = [c.logits for c in chunks if len(c.indices)]
    errors = {i - start: reason for c in chunks for i, reason in c.errors.items()}
    stacked = np.concatenate(logits) if logits else np.zeros((0, meta.num_classes), np.float32)
    return rows_table(prediction_rows(meta, paths, stacked, errors, settings), settings)
