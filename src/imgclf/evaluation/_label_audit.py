"""Likely label errors of a whole dataset from out-of-sample probabilities: K-fold logistic regression on a
bundle's frozen features, then cleanlab's confident learning (:func:`find_label_issues`).

A model's own probabilities for images it trained on are no use here: it has memorised their labels, wrong ones
included. Instead every image is embedded once by the bundle (pooled pre-logit features), and a multinomial
logistic regression is fitted K times, each time on K-1 folds, to predict the held-out fold: each image's
probabilities come from a model that never saw its label. This costs one inference pass plus K small convex
fits (seconds on a CPU), not K trainings of the network. The features themselves were learned with the
training labels, so a network that memorised a flipped image can still place it near its wrong class: the
out-of-fold figure is then a lower bound of how many flips are found.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from imgclf import data as D
from imgclf import engine as E
from imgclf.bundle import Bundle, split_samples
from imgclf.errors import DataError
from imgclf.evaluation._label_issues import LabelIssues, find_label_issues
from imgclf.evaluation._label_issues_multilabel import find_multilabel_label_issues
from imgclf.utils import optional_import

SPLITS = ("train", "val", "test")


@dataclass(frozen=True, eq=False)
class LabelAudit:
    """Likely label errors with how their probabilities were obtained: ``issues`` (most suspicious first, with
    paths), ``method`` (one sentence for people), ``folds``, ``n_images``, ``splits`` audited and
    ``oof_accuracy`` (accuracy of the out-of-fold predictions against the given labels; for multi-label data the
    share of images whose thresholded label set equals the given one).

    >>> audit = audit_labels(load_bundle("runs/x/bundle"), "data/")  # doctest: +SKIP
    >>> audit.method  # doctest: +SKIP
    '5-fold cross-validated logistic regression on the bundle's frozen 64-d features ...'
    """

    issues: LabelIssues
    method: str
    folds: int
    n_images: int
    splits: tuple[str, ...]
    oof_accuracy: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "folds": self.folds,
            "n_images": self.n_images,
            "splits": list(self.splits),
            "oof_accuracy": self.oof_accuracy,
            **self.issues.to_dict(),
        }


def crossval_probs(features: Any, labels: Any, n_classes: int, *, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Out-of-fold class probabilities ``(N, n_classes)`` from ``folds``-fold multinomial logistic regression on
    standardised ``features`` ``(N, D)`` (stratified folds; classes absent from a fold's training part get 0).

    >>> x = np.r_[np.zeros((20, 2)), np.ones((20, 2))] + np.random.default_rng(0).normal(0, .1, (40, 2))
    >>> p = crossval_probs(x, [0] * 20 + [1] * 20, 2, folds=4)
    >>> bool((p.argmax(1) == np.r_[[0] * 20, [1] * 20]).all())
    True
    """
    model_selection = optional_import("sklearn.model_selection", "eval")
    linear_model = optional_import("sklearn.linear_model", "eval")
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if x.ndim != 2 or len(x) != len(y):
        raise DataError(f"crossval_probs needs features (N, D) and N labels, got {x.shape} and {y.shape}")
    counts = np.bincount(y, minlength=n_classes)
    k = int(min(folds, counts[counts > 0].min())) if len(y) else 0
    if k < 2:
        raise DataError("too few images per class for cross-validated label checks: every class needs at least 2")
    x = _standardised(x)
    out = np.zeros((len(y), n_classes))
    split = model_selection.StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    for fit_idx, held_idx in split.split(x, y):
        clf = linear_model.LogisticRegression(C=0.1, max_iter=300)
        clf.fit(x[fit_idx], y[fit_idx])
        out[np.ix_(held_idx, clf.classes_)] = clf.predict_proba(x[held_idx])
    return out


