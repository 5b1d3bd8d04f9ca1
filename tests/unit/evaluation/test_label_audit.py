"""Out-of-fold probabilities for label checks: a flipped row is judged by a model that never saw its label."""

from __future__ import annotations

import numpy as np
import pytest

from imgclf.errors import DataError
from imgclf.evaluation import crossval_probs, find_label_issues


def _blobs(n: int = 300, c: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    centres = rng.normal(0, 3, (c, 8))
    return centres[y] + rng.normal(0, 1.0, (n, 8)), y


def test_out_of_fold_probabilities_expose_flips_that_an_in_sample_fit_memorises() -> None:
    from sklearn.linear_model import LogisticRegression

    x, y = _blobs()
    x = np.c_[x, np.random.default_rng(1).normal(size=(len(x), 60))]  # noise features: room to memorise
    noisy = y.copy()
    flipped = np.arange(0, 300, 20)  # 15 flips
    noisy[flipped] = (y[flipped] + 1) % 3
    oof = crossval_probs(x, noisy, 3, folds=5)
    assert oof.shape == (300, 3) and np.allclose(oof.sum(1), 1)
    in_sample = LogisticRegression(C=100, max_iter=2000).fit(x, noisy).predict_proba(x)
    top = set(find_label_issues(oof, noisy).indices[:15].tolist())
    assert len(top & set(flipped.tolist())) >= 13  # out of fold: the flips come first
    assert in_sample[flipped, noisy[flipped]].mean() > 0.9  # in sample: the flipped labels look right
    assert oof[flipped, noisy[flipped]].mean() < 0.2


def test_too_few_images_per_class_is_an_error() -> None:
    with pytest.raises(DataError, match="at least 2"):
        crossval_probs(np.zeros((3, 2)), [0, 0, 1], 2)
