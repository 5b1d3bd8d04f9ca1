"""Pretraining's parts: config checks, momentum schedule, views, the collapse measures."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from rich.console import Console

from imgclf.config import DataConfig
from imgclf.errors import ConfigError
from imgclf.models import create_model
from imgclf.pretrain import (
    CollapseCheck,
    PretrainConfig,
    build_method,
    check_config,
    embedding_std,
    knn_accuracy,
    local_crop_size,
    momentum_at,
    view_transform,
)

pytest.importorskip("lightly")


def test_config_refuses_unknown_method_with_a_suggestion():
    with pytest.raises(ConfigError, match="Did you mean 'byol'"):
        PretrainConfig(source="x", method="byl")


def test_config_refuses_a_batch_of_one():
    with pytest.raises(ConfigError, match="at least 2"):
        PretrainConfig(source="x", batch_size=1)


@pytest.mark.parametrize("model", ["ensemble", "hog_svm"])
def test_models_without_a_trainable_backbone_fail_early_with_one_line(model):
    from imgclf.models import is_classical, list_models

    if model == "hog_svm":
        model = next(n for n in list_models(source="classical") if is_classical(n))
    with pytest.raises(ConfigError) as info:
        check_config(PretrainConfig(source="x", method="dino", model=model))
    assert "\n" not in str(info.value) and model in str(info.value)


def test_momentum_rises_from_base_to_one():
    values = [momentum_at(0.99, p) for p in np.linspace(0, 1, 11)]
    assert values[0] == pytest.approx(0.99) and values[-1] == pytest.approx(1.0)
    assert all(a <= b for a, b in zip(values, values[1:]))


@pytest.mark.parametrize("method", ["simclr", "byol", "dino"])
def test_views_are_two_normalised_crops_fixed_by_the_torch_seed(method):
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8))
    tf = view_transform(method, DataConfig(input_size=32, resize_size=32))
    np_before = np.random.get_state()[1].copy()
    torch.manual_seed(7)
    a = tf(image)
    torch.manual_seed(7)
    b = tf(image)
    assert a.shape == (2, 3, 32, 32)
    assert torch.equal(a, b)  # same item seed, same views: what exact resume relies on
    assert not torch.equal(a[0], a[1])  # two different augmentations
    assert np.array_equal(np.random.get_state()[1], np_before)  # the global NumPy state is left alone


def test_dino_multicrop_views_pack_global_and_local_crops_and_the_student_sees_them_all():
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8))
    pre = DataConfig(input_size=32, resize_size=32)
    tf = view_transform("dino", pre, local_views=3)
    torch.manual_seed(7)
    packed = tf(image)
    torch.manual_seed(7)
    assert torch.equal(packed, tf(image))  # seeded: exact resume holds with multi-crop too
    g, s = 32, local_crop_size(32)
    assert s == 14 and packed.shape == (3 * (2 * g * g + 3 * s * s),)
    module = build_method("dino", create_model("test_cnn", 0), 32, out_dim=16, temperature=0.1, momentum=0.99,
                          epochs=2, local_views=3, global_size=g)  # fmt: skip
    batch = torch.stack([packed, packed.flip(0)])  # (2, L): what the loader's collate makes of packed views
    crops = module.crops(batch)
    assert [tuple(c.shape) for c in crops] == [(2, 3, g, g)] * 2 + [(2, 3, s, s)] * 3
    assert torch.equal(crops[0][0].reshape(-1), packed[: 3 * g * g])  # global crops first, in order
    # the loss uses the local crops: change only them and it changes; every student crop gets a gradient path
    loss = module(batch)
    other = torch.cat([batch[:, : 6 * g * g], torch.randn(2, 9 * s * s)], dim=1)
    assert torch.isfinite(loss) and not torch.allclose(loss, module(other))
    loss.backward()
    assert all(p.grad is not None for p in module.backbone.parameters())
    with pytest.raises(ValueError, match="2 global 32-px and 3 local 14-px"):
        module.crops(batch[:, :-1])


def test_local_views_are_dino_only_and_refused_in_one_line():
    with pytest.raises(ConfigError, match="multi-crop") as info:
        PretrainConfig(source="x", method="simclr", local_views=2)
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="0 or more"):
        PretrainConfig(source="x", method="dino", local_views=-1)


def test_embedding_std_is_near_zero_for_collapsed_and_near_one_over_sqrt_dim_for_spread_embeddings():
    spread = torch.randn(2000, 64)
    collapsed = torch.ones(2000, 64) + 1e-4 * torch.randn(2000, 64)
    assert embedding_std(spread) == pytest.approx(1 / 8, rel=0.1)
    assert embedding_std(collapsed) < 1e-3


def test_knn_accuracy_separates_clusters_and_not_noise():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 16, generator=g) * 5
    labels = torch.arange(300) % 3
    bank = centres[labels] + torch.randn(300, 16, generator=g)
    queries = centres[labels[:60]] + torch.randn(60, 16, generator=g)
    assert knn_accuracy(bank, labels, queries, labels[:60], 3, k=10) == 1.0
    noise = torch.randn(60, 16, generator=g)
    assert knn_accuracy(bank, labels, noise, labels[:60], 3, k=10) < 0.7


def test_collapse_check_logs_both_measures_and_warns_on_a_collapsed_backbone(tmp_path):
    from imgclf.data import SampleList
    from imgclf.engine import TrainState

    images = np.random.default_rng(0).integers(0, 255, (40, 16, 16, 3), dtype=np.uint8)
    samples = SampleList.from_arrays(images, [i % 2 for i in range(40)], name="toy")
    backbone = create_model("test_cnn", 0)
    with torch.no_grad():
        for p in backbone.parameters():
            p.zero_()  # every image -> the same embedding
    console = Console(record=True, width=200)
    check = CollapseCheck(backbone, DataConfig(input_size=16, resize_size=16), samples, samples, num_classes=2,
                          console=console)  # fmt: skip
    state = TrainState(model=backbone, raw_model=backbone, optimizer=None, scheduler=None, loss_fn=None,
                       train_loader=[], sampler=None, val_loader=None, epochs=1, batch_size=4,
                       device=torch.device("cpu"))  # fmt: skip
    metrics: dict = {"epoch": 1}
    check.on_epoch_end(state, metrics)
    assert metrics["embed_std"] < 1e-3 and "knn_acc" in metrics and 0 <= metrics["knn_acc"] <= 1
    assert "collapsing" in console.export_text()
