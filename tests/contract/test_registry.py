"""The model contract, checked over every builtin and a sample of timm and torchvision models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from imgclf.config import DataConfig
from imgclf.errors import ModelError
from imgclf.models import (
    create_model,
    freeze_backbone,
    list_models,
    model_data_config,
    register_model,
    split_parameters,
    target_layer,
)

BUILTINS = list_models(source="builtin")
OTHERS = ["test_resnet", "timm/test_vit", "test_efficientnet", "test_convnext", "tv/resnet18"]
MODELS = BUILTINS + OTHERS
BATCH, CLASSES = 2, 3
# Builtins run at 40 px (not their native 32) to prove adaptive pooling; timm's test_vit has a fixed 160 px
# position embedding, so it runs at its own size.
SIZES = {"timm/test_vit": 160, "open_clip_image": 32}  # open_clip towers are built for one image size


def _size(name: str) -> int:
    return SIZES.get(name, 40 if name in BUILTINS else 64)


def _batch(name: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn(BATCH, 3, _size(name), _size(name), generator=g)  # (B, 3, H, W)



@pytest.fixture(params=MODELS)
def name(request: pytest.FixtureRequest) -> str:
    torch.manual_seed(0)
    return request.param


def test_every_builtin_is_registered_on_import() -> None:
    assert {"lenet5", "alexnet_small", "vgg_small", "resnet20_cifar", "resnet56_cifar", "test_cnn", "test_vit"} <= set(
        BUILTINS
    )


def test_forward_and_decomposition(name: str) -> None:
    model = create_model(name, CLASSES).eval()
    x = _batch(name)
    with torch.no_grad():
        logits = model(x)
        feats = model.forward_features(x)
        recomposed = model.forward_head(feats)
        emb = model.forward_head(feats, pre_logits=True)
    assert logits.shape == (BATCH, CLASSES)
    assert model.num_classes == CLASSES
    assert torch.allclose(logits, recomposed, atol=1e-5)
    assert isinstance(model.num_features, int)
    assert emb.shape == (BATCH, model.num_features)


def test_reset_classifier_changes_output_width(name: str) -> None:
    model = create_model(name, CLASSES).eval()
    model.reset_classifier(5)
    with torch.no_grad():
        out = model(_batch(name))
    assert out.shape == (BATCH, 5)
    assert model.num_classes == 5
    assert isinstance(model.get_classifier(), nn.Module)


def test_data_config(name: str) -> None:
    cfg = model_data_config(create_model(name, CLASSES))
    assert isinstance(cfg, DataConfig)
    if name in BUILTINS:
        assert cfg.resize_size == cfg.input_size  # small-image nets: no border cropped


def test_target_layer_fires_during_forward(name: str) -> None:
    model = create_model(name, CLASSES).eval()
    layer = target_layer(model)
    assert any(m is layer.module for m in model.modules())
    seen: list[torch.Tensor] = []
    handle = layer.module.register_forward_hook(lambda m, i, o: seen.append(o))
    with torch.no_grad():
        model(_batch(name))
    handle.remove()
    assert seen, "the target layer's forward hook never fired"
    out = seen[-1]
    if layer.kind == "cnn":
        assert out.dim() == 4 and out.shape[0] == BATCH and out.shape[-1] > 0
    else:
        assert layer.kind == "vit"
        assert out.dim() == 3 and out.shape[0] == BATCH
        assert 0 < layer.num_prefix_tokens < out.shape[1]
    expected = "vit" if "vit" in name or name == "open_clip_image" else "cnn"  # its default tower is a ViT
    assert layer.kind == expected


def test_split_parameters_partitions_all(name: str) -> None:
    model = create_model(name, CLASSES)
    backbone, head = split_parameters(model)
    ids_b, ids_h = {id(p) for p in backbone}, {id(p) for p in head}
    assert not ids_b & ids_h
    assert ids_b | ids_h == {id(p) for p in model.parameters()}
    assert ids_h == {id(p) for p in model.get_classifier().parameters()} and ids_h


def test_backward_reaches_every_parameter(name: str) -> None:
    model = create_model(name, CLASSES).train()
    model(_batch(name)).logsumexp(dim=1).mean().backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad, f"parameters without gradient: {no_grad[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)
    # a builtin may fix some weights by design (speednet: its data-set whitening filters, BatchNorm scales at 1)
    assert all(p.grad is None for p in model.parameters() if not p.requires_grad)


def test_freeze_backbone_leaves_only_the_head_trainable(name: str) -> None:
    model = create_model(name, CLASSES).train()
    freeze_backbone(model)
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert trainable == {id(p) for p in model.get_classifier().parameters()}
    model(_batch(name)).logsumexp(dim=1).mean().backward()
    assert all(p.grad is None for p in split_parameters(model)[0])
    assert all(p.grad is not None for p in split_parameters(model)[1])


def test_duplicate_registration_raises_and_keeps_the_original() -> None:
    with pytest.raises(ModelError, match="already registered"):

        @register_model("lenet5", data_config=DataConfig(32, 32), description="impostor")
        def impostor(num_classes: int, drop_rate: float = 0.0) -> nn.Module:
            return nn.Linear(1, num_classes)

    assert create_model("lenet5", CLASSES).num_features == 84  # still the real LeNet-5


def test_unknown_name_suggests_close_matches() -> None:
    with pytest.raises(ModelError) as err:
        create_model("resnet18x", CLASSES)
    msg = str(err.value)
    assert "'resnet18'" in msg and "imgclf models --filter" in msg
    with pytest.raises(ModelError, match="tv/mobilenet_v3_large"):
        create_model("mobilenet_v3_large", CLASSES)  # torchvision names need their prefix


def test_fewer_than_two_classes_is_rejected() -> None:
    with pytest.raises(ModelError, match="num_classes"):
        create_model("test_cnn", 1)


def test_list_models_filters() -> None:
    everything = list_models()
    assert set(BUILTINS) < set(everything) and "resnet50" in everything and "tv/resnet18" in everything
    assert "timm/test_vit" in everything  # the timm model shadowed by the builtin test_vit stays reachable
    globbed = list_models("*resnet2*")
    assert "resnet20_cifar" in globbed and "resnet26" in globbed and "resnet18" not in globbed
    assert list_models("CIFAR") == ["resnet20_cifar", "resnet56_cifar"]  # plain substring, case-insensitive
    assert list_models("tv/mobilenet*") == ["tv/mobilenet_v2", "tv/mobilenet_v3_large", "tv/mobilenet_v3_small"]


# One small member of each family people reach for (#18): a fixed-size transformer must be built for the size.
FAMILIES = ["vit_tiny_patch16_224", "deit_tiny_patch16_224", "swin_tiny_patch4_window7_224", "convnext_atto",
            "efficientnet_b0", "mobilenetv3_small_100"]  # fmt: skip


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("size", [32, 64])
def test_timm_families_build_and_run_at_small_sizes(family: str, size: int) -> None:
    model = create_model(family, CLASSES, img_size=size).eval()
    with torch.no_grad():
        logits = model(torch.randn(BATCH, 3, size, size))
    assert logits.shape == (BATCH, CLASSES)


def test_a_transformer_at_a_size_its_patches_cannot_tile_is_one_clear_error() -> None:
    with pytest.raises(ModelError, match="cannot be built for 8-pixel images"):
        create_model("vit_tiny_patch16_224", CLASSES, img_size=8)  # 16-pixel patches
