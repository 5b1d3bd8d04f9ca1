"""Per-group metrics and the worst-group gap."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from imgclf.errors import DataError
from imgclf.metrics import group_metrics

from .conftest import random_predictions


def test_worst_group_and_gap() -> None:
    p, y = random_predictions(600, 3, seed=8)
    groups = np.array(["site-a", "site-b", "site-c"])[np.arange(600) % 3]
    pred = p.argmax(1)
    # Damage site-c: flip its predictions away from the truth.
    bad = groups == "site-c"
    p[bad] = np.roll(p[bad], 1, axis=1)
    pred = p.argmax(1)
    r = group_metrics(p, y, groups.tolist())
    assert r.worst_group == "site-c"
    by_name = {g.name: g for g in r.groups}
    assert by_name["site-c"].accuracy == pytest.approx((pred[bad] == y[bad]).mean())
    assert by_name["site-a"].macro_f1 == pytest.approx(
        f1_score(y[groups == "site-a"], pred[groups == "site-a"], average="macro")
    )
    assert by_name["site-b"].support == 200
    assert r.gap == pytest.approx(r.overall_accuracy - by_name["site-c"].accuracy) and r.gap > 0.1
    assert r.spread >= r.gap
    assert [g.name for g in r.groups][0] == "site-c"  # worst first
    assert r.to_dict()["worst_group"] == "site-c"


def test_small_groups_cannot_be_worst_and_none_rows_are_skipped() -> None:
    p = np.array([[0.9, 0.1]] * 6)
    y = np.array([0, 0, 0, 0, 1, 0])
    groups = ["big", "big", "big", "big", "tiny", None]
    r = group_metrics(p, y, groups, min_support=2)
    assert r.worst_group == "big" and {g.name for g in r.groups} == {"big", "tiny"}
    assert sum(g.support for g in r.groups) == 5
    with pytest.raises(DataError, match="one group per prediction"):
        group_metrics(p, y, ["a"])