def crossval_probs_multilabel(features: Any, targets: Any, *, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Out-of-fold per-class probabilities ``(N, C)`` for 0/1 ``targets`` ``(N, C)``: ``folds``-fold binary
    logistic regression per class on standardised ``features`` ``(N, D)``; a class that is constant in a fold's
    training part predicts its rate there.

    >>> x = np.r_[np.zeros((20, 2)), np.ones((20, 2))] + np.random.default_rng(0).normal(0, .1, (40, 2))
    >>> y = np.c_[np.r_[[1] * 20, [0] * 20], np.ones(40)]
    >>> p = crossval_probs_multilabel(x, y, folds=4)
    >>> bool(((p[:, 0] > .5) == (y[:, 0] > 0)).all()), float(p[:, 1].min())
    (True, 1.0)
    """
    model_selection = optional_import("sklearn.model_selection", "eval")
    linear_model = optional_import("sklearn.linear_model", "eval")
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(targets).astype(np.int64)
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y):
        raise DataError(f"crossval_probs_multilabel needs features (N, D) and targets (N, C), got {x.shape} and "
                        f"{y.shape}")  # fmt: skip
    k = int(min(folds, len(y)))
    if k < 2:
        raise DataError("too few images for cross-validated label checks: at least 2 are needed")
    x = _standardised(x)
    out = np.zeros(y.shape)
    for fit_idx, held_idx in model_selection.KFold(n_splits=k, shuffle=True, random_state=seed).split(x):
        for c in range(y.shape[1]):
            yc = y[fit_idx, c]
            if yc.min() == yc.max():
                out[held_idx, c] = float(yc[0])
                continue
            clf = linear_model.LogisticRegression(C=0.1, max_iter=300).fit(x[fit_idx], yc)
            out[held_idx, c] = clf.predict_proba(x[held_idx])[:, 1]
    return out


def _standardised(x: np.ndarray) -> np.ndarray:
    """Features with zero mean and unit variance per dimension (constant ones stay 0)."""
    return (x - x.mean(0)) / (x.std(0) + 1e-6)


def _samples(bundle: Bundle, source: str, splits: tuple[str, ...]) -> tuple[D.SampleList, tuple[str, ...]]:
    """The images of ``splits`` of ``source`` (split as the bundle was trained), relabelled to its classes."""
    _, _, all_splits = split_samples(bundle.meta, source, "all")
    parts = {"train": all_splits.train, "val": all_splits.val, "test": all_splits.test}
    chosen = tuple(s for s in splits if parts.get(s) is not None)
    if not chosen:
        raise DataError(f"{source} has none of the splits {', '.join(splits)}")
    lists = [parts[s] for s in chosen]
    samples = lists[0] if len(lists) == 1 else D.SampleList.concat(lists)
    classes = list(bundle.meta.classes)
    return samples.relabel([classes.index(c) for c in all_splits.classes], num_classes=len(classes)), chosen


def bundle_features(bundle: Bundle, samples: D.SampleList, *, batch_size: int = 128) -> E.InferenceOutput:
    """Pooled pre-logit features ``(N, num_features)`` of every readable sample with the bundle's eval
    preprocessing (in ``.logits``), with their dataset indices and labels."""
    out = E.run_inference(bundle.model, samples, bundle.meta.preprocessing, batch_size=batch_size, workers=0,
                          features=True)  # fmt: skip
    return dataclasses.replace(out, logits=out.features)


def audit_labels(
    bundle: Bundle, source: str, *, splits: tuple[str, ...] = SPLITS, folds: int = 5, seed: int = 0
) -> LabelAudit:
    """Rank likely label errors among the images of ``splits`` of ``source`` with out-of-fold probabilities
    (see the module docstring); ``issues.paths`` names each image.

    >>> audit = audit_labels(load_bundle("runs/x/bundle"), "data/", splits=("train",))  # doctest: +SKIP
    >>> audit.issues.paths[:2]  # doctest: +SKIP
    ('data/train/cat/17.png', 'data/train/dog/3.png')
    """
    samples, chosen = _samples(bundle, source, tuple(splits))
    out = bundle_features(bundle, samples)
    classes = list(bundle.meta.classes)
    multilabel = out.labels.ndim == 2
    if multilabel:
        probs = crossval_probs_multilabel(out.logits, out.labels, folds=folds, seed=seed)
        issues = find_multilabel_label_issues(probs, out.labels, classes)
        acc = float(((probs >= 0.5) == (out.labels > 0)).all(axis=1).mean())  # exact-set agreement
        fit = "per-class binary logistic regressions"
    else:
        probs = crossval_probs(out.logits, out.labels, len(classes), folds=folds, seed=seed)
        issues = find_label_issues(probs, out.labels, classes)
        acc = float((probs.argmax(1) == out.labels).mean())
        fit = "logistic regression"
    issues = issues.with_paths([samples.describe(int(out.indices[i])) for i in issues.indices])
    issues = dataclasses.replace(issues, indices=out.indices[issues.indices])
    method = (
        f"{folds}-fold cross-validated {fit} on the bundle's frozen {out.logits.shape[1]}-d "
        f"features of {len(out.labels)} images ({', '.join(chosen)}): each image's probabilities come from a "
        "fit that never saw its label; ranked by cleanlab (confident learning, lowest self-confidence first)"
    )
    return LabelAudit(issues, method, folds, len(out.labels), chosen, acc)
