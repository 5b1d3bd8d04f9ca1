"""Structured pruning: the network really shrinks, stays runnable and exportable, and removes the right channels."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from imgclf.errors import ConfigError, ModelError
from imgclf.export import count_flops, export_onnx, parity_check, prune_channels
from imgclf.models import count_parameters, create_model

X32 = torch.zeros(1, 3, 32, 32)


def test_resnet_shrinks_in_params_and_flops_and_keeps_residual_width(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model("resnet20_cifar", num_classes=10).eval()
    pruned = prune_channels(model, 0.5, X32)
    assert count_parameters(pruned) < 0.75 * count_parameters(model)
    assert count_flops(pruned, 32) < 0.75 * count_flops(model, 32)
    block, original = pruned.features.layer2[1], model.features.layer2[1]
    assert block.conv1.out_channels == 16 == block.bn1.num_features == block.conv2.in_channels  # 32 -> 16 inner
    assert block.conv2.out_channels == original.conv2.out_channels == 32  # residual stream untouched
    assert pruned.features.stem[0].out_channels == 16  # stem feeds a residual add: never pruned
    assert model.features.layer2[1].conv1.out_channels == 32  # the caller's model is not modified
    x = torch.randn(4, 3, 32, 32)
    assert pruned(x).shape == (4, 10) and not pruned.training  # same mode as the (eval) input model
    assert prune_channels(model.train(), 0.5, X32).training  # ... and a training model stays in training
    model.eval()
    # runnable for fine-tuning: gradients flow through the sliced layers
    pruned.train()
    nn.functional.cross_entropy(pruned(x), torch.tensor([0, 1, 2, 3])).backward()
    assert block.conv1.weight.grad is not None and block.conv1.weight.grad.shape == block.conv1.weight.shape
    # and exportable: the ONNX file computes what the pruned model computes
    pruned.eval()
    path = export_onnx(pruned, tmp_path / "pruned.onnx", input_size=32, metadata={}, exporter="torchscript")
    assert parity_check(pruned, path, x).passed


def test_prunes_exactly_the_lowest_l1_channels() -> None:
    """Channels whose conv weights are zero (and BN maps zero to zero) contribute nothing: removing them is exact."""
    torch.manual_seed(0)
    model = create_model("test_cnn", num_classes=3).eval()
    conv, bn = model.features[0], model.features[1]
    dead = torch.tensor([1, 5, 6, 12])
    with torch.no_grad():
        conv.weight[dead] = 0.0
        bn.running_mean[dead] = 0.0
        bn.bias[dead] = 0.0
        bn.running_var.uniform_(0.5, 2.0)
    pruned = prune_channels(model, 0.25, X32)  # 16 -> 12: exactly the four dead channels go
    assert pruned.features[0].out_channels == 12 and pruned.features[3].in_channels == 12
    x = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(pruned(x), model(x), atol=1e-5, rtol=1e-5)
    assert pruned.fc.in_features == model.num_features == 32  # the classifier's input width is kept


def _silence_channels_pruning_would_remove(model: nn.Module, amount: float) -> None:
    """Zero the first k channels of every chain that pruning shrinks by k (conv weights and bias, BN mean and bias),
    so they output exactly 0 through BN and activations and are the lowest-L1 channels pruning must pick."""
    shrunk = dict(prune_channels(model, amount, X32).named_modules())
    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, nn.Conv2d) and shrunk[name].out_channels < m.out_channels:
                k = m.out_channels - shrunk[name].out_channels
                m.weight[:k] = 0.0
                if m.bias is not None:
                    m.bias[:k] = 0.0
            elif isinstance(m, nn.BatchNorm2d) and shrunk[name].num_features < m.num_features:
                k = m.num_features - shrunk[name].num_features
                m.running_mean[:k] = 0.0
                m.bias[:k] = 0.0


@pytest.mark.parametrize("name", ["resnet20_cifar", "lenet5", "mobilenetv2_100"])
def test_removing_silent_channels_leaves_outputs_unchanged(name: str) -> None:
    """Whatever the architecture, pruning channels that contribute nothing must not change a single logit."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=4).eval()
    _silence_channels_pruning_would_remove(model, 0.4)
    pruned = prune_channels(model, 0.4, X32)
    assert count_parameters(pruned) < count_parameters(model)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(pruned(x), model(x), atol=1e-4, rtol=1e-4)


def test_linear_after_flatten_loses_matching_features() -> None:
    """LeNet: the last conv feeds Flatten -> Linear(400); each removed channel removes its 5x5 block of features."""
    model = create_model("lenet5", num_classes=10).eval()
    pruned = prune_channels(model, 0.25, X32)
    conv2 = pruned.features[3]
    assert conv2.out_channels == 12
    assert pruned.pre_logits[2].in_features == 12 * 25
    assert pruned(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_inverted_residual_prunes_through_the_depthwise_conv() -> None:
    model = create_model("mobilenetv2_100", num_classes=5).eval()
    pruned = prune_channels(model, 0.3, torch.zeros(1, 3, 64, 64))
    block = pruned.blocks[1][0]  # expansion conv -> BN-act -> depthwise conv -> BN-act -> projection conv
    assert block.conv_pw.out_channels == block.conv_dw.in_channels == block.conv_dw.groups == block.bn2.num_features
    assert block.conv_pw.out_channels < model.blocks[1][0].conv_pw.out_channels
    assert count_flops(pruned, 64) < count_flops(model, 64)
    assert pruned(torch.randn(2, 3, 64, 64)).shape == (2, 5)


def test_bad_amount_and_unprunable_models_are_reported() -> None:
    model = create_model("test_cnn", num_classes=3)
    with pytest.raises(ConfigError, match="fraction"):
        prune_channels(model, 1.0, X32)
    with pytest.raises(ModelError, match="cannot prune VisionTransformer|no prunable"):
        prune_channels(create_model("test_vit", num_classes=3), 0.3, X32)
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())  # output is the logits
    with pytest.raises(ModelError, match="no prunable conv chain"):
        prune_channels(plain, 0.3, X32)
