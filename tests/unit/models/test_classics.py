"""The builtin classics: sizes from the papers, any input above their minimum, dropout where asked."""

from __future__ import annotations

import pytest
import torch

from imgclf.models import count_parameters, create_model, list_models, model_data_config

CLASSICS = ["lenet5", "alexnet_small", "vgg_small", "resnet20_cifar", "resnet56_cifar", "test_cnn", "test_vit"]


@pytest.mark.parametrize(
    ("name", "low", "high"),
    [
        ("resnet20_cifar", 0.26e6, 0.28e6),  # He et al. 2016, table 6: 0.27M
        ("resnet56_cifar", 0.84e6, 0.86e6),  # 0.85M
        ("lenet5", 55e3, 65e3),  # LeNet-5: ~60k
        ("alexnet_small", 1e6, 5e6),
        ("vgg_small", 3e6, 6e6),
        ("test_cnn", 1e3, 50e3),
        ("test_vit", 5e3, 50e3),
    ],
)
def test_parameter_counts(name: str, low: float, high: float) -> None:
    assert low <= count_parameters(create_model(name, 10)) <= high


@pytest.mark.parametrize("name", CLASSICS)
@pytest.mark.parametrize("size", [28, 64])
def test_small_and_larger_inputs_work(name: str, size: int) -> None:
    model = create_model(name, 4).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, size, size))  # (B, 3, H, W)
    assert out.shape == (2, 4) and torch.isfinite(out).all()


def test_all_classics_are_registered() -> None:
    assert [n for n in list_models(source="builtin") if n in CLASSICS] == CLASSICS


@pytest.mark.parametrize("name", CLASSICS)
def test_default_data_config_keeps_the_whole_small_image(name: str) -> None:
    cfg = model_data_config(create_model(name, 3))
    assert cfg.input_size == cfg.resize_size == 32


def test_cifar_resnets_use_cifar_statistics() -> None:
    cfg = model_data_config(create_model("resnet20_cifar", 10))
    assert cfg.mean == pytest.approx((0.4914, 0.4822, 0.4465)) and cfg.std[0] == pytest.approx(0.247)


def test_option_a_shortcuts_have_no_parameters() -> None:
    model = create_model("resnet20_cifar", 10)
    shortcuts = [m.shortcut for m in model.modules() if hasattr(m, "shortcut")]
    assert len(shortcuts) == 9
    assert sum(p.numel() for s in shortcuts for p in s.parameters()) == 0
    feats = model.forward_features(torch.randn(2, 3, 32, 32))
    assert feats.shape == (2, 64, 8, 8)  # two stride-2 stages: 32 -> 8


@pytest.mark.parametrize("name", ["lenet5", "resnet20_cifar", "test_vit"])
def test_drop_rate_is_active_in_training_only(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, 3, drop_rate=0.5)
    x = torch.randn(4, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
    model.train()
    torch.manual_seed(1)
    a = model(x)
    torch.manual_seed(2)
    assert not torch.allclose(a, model(x))


def test_reset_classifier_to_zero_classes_gives_embeddings() -> None:
    model = create_model("resnet20_cifar", 10).eval()
    model.reset_classifier(0)
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 64)
