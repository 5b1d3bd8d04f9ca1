"""Deletion / insertion curves: endpoints, AUCs, and Grad-CAM beating a random map on the marker task."""

from __future__ import annotations

import json

import pytest
import torch

from imgclf.errors import ConfigError, DataError
from imgclf.explain import deletion_insertion, explain

from .conftest import IMG, MarkerTask


def test_gradcam_deletes_the_evidence_faster_than_a_random_map(marker_task: MarkerTask) -> None:
    model, images = marker_task.model, marker_task.images
    att = explain(model, images, method="gradcam")
    cam = deletion_insertion(model, images, att, steps=20)
    noise = torch.rand(len(images), IMG, IMG, generator=torch.Generator().manual_seed(0))
    rand = deletion_insertion(model, images, noise, target=att.targets, steps=20)
    assert cam.targets == rand.targets == (1,) * len(images)
    assert cam.mean_deletion_auc < 0.5 * rand.mean_deletion_auc
    assert sum(c < r for c, r in zip(cam.deletion_auc, rand.deletion_auc, strict=True)) >= 0.9 * len(images)


def test_curve_endpoints_are_the_clean_and_baseline_probabilities(marker_task: MarkerTask) -> None:
    model, images = marker_task.model, marker_task.images[:3]
    maps = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(1))  # coarse maps are upsampled
    f = deletion_insertion(model, images, maps, target=1, steps=4, insertion_baseline="mean")
    with torch.no_grad():
        clean = model(images).softmax(1)[:, 1]
        blank = model(torch.zeros_like(images)).softmax(1)[:, 1]
    assert f.fractions == (0.0, 0.25, 0.5, 0.75, 1.0)
    for i in range(3):
        assert f.deletion_curves[i][0] == pytest.approx(float(clean[i]), abs=1e-5)
        assert f.deletion_curves[i][-1] == pytest.approx(float(blank[i]), abs=1e-5)
        assert f.insertion_curves[i][0] == pytest.approx(float(blank[i]), abs=1e-5)
        assert f.insertion_curves[i][-1] == pytest.approx(float(clean[i]), abs=1e-5)
        expected = float(torch.trapezoid(torch.tensor(f.deletion_curves[i]), torch.tensor(f.fractions)))
        assert f.deletion_auc[i] == pytest.approx(expected)
    assert all(0 <= a <= 1 for a in f.deletion_auc + f.insertion_auc)


def test_blur_baseline_differs_from_mean(marker_task: MarkerTask) -> None:
    model, images = marker_task.model, marker_task.images[:2]
    maps = torch.rand(2, IMG, IMG, generator=torch.Generator().manual_seed(2))
    mean = deletion_insertion(model, images, maps, target=1, steps=2, deletion_baseline="mean")
    blur = deletion_insertion(model, images, maps, target=1, steps=2, deletion_baseline="blur")
    assert mean.deletion_curves[0][-1] != pytest.approx(blur.deletion_curves[0][-1])


def test_to_dict_and_errors(marker_task: MarkerTask) -> None:
    model, images = marker_task.model, marker_task.images[:2]
    f = deletion_insertion(model, images, torch.rand(2, IMG, IMG), steps=3)
    d = f.to_dict()
    json.dumps(d)
    assert d["mean_deletion_auc"] == pytest.approx(sum(f.deletion_auc) / 2)
    assert len(d["deletion_curves"][0]) == 4
    assert "fractions" not in f.to_dict(include_curves=False)
    with pytest.raises(ConfigError, match="steps"):
        deletion_insertion(model, images, torch.rand(2, IMG, IMG), steps=0)
    with pytest.raises(DataError, match="2 images"):
        deletion_insertion(model, images, torch.rand(3, IMG, IMG))
    with pytest.raises(ConfigError, match="baseline"):
        deletion_insertion(model, images, torch.rand(2, IMG, IMG), deletion_baseline="black")
