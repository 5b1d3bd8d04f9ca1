"""Tiny models that keep contract and integration tests fast: one CNN, one ViT. Importing registers them."""

from __future__ import annotations

from torch import nn

from imgclf.models._base import ContractNet, init_weights
from imgclf.models._classics import HALF_CONFIG
from imgclf.models._registry import register_model


@register_model("test_cnn", data_config=HALF_CONFIG, description="tiny 2-conv CNN for tests (~5k params)")
def test_cnn(num_classes: int, drop_rate: float = 0.0) -> nn.Module:
    """Two conv-BN-ReLU layers (16 and 32 channels, the second with stride 2) and a linear head."""
    features = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
        nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
    )  # fmt: skip  # (B, 32, H/2, W/2)
    pre_logits = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())  # (B, 32)
    net = ContractNet(features, pre_logits, 32, num_classes, drop_rate)
    init_weights(net.features)
    return net


@register_model("test_vit", data_config=HALF_CONFIG, description="tiny ViT for tests (patch 8, dim 32, depth 2)")
def test_vit(num_classes: int, drop_rate: float = 0.0) -> nn.Module:
    """timm VisionTransformer: class token, 8 px patches, 32-dim embeddings, 2 blocks, 2 heads.

    Any input size works: the position embedding is resampled and the image padded to whole patches.
    """
    from timm.models.vision_transformer import VisionTransformer

    return VisionTransformer(
        img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, mlp_ratio=2.0,
        num_classes=num_classes, drop_rate=drop_rate, dynamic_img_size=True, dynamic_img_pad=True,
    )  # fmt: skip
