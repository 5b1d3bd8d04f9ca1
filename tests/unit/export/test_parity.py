"""The parity check: numbers that match their definition, and a tampered export that it catches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from torch import nn

from imgclf.errors import DataError
from imgclf.export import Parity, compare_logits, parity_check

from .conftest import stripes


def test_compare_logits_matches_definition() -> None:
    ref = np.array([[2.0, 1.0, 0.0], [0.0, 1.0, 3.0], [1.0, 0.0, 0.0], [0.0, 2.0, 1.0]], dtype=np.float32)
    cand = ref.copy()
    cand[0, 1] = 2.5  # flips image 0 to class 1, diff 1.5
    cand[2, 2] = 0.25  # diff 0.25, top-1 unchanged
    p = compare_logits(ref, cand, atol=1e-3, min_agreement=0.5)
    assert p.max_abs_logit_diff == pytest.approx(1.5)
    assert p.top1_agreement == pytest.approx(0.75) and p.n == 4
    assert not p.passed  # agreement is fine but the difference is not
    assert compare_logits(ref, ref, atol=0.0, min_agreement=1.0).passed
    assert compare_logits(ref, cand, atol=2.0, min_agreement=0.75).passed
    assert not compare_logits(ref, cand, atol=2.0, min_agreement=0.76).passed
    assert p.to_dict()["top1_agreement"] == pytest.approx(0.75)


def test_clean_export_passes(trained_cnn: nn.Module, exported: Path) -> None:
    x, _ = stripes(12, seed=20)
    p = parity_check(trained_cnn, exported, x)
    assert isinstance(p, Parity) and p.passed and p.n == 12
    assert p.max_abs_logit_diff < 1e-4 and p.top1_agreement == 1.0


def test_tampered_initializer_is_caught(trained_cnn: nn.Module, exported: Path, tmp_path: Path) -> None:
    proto = onnx.load(str(exported))
    convs = [t for t in proto.graph.initializer if len(t.dims) == 4]  # conv weights (O, I, kh, kw)
    weight = numpy_helper.to_array(convs[-1])
    convs[-1].CopyFrom(numpy_helper.from_array(-weight, convs[-1].name))  # a silently corrupted weight
    broken = tmp_path / "broken.onnx"
    onnx.save(proto, str(broken))
    x, _ = stripes(16, seed=21)
    p = parity_check(trained_cnn, broken, x)
    assert not p.passed
    assert p.max_abs_logit_diff > 0.1
    assert "max |logit difference|" in p.describe() and "16 images" in p.describe()


def test_parity_rejects_non_image_input(trained_cnn: nn.Module, exported: Path) -> None:
    with pytest.raises(DataError, match=r"\(N, 3, H, W\)"):
        parity_check(trained_cnn, exported, np.zeros((4, 32, 32), dtype=np.float32))
