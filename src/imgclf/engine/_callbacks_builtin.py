"""The callbacks every run uses: MixUp, early stopping, checkpoints, metric files, progress, signals."""

from __future__ import annotations

import csv
import io
import json
import math
import signal
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from imgclf.engine._callbacks import Callback
from imgclf.engine._checkpoint import (
    capture_rng,
    optimizer_from_flat,
    optimizer_to_flat,
    prefixed,
    restore_rng,
    save_checkpoint,
    unprefixed,
)
from imgclf.engine._state import TrainState
from imgclf.utils import atomic_write_text


class BatchMix(Callback):
    """Applies a batch-level mix (MixUp / CutMix) that turns labels into soft targets."""

    name = "mix"

    def __init__(self, mix: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]) -> None:
        self.mix = mix

    def on_batch_start(
        self, state: TrainState, images: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mix(images, targets)


def improved(value: float, best: float | None, monitor: str, *, loss: float | None = None,
             best_loss: float | None = None) -> bool:  # fmt: skip
    """Whether ``value`` of ``monitor`` beats ``best`` (higher accuracy, lower loss). For an accuracy, a tie is
    broken by the validation ``loss`` against ``best_loss`` when both are given (lower wins).

    >>> improved(1.0, 1.0, "val_acc"), improved(1.0, 1.0, "val_acc", loss=0.7, best_loss=0.9)
    (False, True)
    """
    if best is None:
        return True
    if monitor.endswith("acc") and value == best and loss is not None and best_loss is not None:
        return loss < best_loss
    return value > best if monitor.endswith("acc") else value < best


class EarlyStopping(Callback):
    """Stops after ``patience`` epochs without improvement of ``monitor`` (skipped when it is not logged)."""

    name = "early_stopping"

    def __init__(self, monitor: str = "val_acc", patience: int = 10) -> None:
        self.monitor, self.patience = monitor, patience
        self.best: float | None = None
        self.bad_epochs = 0

    def on_epoch_end(self, state: TrainState, metrics: dict[str, Any]) -> None:
        value = metrics.get(self.monitor)
        if value is None:
            return
        if improved(value, self.best, self.monitor):
            self.best, self.bad_epochs = value, 0
            return
        self.bad_epochs += 1
        if self.bad_epochs >= self.patience:
            state.stop = True
            state.stop_reason = f"early stopping: {self.monitor} did not improve for {self.patience} epochs"

    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        return {}, {"best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        self.best, self.bad_epochs = meta.get("best"), int(meta.get("bad_epochs", 0))


class Checkpointer(Callback):
    """Writes ``checkpoints/last.safetensors`` (full resumable state) and ``best.safetensors`` (eval weights).

    ``last`` is written after every epoch, every ``every_steps`` optimizer steps, and on interrupt; ``best``
    when ``monitor`` improves (every epoch when it is not logged). An accuracy tie goes to the epoch of lower
    ``val_loss``: a small validation set saturates at 100% early, and the first epoch to reach it is rarely the
    best model (it kept a PGD-trained model at 2 of 5 epochs, no more robust than a standard one; issue 10).
    Only rank 0 writes.
    """

    name = "checkpointer"

    def __init__(
        self, directory: str | Path, callbacks: Sequence[Callback], *, monitor: str = "val_acc",
        every_steps: int | None = None,
    ) -> None:  # fmt: skip
        self.directory = Path(directory)
        self.callbacks = [c for c in callbacks if c is not self]
        self.monitor, self.every_steps = monitor, every_steps
        self.best: float | None = None
        self.best_loss: float | None = None  # the val_loss of the best epoch: breaks accuracy ties

    @property
    def last_path(self) -> Path:
        return self.directory / "last.safetensors"

    @property
    def best_path(self) -> Path:
        return self.directory / "best.safetensors"

    def on_step_end(self, state: TrainState, stats: dict[str, float]) -> None:
        if self.every_steps and state.step % self.every_steps == 0:
            self.save_last(state)

    def on_epoch_end(self, state: TrainState, metrics: dict[str, Any]) -> None:
        value, loss = metrics.get(self.monitor), metrics.get("val_loss")
        if value is None or improved(value, self.best, self.monitor, loss=loss, best_loss=self.best_loss):
            self.best, self.best_loss = value, loss
            if state.dist.is_main:
                weights = prefixed("model", state.model_for_eval().state_dict())
                save_checkpoint(self.best_path, weights, {"epoch": state.epoch, "metrics": metrics})
        self.save_last(state)

    def on_interrupt(self, state: TrainState) -> None:
        self.save_last(state)

    def save_last(self, state: TrainState) -> None:
        if not state.dist.is_main:
            return
        tensors, meta = capture_state(state, [*self.callbacks, self])
        save_checkpoint(self.last_path, tensors, meta)

    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        return {}, {"best": self.best, "best_loss": self.best_loss}

    def load_state_dict(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        self.best, self.best_loss = meta.get("best"), meta.get("best_loss")


def capture_state(state: TrainState, callbacks: Sequence[Callback]) -> tuple[dict[str, torch.Tensor], dict]:
    """Everything needed to continue exactly where the run is now."""
    tensors = prefixed("model", state.raw_model.state_dict())
    opt_tensors, opt_meta = optimizer_to_flat(state.optimizer)
    rng_tensors, rng_meta = capture_rng()
    tensors.update(opt_tensors)
    tensors.update(rng_tensors)
    meta: dict[str, Any] = {
        "epoch": state.epoch,
        "batch_in_epoch": state.batch_in_epoch,
        "epoch_totals": state.epoch_totals,
        "step": state.step,
        "history": state.history,
        "skipped_images": state.skipped_images,
        "optimizer": opt_meta,
        "scheduler": state.scheduler.state_dict(),
        "scaler": state.scaler.state_dict() if state.scaler else None,
        "rng": rng_meta,
        "callbacks": {},
    }
    for cb in callbacks:
        cb_tensors, cb_meta = cb.state_dict()
        tensors.update(prefixed(f"cb.{cb.name}", cb_tensors))
        meta["callbacks"][cb.name] = cb_meta
    return tensors, meta


def restore_state(
    state: TrainState, callbacks: Sequence[Callback], tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> None:
    """Inverse of :func:`capture_state`: model, optimizer, scheduler, scaler, callbacks, RNG and position."""
    state.raw_model.load_state_dict(unprefixed("model", tensors))
    optimizer_from_flat(state.optimizer, tensors, meta["optimizer"])
    state.scheduler.load_state_dict(meta["scheduler"])
    if state.scaler and meta.get("scaler"):
        state.scaler.load_state_dict(meta["scaler"])
    for cb in callbacks:
        cb.load_state_dict(unprefixed(f"cb.{cb.name}", tensors), meta["callbacks"].get(cb.name, {}))
    state.epoch, state.batch_in_epoch, state.step = meta["epoch"], meta["batch_in_epoch"], meta["step"]
    state.epoch_totals = dict(meta.get("epoch_totals") or {})  # absent in checkpoints of older versions
    state.history = list(meta["history"])
    state.skipped_images = meta.get("skipped_images", 0)
    restore_rng(tensors, meta["rng"])


class MetricsLogger(Callback):
    """Per-epoch metrics to ``metrics.jsonl``, ``metrics.csv`` and TensorBoard events (rank 0 only)."""

    name = "metrics_logger"

    def __init__(self, run_dir: str | Path, tensorboard: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.tensorboard = tensorboard
        self._writer: Any = None

    def on_fit_start(self, state: TrainState) -> None:
        if not state.dist.is_main:
            return
        self._rewrite(state.history)  # a resumed run drops lines logged after its checkpoint
        if self.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=state.epoch + 1)

    def on_epoch_end(self, state: TrainState, metrics: dict[str, Any]) -> None:
        if not state.dist.is_main:
            return
        with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(metrics) + "\n")
        self._write_csv(state.history)
        if self._writer is not None:
            for key, value in metrics.items():
                if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool) \
                        and math.isfinite(value):
                    self._writer.add_scalar(key.replace("_", "/", 1), value, metrics["epoch"])
            self._writer.flush()

    def on_fit_end(self, state: TrainState) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _rewrite(self, history: list[dict[str, Any]]) -> None:
        atomic_write_text(self.run_dir / "metrics.jsonl", "".join(json.dumps(m) + "\n" for m in history))
        self._write_csv(history)

    def _write_csv(self, history: list[dict[str, Any]]) -> None:
        keys = list(dict.fromkeys(k for m in history for k in m))
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys or ["epoch"])
        writer.writeheader()
        writer.writerows(history)
        atomic_write_text(self.run_dir / "metrics.csv", buf.getvalue())


class GracefulStop(Callback):
    """SIGTERM / Ctrl-C ask the loop to stop after the current step; the Checkpointer then saves ``last``.

    A second Ctrl-C stops at once.
    """

    name = "graceful_stop"

    def __init__(self) -> None:
        self._previous: dict[int, Any] = {}

    def on_fit_start(self, state: TrainState) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def handler(signum: int, frame: Any) -> None:
            if state.interrupted and signum == signal.SIGINT:
                raise KeyboardInterrupt
            state.interrupted = True

        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, handler)

    def on_fit_end(self, state: TrainState) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()


