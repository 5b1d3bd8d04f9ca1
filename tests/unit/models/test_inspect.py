"""Preprocessing configs and parameter bookkeeping."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from imgclf.config import IMAGENET_MEAN, DataConfig
from imgclf.models import count_parameters, create_model, freeze_backbone, model_data_config, split_parameters


def test_timm_config_comes_from_pretrained_cfg() -> None:
    cfg = model_data_config(create_model("test_resnet", 3))
    assert cfg == DataConfig(160, 168, "bilinear", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # crop_pct 0.95


def test_timm_full_crop_keeps_resize_equal_to_input() -> None:
    cfg = model_data_config(create_model("test_mambaout", 3))  # crop_pct 1.0
    assert cfg.input_size == cfg.resize_size == 160


def test_torchvision_config_is_imagenet() -> None:
    cfg = model_data_config(create_model("tv/mobilenet_v3_small", 3))
    assert (cfg.input_size, cfg.resize_size, cfg.interpolation, cfg.mean) == (224, 256, "bilinear", IMAGENET_MEAN)


def test_builtin_config_is_the_registered_one_and_survives_copies() -> None:
    import copy

    model = create_model("lenet5", 3)
    assert model_data_config(copy.deepcopy(model)) == model_data_config(model)
    assert model_data_config(model).mean == (0.5, 0.5, 0.5)


def test_plain_modules_get_imagenet_defaults() -> None:
    assert model_data_config(nn.Linear(2, 2)) == DataConfig()


def test_count_parameters_counts_shared_weights_once() -> None:
    lin = nn.Linear(4, 4)
    assert count_parameters(nn.Sequential(lin, lin)) == 20


@pytest.mark.parametrize("name", ["resnet20_cifar", "tv/mobilenet_v3_small"])
def test_freeze_backbone_trains_only_the_head(name: str) -> None:
    model = create_model(name, 3)
    total = count_parameters(model)
    freeze_backbone(model)
    head = sum(p.numel() for p in model.get_classifier().parameters())
    assert count_parameters(model, trainable_only=True) == head < total
    assert count_parameters(model) == total
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    before = [p.detach().clone() for p in split_parameters(model)[0]]
    model.train()(torch.randn(2, 3, 32, 32)).sum().backward()
    opt.step()
    assert all(torch.equal(a, p) for a, p in zip(before, split_parameters(model)[0], strict=True))


def test_split_parameters_for_a_sequential_mlp_head() -> None:
    model = create_model("tv/mobilenet_v3_small", 3)
    backbone, head = split_parameters(model)
    assert [p.shape for p in head] == [torch.Size([3, 1024]), torch.Size([3])]
    assert any(p is model.model.classifier[0].weight for p in backbone)  # hidden MLP layer is backbone
