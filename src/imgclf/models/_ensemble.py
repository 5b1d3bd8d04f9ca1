"""Probability-averaging wrappers that meet the model contract: a deep ensemble (``EnsembleNet``) and test-time
augmentation / MC dropout around one model (``HedgedNet``).

Both return *log mean probabilities* as their logits, so every consumer that applies the task's activation
(softmax for single-label, sigmoid for multi-label) recovers the averaged probabilities exactly, and ONNX export,
calibration, rejection and evaluation treat them like any other model. ``member_logits`` gives the per-member
(per-view, per-sample) logits ``(K, B, C)`` from which :func:`mutual_information` measures disagreement.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from imgclf.errors import ModelError
from imgclf.models._classics import HALF_CONFIG
from imgclf.models._registry import register_model

ACTIVATIONS = ("softmax", "sigmoid")
TTA_MODES = ("flip", "flip+crop", "flip+shift")
_EPS = 1e-7


def mean_prob_logits(stack: torch.Tensor, activation: str = "softmax") -> torch.Tensor:
    """Logits whose activation is the mean of the members' probabilities: ``(K, B, C) -> (B, C)``.

    softmax: ``log mean softmax`` (a valid logit vector); sigmoid: ``logit(mean sigmoid)``, clamped away from 0/1.

    >>> z = torch.tensor([[[2.0, 0.0]], [[0.0, 2.0]]])
    >>> mean_prob_logits(z).softmax(-1)
    tensor([[0.5000, 0.5000]])
    """
    stack = stack.float()
    k = stack.shape[0]
    if activation == "softmax":
        return torch.logsumexp(F.log_softmax(stack, dim=-1), dim=0) - math.log(k)  # (B, C)
    p = torch.sigmoid(stack).mean(0).clamp(_EPS, 1 - _EPS)  # (B, C)
    return torch.log(p) - torch.log1p(-p)


def mutual_information(stack: torch.Tensor, activation: str = "softmax") -> torch.Tensor:
    """Disagreement ``(B,)`` of K members' logits ``(K, B, C)``: entropy of the mean minus the mean entropy (nats).

    Zero when every member gives the same probabilities; large when confident members disagree. For sigmoid
    outputs it sums the per-label (Bernoulli) terms.

    >>> mutual_information(torch.tensor([[[9.0, 0.0]], [[0.0, 9.0]]])).item() > 0.6
    True
    """
    stack = stack.double()  # float32 rounds sigmoid(20) to exactly 1, and 0 * log 0 to nan
    if activation == "softmax":
        p = stack.softmax(-1)  # (K, B, C)
        mean = p.mean(0)
        h_mean = -(mean * mean.clamp_min(1e-12).log()).sum(-1)
        h_each = -(p * p.clamp_min(1e-12).log()).sum(-1).mean(0)
    else:
        p = torch.sigmoid(stack)
        mean = p.mean(0)

        def bern(q: torch.Tensor) -> torch.Tensor:
            q = q.clamp(1e-12, 1 - 1e-12)
            return -(q * q.log() + (1 - q) * (1 - q).log())

        h_mean, h_each = bern(mean).sum(-1), bern(p).sum(-1).mean(0)
    return (h_mean - h_each).clamp_min(0.0).float()


def _check_activation(activation: str) -> None:
    if activation not in ACTIVATIONS:
        raise ModelError(f"activation={activation!r} must be one of {', '.join(ACTIVATIONS)}")


class EnsembleNet(nn.Module):
    """K classifiers with the same classes, averaged in probability space.

    ``forward_features`` gives the members' pooled pre-logit features concatenated ``(B, sum D_k)``;
    ``forward_head`` splits them and applies each member's classifier, so ``forward == forward_head(forward_features)``.

    >>> from imgclf.models import create_model
    >>> net = EnsembleNet([create_model("test_cnn", 3), create_model("test_cnn", 3)]).eval()
    >>> net(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 3])
    """

    def __init__(self, members: Sequence[nn.Module], activation: str = "softmax") -> None:
        super().__init__()
        _check_activation(activation)
        if len(members) < 2:
            raise ModelError(f"an ensemble needs at least 2 members, got {len(members)}")
        classes = {int(m.num_classes) for m in members}
        if len(classes) != 1:
            raise ModelError(f"ensemble members disagree on the number of classes ({sorted(classes)})")
        self.members = nn.ModuleList(members)
        self.activation = activation
        self.num_classes = classes.pop()
        self.widths = [int(m.num_features) for m in members]
        self.num_features = sum(self.widths)
        self.drop_rate = 0.0

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        feats = [m.forward_head(m.forward_features(x), pre_logits=True) for m in self.members]  # K x (B, D_k)
        return torch.cat([f.flatten(1) for f in feats], dim=1)  # (B, sum D_k)

    def member_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Each member's logits ``(K, B, C)`` (from ``x``, or from pooled features when given ``(B, sum D_k)``)."""
        if x.ndim == 2 and x.shape[1] == self.num_features:
            chunks = torch.split(x, self.widths, dim=1)
            return torch.stack([m.get_classifier()(c) for m, c in zip(self.members, chunks)])
        return torch.stack([m(x) for m in self.members])

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if pre_logits:
            return x  # (B, sum D_k)
        return mean_prob_logits(self.member_logits(x), self.activation)  # (B, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mean_prob_logits(torch.stack([m(x) for m in self.members]), self.activation)  # (B, C)

    def hedged_outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits ``(B, C)``, disagreement ``(B,)`` and pooled features ``(B, sum D_k)`` from one pass."""
        feats = self.forward_features(x)
        stack = self.member_logits(feats)  # (K, B, C)
        return mean_prob_logits(stack, self.activation), mutual_information(stack, self.activation), feats

    @property
    def target_model(self) -> nn.Module:
        """The member attribution methods read (the first; its layer fires during the ensemble's forward)."""
        return self.members[0]

    def get_classifier(self) -> nn.Module:
        return self.members[0].get_classifier()

    def reset_classifier(self, num_classes: int) -> None:
        """Reset every member's classifier to ``num_classes`` outputs (0: identity)."""
        for m in self.members:
            m.reset_classifier(num_classes)
        self.num_classes = num_classes


def ensemble_head_stats(model: nn.Module) -> dict[str, torch.Tensor]:
    """The members' linear heads of an :class:`EnsembleNet` as tensors (safetensors-ready), so the
    ``disagreement`` rejection rule (:func:`imgclf.tasks.ood_score`) recomputes the members' logits, and their
    mutual information, from the ensemble's pooled features ``(B, sum D_k)`` of the same pass.

    Keys: ``weight`` ``(C, sum D_k)`` (the members' weights side by side), ``bias`` ``(K, C)``, ``widths`` ``(K,)``.
    Raises ModelError for a model that is not an ensemble or a member whose classifier is not linear.

    >>> from imgclf.models import create_model
    >>> s = ensemble_head_stats(EnsembleNet([create_model("test_cnn", 3), create_model("test_cnn", 3)]))
    >>> tuple(s["bias"].shape), s["widths"].tolist() == [s["weight"].shape[1] // 2] * 2
    ((2, 3), True)
    """
    if not isinstance(model, EnsembleNet):
        raise ModelError(f"the disagreement rejection rule needs an ensemble bundle (`imgclf ensemble`), not a "
                         f"{type(model).__name__}; pick another --rule (msp, energy, mahalanobis ...)")  # fmt: skip
    weights, biases = [], []
    for i, (m, width) in enumerate(zip(model.members, model.widths)):
        head = m.get_classifier()
        if not isinstance(head, nn.Linear) or head.in_features != width:
            raise ModelError(f"ensemble member {i} has a {type(head).__name__} classifier, not a linear layer on its "
                             f"{width} pooled features: the disagreement rule cannot be stored for this ensemble; "
                             "use --rule msp or energy")  # fmt: skip
        weights.append(head.weight.detach().float().cpu())  # (C, D_k)
        bias = head.bias.detach().float().cpu() if head.bias is not None else torch.zeros(head.out_features)
        biases.append(bias)
    return {"weight": torch.cat(weights, 1).contiguous(), "bias": torch.stack(biases).contiguous(),
            "widths": torch.tensor(model.widths, dtype=torch.int64)}  # fmt: skip


def _has_dropout(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0]


#: One lock per base model: MC dropout switches that model's dropout layers to training mode for its passes, so
#: two threads running a HedgedNet (or two HedgedNets over one model) must not interleave, or one would restore
#: the other's switched state (leaving dropout on for good) or run its passes deterministically.
_MC_LOCKS: weakref.WeakKeyDictionary[nn.Module, threading.Lock] = weakref.WeakKeyDictionary()
_MC_LOCKS_GUARD = threading.Lock()


def _mc_lock(model: nn.Module) -> threading.Lock:
    with _MC_LOCKS_GUARD:
        lock = _MC_LOCKS.get(model)
        if lock is None:
            lock = _MC_LOCKS[model] = threading.Lock()
        return lock


class HedgedNet(nn.Module):
    """Test-time augmentation and/or MC dropout around ``model``, averaging probabilities (original view included).

    ``tta``: None, ``"flip"`` (original + horizontal mirror), ``"flip+crop"`` (adds four corner crops of 7/8
    size, resized back: 6 views) or ``"flip+shift"`` (adds the image and its mirror moved by 1/32 of the side up-left
    and down-right, borders reflected: 6 views; for small images, the speedruns' TTA). ``mc_dropout``:
    T > 0 passes per view with only the dropout layers in training mode (a model without dropout raises
    ModelError). Pooled features are the base model's on the original view, so drift and feature rejection
    still work (``forward_features`` packs them after the hedged logits, see there).

    >>> from imgclf.models import create_model
    >>> net = HedgedNet(create_model("test_cnn", 3), tta="flip").eval()
    >>> net(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 3])
    """

    def __init__(self, model: nn.Module, *, tta: str | None = None, mc_dropout: int = 0,
                 activation: str = "softmax") -> None:  # fmt: skip
        super().__init__()
        _check_activation(activation)
        if tta is not None and tta not in TTA_MODES:
            raise ModelError(f"tta={tta!r} must be one of {', '.join(TTA_MODES)}")
        if isinstance(mc_dropout, bool) or not isinstance(mc_dropout, int) or mc_dropout < 0:
            raise ModelError(f"mc_dropout={mc_dropout!r} must be a number of passes >= 1 (0: off)")
        if mc_dropout and not _has_dropout(model):
            raise ModelError(
                "--mc-dropout needs a model with dropout, and this one has no active dropout layer: retrain with "
                "--set model.drop_rate=0.2 (or use --tta / an ensemble for uncertainty)"
            )
        self.model = model
        self.tta = tta
        self.mc_dropout = int(mc_dropout)
        self.activation = activation
        self.num_classes = model.num_classes
        self.num_features = model.num_features
        self.drop_rate = getattr(model, "drop_rate", 0.0)
        self.imgclf_data_config = getattr(model, "imgclf_data_config", None)

    def views(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The augmented views of ``x`` ``(B, 3, H, W)``, the original first."""
        out = [x]
        if self.tta in TTA_MODES:
            out.append(torch.flip(x, dims=[3]))
        if self.tta == "flip+crop":
            h, w = x.shape[-2:]
            ch, cw = max(1, round(h * 7 / 8)), max(1, round(w * 7 / 8))
            for top, left in ((0, 0), (0, w - cw), (h - ch, 0), (h - ch, w - cw)):
                crop = x[..., top : top + ch, left : left + cw]
                out.append(F.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False))
        if self.tta == "flip+shift":
            h, w = x.shape[-2:]
            r = max(1, round(min(h, w) / 32))
            padded = F.pad(x, (r, r, r, r), mode="reflect")
            for top in (0, 2 * r):
                moved = padded[..., top : top + h, top : top + w]
                out += [moved, torch.flip(moved, dims=[3])]
        return out

    def member_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of every view (times every dropout pass) ``(K, B, C)``."""
        if not self.mc_dropout:
            return torch.stack([self.model(v) for v in self.views(x)])
        drops = _has_dropout(self.model)
        with _mc_lock(self.model):  # the switch below is shared state: one thread at a time (see _MC_LOCKS)
            states = [d.training for d in drops]
            try:
                for d in drops:
                    d.train()  # only the dropout layers: batch norm keeps its running statistics
                return torch.stack([self.model(v) for v in self.views(x) for _ in range(self.mc_dropout)])
            finally:
                for d, s in zip(drops, states):
                    d.train(s)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The hedged logits and the base model's pooled features of the original view, packed ``(B, C + D)``
        so that ``forward_head`` gives either and one pass serves logits and features."""
        return torch.cat([self(x), self.model.forward_head(self.model.forward_features(x), pre_logits=True)], 1)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        c = self.num_classes
        return x[:, c:] if pre_logits else x[:, :c]  # (B, D) or (B, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mean_prob_logits(self.member_logits(x), self.activation)  # (B, C)

    def hedged_outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits ``(B, C)``, disagreement ``(B,)`` of the same views / passes, and the base model's pooled
        features of the original view ``(B, D)``: what a server answers with, in one go."""
        stack = self.member_logits(x)  # (K, B, C)
        feats = self.model.forward_head(self.model.forward_features(x), pre_logits=True)
        return mean_prob_logits(stack, self.activation), mutual_information(stack, self.activation), feats

    @property
    def target_model(self) -> nn.Module:
        return self.model

    def get_classifier(self) -> nn.Module:
        return self.model.get_classifier()

    def reset_classifier(self, num_classes: int) -> None:
        raise ModelError("a test-time wrapper cannot be retrained: reset the classifier of the underlying model")


def build_ensemble(members: Sequence[dict[str, Any]], num_classes: int, activation: str = "softmax") -> EnsembleNet:
    """An untrained :class:`EnsembleNet` from member records ``{"architecture", "arch_args"}`` (as in imgclf.json)."""
    from imgclf.models._factory import create_model

    nets = []
    for i, rec in enumerate(members):
        if not isinstance(rec, dict) or "architecture" not in rec:
            raise ModelError(f"ensemble member {i} must be a record with 'architecture' (and 'arch_args'): {rec!r}")
        nets.append(create_model(str(rec["architecture"]), num_classes, **dict(rec.get("arch_args") or {})))
    return EnsembleNet(nets, activation)


@register_model("ensemble", data_config=HALF_CONFIG,
                description="probability-averaging ensemble of bundles (built by `imgclf ensemble`)")  # fmt: skip
def ensemble(num_classes: int, drop_rate: float = 0.0, members: Sequence[dict[str, Any]] | None = None,
             activation: str = "softmax") -> nn.Module:  # fmt: skip
    """An :class:`EnsembleNet` of ``members`` (``{"architecture", "arch_args"}`` records); without members, two
    ``test_cnn`` (so the registry's contract test can build it). ``drop_rate`` is ignored (members keep their own)."""
    default = [{"architecture": "test_cnn", "arch_args": {}}] * 2
    return build_ensemble(members or default, num_classes, activation)
