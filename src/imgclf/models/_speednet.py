"""``speednet``: a small whitened conv net for fast training on small images (the ``cifar-speed`` recipe's model).

The design follows the CIFAR-10 speedrun literature (Page's "How to train your ResNet", hlb-CIFAR10, Jordan's
airbench): a frozen 2x2 convolution initialised from the data to whiten image patches (and its negation, so the
GELU after it keeps both signs), then three conv groups ``conv -> max-pool -> BN -> GELU -> conv -> BN -> GELU``
of widths 64/256/256, a global max-pool and a bias-free linear classifier whose logits are divided by the
embedding width. BatchNorm keeps its scale fixed at 1 and uses a short statistics memory (momentum 0.4); the
convolutions start as identities on their first channels (Dirac init). About 1.97M parameters.
"""

from __future__ import annotations

import torch
from torch import nn

from imgclf.models._base import ContractNet
from imgclf.models._classics import CIFAR_CONFIG
from imgclf.models._registry import register_model

WHITEN_KERNEL = 2
WIDTHS = (64, 256, 256)


class _Scale(nn.Module):
    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


def _norm(channels: int) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(channels, eps=1e-12, momentum=0.4)
    bn.weight.requires_grad = False  # scale fixed at 1: only the shift learns
    return bn


def _conv(cin: int, cout: int) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
    with torch.no_grad():
        nn.init.dirac_(conv.weight[: min(cin, cout)])  # the first channels start as an identity
    return conv


def _group(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(_conv(cin, cout), nn.MaxPool2d(2), _norm(cout), nn.GELU(),
                         _conv(cout, cout), _norm(cout), nn.GELU())  # fmt: skip


class SpeedNet(ContractNet):
    """The ``speednet`` model; :meth:`init_from_data` sets the whitening layer from training images.

    >>> net = SpeedNet(10)
    >>> net(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
    """

    def __init__(self, num_classes: int, drop_rate: float = 0.0) -> None:
        whiten_width = 2 * 3 * WHITEN_KERNEL**2
        whiten = nn.Conv2d(3, whiten_width, WHITEN_KERNEL, padding=0, bias=True)
        whiten.weight.requires_grad = False  # set from the data, never trained
        nn.init.zeros_(whiten.bias)
        layers: list[nn.Module] = [whiten, nn.GELU()]
        cin = whiten_width
        for width in WIDTHS:
            layers.append(_group(cin, width))
            cin = width
        features = nn.Sequential(*layers)  # (B, 256, H/8 - 1, W/8 - 1)
        pre_logits = nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Flatten(), _Scale(1.0 / cin))  # (B, 256)
        super().__init__(features, pre_logits, cin, num_classes, drop_rate)
        self.reset_classifier(num_classes)

    def reset_classifier(self, num_classes: int) -> None:
        """A bias-free classifier with unit-variance weights (the logits are divided by the width instead)."""
        ref = self.features[0].weight
        fc: nn.Module = nn.Linear(self.num_features, num_classes, bias=False) if num_classes > 0 else nn.Identity()
        if num_classes > 0:
            with torch.no_grad():
                nn.init.normal_(fc.weight)
        self.num_classes = num_classes
        self.fc = fc.to(device=ref.device, dtype=ref.dtype)

    @torch.no_grad()
    def init_from_data(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Whiten ``images`` (normalised, ``(N, 3, H, W)``): the 2x2 patch covariance's eigenvectors, scaled by
        ``1 / sqrt(eigenvalue + eps)``, and their negatives become the first layer's filters."""
        conv = self.features[0]
        c, (h, w) = images.shape[1], conv.weight.shape[2:]
        patches = images.float().unfold(2, h, 1).unfold(3, w, 1)  # (N, C, H-h+1, W-w+1, h, w)
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * h * w)  # (P, C*h*w)
        covariance = patches.T @ patches / len(patches)
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
        filters = eigenvectors.T.reshape(-1, c, h, w) / torch.sqrt(eigenvalues.clamp_min(0) + eps).view(-1, 1, 1, 1)
        conv.weight.copy_(torch.cat((filters, -filters)).to(conv.weight))


@register_model(
    "speednet", data_config=CIFAR_CONFIG, description="whitened 3-group conv net for fast small-image training; ~2M"
)
def speednet(num_classes: int, drop_rate: float = 0.0) -> nn.Module:
    """Input >= 16 px (three 2x2 pools after a 2x2 valid convolution)."""
    return SpeedNet(num_classes, drop_rate)

