"""Classic small-image CNNs that timm lacks: LeNet-5, a small AlexNet, a small VGG and He et al.'s CIFAR ResNets.

All take 3-channel input at 28-64 px (any size above their minimum thanks to adaptive pooling) and meet the model
contract through :class:`ContractNet`. Importing this module registers them.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from imgclf.config import DataConfig
from imgclf.models._base import ContractNet, init_weights
from imgclf.models._registry import register_model

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
_HALF = (0.5, 0.5, 0.5)
CIFAR_CONFIG = DataConfig(input_size=32, resize_size=32, interpolation="bilinear", mean=CIFAR_MEAN, std=CIFAR_STD)
HALF_CONFIG = DataConfig(input_size=32, resize_size=32, interpolation="bilinear", mean=_HALF, std=_HALF)


def _finish(net: ContractNet) -> ContractNet:
    init_weights(net.features)
    init_weights(net.pre_logits)
    return net


@register_model("lenet5", data_config=HALF_CONFIG, description="LeNet-5 (LeCun 1998), ReLU + max-pool; ~62k params")
def lenet5(num_classes: int, drop_rate: float = 0.0) -> nn.Module:
    """LeNet-5: two 5x5 conv stages, then 120-84 fully connected layers; input >= 10 px."""
    features = nn.Sequential(
        nn.Conv2d(3, 6, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),  # (B, 6, H/2, W/2)
        nn.Conv2d(6, 16, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2),  # (B, 16, H/4-2, W/4-2)
    )  # fmt: skip
    pre_logits = nn.Sequential(
        nn.AdaptiveAvgPool2d(5), nn.Flatten(),  # (B, 400)
        nn.Linear(400, 120), nn.ReLU(inplace=True), nn.Linear(120, 84), nn.ReLU(inplace=True),  # (B, 84)
    )  # fmt: skip
    return _finish(ContractNet(features, pre_logits, 84, num_classes, drop_rate))


@register_model(
    "alexnet_small", data_config=CIFAR_CONFIG, description="AlexNet-style 5-conv net for small images; ~3M params"
)
def alexnet_small(num_classes: int, drop_rate: float = 0.0) -> nn.Module:
    """AlexNet's five conv layers with 3x3 kernels and three 2x2 pools, then two 512-wide dropout layers; >= 8 px."""

    def conv(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True)]

    features = nn.Sequential(
        *conv(3, 64), nn.MaxPool2d(2), *conv(64, 192), nn.MaxPool2d(2),
        *conv(192, 384), *conv(384, 256), *conv(256, 256), nn.MaxPool2d(2),  # (B, 256, H/8, W/8)
    )  # fmt: skip
    pre_logits = nn.Sequential(
        nn.AdaptiveAvgPool2d(2), nn.Flatten(),  # (B, 1024)
        nn.Dropout(drop_rate), nn.Linear(1024, 512), nn.ReLU(inplace=True),
        nn.Dropout(drop_rate), nn.Linear(512, 512), nn.ReLU(inplace=True),  # (B, 512)
    )  # fmt: skip
    return _finish(ContractNet(features, pre_logits, 512, num_classes, drop_rate))


_VGG_SMALL = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M")


@register_model("vgg_small", data_config=CIFAR_CONFIG, description="VGG-style 6-conv net with BatchNorm; ~4.7M params")
def vgg_small(num_classes: int, drop_rate: float = 0.0) -> nn.Module:
    """VGG-11-like 3x3 conv + BN + ReLU stack with four 2x2 pools, global average pool; input >= 16 px."""
    layers: list[nn.Module] = []
    cin = 3
    for v in _VGG_SMALL:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(cin, int(v), 3, padding=1, bias=False), nn.BatchNorm2d(int(v)), nn.ReLU(inplace=True)]
            cin = int(v)
    pre_logits = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())  # (B, 512)
    return _finish(ContractNet(nn.Sequential(*layers), pre_logits, cin, num_classes, drop_rate))


class PadShortcut(nn.Module):
    """He et al.'s option-A shortcut: subsample by 2 and zero-pad the new channels (no parameters)."""

    def __init__(self, extra_channels: int) -> None:
        super().__init__()
        self.extra = extra_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, ::2, ::2]  # (B, C, ceil(H/2), ceil(W/2))
        return F.pad(x, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))  # (B, C + extra, h, w)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with a residual connection (option-A shortcut when the shape changes)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = PadShortcut(cout - cin) if stride != 1 or cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))  # (B, cout, H/s, W/s)
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


def _cifar_resnet(depth: int, num_classes: int, drop_rate: float) -> ContractNet:
    n = (depth - 2) // 6
    stages: list[tuple[str, nn.Module]] = [
        ("stem", nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True)))
    ]
    cin = 16
    for i, cout in enumerate((16, 32, 64)):
        blocks = [BasicBlock(cin if j == 0 else cout, cout, 2 if (i > 0 and j == 0) else 1) for j in range(n)]
        stages.append((f"layer{i + 1}", nn.Sequential(*blocks)))
        cin = cout
    features = nn.Sequential(OrderedDict(stages))  # (B, 64, H/4, W/4)
    pre_logits = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())  # (B, 64)
    return _finish(ContractNet(features, pre_logits, 64, num_classes, drop_rate))


@register_model(
    "resnet20_cifar", data_config=CIFAR_CONFIG, description="ResNet-20 for CIFAR (He et al. 2016, option A); ~0.27M"
)
def resnet20_cifar(num_classes: int, drop_rate: float = 0.0) -> nn.Module:
    """ResNet-20: 3 stages (16/32/64 channels) of 3 basic blocks, parameter-free shortcuts; input >= 4 px."""
    return _cifar_resnet(20, num_classes, drop_rate)


@register_model(
    "resnet56_cifar", data_config=CIFAR_CONFIG, description="ResNet-56 for CIFAR (He et al. 2016, option A); ~0.85M"
)
def resnet56_cifar(num_classes: int, drop_rate: float = 0.0) -> nn.Module:
    """ResNet-56: 3 stages (16/32/64 channels) of 9 basic blocks, parameter-free shortcuts; input >= 4 px."""
    return _cifar_resnet(56, num_classes, drop_rate)
