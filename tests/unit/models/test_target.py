"""Automatic target layers: the right module, found without touching the model's state."""

from __future__ import annotations

import torch
from torch import nn

from imgclf.models import create_model, target_layer


def test_cifar_resnet_targets_the_last_block() -> None:
    model = create_model("resnet20_cifar", 10)
    layer = target_layer(model)
    assert layer.module is model.features.layer3[-1] and layer.kind == "cnn"


def test_sequential_ending_in_an_activation_is_targeted_whole() -> None:
    model = create_model("test_cnn", 3)
    assert target_layer(model).module is model.features  # not the in-place ReLU inside it


def test_timm_and_torchvision_cnns() -> None:
    convnext = create_model("test_convnext", 3)
    assert target_layer(convnext).module is convnext.stages[-1]
    tv = create_model("tv/resnet18", 3)
    assert target_layer(tv).module is tv.model.layer4[-1]


def test_vit_targets_last_norm1_with_prefix_tokens() -> None:
    model = create_model("test_vit", 3)
    layer = target_layer(model)
    assert layer.module is model.blocks[-1].norm1
    assert (layer.kind, layer.num_prefix_tokens) == ("vit", 1)
    assert layer.to_dict() == {"module": "LayerNorm", "kind": "vit", "num_prefix_tokens": 1}


def test_plain_module_without_forward_features() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    assert target_layer(model).module is model[1]  # last module with a spatial map


def test_probe_leaves_mode_statistics_and_rng_alone() -> None:
    model = create_model("resnet20_cifar", 10).train()
    bn = model.features.stem[1]
    stats = bn.running_mean.clone(), int(bn.num_batches_tracked)
    rng = torch.get_rng_state()
    target_layer(model)
    assert model.training and all(m.training for m in model.modules())
    assert torch.equal(bn.running_mean, stats[0]) and int(bn.num_batches_tracked) == stats[1]
    assert torch.equal(torch.get_rng_state(), rng)
    assert not any(m._forward_hooks for m in model.modules())
