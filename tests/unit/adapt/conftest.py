"""Fixtures for the adapt tests: synthetic image folders and an untrained test_cnn saved as a bundle.

Random conv features already separate the synthetic classes (distinct colours and shapes), which is all the
prototype and neighbour logic needs; these tests check the mechanics, the real-data tests the figures.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from imgclf.bundle import Bundle, BundleMeta, load_bundle, save_bundle
from imgclf.data import make_synthetic_dataset
from imgclf.models import create_model, model_data_config

CLASSES = ("red", "green", "blue", "yellow")


def make_bundle(directory: Path, seed: int = 0, classes: tuple[str, ...] = ("a", "b")) -> Bundle:
    torch.manual_seed(seed)
    model = create_model("test_cnn", len(classes)).eval()
    save_bundle(directory, model, BundleMeta("test_cnn", classes, model_data_config(model)))
    return load_bundle(directory)


@pytest.fixture(scope="session")
def backbone(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return make_bundle(tmp_path_factory.mktemp("backbone"))


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ROOT/<class>/*.png, 12 per class for 4 classes."""
    return make_synthetic_dataset(tmp_path_factory.mktemp("imgs") / "all", classes=CLASSES, per_class=12, seed=3)


@pytest.fixture(scope="session")
def support(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ROOT/<class>/*.png, 3 per class for 4 classes (a different seed from ``images``)."""
    return make_synthetic_dataset(tmp_path_factory.mktemp("sup") / "sup", classes=CLASSES, per_class=3, seed=11)
