"""Captum-backed methods: batching does not change results, superpixels follow image edges."""

from __future__ import annotations

import pytest
import torch

from imgclf.explain import explain
from imgclf.explain._perturb import superpixel_mask

from .conftest import IMG


@pytest.mark.parametrize(("method", "options"), [("integrated-gradients", {"steps": 8}), ("occlusion", {"window": 8})])
def test_batch_size_only_changes_memory_not_maps(tiny_cnn, method: str, options: dict) -> None:
    images = torch.randn(3, 3, IMG, IMG, generator=torch.Generator().manual_seed(5))
    small = explain(tiny_cnn, images, method=method, batch_size=2, **options)
    large = explain(tiny_cnn, images, method=method, batch_size=64, **options)
    assert torch.allclose(small.maps, large.maps, atol=1e-5)


def test_slic_superpixels_follow_colour_edges() -> None:
    image = torch.zeros(3, IMG, IMG)
    image[0, :16, :16] = 1.0  # red, green, blue and black quadrants
    image[1, :16, 16:] = 1.0
    image[2, 16:, :16] = 1.0
    labels = superpixel_mask(image, segments=16, method="slic")
    assert labels.shape == (IMG, IMG)
    assert int(labels.min()) == 0 and labels.unique().numel() == int(labels.max()) + 1  # 0..K-1, as Captum needs
    quadrant = (torch.arange(IMG)[:, None] >= 16).long() * 2 + (torch.arange(IMG)[None, :] >= 16).long()
    for region in labels.unique():
        assert quadrant[labels == region].unique().numel() == 1  # no superpixel straddles an edge


def test_noise_images_fall_back_to_a_grid() -> None:
    # SLIC merges pure noise into one or two blobs, which would leave LIME a single feature.
    noise = torch.rand(3, IMG, IMG, generator=torch.Generator().manual_seed(0))
    labels = superpixel_mask(noise, segments=16, method="slic")
    assert torch.equal(labels, superpixel_mask(noise, segments=16, method="grid"))
    assert labels.unique().numel() == 16  # 4 x 4 cells of 8 px
    assert labels[0, 0] != labels[0, 8] and labels[0, 0] == labels[7, 7]


def test_lime_with_slic_gives_piecewise_constant_maps(tiny_cnn) -> None:
    image = torch.zeros(1, 3, IMG, IMG)
    image[0, 0, :, :16] = 2.0
    image[0, 1, 16:, :] = -2.0
    att = explain(tiny_cnn, image, method="lime", samples=24, segments=16)
    labels = superpixel_mask(image[0], segments=16)
    for region in labels.unique():
        assert att.maps[0][labels == region].unique().numel() == 1
