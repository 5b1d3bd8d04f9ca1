"""Torchvision classifiers behind the contract."""

from __future__ import annotations

import pytest
import torch
import torchvision

from imgclf.errors import ModelError
from imgclf.models import TorchvisionAdapter, create_model, model_data_config, target_layer


def _tiny_tv_vit() -> torchvision.models.VisionTransformer:
    return torchvision.models.VisionTransformer(
        image_size=32, patch_size=8, num_layers=1, num_heads=2, hidden_dim=16, mlp_dim=32, num_classes=5
    )


def test_mlp_head_pre_logits_and_reset_keep_hidden_layers() -> None:
    model = create_model("tv/mobilenet_v3_small", 3).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape == (2, 576, 2, 2)
        assert model.forward_head(feats, pre_logits=True).shape == (2, model.num_features) == (2, 1024)
    hidden = model.model.classifier[0]
    model.reset_classifier(0)
    with torch.no_grad():
        assert model(x).shape == (2, 1024)  # no classifier: embeddings
    model.reset_classifier(7)
    assert model.model.classifier[0] is hidden and model.get_classifier().out_features == 7
    assert model.get_classifier().bias is not None


def test_googlenet_returns_logits_in_train_mode() -> None:
    model = create_model("tv/googlenet", 3).train()
    out = model(torch.randn(2, 3, 64, 64))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 3)  # no auxiliary-logit tuples


def test_adapter_drop_rate_applies_before_the_classifier() -> None:
    model = create_model("tv/resnet18", 3, drop_rate=0.5).train()
    x = torch.randn(2, 3, 32, 32)
    feats = model.forward_features(x)
    torch.manual_seed(0)
    a = model.forward_head(feats)
    torch.manual_seed(1)
    assert not torch.allclose(a, model.forward_head(feats))
    model.eval()
    assert torch.equal(model.forward_head(feats), model.forward_head(feats))


def test_torchvision_vit_tokens_and_target() -> None:
    net = _tiny_tv_vit()
    model = TorchvisionAdapter(net, "vit_tiny", num_classes=3).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        tokens = model.forward_features(x)
        assert tokens.shape == (2, 1 + 16, 16)  # class token + 4x4 patches
        assert torch.allclose(model(x), model.forward_head(tokens))
    assert model_data_config(model).input_size == 32  # a torchvision ViT is built for one size
    layer = target_layer(model)
    assert layer.module is net.encoder.layers[-1].ln_1 and layer.kind == "vit" and layer.num_prefix_tokens == 1


def test_unsupported_torchvision_model_is_refused() -> None:
    with pytest.raises(ModelError, match="no adapter recipe"):
        TorchvisionAdapter(torchvision.models.squeezenet1_1(), "squeezenet1_1", num_classes=3)
