"""Tiny models and the planted-marker task shared by the explain tests."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from imgclf.models import create_model

IMG = 32
BOX = 6


@dataclass(frozen=True)
class StandInTargetLayer:
    """Same fields as imgclf.models.TargetLayer, for layers the tests choose themselves."""

    module: nn.Module
    kind: str
    num_prefix_tokens: int


def tiny_vit(global_pool: str = "token") -> nn.Module:
    """timm's VisionTransformer straight from timm (not through the registry), 4x4 patches of 8 px."""
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    return VisionTransformer(
        img_size=IMG, patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=2, global_pool=global_pool
    ).eval()


def vit_layer(model: nn.Module) -> StandInTargetLayer:
    """The last block itself (not its norm1): CAM must still find the patch evidence there."""
    return StandInTargetLayer(model.blocks[-1], "vit", model.num_prefix_tokens)


def marker_images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Normalised noise images ``(n, 3, 32, 32)``; class 1 alone carries a bright BOX x BOX square.

    Returns images, labels ``(n,)`` and the square's top-left corner ``(n, 2)`` (meaningless for class 0).
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, IMG, IMG, generator=g) * 0.6  # background never reaches the marker's brightness
    y = torch.randint(0, 2, (n,), generator=g)
    corners = torch.randint(0, IMG - BOX + 1, (n, 2), generator=g)
    for i in torch.nonzero(y == 1).flatten().tolist():
        r, c = corners[i].tolist()
        x[i, :, r : r + BOX, c : c + BOX] = 1.0
    return (x - 0.3) / 0.2, y, corners  # normalised by the background mean (as a dataset mean would be)


@dataclass(frozen=True)
class MarkerTask:
    model: nn.Module
    accuracy: float
    images: torch.Tensor  # (N, 3, 32, 32) class-1 test images
    corners: torch.Tensor  # (N, 2)

    def box_mask(self, i: int, margin: int = 3) -> torch.Tensor:
        """(32, 32) bool mask of image i's marker, grown by ``margin`` pixels on each side."""
        r, c = self.corners[i].tolist()
        mask = torch.zeros(IMG, IMG, dtype=torch.bool)
        mask[max(0, r - margin) : r + BOX + margin, max(0, c - margin) : c + BOX + margin] = True
        return mask


@pytest.fixture(scope="session")
def marker_task() -> MarkerTask:
    """The registry's test_cnn trained (a second or two) to tell images with the marker from images without."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convolutions: one thread is faster than two fighting over shared cores
    try:
        torch.manual_seed(0)
        model = create_model("test_cnn", num_classes=2)
        x, y, _ = marker_images(512, seed=1)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        g = torch.Generator().manual_seed(2)
        for _ in range(80):
            idx = torch.randint(0, len(x), (32,), generator=g)
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    model.eval()
    xt, yt, ct = marker_images(128, seed=3)
    with torch.no_grad():
        accuracy = float((model(xt).argmax(1) == yt).float().mean())
    ones = torch.nonzero(yt == 1).flatten()[:16]
    return MarkerTask(model=model, accuracy=accuracy, images=xt[ones], corners=ct[ones])


@pytest.fixture()
def tiny_cnn() -> nn.Module:
    torch.manual_seed(0)
    return create_model("test_cnn", num_classes=3).eval()


@pytest.fixture()
def images() -> torch.Tensor:
    return torch.randn(2, 3, IMG, IMG, generator=torch.Generator().manual_seed(0))  # (2, 3, 32, 32)
