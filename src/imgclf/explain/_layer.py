"""Which layer CAM methods read, and how its output becomes a (B, C, h, w) grid.

The layer comes from :func:`imgclf.models.target_layer` (last convolutional stage of a CNN, the last block's
first norm of a ViT-style model) unless the caller names one. Token outputs ``(B, N, D)`` are reshaped to the
patch grid with the prefix (class, register, distillation) tokens dropped; channels-last grids ``(B, h, w, D)``
of ViT-kind layers are moved to channels-first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from imgclf.errors import ConfigError, ModelError
from imgclf.models import target_layer

_KINDS = ("cnn", "vit")
_MAX_PREFIX = 16  # prefix tokens tried when a layer does not say how many it has


@dataclass(frozen=True)
class ResolvedLayer:
    """A module of the model to hook, its kind, prefix-token count (None: infer) and dotted name."""

    module: nn.Module
    kind: str | None
    num_prefix_tokens: int | None
    name: str


def resolve_layer(model: nn.Module, layer: object = None) -> ResolvedLayer:
    """The layer to read: ``layer`` (a submodule or a ``TargetLayer``) or the model's automatic target layer."""
    if layer is None:
        if not callable(getattr(model, "forward_features", None)):
            raise ModelError(
                f"cannot find a target layer automatically in {type(model).__name__}: it has no forward_features "
                "(models from imgclf.models.create_model and timm have one). Pass layer=<a submodule>."
            )
        layer = target_layer(model)
    if isinstance(layer, nn.Module):
        module, kind, prefix = layer, None, None
    elif isinstance(getattr(layer, "module", None), nn.Module):
        module = layer.module  # type: ignore[attr-defined]
        kind = getattr(layer, "kind", None)
        prefix = getattr(layer, "num_prefix_tokens", None)
    else:
        raise ConfigError(
            f"layer must be an nn.Module of the model or a TargetLayer, got {type(layer).__name__}. "
            "Leave layer=None to use the model's automatic target layer."
        )
    if kind is not None and kind not in _KINDS:
        raise ConfigError(f"target layer kind must be one of {_KINDS}, got {kind!r}.")
    if prefix is None and kind == "vit":
        prefix = getattr(model, "num_prefix_tokens", None)
    name = next((n for n, m in model.named_modules() if m is module), None)
    if name is None:
        raise ConfigError(
            f"the target layer ({type(module).__name__}) is not a submodule of the model "
            f"({type(model).__name__}); pass one of model.named_modules() or leave layer=None."
        )
    return ResolvedLayer(module=module, kind=kind, num_prefix_tokens=prefix, name=name or "<model>")


def to_grid(act: torch.Tensor, layer: ResolvedLayer, image_hw: tuple[int, int]) -> torch.Tensor:
    """Layer output as a channels-first spatial grid ``(B, C, h, w)``; token outputs lose their prefix tokens.

    >>> to_grid(torch.zeros(2, 17, 32), vit_layer, (32, 32)).shape  # doctest: +SKIP
    torch.Size([2, 32, 4, 4])
    """
    if act.dim() == 4:
        return act.permute(0, 3, 1, 2) if layer.kind == "vit" else act  # (B, C, h, w)
    if act.dim() == 3:
        b, n, d = act.shape  # (B, N, D)
        prefix = layer.num_prefix_tokens
        if prefix is None:
            prefix = _infer_prefix(n, image_hw, layer.name)
        gh, gw = _grid_shape(n - prefix, image_hw, layer.name)
        return act[:, prefix:, :].reshape(b, gh, gw, d).permute(0, 3, 1, 2)  # (B, D, gh, gw)
    raise ModelError(
        f"the target layer '{layer.name}' returns a tensor of shape {tuple(act.shape)}; CAM methods need "
        "(B, C, h, w) feature maps or (B, N, D) tokens. Pick another layer or use a gradient method."
    )


def _square_grid(n: int, image_hw: tuple[int, int]) -> tuple[int, int] | None:
    """(gh, gw) with gh * gw == n whose cells are square patches tiling the image, if any."""
    h, w = image_hw
    for gh in range(1, n + 1):
        if n % gh == 0:
            gw = n // gh
            if h % gh == 0 and w % gw == 0 and h // gh == w // gw:
                return gh, gw
    return None


def _infer_prefix(n: int, image_hw: tuple[int, int], name: str) -> int:
    for prefix in range(min(_MAX_PREFIX, n - 1) + 1):
        if _square_grid(n - prefix, image_hw) is not None:
            return prefix
    raise ModelError(
        f"cannot tell how many of the {n} tokens of layer '{name}' are prefix tokens for a {image_hw} input; "
        "pass a TargetLayer with num_prefix_tokens."
    )


def _grid_shape(n: int, image_hw: tuple[int, int], name: str) -> tuple[int, int]:
    if n <= 0:
        raise ModelError(f"layer '{name}' has no patch tokens left after dropping the prefix tokens.")
    exact = _square_grid(n, image_hw)
    if exact is not None:
        return exact
    # Patches need not tile the image exactly (e.g. a dynamic image size): pick the factorisation whose
    # aspect ratio is closest to the image's.
    h, w = image_hw
    best = min(
        ((gh, n // gh) for gh in range(1, n + 1) if n % gh == 0),
        key=lambda g: abs(math.log(g[0] / g[1]) - math.log(h / w)),
    )
    return best
