"""The model contract, implemented once for the builtin classics.

A builtin is a feature extractor (image -> unpooled map), a pre-logits stage (map -> pooled embedding) and one
linear classifier, so ``forward(x) == forward_head(forward_features(x))`` holds by construction.
"""

from __future__ import annotations

import torch
from torch import nn


class ContractNet(nn.Module):
    """Feature extractor + pooled pre-logits + linear classifier, with timm's method names.

    ``features``: ``(B, 3, H, W) -> (B, C, h, w)``; ``pre_logits``: ``(B, C, h, w) -> (B, num_features)``.

    >>> net = ContractNet(nn.Conv2d(3, 8, 3), nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()), 8, 10)
    >>> net(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
    """

    def __init__(
        self, features: nn.Module, pre_logits: nn.Module, num_features: int, num_classes: int, drop_rate: float = 0.0
    ) -> None:
        super().__init__()
        self.num_features = num_features
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.features = features
        self.pre_logits = pre_logits
        self.head_drop = nn.Dropout(drop_rate)
        self.fc: nn.Module = nn.Linear(num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (B, C, h, w)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.pre_logits(x)  # (B, num_features)
        if pre_logits:
            return x
        return self.fc(self.head_drop(x))  # (B, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier by a freshly initialised one with ``num_classes`` outputs (0: identity)."""
        ref = next(self.features.parameters(), None)
        fc: nn.Module = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        if ref is not None:
            fc.to(device=ref.device, dtype=ref.dtype)
        self.num_classes = num_classes
        self.fc = fc


def init_weights(module: nn.Module) -> None:
    """He init for convolutions and linears, unit/zero for norms (the classic CNN recipe)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
