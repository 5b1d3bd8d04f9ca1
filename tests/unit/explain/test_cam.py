"""Grad-CAM / Grad-CAM++: agreement with Captum, and the planted-marker test of issue 5."""

from __future__ import annotations

import pytest
import torch

from imgclf.explain import explain, normalize_maps
from imgclf.models import target_layer

from .conftest import IMG, MarkerTask


def test_gradcam_matches_captum_layergradcam(marker_task: MarkerTask) -> None:
    from captum.attr import LayerAttribution, LayerGradCam

    model, images = marker_task.model, marker_task.images[:4]
    att = explain(model, images, method="gradcam", target=1)
    layer = target_layer(model).module
    assert att.layer == next(name for name, m in model.named_modules() if m is layer)
    raw = LayerGradCam(model, layer).attribute(images, target=1, relu_attributions=True)  # (B, 1, h, w)
    theirs = normalize_maps(LayerAttribution.interpolate(raw, (IMG, IMG), "bilinear")[:, 0].detach())
    assert torch.allclose(att.maps, theirs, atol=1e-5)


def test_marker_task_is_learned(marker_task: MarkerTask) -> None:
    assert marker_task.accuracy >= 0.95


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_cam_puts_most_mass_on_the_planted_marker(marker_task: MarkerTask, method: str) -> None:
    att = explain(marker_task.model, marker_task.images, method=method)
    assert set(att.predicted) == {1}
    shares, hits = [], []
    for i, heat in enumerate(att.maps):
        box = marker_task.box_mask(i, margin=3)  # 12x12 of 32x32: 14% of the image
        shares.append(float(heat[box].sum() / heat.sum()))
        hits.append(bool(box.flatten()[heat.argmax()]))
    assert min(shares) > 0.5, shares
    assert sum(shares) / len(shares) > 0.7, shares
    assert all(hits)


def test_cam_of_a_marker_free_class_avoids_the_marker(marker_task: MarkerTask) -> None:
    # Explaining class 0 ("no marker") on marker images: the marker is evidence against, so CAM looks elsewhere.
    att = explain(marker_task.model, marker_task.images, method="gradcam", target=0)
    shares = [float(h[marker_task.box_mask(i)].sum() / h.sum().clamp_min(1e-12)) for i, h in enumerate(att.maps)]
    assert sum(shares) / len(shares) < 0.5
