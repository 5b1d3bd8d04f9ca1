"""Deletion / insertion faithfulness curves (Petsiuk et al. 2018, RISE) for any attribution maps."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from imgclf.errors import ConfigError, DataError
from imgclf.explain._result import Attribution, Faithfulness

_BASELINES = ("mean", "blur")


def deletion_insertion(
    model: nn.Module,
    images: torch.Tensor,
    attributions: Attribution | torch.Tensor,
    target: int | Sequence[int] | torch.Tensor | None = None,
    steps: int = 20,
    *,
    deletion_baseline: str = "mean",
    insertion_baseline: str = "blur",
    batch_size: int = 64,
) -> Faithfulness:
    """Deletion and insertion AUCs of the target-class probability as the most attributed pixels go first.

    Deletion replaces a growing share of pixels (0, 1/steps, ..., 1, highest attribution first) with the
    ``deletion_baseline``; insertion starts from the ``insertion_baseline`` and restores them. Baselines:
    ``"mean"`` (the zero image of the normalised space, i.e. the dataset mean colour) or ``"blur"`` (a strong
    Gaussian blur of the image); the defaults follow RISE. ``attributions`` is an :class:`Attribution` or maps
    ``(B, h, w)`` (resized to the image). ``target`` defaults to the attribution's targets, else the model's
    predicted class. The model is left in the mode it was in.

    >>> f = deletion_insertion(model, images, explain(model, images, method="gradcam"))  # doctest: +SKIP
    >>> round(f.mean_deletion_auc, 2), round(f.mean_insertion_auc, 2)  # doctest: +SKIP
    (0.12, 0.81)
    """
    if steps < 1:
        raise ConfigError(f"steps must be at least 1, got {steps}.")
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise DataError("deletion_insertion needs normalised images as a (B, C, H, W) tensor.")
    maps = attributions.maps if isinstance(attributions, Attribution) else attributions
    if target is None and isinstance(attributions, Attribution):
        target = attributions.targets
    b, _, h, w = images.shape
    if maps.dim() != 3 or maps.shape[0] != b:
        raise DataError(f"attributions must be (B, h, w) maps for {b} images, got shape {tuple(maps.shape)}.")
    param = next(model.parameters(), None)
    device = param.device if param is not None else images.device
    images = images.to(device).float()
    maps = maps.to(device).float()
    if maps.shape[1:] != (h, w):
        maps = F.interpolate(maps[:, None], size=(h, w), mode="bilinear", align_corners=False)[:, 0]  # (B, H, W)

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            targets = _targets(model, images, target)  # (B,)
            fractions = torch.linspace(0, 1, steps + 1)  # (S,)
            ranks = _ranks(maps)  # (B, H*W)
            counts = (fractions * h * w).round().long()  # (S,) pixels switched per step
            deletion = _curve(
                model, images, _baseline(images, deletion_baseline), ranks, counts, targets, batch_size, delete=True
            )  # (B, S)
            insertion = _curve(
                model, images, _baseline(images, insertion_baseline), ranks, counts, targets, batch_size, delete=False
            )  # (B, S)
    finally:
        model.train(was_training)
    return Faithfulness(
        targets=tuple(int(t) for t in targets),
        fractions=tuple(float(f) for f in fractions),
        deletion_curves=tuple(tuple(float(v) for v in row) for row in deletion.cpu()),
        insertion_curves=tuple(tuple(float(v) for v in row) for row in insertion.cpu()),
        deletion_auc=tuple(float(a) for a in torch.trapezoid(deletion.cpu(), fractions, dim=1)),
        insertion_auc=tuple(float(a) for a in torch.trapezoid(insertion.cpu(), fractions, dim=1)),
    )


def _targets(model: nn.Module, images: torch.Tensor, target: object) -> torch.Tensor:
    b = images.shape[0]
    if target is None:
        return model(images).argmax(dim=1)  # (B,)
    targets = torch.as_tensor(target, dtype=torch.long, device=images.device).reshape(-1)
    if targets.numel() == 1:
        targets = targets.expand(b)
    if targets.numel() != b:
        raise ConfigError(f"target has {targets.numel()} entries for {b} images; give one per image or one.")
    return targets


def _ranks(maps: torch.Tensor) -> torch.Tensor:
    """Rank of each pixel ``(B, H*W)``, 0 for the most attributed; ties keep reading order."""
    flat = maps.reshape(maps.shape[0], -1)  # (B, H*W)
    order = flat.argsort(dim=1, descending=True, stable=True)  # (B, H*W)
    ranks = torch.empty_like(order)
    positions = torch.arange(flat.shape[1], device=flat.device).expand_as(order)
    return ranks.scatter_(1, order, positions)


def _baseline(images: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "mean":
        return torch.zeros_like(images)  # (B, C, H, W)
    if kind == "blur":
        sigma = max(images.shape[2], images.shape[3]) / 16
        radius = math.ceil(2 * sigma)
        x = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
        kernel = torch.exp(-(x**2) / (2 * sigma**2))
        kernel = kernel / kernel.sum()  # (K,)
        c = images.shape[1]
        out = F.pad(images, (radius, radius, radius, radius), mode="replicate")
        out = F.conv2d(out, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)  # separable: rows
        return F.conv2d(out, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)  # (B, C, H, W)
    raise ConfigError(f"baseline must be one of {_BASELINES}, got {kind!r}.")


def _curve(
    model: nn.Module,
    images: torch.Tensor,
    baseline: torch.Tensor,
    ranks: torch.Tensor,
    counts: torch.Tensor,
    targets: torch.Tensor,
    batch_size: int,
    *,
    delete: bool,
) -> torch.Tensor:
    """Target probability ``(B, S)`` after switching the ``counts[s]`` top-ranked pixels of each image."""
    b, c, h, w = images.shape
    rows = []
    for i in range(b):
        switched = ranks[i][None, :] < counts.to(ranks.device)[:, None]  # (S, H*W)
        switched = switched.view(-1, 1, h, w)  # (S, 1, H, W)
        if delete:
            batch = torch.where(switched, baseline[i], images[i])  # (S, C, H, W)
        else:
            batch = torch.where(switched, images[i], baseline[i])  # (S, C, H, W)
        probs = torch.cat([model(chunk).float().softmax(dim=1) for chunk in batch.split(max(1, batch_size))])
        rows.append(probs[:, targets[i]])  # (S,)
    return torch.stack(rows)  # (B, S)
