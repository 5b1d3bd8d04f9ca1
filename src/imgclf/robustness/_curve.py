"""Robust accuracy over an epsilon sweep, for any attack of the package or a callable of the same shape."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from imgclf.errors import ConfigError, DataError
from imgclf.robustness._apgd import apgd
from imgclf.robustness._attacks import fgsm, pgd
from imgclf.robustness._batches import Batches, iter_batches
from imgclf.robustness._cw import cw_attack, cw_l2, robust_accuracy_from_norms
from imgclf.robustness._registry import build_registry, lookup
from imgclf.utils import eval_mode, model_device

Attack = Callable[..., torch.Tensor]

#: Attacks by name; each is called as ``attack(model, x, y, eps, **attack_kwargs)``.
#: ``cw`` is Carlini-Wagner L2 (always L2); :func:`cw_curve` runs it once for a whole sweep.
ATTACKS: Mapping[str, Attack] = build_registry(
    "attack", [("fgsm", fgsm), ("pgd", pgd), ("apgd", apgd), ("cw", cw_attack)]
)


@dataclass(frozen=True)
class RobustCurve:
    """Accuracy under attack at each epsilon (ascending), on ``n`` examples.

    ``accuracies[i]`` is the fraction of examples still classified correctly after the attack at
    ``epsilons[i]``; ``clean_accuracy`` is the accuracy without attack. With ``cumulative`` an example fooled at
    a smaller epsilon counts as fooled at every larger one (the smaller ball lies inside the larger).

    >>> curve.to_dict()["accuracies"]  # doctest: +SKIP
    [0.93, 0.41, 0.02]
    """

    attack: str
    norm: str
    epsilons: tuple[float, ...]
    accuracies: tuple[float, ...]
    clean_accuracy: float
    n: int
    cumulative: bool = True
    options: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field."""
        return {
            "attack": self.attack,
            "norm": self.norm,
            "epsilons": list(self.epsilons),
            "accuracies": list(self.accuracies),
            "clean_accuracy": self.clean_accuracy,
            "n": self.n,
            "cumulative": self.cumulative,
            "options": dict(self.options or {}),
        }

    def accuracy_at(self, eps: float) -> float:
        """Robust accuracy at one of the swept epsilons."""
        for e, acc in zip(self.epsilons, self.accuracies, strict=True):
            if abs(e - eps) <= 1e-12:
                return acc
        raise ConfigError(f"eps {eps} was not swept; the curve has {list(self.epsilons)}.")


def robust_accuracy_curve(
    model: nn.Module,
    data: Batches,
    epsilons: Sequence[float],
    attack: str | Attack = "pgd",
    *,
    attack_kwargs: Mapping[str, Any] | None = None,
    cumulative: bool = True,
    max_samples: int | None = None,
    batch_size: int = 128,
) -> RobustCurve:
    """Accuracy of a pixel-space ``model`` under ``attack`` at each of ``epsilons`` (sorted ascending).

    ``data`` is a loader of ``(pixel images (B, C, H, W) in [0, 1], labels (B,))`` batches or one
    ``(images, labels)`` tensor pair (cut into ``batch_size`` batches); ``max_samples`` stops early. ``attack``
    is a name of :data:`ATTACKS` (``"fgsm"``, ``"pgd"``, ``"apgd"``) or a callable
    ``attack(model, x, y, eps, **attack_kwargs) -> x_adv``; ``attack_kwargs`` go to it (e.g. ``norm="l2"``,
    ``steps=20``). Batches move to the model's device; an epsilon of 0 gives the clean accuracy.

    >>> pixel_model = NormalizedModel(model, mean, std)  # doctest: +SKIP
    >>> curve = robust_accuracy_curve(pixel_model, loader, [0, 2 / 255, 8 / 255])  # doctest: +SKIP
    >>> curve.accuracies  # doctest: +SKIP
    (0.93, 0.41, 0.02)
    """
    kwargs = dict(attack_kwargs or {})
    name, fn = _resolve(attack, kwargs)
    eps_sorted = sorted(float(e) for e in epsilons)
    if not eps_sorted or eps_sorted[0] < 0:
        raise ConfigError(f"epsilons must be a non-empty list of non-negative numbers, got {list(epsilons)}.")
    device = model_device(model)
    robust = torch.zeros(len(eps_sorted), dtype=torch.long)
    clean_correct, n = 0, 0
    for images, labels in iter_batches(data, batch_size=batch_size, max_samples=max_samples):
        x, y = images.to(device=device, dtype=torch.float32), labels.to(device=device, dtype=torch.long)
        with eval_mode(model), torch.no_grad():
            still = model(x).argmax(dim=1) == y  # (B,)
        clean_correct += int(still.sum())
        n += x.shape[0]
        for i, eps in enumerate(eps_sorted):
            x_adv = fn(model, x, y, eps, **kwargs)  # (B, C, H, W)
            with eval_mode(model), torch.no_grad():
                correct = model(x_adv).argmax(dim=1) == y  # (B,)
            still = still & correct if cumulative else correct
            robust[i] += int(still.sum())
    if n == 0:
        raise DataError("robust_accuracy_curve got no examples; check that the loader yields batches.")
    return RobustCurve(
        attack=name,
        norm=str(kwargs.get("norm", "linf")),
        epsilons=tuple(eps_sorted),
        accuracies=tuple(float(r) / n for r in robust.tolist()),
        clean_accuracy=clean_correct / n,
        n=n,
        cumulative=cumulative,
        options={k: v for k, v in kwargs.items() if isinstance(v, (int, float, str, bool))},
    )


