"""The predictor: calibrated probabilities as the Classifier computes them, OOD scores, rejection, features."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

import imgclf
from imgclf import robustness
from imgclf.errors import BundleError
from imgclf.metrics import apply_temperature
from imgclf.monitor import project_features, reference_stats
from imgclf.serve import Predictor

from .conftest import png_bytes


def _images(n: int) -> list[Image.Image]:
    return [Image.open(io.BytesIO(png_bytes(i, (36 + i, 30)))).convert("RGB") for i in range(n)]


def test_probabilities_are_the_classifiers_calibrated_ones(base_bundle) -> None:
    clf = imgclf.load(base_bundle)
    pred = Predictor(clf, top_k=2)
    images = _images(5)
    results = pred([pred.preprocess(im) for im in images])
    probs = apply_temperature(clf.predict_logits(images)[1], 1.5)  # the bundle's temperature
    for res, row in zip(results, probs):
        order = np.argsort(-row)
        assert [lab for lab, _ in res.topk] == [clf.classes[j] for j in order[:2]]
        assert [p for _, p in res.topk] == pytest.approx(row[order[:2]].tolist(), abs=1e-6)
        assert res.class_index == order[0] and res.confidence == pytest.approx(row.max(), abs=1e-6)
        assert res.ood_score == pytest.approx(row.max(), abs=1e-5)  # msp on calibrated probabilities
        assert not res.unknown and res.features is None


@pytest.mark.parametrize("score", ["msp", "max_logit", "energy"])
def test_rejection_uses_the_bundles_score_and_threshold(make_bundle, score: str) -> None:
    images = _images(6)
    clf = imgclf.load(make_bundle())
    logits = torch.from_numpy(clf.predict_logits(images)[1])
    expected = {"msp": robustness.msp(logits, 1.5), "max_logit": robustness.max_logit(logits),
                "energy": robustness.energy(logits)}[score].numpy()  # fmt: skip
    threshold = float(np.median(expected))
    pred = Predictor(imgclf.load(make_bundle(rejection={"score": score, "threshold": threshold})))
    results = pred([pred.preprocess(im) for im in images])
    assert [r.ood_score for r in results] == pytest.approx(expected.tolist(), abs=1e-4)
    assert [r.unknown for r in results] == (expected < threshold).tolist()
    assert 0 < sum(r.unknown for r in results) < 6
    off = Predictor(imgclf.load(make_bundle(rejection={"score": score, "threshold": threshold})), reject=False)
    assert not any(r.unknown for r in off([off.preprocess(im) for im in images]))


def test_unknown_rejection_score_is_refused_at_startup(make_bundle) -> None:
    bundle = make_bundle(rejection={"score": "mahalanobis", "threshold": 1.0})
    with pytest.raises(BundleError, match="mahalanobis.*--no-reject"):
        Predictor(imgclf.load(bundle))
    assert Predictor(imgclf.load(bundle), reject=False).threshold is None


def test_features_are_projected_with_the_bundles_reference(make_bundle) -> None:
    clf = imgclf.load(make_bundle())
    images = _images(24)
    probs = apply_temperature(clf.predict_logits(images)[1], 1.5)
    ref = reference_stats(probs, clf.embed(images), max_samples=10)
    pred = Predictor(imgclf.load(make_bundle(extra={"monitor": ref})))
    results = pred([pred.preprocess(im) for im in images[:4]])
    expected = project_features(ref, clf.embed(images[:4]))
    assert np.allclose([r.features for r in results], expected, rtol=1e-3, atol=1e-4)


def test_an_export_engine_gives_the_same_answers(base_bundle) -> None:
    images = _images(6)
    eager, fast = Predictor(imgclf.load(base_bundle)), Predictor(imgclf.load(base_bundle, engine="torch-fast"))
    assert fast.engine_name == "torch-fast" and eager.engine_name == "torch"
    a = eager([eager.preprocess(im) for im in images])
    b = fast([fast.preprocess(im) for im in images])
    for x, y in zip(a, b):  # torch-fast may run in bf16 on CPUs that have it
        assert dict(y.topk) == pytest.approx(dict(x.topk), abs=0.03)


def test_multilabel_and_hierarchical_answers_match_the_classifier(make_bundle, base_bundle) -> None:
    """The server decodes with the bundle's task, so its answers are the CLI's / API's, field for field."""
    import json

    from fastapi.testclient import TestClient

    from imgclf.bundle import read_meta
    from imgclf.serve import create_app

    classes = read_meta(base_bundle).classes
    ml = make_bundle(task={"kind": "multilabel", "thresholds": [0.45] * len(classes)}, temperature=None)
    tree = {"children": {"group_a": list(classes[:2]), "group_b": list(classes[2:])}, "leaves": list(classes)}
    hier = make_bundle(task={"kind": "hierarchical", "hierarchy": tree, "backoff_threshold": 0.9})
    blobs = [png_bytes(i, (32, 32)) for i in range(4)]
    for bundle in (ml, hier):
        clf = imgclf.load(bundle)
        expected = [p.to_dict() for p in clf.predict([Image.open(io.BytesIO(b)) for b in blobs], top_k=2)]
        with TestClient(create_app(bundle), base_url="http://127.0.0.1") as client:
            res = client.post("/v1/predict", files=[("files", (f"{i}.png", b, "image/png"))
                                                    for i, b in enumerate(blobs)])  # fmt: skip
        assert res.status_code == 200, res.text
        for got, want in zip(res.json()["predictions"], expected):
            want.pop("path")
            for key, value in want.items():
                if key == "topk":
                    continue  # the server's top-k length is its own setting
                assert json.dumps(got[key], sort_keys=True) == json.dumps(value, sort_keys=True), key
        if bundle == ml:
            first = res.json()["predictions"][0]
            assert isinstance(first["labels"], list) and set(first["scores"]) == set(classes)
        else:
            assert all(p["ancestors"][0] == "root" and p["leaf"] in classes for p in res.json()["predictions"])


