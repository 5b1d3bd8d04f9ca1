"""The loop and its callbacks on a toy problem with a stand-in loader (no image decoding)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from tests.integration._helpers import StopAt
from torch import nn

from imgclf import engine as E
from imgclf.errors import TrainingError


@dataclass
class FakeBatch:
    images: torch.Tensor
    labels: torch.Tensor
    indices: torch.Tensor
    skipped: int = 0


class FakeSampler:
    def __init__(self) -> None:
        self.epoch, self.offset = 0, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def skip(self, n: int) -> None:
        self.offset = n


class FakeLoader:
    """Deterministic batches per epoch that honour the sampler's skip, like the real loader."""

    def __init__(self, sampler: FakeSampler, n: int = 64, bs: int = 8, poison_at: int | None = None) -> None:
        self.sampler, self.n, self.bs, self.poison_at = sampler, n, bs, poison_at
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 2, generator=g)
        self.y = (self.x[:, 0] > 0).long()

    def __len__(self) -> int:
        return self.n // self.bs

    def __iter__(self):
        order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.sampler.epoch))
        start, self.sampler.offset = self.sampler.offset, 0
        for i in range(start, self.n, self.bs):
            idx = order[i : i + self.bs]
            x = self.x[idx].clone()
            if self.poison_at is not None and i // self.bs == self.poison_at:
                x[:] = float("nan")
            yield FakeBatch(x, self.y[idx], idx)


def make_state(tmp_path: Path, epochs: int = 3, poison_at: int | None = None) -> tuple[E.TrainState, list]:
    torch.manual_seed(0)
    model = nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1 + 0.01 * s))
    sampler = FakeSampler()
    loader = FakeLoader(sampler, poison_at=poison_at)
    val = FakeLoader(FakeSampler())
    state = E.TrainState(model=model, raw_model=model, optimizer=opt, scheduler=sched, loss_fn=nn.CrossEntropyLoss(),
                         train_loader=loader, sampler=sampler, val_loader=val, epochs=epochs, batch_size=8,
                         device=torch.device("cpu"))  # fmt: skip
    callbacks: list = [E.EMA(model, 0.9), E.MetricsLogger(tmp_path, tensorboard=False)]
    callbacks.append(E.Checkpointer(tmp_path / "ckpt", callbacks, every_steps=3))
    return state, callbacks


def test_training_learns_and_logs(tmp_path: Path) -> None:
    state, callbacks = make_state(tmp_path)
    E.Trainer(state, callbacks).fit()
    assert state.history[-1]["val_acc"] > 0.9
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2, 3]
    assert (tmp_path / "metrics.csv").read_text().startswith("epoch,")
    assert (tmp_path / "ckpt" / "last.safetensors").is_file() and (tmp_path / "ckpt" / "best.safetensors").is_file()


def test_resume_from_mid_epoch_checkpoint_matches_uninterrupted(tmp_path: Path) -> None:
    full, full_cbs = make_state(tmp_path / "a")
    E.Trainer(full, full_cbs).fit()

    # Run 1 epoch + 3 steps, as if killed right after the mid-epoch checkpoint at step 11.
    part, cbs = make_state(tmp_path / "b")
    ck = cbs[-1]
    ck.every_steps = 11

    class Kill(E.Callback):
        def on_step_end(self, state, stats):  # after the Checkpointer has saved
            if state.step == 11:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        E.Trainer(part, [*cbs, Kill()]).fit()
    resumed, cbs2 = make_state(tmp_path / "b")
    tensors, meta = E.load_checkpoint(cbs2[-1].last_path)
    assert meta["step"] == 11 and meta["batch_in_epoch"] == 3
    E.restore_state(resumed, cbs2, tensors, meta)
    E.Trainer(resumed, cbs2).fit()
    for a, b in zip(full.raw_model.parameters(), resumed.raw_model.parameters()):
        assert torch.equal(a, b)
    for a, b in zip(full_cbs[0].module.parameters(), cbs2[0].module.parameters()):
        assert torch.equal(a, b)  # EMA too
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    # #18: the resumed epoch's training metrics cover all of its batches (before and after the restart)
    again = resumed.history[1]
    assert again.get("resumed_mid_epoch") and "resumed_mid_epoch" not in full.history[1]
    for key in ("train_loss", "train_acc"):
        assert again[key] == pytest.approx(full.history[1][key], abs=1e-6), key


def test_nan_loss_stops_with_clear_message_and_keeps_checkpoint(tmp_path: Path) -> None:
    state, callbacks = make_state(tmp_path, epochs=3, poison_at=None)
    E.Trainer(state, callbacks).fit()  # a good run leaves checkpoints
    bad, cbs = make_state(tmp_path, epochs=5, poison_at=2)
    tensors_before = (tmp_path / "ckpt" / "last.safetensors").read_bytes()
    with pytest.raises(TrainingError, match="loss became nan"):
        E.Trainer(bad, cbs).fit()
    assert (tmp_path / "ckpt" / "last.safetensors").read_bytes() == tensors_before


def test_early_stopping_stops(tmp_path: Path) -> None:
    state, callbacks = make_state(tmp_path, epochs=30)
    stopper = E.EarlyStopping("val_loss", patience=1)
    for g in state.optimizer.param_groups:
        g["lr"] = 0.0  # nothing improves after the first epoch
    state.scheduler.base_lrs = [0.0]
    E.Trainer(state, [stopper, *callbacks]).fit()
    assert state.epoch == 2 and "early stopping" in state.stop_reason


def test_interrupt_saves_resumable_checkpoint(tmp_path: Path) -> None:
    state, callbacks = make_state(tmp_path, epochs=3)
    E.Trainer(state, [StopAt(5), *callbacks]).fit()
    assert state.stop_reason == "interrupted"
    _, meta = E.load_checkpoint(tmp_path / "ckpt" / "last.safetensors")
    assert meta["step"] == 5 and meta["epoch"] == 0 and meta["batch_in_epoch"] == 5


def test_predict_logits_concatenates_batches() -> None:
    model = nn.Linear(2, 3)
    batches = [FakeBatch(torch.randn(4, 2), torch.zeros(4, dtype=torch.long), torch.arange(4)),
               FakeBatch(torch.randn(0, 2), torch.zeros(0, dtype=torch.long), torch.arange(0), skipped=2)]  # fmt: skip
    out = E.predict_logits(model, batches)
    assert out.logits.shape == (4, 3) and out.skipped == 2
    assert model.training  # mode restored
