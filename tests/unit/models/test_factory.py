"""Name resolution, argument checks, listings and the builtin registry."""

from __future__ import annotations

import pytest
import timm
import torch
from torch import nn

from imgclf.config import DataConfig
from imgclf.errors import ModelError
from imgclf.models import (
    TorchvisionAdapter,
    check_input_size,
    create_model,
    describe_model,
    list_models,
    patch_size,
    register_model,
)


def test_timm_models_come_back_unwrapped_with_drop_rate() -> None:
    model = create_model("test_resnet", 4, drop_rate=0.25)
    assert isinstance(model, timm.models.ResNet)
    assert model.num_classes == 4 and model.drop_rate == 0.25


def test_builtins_shadow_timm_names_and_timm_prefix_reaches_them() -> None:
    assert create_model("test_vit", 3).embed_dim == 32  # the builtin
    assert create_model("timm/test_vit", 3).embed_dim == 64  # timm's own test_vit


def test_tv_prefix_builds_an_adapter() -> None:
    model = create_model("tv/shufflenet_v2_x0_5", 3)
    assert isinstance(model, TorchvisionAdapter) and model.num_classes == 3


@pytest.mark.parametrize(
    ("name", "hint"),
    [("tv/resnet1800", "'tv/resnet18'"), ("resnet20cifar", "'resnet20_cifar'"), ("timm/test_vitt", "'timm/test_vit'")],
)
def test_unknown_names_suggest(name: str, hint: str) -> None:
    with pytest.raises(ModelError, match=hint):
        create_model(name, 3)


def test_unsupported_torchvision_family_is_not_offered() -> None:
    assert "tv/squeezenet1_0" not in list_models()  # its classifier is a conv, not a Linear
    with pytest.raises(ModelError, match="unknown model 'tv/squeezenet1_0'"):
        create_model("tv/squeezenet1_0", 3)


@pytest.mark.parametrize("num_classes", [1, True, False, 2.0, -3])
def test_bad_class_counts(num_classes: object) -> None:
    with pytest.raises(ModelError, match="num_classes"):
        create_model("test_cnn", num_classes)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["test_cnn", "resnet20_cifar", "resnet18"])
def test_zero_classes_builds_the_backbone_alone(name: str) -> None:
    model = create_model(name, 0)  # an embedding model: forward gives the pooled features
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, model.num_features)


@pytest.mark.parametrize("drop_rate", [-0.1, 1.0])
def test_bad_drop_rate(drop_rate: float) -> None:
    with pytest.raises(ModelError, match="drop_rate"):
        create_model("test_cnn", 3, drop_rate=drop_rate)


def test_bad_weights_argument() -> None:
    with pytest.raises(ModelError, match="weights must be None, 'pretrained' or a path"):
        create_model("test_cnn", 3, weights=3)  # type: ignore[arg-type]
    with pytest.raises(ModelError, match="'pretrained' or a path to a .safetensors file"):
        create_model("test_cnn", 3, weights="imagenet")


def test_list_models_sources() -> None:
    tv = list_models(source="torchvision")
    assert tv and all(n.startswith("tv/") for n in tv)
    timm_names = list_models(source="timm")
    assert "resnet18" in timm_names and "test_vit" not in timm_names and "timm/test_vit" in timm_names
    classical = list_models(source="classical")
    assert len(list_models()) == len(list_models(source="builtin")) + len(classical) + len(timm_names) + len(tv)
    with pytest.raises(ModelError, match="source='keras'"):
        list_models(source="keras")


def test_every_listed_name_resolves() -> None:
    for name in list_models("*18*"):
        assert describe_model(name)["source"] in ("builtin", "classical", "timm", "torchvision")


def test_describe_model() -> None:
    builtin = describe_model("resnet56_cifar")
    assert builtin == {
        "name": "resnet56_cifar", "source": "builtin", "description": builtin["description"],
        "input_size": 32, "pretrained": False,
    }  # fmt: skip
    assert "He et al." in builtin["description"]
    t = describe_model("test_resnet")
    assert t["source"] == "timm" and t["input_size"] == 160 and t["pretrained"] is True
    tv = describe_model("tv/efficientnet_b3")  # read from the weights' metadata, nothing downloaded
    assert tv["source"] == "torchvision" and tv["input_size"] == 300
    with pytest.raises(ModelError, match="Did you mean"):
        describe_model("resnet18x")


def test_register_model_checks_its_arguments() -> None:
    with pytest.raises(ModelError, match="reserved prefix"):
        register_model("tv/mine", data_config=DataConfig(32, 32), description="x")
    with pytest.raises(ModelError, match="DataConfig"):
        register_model("mine", data_config={"input_size": 32}, description="x")  # type: ignore[arg-type]


def test_registered_builder_receives_arguments_and_data_config() -> None:
    from imgclf.models import model_data_config

    cfg = DataConfig(48, 48, "bicubic", (0.1, 0.2, 0.3), (1.0, 1.0, 1.0))
    seen = {}

    @register_model("_unit_test_net", data_config=cfg, description="registered by a unit test")
    def unit_test_net(num_classes: int, drop_rate: float = 0.0) -> nn.Module:
        seen.update(num_classes=num_classes, drop_rate=drop_rate)
        return create_model("test_cnn", num_classes, drop_rate=drop_rate)

    model = create_model("_unit_test_net", 6, drop_rate=0.1)
    assert seen == {"num_classes": 6, "drop_rate": 0.1}
    assert model_data_config(model) == cfg
    assert "_unit_test_net" in list_models("_unit_test")
    with torch.no_grad():
        assert model.eval()(torch.zeros(1, 3, 48, 48)).shape == (1, 6)


def test_a_vit_size_its_patches_do_not_tile_is_refused_with_the_nearest_sizes() -> None:
    with pytest.raises(ModelError, match="--img-size 40") as err:
        create_model("vit_tiny_patch16_224", 3, img_size=40)  # 16-pixel patches: 8 rows and columns would be lost
    assert "16-pixel patches" in str(err.value) and "use --img-size 32 or 48" in str(err.value)
    assert create_model("vit_tiny_patch16_224", 3, img_size=48).patch_embed.img_size == (48, 48)
    assert patch_size(create_model("test_vit", 3)) is None  # pads its input to whole patches: any size works


def test_a_size_too_small_for_the_kernels_is_one_error_naming_the_flag() -> None:
    model = create_model("lenet5", 3).train()
    with pytest.raises(ModelError) as err:
        check_input_size(model, "lenet5", 8)  # two 5x5 convolutions and two poolings need more than 8 pixels
    msg = str(err.value)
    assert "lenet5" in msg and "--img-size 8" in msg and "larger --img-size" in msg and "\n" not in msg
    assert model.training  # the probe leaves the mode as it was
    check_input_size(model, "lenet5", 32)
