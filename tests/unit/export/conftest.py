"""Fixtures for the export tests: a tiny CNN trained on structured images, and its ONNX export (made once)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from imgclf.export import export_onnx
from imgclf.models import create_model

SIZE = 32
CLASSES = ("red-horizontal", "red-vertical", "blue-horizontal", "blue-vertical")


def stripes(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` normalised images ``(n, 3, 32, 32)`` and labels: stripe orientation x dominant colour, random phase,
    frequency and noise, so a tiny CNN learns it in a few dozen steps and predicts with clear margins."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 4
    coords = torch.arange(SIZE, dtype=torch.float32)
    freq = 0.4 + 0.6 * torch.rand(n, generator=g)  # (n,)
    phase = 6.28 * torch.rand(n, generator=g)  # (n,)
    wave = torch.sin(coords[None, :] * freq[:, None] + phase[:, None])  # (n, 32)
    horizontal = (labels % 2 == 0)[:, None, None]
    pattern = torch.where(horizontal, wave[:, :, None].expand(n, SIZE, SIZE), wave[:, None, :].expand(n, SIZE, SIZE))
    colour = torch.zeros(n, 3)
    colour[torch.arange(n), torch.where(labels < 2, 0, 2)] = 1.0  # red or blue
    colour[:, 1] = 0.3
    images = colour[:, :, None, None] * pattern[:, None]  # (n, 3, 32, 32)
    images = images + 0.3 * torch.randn(images.shape, generator=g)
    return images, labels



@pytest.fixture(scope="session")
def trained_cnn() -> nn.Module:
    """``test_cnn`` trained to ~100% on :func:`stripes` (eval mode); takes a second or two."""
    torch.manual_seed(0)
    model = create_model("test_cnn", num_classes=len(CLASSES))
    images, labels = stripes(512, seed=1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for step in range(60):
        idx = torch.arange(step * 32, step * 32 + 32) % len(images)
        loss = nn.functional.cross_entropy(model(images[idx]), labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="session")
def metadata() -> dict[str, str]:
    """What the lead puts in an export: class names, preprocessing and temperature as JSON strings."""
    pre = {"input_size": SIZE, "resize_size": SIZE, "mean": [0.5] * 3, "std": [0.5] * 3}
    return {"class_names": json.dumps(CLASSES), "preprocessing": json.dumps(pre), "temperature": "1.5"}


@pytest.fixture(scope="session")
def exported(trained_cnn: nn.Module, metadata: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trained CNN exported once (default exporter, parity-checked) for all tests that only read the file."""
    images, _ = stripes(16, seed=2)
    out = tmp_path_factory.mktemp("export") / "model.onnx"
    return export_onnx(trained_cnn, out, input_size=SIZE, metadata=metadata, parity_images=images)
