"""Test-time adaptation to shifted data: BatchNorm statistics from the test batches (Schneider et al. 2020) and
TENT (Wang et al. 2021, entropy minimisation on the BatchNorm affine parameters), always on a copy of the model."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from imgclf.errors import ConfigError, DataError
from imgclf.robustness._batches import Batches, iter_batches
from imgclf.robustness._corruption_eval import CorruptionReport
from imgclf.robustness._corruptions import corrupt
from imgclf.utils import model_device

ADAPT_METHODS = ("bn", "tent")
_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


class TestTimeAdapter(nn.Module):
    """A copy of ``model`` that adapts to each batch it sees; the original is never touched.

    ``method="bn"``: every BatchNorm layer normalises with the statistics of the incoming batch instead of the
    training ones, and its running statistics follow the stream (momentum 0.1), so a lone image (a batch of one)
    is answered with the statistics adapted so far. ``method="tent"``: the same, and before answering, ``steps``
    Adam steps (``lr``) minimise the mean prediction entropy over the BatchNorm weights and biases only; the
    answer is the logits of the forward pass the update used (as in the paper). ``episodic=True`` resets the
    copy before every batch (no memory across batches); :meth:`reset` does it by hand, e.g. between streams.
    A batch of one image is answered without an update (its own statistics would be meaningless).

    >>> adapted = TestTimeAdapter(NormalizedModel(model, mean, std), "tent")  # doctest: +SKIP
    >>> logits = adapted(corrupted_batch)  # adapts, then answers  # doctest: +SKIP
    """

    __test__ = False  # not a pytest class, despite the name

    def __init__(self, model: nn.Module, method: str = "tent", *, lr: float = 1e-3, steps: int = 1,
                 episodic: bool = False) -> None:  # fmt: skip
        super().__init__()
        if method not in ADAPT_METHODS:
            raise ConfigError(f"unknown test-time adaptation {method!r}; choose one of {', '.join(ADAPT_METHODS)}.")
        if steps < 1 or lr <= 0:
            raise ConfigError(f"test-time adaptation needs steps >= 1 and lr > 0, got steps={steps}, lr={lr}.")
        self.method, self.lr, self.steps, self.episodic = method, lr, steps, episodic
        self.model = copy.deepcopy(model)
        norms = [m for m in self.model.modules() if isinstance(m, _BN)]
        if not norms:
            raise ConfigError(
                f"this model has no BatchNorm layers, so '{method}' test-time adaptation has nothing to "
                "adapt; use a model with BatchNorm (e.g. resnet18) or leave --adapt off."
            )
        self.model.requires_grad_(False)
        params = []
        self._norms = norms
        for bn in norms:
            for p in (bn.weight, bn.bias):
                if p is not None and method == "tent":
                    p.requires_grad_(True)
                    params.append(p)
        self.optimizer = torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999)) if params else None
        self._initial = copy.deepcopy(self.model.state_dict())
        self._initial_opt = copy.deepcopy(self.optimizer.state_dict()) if self.optimizer else None

    def reset(self) -> None:
        """Back to the unadapted copy (weights and optimizer state)."""
        self.model.load_state_dict(self._initial)
        if self.optimizer is not None and self._initial_opt is not None:
            self.optimizer.load_state_dict(self._initial_opt)

    def _prepare(self, x: torch.Tensor) -> bool:
        """Reset (episodic) and set the BatchNorm modes for ``x``; True when it is a batch to adapt on."""
        if x.shape[0] == 0:
            raise DataError("test-time adaptation got an empty batch.")
        if self.episodic:
            self.reset()
        batch_stats = x.shape[0] >= 2
        for bn in self._norms:  # whatever mode the caller set: batch statistics when there is a batch
            bn.train(batch_stats)
        return batch_stats

    def _update(self, x: torch.Tensor) -> torch.Tensor:
        """TENT's steps on ``x``; the logits ``(B, K)`` of the last forward pass an update used."""
        with torch.inference_mode(False), torch.enable_grad():
            x = x.clone()  # a normal tensor even when called under torch.inference_mode
            for _ in range(self.steps):
                logits = self.model(x)  # (B, K)
                log_p = torch.log_softmax(logits, dim=1)
                entropy = -(log_p.exp() * log_p).sum(dim=1).mean()
                self.optimizer.zero_grad(set_to_none=True)
                entropy.backward()
                self.optimizer.step()
        return logits.detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._prepare(x) or self.optimizer is None:
            with torch.no_grad():
                return self.model(x)  # (B, K)
        return self._update(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Adapt on ``x`` as :meth:`forward` does, then its features through the adapted copy (the model
        contract, so predict can score feature-space rejection rules on an adapted model)."""
        if self._prepare(x) and self.optimizer is not None:
            self._update(x)
        with torch.no_grad():
            return self.model.forward_features(x)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        with torch.no_grad():
            return self.model.forward_head(features, pre_logits=pre_logits)


def adapted_corruption_accuracy(
    model: nn.Module,
    data: Batches,
    method: str | None,
    names: Sequence[str],
    severities: Sequence[int],
    *,
    seed: int = 0,
    batch_size: int = 256,
    episodic: bool = False,
    lr: float = 1e-3,
) -> CorruptionReport:
    """Accuracy of a pixel-space ``model`` on clean data and each corruption stream, adapted at test time.

    Each stream (the clean images, then every corruption at every severity) runs through a fresh
    :class:`TestTimeAdapter` (``method`` ``"bn"`` or ``"tent"``; ``None`` evaluates the model as it is), batch by
    batch in order, as a deployment would see it; batch ``i`` is corrupted with seed ``seed + i``, exactly as
    :func:`corruption_accuracy` does. Batch statistics assume a mixed stream: shuffle class-sorted data first
    (sorted batches of one class lost half the clean accuracy of a CIFAR-10 CNN). On that CNN, batches of 256
    cost no clean accuracy where batches of 128 cost 1.3 points.

    >>> rep = adapted_corruption_accuracy(pixel_model, (images, labels), "tent", ["fog"], [3, 4, 5])  # doctest: +SKIP
    >>> rep.mean_corruption_accuracy  # doctest: +SKIP
    0.61
    """
    adapter = TestTimeAdapter(model, method, episodic=episodic, lr=lr) if method else None
    device = model_device(model)
    batches = [(x.to(device=device, dtype=torch.float32), y.to(device))
               for x, y in iter_batches(data, batch_size=batch_size)]  # fmt: skip
    if not batches:
        raise DataError("adapted_corruption_accuracy got no examples; check that the loader yields batches.")
    n = sum(int(y.shape[0]) for _, y in batches)

    def stream(name: str | None, severity: int) -> float:
        net: nn.Module = model if adapter is None else adapter
        if adapter is not None:
            adapter.reset()
        was_training = model.training
        model.eval()
        correct = 0
        try:
            for i, (x, y) in enumerate(batches):
                xs = x if name is None else corrupt(x, name, severity, seed=seed + i)  # (B, C, H, W)
                with torch.no_grad():
                    correct += int((net(xs).argmax(dim=1) == y).sum())
        finally:
            model.train(was_training)
        return correct / n

    levels = tuple(int(s) for s in severities)
    return CorruptionReport(
        clean_accuracy=stream(None, 0),
        accuracies={name: tuple(stream(name, s) for s in levels) for name in names},
        severities=levels,
        n=n,
        seed=seed,
    )
