"""Conv-4, the standard few-shot backbone (Vinyals et al. 2016, Snell et al. 2017). Importing registers it.

Four blocks of 3x3 conv (64 channels), BatchNorm, ReLU and 2x2 max-pool; the final map is pooled to 2x2 and
flattened (256 features), keeping the coarse layout that tells digit and glyph shapes apart, with no fully
connected layers to collapse the embedding onto the training classes.
"""

from __future__ import annotations

from torch import nn

from imgclf.models._base import ContractNet, init_weights
from imgclf.models._classics import HALF_CONFIG
from imgclf.models._registry import register_model


def _block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.MaxPool2d(2)]  # fmt: skip


@register_model("conv4", data_config=HALF_CONFIG,
                description="Conv-4 few-shot backbone (4x conv64-BN-ReLU-pool, 256 features)")  # fmt: skip
def conv4(num_classes: int, drop_rate: float = 0.0) -> nn.Module:
    """Conv-4 on 32 px input: (B, 3, 32, 32) -> (B, 64, 2, 2) -> 256 flattened features -> linear head."""
    features = nn.Sequential(*_block(3, 64), *_block(64, 64), *_block(64, 64), *_block(64, 64))  # (B, 64, H/16, W/16)
    pre_logits = nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten())  # (B, 256)
    net = ContractNet(features, pre_logits, 256, num_classes, drop_rate)
    init_weights(net.features)
    return net
