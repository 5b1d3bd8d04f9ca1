"""MC dropout answers: the uncertainty a prediction reports comes from the very passes that gave its probabilities."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tests.integration._helpers import cli

import imgclf
from imgclf.api import hedge
from imgclf.bundle import BundleMeta, save_bundle
from imgclf.config import DataConfig
from imgclf.models import create_model

CLASSES = ("a", "b", "c")
PASSES = 8


@pytest.fixture(scope="module")
def dropout_case(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """An untrained test_cnn with dropout 0.5 (its passes disagree) and four random images."""
    tmp = tmp_path_factory.mktemp("mc")
    torch.manual_seed(0)
    model = create_model("test_cnn", len(CLASSES), drop_rate=0.5)
    prep = DataConfig(input_size=32, resize_size=32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    meta = BundleMeta("test_cnn", CLASSES, prep, arch_args={"drop_rate": 0.5}, temperature=1.0)
    bundle = save_bundle(tmp / "bundle", model, meta)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(4):
        paths.append(tmp / f"{i}.png")
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(paths[-1])
    return bundle, paths


def _entropy(p: np.ndarray) -> np.ndarray:
    return -(p * np.log(np.clip(p, 1e-12, None))).sum(-1)


def test_mc_dropout_uncertainty_is_that_of_the_passes_behind_the_probabilities(
    dropout_case: tuple[Path, list[Path]],
) -> None:
    bundle, paths = dropout_case
    clf = hedge(imgclf.load(bundle), mc_dropout=PASSES)
    passes: list[torch.Tensor] = []  # every stochastic forward of the base model, in order
    clf.model_.model.register_forward_hook(lambda _m, _i, out: passes.append(out.detach().double()))
    preds = clf.predict(paths, raw=True, reject=False)
    assert len(passes) == PASSES  # one pass of T draws: no second run for the uncertainty
    p = torch.stack(passes).softmax(-1).numpy()  # (T, N, C)
    mean = p.mean(0)  # (N, C)
    got = np.array([[dict(pred.topk)[c] for c in CLASSES] for pred in preds])
    np.testing.assert_allclose(got, mean, atol=1e-5)  # the answer averages these passes ...
    mi = _entropy(mean) - _entropy(p).mean(0)  # ... and the uncertainty is their mutual information
    np.testing.assert_allclose([pred.uncertainty for pred in preds], mi, atol=1e-5)
    assert (mi > 1e-4).all()  # dropout 0.5: the passes do disagree
    assert imgclf.load(bundle).predict(paths)[0].uncertainty is None  # a plain model reports none


def test_cli_mc_dropout_json_reports_an_uncertainty_within_the_answers_entropy(
    dropout_case: tuple[Path, list[Path]],
) -> None:
    bundle, paths = dropout_case
    r = cli("predict", str(bundle), *map(str, paths), "--mc-dropout", str(PASSES), "--json", "--raw", "--no-reject")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert len(rows) == len(paths)
    for row in rows:
        probs = np.array([t["score"] for t in row["topk"]])
        assert probs.sum() == pytest.approx(1.0, abs=1e-4)
        # mutual information = H(mean) - mean H <= H(mean): bounded by the entropy of the returned probabilities
        assert 0 < row["uncertainty"] <= _entropy(probs) + 1e-5
