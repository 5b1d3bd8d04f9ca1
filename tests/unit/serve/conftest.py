"""Fixtures for the server tests: an untrained test_cnn bundle (instant), image bytes, a ready TestClient."""

from __future__ import annotations

import io
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from imgclf.bundle import BundleMeta, save_bundle, update_meta
from imgclf.config import DataConfig
from imgclf.models import create_model

CLASSES = ("blue", "green", "red")


@pytest.fixture(scope="session")
def base_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = create_model("test_cnn", len(CLASSES))
    prep = DataConfig(input_size=32, resize_size=32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    meta = BundleMeta("test_cnn", CLASSES, prep, temperature=1.5, metrics={"test": {"acc": 0.9}})
    return save_bundle(tmp_path_factory.mktemp("serve") / "bundle", model, meta)


@pytest.fixture
def make_bundle(base_bundle: Path, tmp_path: Path) -> Callable[..., Path]:
    """A copy of the base bundle with some metadata changed (e.g. ``rejection={...}``)."""

    def make(**changes: Any) -> Path:
        target = tmp_path / f"bundle{len(list(tmp_path.glob('bundle*')))}"
        shutil.copytree(base_bundle, target)
        if changes:
            update_meta(target, **changes)
        return target

    return make


def png_bytes(seed: int = 0, size: tuple[int, int] = (40, 32), mode: str = "RGB", fmt: str = "PNG") -> bytes:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 255, size=(size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr, "RGB").convert(mode).save(buf, format=fmt)
    return buf.getvalue()


def wait_ready(client: Any, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if client.get("/readyz").status_code == 200:
            return
        time.sleep(0.02)
    raise AssertionError("server never became ready")


@contextmanager
def client_for(app: Any, ready: bool = True) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    with TestClient(app, base_url="http://127.0.0.1") as client:  # a Host the server accepts
        if ready:
            wait_ready(client)
        yield client