def test_a_feature_rule_travels_in_the_bundle_and_predict_and_serve_apply_it(make_bundle, tmp_path) -> None:
    """Issue 16: a kNN rule's statistics in rejection.safetensors; predict and the server score the pooled
    features of their own forward pass and answer unknown, with the reason, exactly where the rule says."""
    from dataclasses import replace

    from imgclf.bundle import save_bundle
    from imgclf.tasks import fit_rejection, fit_rejection_stats, rejection_scores

    clf = imgclf.load(make_bundle())
    images = _images(12)
    logits, feats = clf.predict_logits(images)[1], clf.embed(images)
    stats = fit_rejection_stats(feats[:8], logits[:8], logits[:8].argmax(1), "knn", k=2)
    rule = fit_rejection(logits, score="knn", features=feats, stats=stats, target_acceptance=0.5)
    bundle = save_bundle(tmp_path / "knn", clf.model_, replace(clf.meta_, rejection=rule), stats)
    loaded = imgclf.load(bundle)
    assert set(loaded.bundle_.rejection_stats) == {"bank", "k"} and loaded.meta_.rejection["file"]
    expected = rejection_scores(rule, logits, features=feats, stats=stats)
    unknown = (expected < rule["threshold"]).tolist()
    assert 0 < sum(unknown) < 12
    preds = loaded.predict(images)
    assert [p.ood_score for p in preds] == pytest.approx(expected.tolist(), abs=1e-5)
    assert [p.label == "unknown" for p in preds] == unknown
    assert all("knn score" in p.reason for p in preds if p.label == "unknown")
    pred = Predictor(loaded)
    served = pred([pred.preprocess(im) for im in images])
    assert [r.unknown for r in served] == unknown and [r.ood_score for r in served] == pytest.approx(expected.tolist())
    (bundle / "rejection.safetensors").write_bytes(b"changed")
    with pytest.raises(BundleError, match="sha256"):
        imgclf.load(bundle)
