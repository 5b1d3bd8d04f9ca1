"""DP-SGD through Opacus: what does not combine, the BatchNorm swap, the private training state, the epsilon callback.

Opacus does the per-sample clipping, the noise, the Poisson sampling and the accounting (RDP accountant); this
module only fits them to the engine: the loop keeps its shape (forward, loss, backward, step), and the pieces it
calls (model, optimizer, loader, sampler, scheduler) are swapped for their private versions.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from rich.console import Console
from torch import nn
from torch.utils.data import DataLoader

from imgclf import engine as E
from imgclf.config import RunConfig
from imgclf.errors import ConfigError
from imgclf.utils import optional_import

ACCOUNTANT = "rdp"


def mix_seed(*values: int) -> int:
    """A 63-bit seed from integers (numpy's SeedSequence): nearby inputs give unrelated seeds.

    >>> mix_seed(0, 1) == mix_seed(0, 1) != mix_seed(1, 0)
    True
    """
    return int(np.random.SeedSequence([int(v) for v in values]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def check_dp_config(cfg: RunConfig, *, world_size: int = 1) -> None:
    """Refuse, in one line, what does not combine with DP-SGD (``cfg.train.dp_epsilon`` set).

    MixUp/CutMix make one gradient depend on two images (the per-example bound no longer holds); a class-balanced
    sampler replaces Poisson sampling (the accountant's assumption); gradient clipping, accumulation and mixed
    precision are replaced by Opacus' own per-sample clipping and memory manager; adversarial training and
    distillation run extra passes the per-sample hooks would record. EMA is allowed: averaging the noisy weights is
    post-processing and costs no privacy.
    """
    d, t = cfg.data, cfg.train
    clashes = [
        ("--set data.mixup / data.cutmix", d.mixup > 0 or d.cutmix > 0, "a mixed image carries two examples"),
        ("--set data.sampler=balanced", d.sampler == "balanced", "DP-SGD samples each image with the same rate"),
        ("--set train.grad_clip", t.grad_clip is not None, "Opacus clips each example's gradient (dp_max_grad_norm)"),
        ("--set train.accumulate", t.accumulate != 1, "use train.dp_physical_batch to bound memory instead"),
        ("--set train.amp", t.amp not in ("auto", "off"), "per-sample gradients are computed in float32"),
        ("--adv-train", t.adv_train != "none", "its attack passes would be recorded as per-sample gradients"),
        ("--set train.distill_teacher", t.distill_teacher is not None, "the teacher saw the same private data"),
        ("torchrun (several processes)", world_size > 1, "this DP set-up accounts for one process"),
        ("--set data.cache=memory", d.cache == "memory", "Poisson sampling needs the file loader"),
    ]
    for flag, clash, why in clashes:
        if clash:
            raise ConfigError(f"--dp-epsilon does not combine with {flag}: {why}. Drop one of the two")


def resolve_dp_auto(cfg: RunConfig) -> RunConfig:
    """``cfg`` with the ``"auto"`` choices DP-SGD cannot use resolved to ones it can: ``train.amp=auto`` becomes
    ``off`` (per-sample gradients in float32, also on CUDA). EMA, augmentation and the learning rate keep their
    policies: all three combine with DP-SGD.

    >>> from imgclf.config import load_config
    >>> resolve_dp_auto(load_config(None, {"train": {"dp_epsilon": 8.0}})).train.amp
    'off'
    """
    if cfg.train.dp_epsilon and cfg.train.amp == "auto":
        return replace(cfg, train=replace(cfg.train, amp="off"))
    return cfg


def dp_compatible_model(model: nn.Module, console: Console | None = None) -> tuple[nn.Module, list[str]]:
    """``model`` made trainable by Opacus (``ModuleValidator.fix``), and the names of the layers it replaced.

    BatchNorm becomes GroupNorm (statistics over a batch mix its images; per-sample gradients need layers that
    do not). Only that replacement is accepted, because a bundle must rebuild the same layers when it loads
    (:func:`imgclf.models.batchnorm_to_groupnorm`); anything else Opacus cannot train raises ConfigError naming it.
    """
    validators = optional_import("opacus.validators", "privacy")
    before = {name: type(m).__name__ for name, m in model.named_modules()}
    fixed = validators.ModuleValidator.fix(model)
    for m in fixed.modules():  # in-place activations would overwrite what Opacus' backward hooks read
        if getattr(m, "inplace", False) is True:
            m.inplace = False
    after = {name: type(m).__name__ for name, m in fixed.named_modules()}
    replaced = sorted(n for n in before if n in after and before[n] != after[n])
    other = [f"{n} ({before[n]} -> {after[n]})" for n in replaced if after[n] != "GroupNorm"]
    errors = validators.ModuleValidator.validate(fixed, strict=False)
    if other or errors:
        what = ", ".join(other) or "; ".join(str(e) for e in errors[:3])
        raise ConfigError(f"DP-SGD cannot train this model as saved in a bundle: {what}. Pick a model with "
                          "BatchNorm, GroupNorm or no normalisation (e.g. resnet20_cifar or lenet5)")  # fmt: skip
    if replaced and console is not None:
        kinds = sorted({before[n] for n in replaced})
        console.print(f"DP-SGD: replaced {len(replaced)} {'/'.join(kinds)} layer(s) with GroupNorm (batch statistics "
                      f"mix the images of a batch; per-sample gradients cannot): {', '.join(replaced)}")  # fmt: skip
    return fixed, replaced


def physical_batch(batch_size: int, cap: int | None) -> int:
    """Images per forward pass under Poisson sampling: ``cap``, else the mean batch plus four standard deviations
    (a logical batch is split into passes only when it is unusually large).

    >>> physical_batch(256, None)
    320
    """
    return cap or batch_size + math.ceil(4 * math.sqrt(batch_size))


def steps_taken(accountant: Any) -> int:
    """Noisy optimizer steps recorded by an Opacus accountant (its history of (sigma, rate, steps))."""
    return int(sum(h[2] for h in accountant.history))


def _poisson_sampler_class() -> type:
    uniform = optional_import("opacus.utils.uniform_sampler", "privacy").UniformWithReplacementSampler

    class PoissonBatches(uniform):
        """Opacus' Poisson sampler, made resumable: each logical batch takes every image independently with
        probability ``sample_rate``; the ``steps`` draws of an epoch are seeded by ``(seed, noisy steps before the
        epoch)``. A run resumed mid-epoch replays the epoch's draws and skips the non-empty ones that already made
        a noisy step (the accountant counts them), so it continues with the very batches the uninterrupted run
        takes; a logical batch cut short by the interruption is taken again whole. Empty draws are skipped
        (whether a draw is empty does not depend on the data; nothing is released for it). Items are
        ``(index, item_seed)``.
        """

        def __init__(self, *, num_samples: int, sample_rate: float, steps: int, seed: int, accountant: Any) -> None:
            super().__init__(num_samples=num_samples, sample_rate=sample_rate, steps=steps)
            self.seed, self.accountant = int(seed), accountant
            self.epoch_start = 0  # noisy steps at the start of the current epoch (set by PrivacyAccounting)

        def set_epoch(self, epoch: int) -> None:  # the position comes from the accountant
            pass

        def skip(self, n: int) -> None:  # the position comes from the accountant
            pass

        def __iter__(self) -> Iterator[list[tuple[int, int]]]:
            skip = steps_taken(self.accountant) - self.epoch_start  # noisy steps this epoch already made
            gen = torch.Generator().manual_seed(mix_seed(self.seed, self.epoch_start))
            for k in range(self.steps):
                mask = torch.rand(self.num_samples, generator=gen) < self.sample_rate  # (N,)
                if not mask.any():
                    continue
                if skip > 0:
                    skip -= 1
                    continue
                base = mix_seed(self.seed, self.epoch_start, k)
                yield [(i, mix_seed(base, i)) for i in mask.nonzero().reshape(-1).tolist()]

    return PoissonBatches


class LogicalStepScheduler:
    """The run's LR schedule stepped once per noisy optimizer step, not per physical pass of the memory manager."""

    def __init__(self, inner: Any, accountant: Any) -> None:
        self.inner, self.accountant, self.seen = inner, accountant, 0

    def step(self) -> None:
        done = steps_taken(self.accountant)
        if done > self.seen:
            self.seen = done
            self.inner.step()

    def get_last_lr(self) -> list[float]:
        return self.inner.get_last_lr()

    def state_dict(self) -> dict[str, Any]:
        return {"inner": self.inner.state_dict(), "seen": self.seen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state["inner"])
        self.seen = int(state["seen"])


class PrivacyAccounting(E.Callback):
    """Logs epsilon spent after every epoch (``metrics["epsilon"]``), stops before the next epoch would pass the
    target, and checkpoints the accountant's history and the noise generator so a resume continues exactly."""

    name = "privacy"

    def __init__(self, *, privacy_engine: Any, sampler: Any, noise: torch.Generator, target_epsilon: float,
                 delta: float, noise_multiplier: float, max_grad_norm: float, replaced: list[str]) -> None:  # fmt: skip
        self.engine, self.sampler, self.noise = privacy_engine, sampler, noise
        self.target_epsilon, self.delta = target_epsilon, delta
        self.noise_multiplier, self.max_grad_norm, self.replaced = noise_multiplier, max_grad_norm, replaced
        self.per_epoch: list[float] = []

    @property
    def accountant(self) -> Any:
        return self.engine.accountant

    def epsilon(self, extra_steps: int = 0) -> float:
        """Epsilon spent so far (at ``delta``), or after ``extra_steps`` more noisy steps."""
        history = list(self.accountant.history)
        if extra_steps:
            history.append((self.noise_multiplier, self.sampler.sample_rate, extra_steps))
        if not history:
            return 0.0
        acc = type(self.accountant)()
        acc.history = history
        return float(acc.get_epsilon(self.delta))

    def on_epoch_start(self, state: E.TrainState) -> None:
        if state.batch_in_epoch == 0:
            self.sampler.epoch_start = steps_taken(self.accountant)

    def on_epoch_end(self, state: E.TrainState, metrics: dict[str, Any]) -> None:
        eps = self.epsilon()
        metrics["epsilon"] = eps
        self.per_epoch.append(eps)
        if state.epoch < state.epochs and self.epsilon(self.sampler.steps) > self.target_epsilon * 1.001:
            state.stop = True
            state.stop_reason = (f"stopped at epsilon {eps:.3f}: another epoch would pass the target "
                                 f"--dp-epsilon {self.target_epsilon}")  # fmt: skip

    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        meta = {"history": [list(h) for h in self.accountant.history], "epoch_start": self.sampler.epoch_start,
                "per_epoch": self.per_epoch}  # fmt: skip
        return {"noise_rng": self.noise.get_state()}, meta

    def load_state_dict(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        self.accountant.history = [(float(s), float(q), int(n)) for s, q, n in meta.get("history", [])]
        self.sampler.epoch_start = int(meta.get("epoch_start", 0))
        self.per_epoch = [float(e) for e in meta.get("per_epoch", [])]
        if "noise_rng" in tensors:
            self.noise.set_state(tensors["noise_rng"])

    def summary(self) -> dict[str, Any]:
        """What the bundle and the model card record: the guarantee and how it was obtained."""
        return {
            "epsilon": round(self.epsilon(), 4), "delta": self.delta, "target_epsilon": self.target_epsilon,
            "noise_multiplier": self.noise_multiplier, "sample_rate": self.sampler.sample_rate,
            "steps": steps_taken(self.accountant), "max_grad_norm": self.max_grad_norm, "accountant": ACCOUNTANT,
            "epsilon_per_epoch": [round(e, 4) for e in self.per_epoch], "replaced_layers": self.replaced,
            "library": f"opacus {optional_import('opacus', 'privacy').__version__}",
        }  # fmt: skip


def noise_for_budget(epsilon: float, delta: float, sample_rate: float, steps: int) -> float:
    """The noise multiplier that spends exactly (``epsilon``, ``delta``) in ``steps`` Poisson-sampled steps at
    ``sample_rate`` (Opacus' search over its RDP accountant): what a federated client uses for all its rounds.

    >>> 0.5 < noise_for_budget(8.0, 1e-5, 0.01, 1000) < 2.0
    True
    """
    utils = optional_import("opacus.accountants.utils", "privacy")
    return float(utils.get_noise_multiplier(target_epsilon=epsilon, target_delta=delta, sample_rate=sample_rate,
                                            steps=steps, accountant=ACCOUNTANT))  # fmt: skip


def make_private(state: E.TrainState, cfg: RunConfig, *, replaced: list[str] | None = None,
                 noise_multiplier: float | None = None,
                 history: list[tuple[float, float, int]] | None = None) -> PrivacyAccounting:  # fmt: skip
    """Turn ``state`` into DP-SGD training with Opacus and return the callback that tracks epsilon.

    ``make_private_with_epsilon`` picks the noise multiplier for ``cfg.train.dp_epsilon`` over ``cfg.train.epochs``
    at sample rate ``1 / batches per epoch``; the model is wrapped for per-sample gradients, the optimizer clips and
    adds noise, batches are Poisson-sampled and split by ``BatchMemoryManager`` into passes of at most
    :func:`physical_batch` images. ``state.raw_model`` stays the plain module (checkpoints and bundles read it).
    The model must already be compatible (:func:`dp_compatible_model`).

    A training that continues an earlier one on the same data (a federated client's next round) passes the
    ``noise_multiplier`` chosen for the whole budget (:func:`noise_for_budget`) and the accountant ``history`` so
    far: epsilon then counts every step on that data, and the run stops before it would pass the target.
    """
    opacus = optional_import("opacus", "privacy")
    bmm = optional_import("opacus.utils.batch_memory_manager", "privacy")
    t = cfg.train
    with warnings.catch_warnings():  # "secure RNG turned off": seeded noise keeps runs repeatable (see the docs)
        warnings.simplefilter("ignore", UserWarning)
        privacy_engine = opacus.PrivacyEngine(accountant=ACCOUNTANT)
    noise = torch.Generator().manual_seed(mix_seed(t.seed, 7))
    loader: DataLoader = state.train_loader
    common = {"module": state.raw_model, "optimizer": state.optimizer, "data_loader": loader,
              "max_grad_norm": t.dp_max_grad_norm, "poisson_sampling": True, "noise_generator": noise}
    if noise_multiplier is None:
        model, optimizer, dp_loader = privacy_engine.make_private_with_epsilon(
            **common, target_epsilon=t.dp_epsilon, target_delta=t.dp_delta, epochs=t.epochs)
    else:
        model, optimizer, dp_loader = privacy_engine.make_private(**common, noise_multiplier=noise_multiplier)
    if history:
        privacy_engine.accountant.history = [(float(s), float(q), int(n)) for s, q, n in history]
    sampler = _poisson_sampler_class()(
        num_samples=len(loader.dataset), sample_rate=dp_loader.sample_rate, steps=len(loader), seed=t.seed,
        accountant=privacy_engine.accountant,
    )  # fmt: skip
    logical = DataLoader(
        loader.dataset, batch_sampler=sampler, num_workers=loader.num_workers, collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory, persistent_workers=loader.persistent_workers,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    cap = physical_batch(state.batch_size, t.dp_physical_batch)
    with bmm.BatchMemoryManager(data_loader=logical, optimizer=optimizer, max_physical_batch_size=cap) as physical:
        state.train_loader = physical
    state.model, state.optimizer, state.sampler = model, optimizer, sampler
    # Opacus' hooks on the first layer fire with no input gradient (images need none): expected, not a problem.
    warnings.filterwarnings("ignore", message="Full backward hook is firing", category=UserWarning)
    state.scheduler = LogicalStepScheduler(state.scheduler, privacy_engine.accountant)
    return PrivacyAccounting(privacy_engine=privacy_engine, sampler=sampler, noise=noise, target_epsilon=t.dp_epsilon,
                             delta=t.dp_delta, noise_multiplier=optimizer.noise_multiplier,
                             max_grad_norm=t.dp_max_grad_norm, replaced=list(replaced or []))  # fmt: skip