class FrozenNorms(Callback):
    """Keeps the normalisation layers of a frozen backbone (all parameters ``requires_grad=False``) in eval mode
    while the rest trains: a linear probe then sees fixed features and leaves the running statistics untouched.

    The loop puts the model in train mode each epoch, so the layers are switched back before every batch.
    """

    name = "frozen_norms"

    def __init__(self, model: torch.nn.Module) -> None:
        norms = (torch.nn.modules.batchnorm._BatchNorm, torch.nn.GroupNorm, torch.nn.LayerNorm)
        self.layers = [m for m in model.modules() if isinstance(m, norms)
                       and not any(p.requires_grad for p in m.parameters(recurse=False))]  # fmt: skip

    def on_batch_start(
        self, state: TrainState, images: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        for layer in self.layers:
            layer.eval()
        return images, targets


class DataInit(Callback):
    """Before a fresh run's first step, a model with ``init_from_data(images)`` sets layers from ``n_images``
    training images (speednet's whitening filters); every rank then takes rank 0's weights. Resumed runs skip it:
    their checkpoint holds the result. Put it first, before callbacks that copy the weights (EMA)."""

    name = "data_init"

    def __init__(self, n_images: int = 5000) -> None:
        self.n_images = n_images

    @torch.no_grad()
    def on_fit_start(self, state: TrainState) -> None:
        init = getattr(state.raw_model, "init_from_data", None)
        if init is None or state.step > 0 or state.batch_in_epoch > 0:
            return
        images, seen = [], 0
        for batch in state.train_loader:  # epoch 0's order and augmentation
            images.append(batch.images)
            seen += batch.images.shape[0]
            if seen >= self.n_images:
                break
        if not seen:
            return
        init(torch.cat(images)[: self.n_images].to(state.device))
        if state.dist.enabled and torch.distributed.is_initialized():
            for p in state.raw_model.parameters():
                torch.distributed.broadcast(p.data, src=0)
