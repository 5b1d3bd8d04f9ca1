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
