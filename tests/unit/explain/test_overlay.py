"""Overlays and PNG figures."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from imgclf.errors import DataError
from imgclf.explain import GalleryItem, overlay, save_gallery, save_side_by_side, to_display_image


def _image(h: int = 40, w: int = 60) -> np.ndarray:
    return np.full((h, w, 3), 128, dtype=np.uint8)


def test_overlay_upsamples_and_colours_hot_regions_red() -> None:
    heat = torch.zeros(4, 6)
    heat[0, 0] = 1.0  # top-left cell hot, the rest cold
    out = overlay(_image(), heat, alpha=0.6)
    assert out.shape == (40, 60, 3) and out.dtype == np.uint8
    hot, cold = out[2, 2].astype(int), out[-3, -3].astype(int)
    assert hot[0] > hot[2] + 50  # jet: red where the map is 1
    assert cold[2] > cold[0] + 50  # blue where it is 0


def test_overlay_alpha_zero_is_the_image_and_pil_is_accepted() -> None:
    img = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    assert np.array_equal(overlay(Image.fromarray(img), np.random.rand(5, 5), alpha=0.0), img)


def test_overlay_rejects_bad_inputs() -> None:
    with pytest.raises(DataError, match="uint8"):
        overlay(np.zeros((10, 10, 3), np.float32), np.zeros((2, 2)))
    with pytest.raises(DataError, match="heatmap"):
        overlay(_image(), np.zeros((1, 2, 2)))
    with pytest.raises(DataError, match="alpha"):
        overlay(_image(), np.zeros((2, 2)), alpha=2.0)


def test_side_by_side_png(tmp_path) -> None:
    path = save_side_by_side(_image(), torch.rand(4, 4), tmp_path / "sub" / "cat.png", "gradcam: cat (0.93)")
    assert path == tmp_path / "sub" / "cat.png"
    with Image.open(path) as png:
        assert png.format == "PNG"
        assert png.width > 1.5 * png.height  # two panels side by side


def test_gallery_grid(tmp_path) -> None:
    items = [GalleryItem(_image(), torch.rand(3, 3), f"img{i}") for i in range(4)] + [(_image(), np.ones((3, 3)), "t")]
    path = save_gallery(items, tmp_path / "gallery.png", columns=2)
    with Image.open(path) as png:
        assert png.height > png.width  # 3 rows of 2
    with pytest.raises(DataError, match="no images"):
        save_gallery([], tmp_path / "empty.png")


def test_to_display_image_inverts_normalisation() -> None:
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    rgb = torch.rand(3, 8, 8)
    normalised = (rgb - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    out = to_display_image(normalised, mean, std)
    assert out.shape == (8, 8, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - (rgb.permute(1, 2, 0).numpy() * 255).round()).max() <= 1
