"""The training loop: move, forward, loss, backward, step, log. Everything else is a callback."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from imgclf.engine._callbacks import Callback
from imgclf.engine._callbacks_builtin import Checkpointer, restore_state
from imgclf.engine._checkpoint import load_checkpoint
from imgclf.engine._device import sync_buffers
from imgclf.engine._inference import autocast
from imgclf.engine._state import TrainState
from imgclf.errors import TrainingError, TrainingInterrupted


class Trainer:
    """Runs :class:`TrainState` for ``state.epochs`` epochs, calling ``callbacks`` at fixed hooks.

    >>> # Trainer(state, [EMA(0.999), Checkpointer(run_dir)]).fit()  # see imgclf.api.fit for the full set-up
    """

    def __init__(self, state: TrainState, callbacks: Sequence[Callback] = ()) -> None:
        self.state = state
        self.callbacks = list(callbacks)

    def _call(self, hook: str, *args: Any) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(self.state, *args)

    def fit(self) -> TrainState:
        s = self.state
        self._call("on_fit_start")
        while s.epoch < s.epochs and not s.stop:
            self._call("on_epoch_start")
            train_metrics = self._train_epoch()
            sync_buffers(s.raw_model, s.dist)
            if s.interrupted:
                self._call("on_interrupt")
                s.stop, s.stop_reason = True, "interrupted"
                break
            metrics = {"epoch": s.epoch + 1, **train_metrics, **({} if s.discard else validate(s))}
            s.epoch, s.batch_in_epoch, s.epoch_totals = s.epoch + 1, 0, {}
            s.history.append(metrics)
            self._call("on_epoch_end", metrics)
        self._call("on_fit_end")
        return s

    def _train_epoch(self) -> dict[str, float]:
        s = self.state
        s.sampler.set_epoch(s.epoch)
        s.sampler.skip(s.batch_in_epoch * s.batch_size)
        s.model.train()
        resumed = s.batch_in_epoch > 0
        t = s.epoch_totals
        total_loss, correct, seen = t.get("loss", 0.0), t.get("correct", 0), int(t.get("seen", 0))
        before, start = t.get("seconds", 0.0), time.perf_counter()
        n_batches = len(s.train_loader)
        lr = s.optimizer.param_groups[-1]["lr"]  # the last group (the head's): the rate of this epoch's last step
        for batch in s.train_loader:
            s.skipped_images += batch.skipped
            if batch.images.shape[0] == 0:
                s.batch_in_epoch += 1
                continue
            images = batch.images.to(s.device, non_blocking=True)  # (B, C, H, W)
            labels = batch.labels.to(s.device, non_blocking=True)  # (B,) class indices or (B, C) targets
            if s.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            targets = labels
            for cb in self.callbacks:
                images, targets = cb.on_batch_start(s, images, targets)
            with autocast(s.device, s.amp_dtype):
                logits = s.model(images)  # (B, num_classes)
                loss = s.loss_fn(logits, targets)
            if not torch.isfinite(loss):
                raise TrainingError(
                    f"the loss became {loss.item()} at epoch {s.epoch + 1}, batch {s.batch_in_epoch + 1}; "
                    "training stopped and the last good checkpoint was kept. Lower the learning rate "
                    "(--set optim.lr=...), enable gradient clipping (--set train.grad_clip=1.0) or turn off amp."
                )
            backward_loss = loss / s.accumulate
            (s.scaler.scale(backward_loss) if s.scaler else backward_loss).backward()
            s.batch_in_epoch += 1
            batch_correct = s.task.batch_score(logits.detach(), labels)
            total_loss += loss.item() * labels.shape[0]
            correct += batch_correct
            seen += labels.shape[0]
            s.epoch_totals = {"loss": total_loss, "correct": correct, "seen": seen,
                              "seconds": before + time.perf_counter() - start}  # fmt: skip
            if s.batch_in_epoch % s.accumulate == 0 or s.batch_in_epoch == n_batches:
                lr = s.optimizer.param_groups[-1]["lr"]
                self._optimizer_step()
                stats = {"loss": loss.item(), "acc": batch_correct / labels.shape[0], "images": labels.shape[0]}
                self._call("on_step_end", stats)
                if s.stop:  # a callback stopped the run mid-epoch (e.g. the tuner's pruner)
                    break
            if s.interrupted and s.batch_in_epoch % s.accumulate == 0:
                break
        elapsed = max(before + time.perf_counter() - start, 1e-9)
        return {
            "train_loss": total_loss / max(seen, 1),
            "train_acc": correct / max(seen, 1),
            "lr": lr,  # not the scheduler's next value (0 after a linear schedule's last step)
            "images_per_s": seen / elapsed,
            "epoch_time_s": elapsed,  # both parts of an epoch resumed mid-way, without the time in between
            **({"resumed_mid_epoch": True} if resumed else {}),
            **({"stopped_mid_epoch": True} if s.stop and s.batch_in_epoch < n_batches else {}),
        }

    def _optimizer_step(self) -> None:
        s = self.state
        if s.scaler:
            s.scaler.unscale_(s.optimizer)
        if s.grad_clip:
            torch.nn.utils.clip_grad_norm_(s.raw_model.parameters(), s.grad_clip)
        if s.scaler:
            s.scaler.step(s.optimizer)
            s.scaler.update()
        else:
            s.optimizer.step()
        s.optimizer.zero_grad(set_to_none=True)
        s.scheduler.step()
        s.step += 1


def fit_resumable(state: TrainState, callbacks: Sequence[Callback], run_dir: Path, *, resume: bool, command: str,
                  monitor: str = "val_acc", every_steps: int | None = None,
                  say: Callable[[str], Any] = print) -> Checkpointer:  # fmt: skip
    """Train ``state`` with ``callbacks`` plus a :class:`Checkpointer` writing ``run_dir/checkpoints`` (appended
    last, so it saves what the others did), continuing the interrupted run's last checkpoint when ``resume``; an
    interrupt (Ctrl-C, SIGTERM) raises :class:`TrainingInterrupted` naming ``command --resume run_dir``.

    >>> # fit_resumable(state, callbacks, run_dir, resume=False, command="imgclf train")
    """
    checkpointer = Checkpointer(run_dir / "checkpoints", callbacks, monitor=monitor, every_steps=every_steps)
    callbacks = [*callbacks, checkpointer]
    if resume:
        tensors, meta = load_checkpoint(checkpointer.last_path)
        restore_state(state, callbacks, tensors, meta)
        say(f"resuming {run_dir} at epoch {state.epoch + 1}, batch {state.batch_in_epoch}")
    Trainer(state, callbacks).fit()
    if state.stop_reason == "interrupted":
        raise TrainingInterrupted(f"{command.split()[-1]}ing interrupted; a resumable checkpoint is in "
                                  f"{checkpointer.last_path}. Continue with: {command} --resume {run_dir}")  # fmt: skip
    return checkpointer


@torch.no_grad()
def validate(s: TrainState) -> dict[str, float]:
    """The task's plain loss and batch score of ``s``'s eval model on its validation loader (every rank, full set):
    what the loop logs after each epoch, and what a callback may ask for mid-epoch (the tuner's pruner does)."""
    if s.val_loader is None:
        return {}
    model = s.model_for_eval()
    was_training = model.training
    model.eval()
    total_loss, correct, seen = 0.0, 0, 0
    for batch in s.val_loader:
        if batch.images.shape[0] == 0:
            continue
        images = batch.images.to(s.device)
        if s.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        labels = batch.labels.to(s.device)
        ctx = autocast(s.device, s.amp_dtype) if s.amp_dtype else nullcontext()
        with ctx:
            logits = model(images).float()
        total_loss += s.task.eval_loss(logits, labels)
        correct += s.task.batch_score(logits, labels)
        seen += labels.shape[0]
    model.train(was_training)
    if seen == 0:
        return {}
    val_loss = total_loss / seen
    return {"val_loss": val_loss if math.isfinite(val_loss) else float("inf"), "val_acc": correct / seen}
