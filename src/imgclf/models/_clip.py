"""The image tower of an open_clip model as an imgclf classifier: the bundle form of zero-shot heads.

``open_clip_image`` rebuilds only the vision tower from its configuration (``embed_dim``, ``vision_cfg``; the text
tower never ships) and adds a cosine head: ``logits = head(normalize(embedding))``. A zero-shot bundle stores the
class-name text embeddings (normalised, times CLIP's logit scale) as the head's weight, so predict, evaluate,
calibrate, export and serve treat it like any other bundle. Importing registers it; open_clip is imported only
when one is built.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from imgclf.config import DataConfig
from imgclf.models._registry import register_model
from imgclf.utils import optional_import

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # open_clip's OPENAI_DATASET_MEAN
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CLIP_CONFIG = DataConfig(input_size=224, resize_size=224, interpolation="bicubic", mean=CLIP_MEAN, std=CLIP_STD)

#: The default (tiny) tower: what the contract tests build; real towers come from an open_clip configuration.
TINY_TOWER: dict[str, Any] = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 32, "layers": 1, "head_width": 16, "mlp_ratio": 2.0},
}


class ClipImageClassifier(nn.Module):
    """An open_clip vision tower ``(B, 3, H, W) -> (B, E)`` and a linear head on the normalised embedding.

    >>> # m = create_model("open_clip_image", 3); m.forward_head(m.forward_features(x), pre_logits=True).shape
    """

    def __init__(self, visual: nn.Module, embed_dim: int, num_classes: int) -> None:
        super().__init__()
        self.visual = visual
        self.num_features = embed_dim
        self.num_classes = num_classes
        self.head: nn.Module = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.visual(x)  # (B, E): the tower pools and projects itself

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if pre_logits:
            return x  # (B, E)
        return self.head(F.normalize(x, dim=-1))  # (B, C): cosine similarity times the head's scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    @property
    def num_prefix_tokens(self) -> int:
        return 1 if getattr(self.visual, "class_embedding", None) is not None else 0

    def token_block(self) -> nn.Module | None:
        """The last transformer block of a ViT tower (attributions read its ``ln_1``), else None."""
        blocks = getattr(getattr(self.visual, "transformer", None), "resblocks", None)
        return blocks[-1] if isinstance(blocks, nn.ModuleList) and len(blocks) else None

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        ref = next(self.visual.parameters())
        head: nn.Module = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        self.head = head.to(device=ref.device, dtype=ref.dtype)
        self.num_classes = num_classes


def data_config_from_preprocess(preprocess: dict[str, Any], image_size: int) -> DataConfig:
    """An open_clip ``preprocess_cfg`` (mean, std, interpolation, size) as imgclf preprocessing."""
    size = preprocess.get("size", image_size)
    size = int(size[0] if isinstance(size, list | tuple) else size)
    interp = preprocess.get("interpolation", "bicubic")
    return DataConfig(input_size=size, resize_size=size, interpolation=interp if interp in ("bilinear", "bicubic",
                      "nearest") else "bicubic", mean=tuple(preprocess.get("mean", CLIP_MEAN)),
                      std=tuple(preprocess.get("std", CLIP_STD)))  # fmt: skip


@register_model("open_clip_image", data_config=CLIP_CONFIG,
                description="open_clip image tower + cosine head (zero-shot bundles; tiny by default)")  # fmt: skip
def open_clip_image(num_classes: int, drop_rate: float = 0.0, embed_dim: int | None = None,
                    vision_cfg: dict[str, Any] | None = None, quick_gelu: bool = False,
                    preprocess: dict[str, Any] | None = None) -> nn.Module:  # fmt: skip
    """Build the vision tower of an open_clip model configuration (``embed_dim``, ``vision_cfg``) with a head."""
    model_mod = optional_import("open_clip.model", "fewlabels")
    embed_dim = TINY_TOWER["embed_dim"] if embed_dim is None else int(embed_dim)
    vision_cfg = dict(TINY_TOWER["vision_cfg"] if vision_cfg is None else vision_cfg)
    visual = model_mod._build_vision_tower(embed_dim, vision_cfg, quick_gelu=quick_gelu)
    net = ClipImageClassifier(visual, embed_dim, num_classes)
    size = vision_cfg.get("image_size", 224)
    net.arch_data_config = data_config_from_preprocess(preprocess or {}, size if isinstance(size, int) else size[0])
    return net
