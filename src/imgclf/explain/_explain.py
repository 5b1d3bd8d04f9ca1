"""``explain``: one entry point over every attribution method, returning normalised maps as an Attribution."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from imgclf.errors import ConfigError, DataError
from imgclf.explain import _cam, _perturb
from imgclf.explain._layer import resolve_layer
from imgclf.explain._result import Attribution
from imgclf.utils import closest, model_device

Target = int | Sequence[int] | torch.Tensor | None

_METHODS: dict[str, Callable[..., torch.Tensor]] = {
    "gradcam": _cam.gradcam,
    "gradcam++": _cam.gradcam_plus_plus,
    "smoothgrad": _perturb.smoothgrad,
    "integrated-gradients": _perturb.integrated_gradients,
    "occlusion": _perturb.occlusion,
    "lime": _perturb.lime,
    "shap": _perturb.shap,
}
_LAYER_METHODS = frozenset({"gradcam", "gradcam++"})

METHODS: tuple[str, ...] = tuple(_METHODS)
"""Names accepted by ``explain(method=...)``."""


def explain(
    model: nn.Module,
    images: torch.Tensor,
    *,
    method: str,
    target: Target = None,
    layer: object = None,
    **options: Any,
) -> Attribution:
    """Attribution maps of ``model`` for normalised ``images`` ``(B, 3, H, W)``, one ``(H, W)`` map per image.

    ``method`` is one of :data:`METHODS`. ``target`` is the class index to explain (one for all images or one
    per image); by default each image's predicted class. CAM methods read ``layer`` (a submodule or a
    ``TargetLayer``); by default :func:`imgclf.models.target_layer` picks it, reshaping ViT tokens to the patch
    grid. ``options`` go to the method (e.g. ``samples=`` for smoothgrad, lime and shap, ``steps=`` for
    integrated-gradients, ``window=`` for occlusion). Maps are normalised per image to [0, 1] and returned on
    the CPU; the model is left in the mode it was in.

    >>> att = explain(model, images, method="gradcam")  # doctest: +SKIP
    >>> att.maps.shape, att.targets  # doctest: +SKIP
    (torch.Size([2, 224, 224]), (3, 7))
    """
    fn = _method(method)
    _check_options(method, fn, options)
    images = _check_images(images)
    device = model_device(model)
    images = images.to(device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            probs = model(images).float().softmax(dim=1)  # (B, K)
        predicted = probs.argmax(dim=1)  # (B,)
        targets = _targets(target, predicted, probs.shape[1])  # (B,)
        resolved = resolve_layer(model, layer) if method in _LAYER_METHODS else None
        if resolved is not None:
            raw = fn(model, images, targets, resolved, **options)
        else:
            raw = fn(model, images, targets, **options)  # (B, H, W)
    finally:
        model.train(was_training)
    maps = normalize_maps(raw.detach().float().cpu())
    rows = torch.arange(len(targets), device=probs.device)
    return Attribution(
        maps=maps,
        method=method,
        targets=tuple(int(t) for t in targets),
        predicted=tuple(int(p) for p in predicted),
        scores=tuple(float(s) for s in probs[rows, predicted]),
        target_scores=tuple(float(s) for s in probs[rows, targets]),
        layer=resolved.name if resolved is not None else None,
        options=dict(options),
    )


def normalize_maps(maps: torch.Tensor) -> torch.Tensor:
    """Min-max normalise each map of ``(B, H, W)`` to [0, 1]; non-finite values become 0, flat maps all 0.

    >>> normalize_maps(torch.tensor([[[1.0, 3.0]]])).tolist()
    [[[0.0, 1.0]]]
    """
    maps = torch.nan_to_num(maps.float(), nan=0.0, posinf=0.0, neginf=0.0)  # (B, H, W)
    flat = maps.reshape(maps.shape[0], -1)  # (B, H*W)
    low = flat.amin(dim=1, keepdim=True)
    span = flat.amax(dim=1, keepdim=True) - low
    out = torch.where(span > 0, (flat - low) / span.clamp_min(torch.finfo(flat.dtype).tiny), 0.0)
    return out.reshape(maps.shape)


def _method(method: str) -> Callable[..., torch.Tensor]:
    if method not in _METHODS:
        raise ConfigError(
            f"unknown attribution method {method!r}.{closest(method, _METHODS)} Choose one of: {', '.join(METHODS)}."
        )
    return _METHODS[method]


def _check_options(method: str, fn: Callable[..., torch.Tensor], options: dict[str, Any]) -> None:
    allowed = [p.name for p in inspect.signature(fn).parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    for key in options:
        if key not in allowed:
            valid = ", ".join(allowed) if allowed else "none"
            raise ConfigError(f"method {method!r} has no option {key!r}.{closest(key, allowed)} Its options: {valid}.")


def _check_images(images: object) -> torch.Tensor:
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or not images.is_floating_point():
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise DataError(
            f"explain needs a float tensor of normalised images (B, C, H, W), got {shape}; "
            "add a batch dimension with images[None] for a single image."
        )
    if images.shape[0] == 0:
        raise DataError("explain got an empty batch of images; pass at least one image.")
    return images



def _targets(target: Target, predicted: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Per-image target classes ``(B,)``: the prediction, one class for all, or one class per image."""
    b = predicted.shape[0]
    if target is None:
        return predicted
    if isinstance(target, bool):
        raise ConfigError(f"target must be a class index, got {target!r}.")
    if isinstance(target, int):
        targets = torch.full((b,), target, dtype=torch.long)
    else:
        targets = torch.as_tensor(target, dtype=torch.long).reshape(-1)
        if targets.numel() == 1:
            targets = targets.expand(b)
        if targets.numel() != b:
            raise ConfigError(f"target has {targets.numel()} entries for {b} images; give one per image or one.")
    bad = targets[(targets < 0) | (targets >= num_classes)]
    if bad.numel():
        raise ConfigError(
            f"target class {int(bad[0])} is out of range: the model has {num_classes} classes (0..{num_classes - 1})."
        )
    return targets.to(predicted.device)
