"""Questions asked of a built model: its preprocessing, its parameters, and the layer attributions read."""

from __future__ import annotations

import math

import torch
from torch import nn

from imgclf.config import IMAGENET_MEAN, IMAGENET_STD, DataConfig

_INTERPOLATIONS = ("nearest", "bilinear", "bicubic")


def _triple(v: object, default: tuple[float, float, float]) -> tuple[float, float, float]:
    vals = tuple(float(x) for x in v) if isinstance(v, list | tuple) else ()
    if len(vals) == 1:
        vals = vals * 3
    return vals if len(vals) == 3 else default  # type: ignore[return-value]


def model_data_config(model: nn.Module) -> DataConfig:
    """The model's default eval preprocessing as a :class:`~imgclf.config.DataConfig`.

    Builtins and torchvision adapters carry it (``imgclf_data_config``); timm models resolve it from their
    ``pretrained_cfg`` (input size, ``crop_pct`` -> ``resize_size``, interpolation, mean, std). Any other module
    gets ImageNet defaults (224 / 256, bilinear).

    >>> model_data_config(create_model("resnet20_cifar", 10)).input_size  # doctest: +SKIP
    32
    """
    own = getattr(model, "imgclf_data_config", None)
    if isinstance(own, DataConfig):
        return own
    if getattr(model, "pretrained_cfg", None) is None:
        return DataConfig(224, 256, "bilinear", IMAGENET_MEAN, IMAGENET_STD)
    from timm.data import resolve_data_config

    cfg = resolve_data_config(model=model)
    size = int(cfg["input_size"][-1])
    crop_pct = float(cfg.get("crop_pct") or 0.875)
    resize = max(size, math.floor(size / crop_pct + 1e-6))
    interp = cfg.get("interpolation", "bilinear")
    return DataConfig(
        input_size=size,
        resize_size=resize,
        interpolation=interp if interp in _INTERPOLATIONS else "bilinear",
        mean=_triple(cfg.get("mean"), IMAGENET_MEAN),
        std=_triple(cfg.get("std"), IMAGENET_STD),
    )


def _classifier_params(model: nn.Module) -> list[nn.Parameter]:
    heads = model.get_classifier()
    heads = heads if isinstance(heads, tuple | list) else (heads,)  # distilled timm models have two heads
    seen: set[int] = set()
    out = []
    for head in heads:
        for p in head.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                out.append(p)
    return out


def split_parameters(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """``(backbone, head)`` parameter lists: head = the parameters of ``model.get_classifier()``, backbone = the rest.

    Every parameter lands in exactly one list (use it for per-group learning rates).

    >>> backbone, head = split_parameters(create_model("test_cnn", 3))  # doctest: +SKIP
    >>> [p.shape for p in head]  # doctest: +SKIP
    [torch.Size([3, 32]), torch.Size([3])]
    """
    head = _classifier_params(model)
    head_ids = {id(p) for p in head}
    backbone = [p for p in model.parameters() if id(p) not in head_ids]
    return backbone, head


def freeze_backbone(model: nn.Module) -> None:
    """Stop gradients to everything but the classifier (``requires_grad=False`` on backbone parameters).

    BatchNorm layers still update their running statistics in train mode; put them in eval mode too for a
    strictly fixed feature extractor.

    >>> freeze_backbone(model)  # doctest: +SKIP
    """
    backbone, head = split_parameters(model)
    for p in backbone:
        p.requires_grad_(False)
    for p in head:
        p.requires_grad_(True)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (shared tensors counted once); ``trainable_only`` counts ``requires_grad`` ones.

    >>> count_parameters(nn.Linear(10, 2))
    22
    """
    params = {id(p): p for p in model.parameters()}.values()
    return sum(p.numel() for p in params if p.requires_grad or not trainable_only)


def probe_input(model: nn.Module, size: int | None = None) -> torch.Tensor:
    """A zero image batch ``(1, 3, S, S)`` (S: ``size`` or the model's default input size), on its device/dtype."""
    size = size or model_data_config(model).input_size
    ref = next(model.parameters(), None)
    device = ref.device if ref is not None else torch.device("cpu")
    dtype = ref.dtype if ref is not None and ref.is_floating_point() else torch.float32
    return torch.zeros(1, 3, size, size, device=device, dtype=dtype)
