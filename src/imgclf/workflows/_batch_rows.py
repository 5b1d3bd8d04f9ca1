"""Rows of a batch-inference result: one per input image, the fields of ``imgclf predict --json``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from imgclf import engine as E
from imgclf.api import Classifier
from imgclf.bundle import BundleMeta
from imgclf.tasks import needs_features, rejection_scores
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
    """The parquet schema: the fields of ``imgclf predict --json`` (path, label, score, topk [{label, score}],
    unknown, ood_score; labels and scores for multi-label, ancestors and leaf for hierarchies; null where they do
    not apply), every class's probability (with ``settings.probabilities``) and error."""
    pa = optional_import("pyarrow", "batch")
    fields = [
        ("path", pa.string()), ("label", pa.string()), ("score", pa.float64()),
        ("topk", pa.list_(pa.struct([("label", pa.string()), ("score", pa.float64())]))),
    ]  # fmt: skip
    if settings.probabilities:
        fields.append(("probabilities", pa.list_(pa.float64())))
    fields += [("unknown", pa.bool_()), ("ood_score", pa.float64()), ("labels", pa.list_(pa.string())),
               ("ancestors", pa.list_(pa.string())), ("leaf", pa.string()), ("error", pa.string())]  # fmt: skip
    return pa.schema(fields)


def prediction_rows(meta: BundleMeta, paths: Sequence[str], logits: np.ndarray, errors: dict[int, str],
                    settings: RowSettings, *, features: np.ndarray | None = None,
                    stats: dict[str, Any] | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """One row per entry of ``paths``, in order: ``logits`` ``(N, C)`` belong to the positions not in ``errors``.

    The answers come from the bundle's task exactly as :meth:`imgclf.api.Classifier.predict` gets them
    (probabilities, rejection rule, decoding), so a row compares field by field with ``imgclf predict --json``;
    a feature-space rule scores ``features`` ``(N, D)`` of the same pass with the bundle's ``stats``.
    """
    task = meta.make_task()
    probs = task.probabilities(logits, None if settings.raw else meta.temperature) if len(logits) else logits
    rule = meta.rejection if task.supports_rejection else None
    ood = None
    if rule and len(logits):
        ood = rejection_scores(rule, logits, meta.temperature, features=features, stats=stats)
    answers = iter(task.decode(probs, top_k=settings.top_k, ood=ood, threshold=rule.get("threshold") if rule else None,
                               reject=settings.reject) if len(logits) else [])  # fmt: skip
    rows_probs = iter(probs)
    empty = {"label": None, "score": None, "topk": [], "unknown": None, "ood_score": None, "labels": None,
             "ancestors": None, "leaf": None}  # fmt: skip
    rows = []
    for i, path in enumerate(paths):
        row: dict[str, Any] = {"path": path, **empty, "error": errors.get(i)}
        if settings.probabilities:
            row["probabilities"] = None
        if i not in errors:
            answer = next(answers).to_dict()
            answer.pop("scores", None)  # every class's probability is the probabilities column
            row.update(answer)
            p = next(rows_probs)
            if settings.probabilities:
                row["probabilities"] = [float(x) for x in p]
        rows.append(row)
    return rows


def rows_table(rows: list[dict[str, Any]], settings: RowSettings) -> Any:
    """The rows as a ``pyarrow.Table`` with :func:`arrow_schema` (the same schema for every shard)."""
    pa = optional_import("pyarrow", "batch")
    return pa.Table.from_pylist(rows, schema=arrow_schema(settings))


def engine_runner(clf: Classifier) -> Callable[[torch.Tensor], Any] | None:
    """What replaces the eager model for the classifier's inference engine (None: the eager model), as in predict
    (with the features output when the bundle's rejection rule scores features)."""
    if clf.engine_ is None:
        return None
    return clf.engine_.predict_outputs if wants_features(clf.meta_) else clf.engine_.predict_logits


def wants_features(meta: BundleMeta) -> bool:
    """Whether the bundle's rejection rule scores pooled features (so the stream must return them too)."""
    rule = meta.rejection if meta.make_task().supports_rejection else None
    return bool(rule) and needs_features(rule.get("score"))


def chunks_table(meta: BundleMeta, paths: Sequence[str], start: int, chunks: Sequence[E.StreamChunk],
                 settings: RowSettings, stats: dict[str, Any] | None = None) -> Any:  # fmt: skip
    """The table of ``paths`` (input positions ``start ..``) from the stream chunks that cover exactly them;
    ``stats``: the bundle's rejection statistics (a feature rule)."""
    logits = [c.logits for c in chunks if len(c.indices)]
    errors = {i - start: reason for c in chunks for i, reason in c.errors.items()}
    stacked = np.concatenate(logits) if logits else np.zeros((0, meta.num_classes), np.float32)
    feats = [c.features for c in chunks if len(c.indices) and c.features is not None]
    features = np.concatenate(feats) if feats else None
    return rows_table(prediction_rows(meta, paths, stacked, errors, settings, features=features, stats=stats),
                      settings)
