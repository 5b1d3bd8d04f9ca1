from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from imgclf.engine._callbacks import Callback
from imgclf.engine._state import TrainState


class ProgressBar(Callback):
    """A rich progress bar per epoch (loss, accuracy, images/s, ETA) and one summary line per epoch."""

    name = "progress"

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self._progress: Progress | None = None
        self._task: Any = None
        self._start = 0.0
        self._images = 0

    def on_epoch_start(self, state: TrainState) -> None:
        if not state.dist.is_main:
            return
        self._progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}  acc {task.fields[acc]:.3f}  {task.fields[ips]:.0f} img/s"),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task(
            "train", total=len(state.train_loader), completed=state.batch_in_epoch,
            epoch=f"{state.epoch + 1}/{state.epochs}", loss=0.0, acc=0.0, ips=0.0,
        )  # fmt: skip
        self._start, self._images = time.perf_counter(), 0

    def on_step_end(self, state: TrainState, stats: dict[str, float]) -> None:
        if self._progress is None:
            return
        self._images += int(stats["images"]) * state.accumulate * state.dist.world_size
        ips = self._images / max(time.perf_counter() - self._start, 1e-9)
        self._progress.update(self._task, completed=state.batch_in_epoch, loss=stats["loss"], acc=stats["acc"], ips=ips)

    def _stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def on_epoch_end(self, state: TrainState, metrics: dict[str, Any]) -> None:
        self._stop()
        if not state.dist.is_main:
            return
        parts = [f"epoch {metrics['epoch']}/{state.epochs}"]
        for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
            if key in metrics:
                parts.append(f"{key} {metrics[key]:.4f}")
        parts.append(f"{metrics['images_per_s']:.0f} img/s")
        self.console.print("  ".join(parts))

    def on_interrupt(self, state: TrainState) -> None:
        self._stop()

    def on_fit_end(self, state: TrainState) -> None:
        self._stop()
