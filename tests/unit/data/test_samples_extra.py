from __future__ import annotations

import numpy as np
import pytest

from imgclf.data import SampleList


def test_relabel_and_concat_keep_storage() -> None:
    arr = np.arange(4 * 8 * 8, dtype=np.uint8).reshape(4, 8, 8)
    base = SampleList.from_arrays(arr, [0, 1, 0, 1], name="toy")
    a, b = base.subset([0, 1]), base.subset([3])
    both = SampleList.concat([a, b]).relabel([1, 0])
    assert both.labels == [1, 0, 0] and both.describe(2) == "toy[3]"
    assert np.array_equal(np.asarray(both[2][0])[..., 0], arr[3])
    files = SampleList.concat([SampleList.from_paths(["x.png"], [0]), SampleList.from_paths(["y.png"], [1])])
    assert files.paths == ["x.png", "y.png"] and files.relabel([5, 6]).labels == [5, 6]
    with pytest.raises(ValueError, match="concat"):
        SampleList.concat([a, SampleList.from_paths(["x.png"], [0])])


def test_kfold_folds_are_disjoint_and_cover_train_plus_val() -> None:
    from imgclf.data import kfold, load_source
    from imgclf.errors import DataError

    splits = load_source("digits", seed=0)
    pool = len(splits.train) + len(splits.val)
    vals = [kfold(splits, 4, f, seed=1) for f in range(4)]
    seen = [v.val.describe(i) for v in vals for i in range(len(v.val))]
    assert len(seen) == len(set(seen)) == pool
    assert all(len(v.train) + len(v.val) == pool and v.test is splits.test for v in vals)
    assert vals[0].info["folds"] == {"k": 4, "fold": 0, "seed": 1}
    with pytest.raises(DataError, match="fold"):
        kfold(splits, 4, 4, seed=0)
