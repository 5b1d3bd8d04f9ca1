"""Classical baselines: features, the grid search on validation, and the skops round trip with trusted types."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from imgclf.errors import BundleError, ModelError, NotFittedError
from imgclf.models import ClassicalNet, create_model, describe_model, is_classical, list_models
from imgclf.models._classical import colorhist_features, hog_features


def _blobs(n: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    """Two classes a user can tell apart: vertical versus horizontal stripes, in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    y = np.arange(n) % 2
    stripes = (torch.arange(32) // 4 % 2).float()  # (32,)
    x = torch.rand(n, 3, 32, 32, generator=g) * 0.3
    for i, label in enumerate(y):
        x[i] += 0.7 * (stripes[None, :, None] if label else stripes[None, None, :])
    return x.clamp(0, 1), y


def test_classical_models_are_listed_and_described() -> None:
    names = list_models(source="classical")
    assert names == ["hog-svm", "hog-rf", "hog-knn", "colorhist-rf", "bovw-svm"]
    assert set(names) <= set(list_models("hog"))  | {"colorhist-rf", "bovw-svm"}
    assert describe_model("hog-svm")["source"] == "classical" and is_classical("bovw-svm")
    with pytest.raises(ModelError, match="no weights"):
        create_model("hog-svm", 3, weights="pretrained")


def test_features_describe_the_image() -> None:
    img = np.zeros((32, 32, 3))
    img[:, :16] = 1.0  # a vertical edge
    h = hog_features(img)
    assert h.shape == (7 * 7 * 4 * 9,) and h.max() > 0
    red = np.zeros((32, 32, 3))
    red[..., 0] = 1.0
    assert not np.allclose(colorhist_features(red), colorhist_features(np.ones((32, 32, 3))))


def test_grid_search_picks_on_val_and_survives_a_state_dict_round_trip() -> None:
    net = create_model("hog-knn", 2)
    x, y = _blobs(40, 0)
    xv, yv = _blobs(20, 1)
    with pytest.raises(NotFittedError, match="imgclf train"):
        net.estimator()
    search = net.fit_head((net.forward_features(x).numpy(), y), (net.forward_features(xv).numpy(), yv))
    assert [g["params"]["n_neighbors"] for g in search["grid"]] == [1, 5, 15]
    assert search["val_acc"] == max(g["val_acc"] for g in search["grid"]) >= 0.9
    logits = net(xv)
    assert (logits.argmax(1).numpy() == yv).mean() >= 0.9
    fresh = create_model("hog-knn", 2)
    fresh.load_state_dict({k: v.clone() for k, v in net.state_dict().items()})
    torch.testing.assert_close(fresh(xv), logits)


def test_a_classifier_of_an_untrusted_type_is_refused() -> None:
    from sklearn.linear_model import LogisticRegression
    from skops.io import dumps

    x, y = _blobs(20, 0)
    net = ClassicalNet("hog-svm", 2)
    feats = net.forward_features(x).numpy()
    net.head_blob = torch.frombuffer(bytearray(dumps(LogisticRegression().fit(feats, y))), dtype=torch.uint8)
    with pytest.raises(BundleError, match="does not write or trust"):
        net(x)


def test_a_bundle_fitted_on_other_features_is_refused_with_a_retrain_hint() -> None:
    net = create_model("hog-knn", 2)
    x, y = _blobs(20, 0)
    net.fit_head((net.forward_features(x).numpy(), y), None)
    old = {k: v.clone() for k, v in net.state_dict().items() if k != "features_version"}  # saved before versioning
    with pytest.raises(BundleError, match="re-train it with `imgclf train DATA --model hog-knn`"):
        create_model("hog-knn", 2).load_state_dict(old)
    create_model("hog-knn", 2).load_state_dict(net.state_dict())  # the same version loads
