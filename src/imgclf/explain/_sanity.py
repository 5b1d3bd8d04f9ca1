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
from imgclf.explain._result import SanityResult
from imgclf.utils import eval_mode


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
    """Mean map similarity between ``model`` and a copy with all weights re-initialised (the last step of
    :func:`cascading_randomization`).

    Every submodule with ``reset_parameters`` is reset; other parameters (class tokens, position embeddings,
    layer scales) are redrawn from N(0, 0.02^2). Both models explain the same targets (default: the trained
    model's predictions) with the same random seed, so stochastic methods see the same noise. A method that
    reflects what the model learned gives a low value (close to 0); a value near 1 means the maps ignore the
    weights. A flat (empty) map of the trained model explains nothing and counts as 1, so it fails the check;
    a flat map of the randomised model alone counts as 0. The caller's model and the global random state are
    left untouched.

    >>> randomization_check(model, images, "gradcam")  # doctest: +SKIP
    0.08
    """
    _check_params(model)
    trained = _explain_seeded(model, images, method, target, layer, seed, options)
    randomized = copy.deepcopy(model)
    _randomize(randomized, [m for _, m in randomized.named_modules()], seed)
    random = _explain_seeded(randomized, images, method, trained.targets, _layer_in(model, randomized, layer), seed,
                             options)  # fmt: skip
    return _mean_similarity(trained.maps, random.maps)[0]


def cascading_randomization(
    model: nn.Module,
    images: torch.Tensor,
    method: str,
    *,
    target: int | Sequence[int] | torch.Tensor | None = None,
    layer: object = None,
    seed: int = 0,
    max_steps: int = 8,
    threshold: float = 0.5,
    **options: Any,
) -> SanityResult:
    """Adebayo's cascading randomisation: re-initialise the layers of a copy of ``model`` from the output side
    down, one step at a time, and measure after each step how much its maps still resemble the trained ones.

    The layers are the parameterised modules in the order the forward pass runs them, reversed; with more than
    ``max_steps`` of them, consecutive ones are grouped into ``max_steps`` steps. Similarity is as in
    :func:`randomization_check` (a flat trained map counts as 1). See :class:`SanityResult` for the verdict.

    >>> res = cascading_randomization(model, images, "gradcam"); res.passed  # doctest: +SKIP
    True
    """
    _check_params(model)
    trained = _explain_seeded(model, images, method, target, layer, seed, options)
    flat = sum(_is_flat(m) for m in trained.maps)
    randomized = copy.deepcopy(model)
    names = dict((id(m), n) for n, m in randomized.named_modules())
    order = _forward_order(randomized, images[:1])[::-1]  # output side first
    size = -(-len(order) // max(1, max_steps))
    steps = [order[i : i + size] for i in range(0, len(order), size)]
    random_layer = _layer_in(model, randomized, layer)
    labels, correlations = [], []
    for k, group in enumerate(steps):
        _randomize(randomized, group, seed + k)
        random = _explain_seeded(randomized, images, method, trained.targets, random_layer, seed, options)
        correlations.append(_mean_similarity(trained.maps, random.maps)[0])
        labels.append("+".join(names[id(m)] or "(root)" for m in group))
    return SanityResult(method, tuple(labels), tuple(correlations), flat, len(trained.targets), threshold)


def _check_params(model: nn.Module) -> None:
    if next(model.parameters(), None) is None:
        raise ModelError("the model has no parameters to randomise; the sanity check needs a trained model.")


def _explain_seeded(model: nn.Module, images: torch.Tensor, method: str, target: Any, layer: object, seed: int,
                    options: dict[str, Any]) -> Any:  # fmt: skip
    """``explain`` under a fixed seed, so stochastic methods draw the same noise for both models."""
    devices = _rng_devices(next(model.parameters()).device)
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return explain(model, images, method=method, target=target, layer=layer, **options)


def _layer_in(model: nn.Module, copy_: nn.Module, layer: object) -> object:
    """``layer`` of ``model`` as the same layer of its copy (None stays None: the copy picks its own)."""
    if layer is None:
        return None
    name = resolve_layer(model, layer).name
    return _same_layer(layer, copy_.get_submodule(name))


def _forward_order(model: nn.Module, probe: torch.Tensor) -> list[nn.Module]:
    """Modules that own parameters, in the order one forward pass of ``probe`` runs them (each once)."""
    seen: list[nn.Module] = []
    owners = [m for m in model.modules() if next(m.parameters(recurse=False), None) is not None]

    def record(module: nn.Module, *_: Any) -> None:
        if module not in seen:
            seen.append(module)

    handles = [m.register_forward_pre_hook(record) for m in owners]
    try:
        with torch.no_grad(), eval_mode(model):
            model(probe.to(next(model.parameters()).device))
    finally:
        for h in handles:
            h.remove()
    return seen + [m for m in owners if m not in seen]  # never called (unused heads): randomised last


def _is_flat(m: torch.Tensor) -> bool:
    return bool((m.max() - m.min()) <= 0) if m.numel() else True


def _similarity(trained: torch.Tensor, random: torch.Tensor) -> float:
    """Spearman of two maps, except that a flat trained map (no evidence) scores 1 and a flat random one 0."""
    if _is_flat(trained):
        return 1.0
    if _is_flat(random):
        return 0.0
    return spearman(trained, random)


def _mean_similarity(trained: torch.Tensor, random: torch.Tensor) -> tuple[float, int]:
    """Mean :func:`_similarity` over the maps ``(B, H, W)``, and how many trained maps were flat."""
    values = [_similarity(a, b) for a, b in zip(trained, random, strict=True)]
    return float(sum(values) / len(values)), sum(_is_flat(a) for a in trained)


def _rng_devices(device: torch.device) -> list[int]:
    """CUDA devices whose RNG to fork as well: stochastic methods draw their noise on the model's device."""
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman rank correlation of two maps (ties get average ranks); 0 when either is flat (undefined).

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


def _randomize(model: nn.Module, modules: Sequence[nn.Module], seed: int) -> None:
    """Re-initialise the parameters ``modules`` own (seeded, without touching the global random state)."""
    with torch.random.fork_rng(devices=_rng_devices(next(model.parameters()).device)):
        torch.manual_seed(seed)
        for module in modules:
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
