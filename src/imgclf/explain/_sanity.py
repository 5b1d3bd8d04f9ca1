"""Model-randomisation sanity check (Adebayo et al. 2018, "Sanity Checks for Saliency Maps")."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from imgclf.errors import ModelError
from imgclf.explain._explain import explain
from imgclf.explain._layer import resolve_layer


def randomization_check(
    model: nn.Module,
    images: torch.Tensor,
    method: str,
    *,
    target: int | Sequence[int] | torch.Tensor | None = None,
    layer: object = None,
    seed: int = 0,
    **options: Any,
) -> float:
    """Mean Spearman rank correlation between the maps of ``model`` and of a copy with all weights re-initialised.

    Every submodule with ``reset_parameters`` is reset (the last step of Adebayo's cascading randomisation);
    other parameters (class tokens, position embeddings, layer scales) are redrawn from N(0, 0.02^2). Both
    models explain the same targets (default: the trained model's predictions) with the same random seed, so
    stochastic methods see the same noise. A method that reflects what the model learned gives a low value
    (close to 0); a value near 1 means the maps ignore the weights. Flat maps count as uncorrelated (0). The
    caller's model and the global random state are left untouched.

    >>> randomization_check(model, images, "gradcam")  # doctest: +SKIP
    0.08
    """
    param = next(model.parameters(), None)
    if param is None:
        raise ModelError("the model has no parameters to randomise; the sanity check needs a trained model.")
    devices = _rng_devices(param.device)
    randomized = copy.deepcopy(model)
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        _reinitialize(randomized)
    random_layer = None
    if layer is not None:
        name = resolve_layer(model, layer).name
        random_layer = _same_layer(layer, randomized.get_submodule(name))
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        trained = explain(model, images, method=method, target=target, layer=layer, **options)
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        random = explain(randomized, images, method=method, target=trained.targets, layer=random_layer, **options)
    correlations = [spearman(a, b) for a, b in zip(trained.maps, random.maps, strict=True)]
    return float(sum(correlations) / len(correlations))


def _rng_devices(device: torch.device) -> list[int]:
    """CUDA devices whose RNG to fork as well: stochastic methods draw their noise on the model's device."""
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman rank correlation of two maps (ties get average ranks); 0 when either is flat.

    >>> spearman(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([10.0, 20.0, 15.0]))
    0.5
    """
    ra, rb = _average_ranks(a.reshape(-1).double()), _average_ranks(b.reshape(-1).double())  # (N,) each
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = (ra.pow(2).sum() * rb.pow(2).sum()).sqrt()
    if denom == 0:
        return 0.0
    return float((ra * rb).sum() / denom)


def _average_ranks(x: torch.Tensor) -> torch.Tensor:
    order = x.argsort()
    ranks = torch.empty_like(x)
    ranks[order] = torch.arange(x.numel(), dtype=x.dtype, device=x.device)
    _, inverse, counts = torch.unique(x, return_inverse=True, return_counts=True)
    sums = torch.zeros(counts.numel(), dtype=x.dtype, device=x.device).index_add_(0, inverse, ranks)
    return (sums / counts)[inverse]  # (N,)


def _reinitialize(model: nn.Module) -> None:
    for module in model.modules():
        reset = getattr(module, "reset_parameters", None)
        if callable(reset):
            reset()
        else:
            with torch.no_grad():
                for p in module.parameters(recurse=False):
                    p.normal_(0.0, 0.02)


def _same_layer(layer: object, module: nn.Module) -> object:
    """``layer`` (a module or TargetLayer) pointing at ``module`` of the randomised copy."""
    if isinstance(layer, nn.Module):
        return module
    return SimpleNamespace(
        module=module, kind=getattr(layer, "kind", None), num_prefix_tokens=getattr(layer, "num_prefix_tokens", None)
    )