def _resolve(attack: str | Attack, kwargs: dict[str, Any]) -> tuple[str, Attack]:
    if isinstance(attack, str):
        fn = lookup("attack", ATTACKS, attack)
        name = attack
    elif callable(attack):
        fn, name = attack, getattr(attack, "__name__", type(attack).__name__)
    else:
        raise ConfigError(f"attack must be a name of {list(ATTACKS)} or a callable, got {attack!r}.")
    try:
        inspect.signature(fn).bind(None, None, None, 0.0, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"attack {name!r} does not take the options {sorted(kwargs)}: {exc}.") from exc
    except ValueError:  # a callable without an inspectable signature: let the call itself complain
        pass
    return name, fn


def cw_curve(
    model: nn.Module,
    data: Batches,
    epsilons: Sequence[float],
    *,
    attack_kwargs: Mapping[str, Any] | None = None,
    max_samples: int | None = None,
    batch_size: int = 128,
) -> RobustCurve:
    """Robust accuracy under Carlini-Wagner L2 at each L2 radius of ``epsilons``, from one minimum-norm run.

    An example counts as robust at ``eps`` when it is classified correctly and C&W's smallest adversarial
    perturbation is longer than ``eps`` (so the curve is cumulative by construction). ``attack_kwargs`` go to
    :func:`cw_l2` (``steps``, ``search_steps``, ``confidence``, ...); ``options`` records them and the median
    L2 norm of the successful perturbations.

    >>> curve = cw_curve(pixel_model, (images, labels), [0.0, 0.5, 1.0], attack_kwargs={"steps": 50})  # doctest: +SKIP
    """
    kwargs = dict(attack_kwargs or {})
    eps_sorted = sorted(float(e) for e in epsilons)
    if not eps_sorted or eps_sorted[0] < 0:
        raise ConfigError(f"epsilons must be a non-empty list of non-negative numbers, got {list(epsilons)}.")
    device = model_device(model)
    corrects, norms = [], []
    for images, labels in iter_batches(data, batch_size=batch_size, max_samples=max_samples):
        x, y = images.to(device=device, dtype=torch.float32), labels.to(device=device, dtype=torch.long)
        with eval_mode(model), torch.no_grad():
            corrects.append((model(x).argmax(dim=1) == y).cpu())
        norms.append(cw_l2(model, x, y, **kwargs).norms.cpu())
    if not corrects:
        raise DataError("cw_curve got no examples; check that the loader yields batches.")
    correct, norm = torch.cat(corrects), torch.cat(norms)
    found = norm[correct & torch.isfinite(norm)]
    options = {k: v for k, v in kwargs.items() if isinstance(v, (int, float, str, bool))}
    options["median_l2"] = float(found.median()) if found.numel() else None
    return RobustCurve(
        attack="cw", norm="l2", epsilons=tuple(eps_sorted),
        accuracies=robust_accuracy_from_norms(correct, norm, eps_sorted),
        clean_accuracy=float(correct.float().mean()), n=int(correct.numel()), cumulative=True, options=options,
    )  # fmt: skip
