"""The tuner's pruning callback on the loop's toy problem: reports several times per epoch for short trials, and a
pruned trial stops where the pruner said so, mid-epoch, with the training it did counted in fractional epochs."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.unit.engine.test_loop import make_state

from imgclf import engine as E
from imgclf.engine import _loop as loop
from imgclf.workflows import PruningCallback, checks_per_epoch


class FakeTrial:
    """Records reports; prunes at the first report at or after ``prune_at`` (an Optuna step)."""

    def __init__(self, prune_at: int | None = None) -> None:
        self.prune_at, self.reports = prune_at, []

    def report(self, value: float, step: int) -> None:
        self.reports.append((step, value))

    def should_prune(self) -> bool:
        return self.prune_at is not None and self.reports[-1][0] >= self.prune_at


def test_short_trials_report_mid_epoch_and_run_to_the_end_unpruned(tmp_path: Path) -> None:
    assert [checks_per_epoch(e) for e in (1, 2, 3, 4, 20)] == [4, 2, 2, 1, 1]
    state, callbacks = make_state(tmp_path, epochs=2)  # 8 batches per epoch
    cb = PruningCallback(FakeTrial(), checks=checks_per_epoch(2))
    E.Trainer(state, [cb, *callbacks]).fit()
    trial = cb.trial
    assert [s for s, _ in trial.reports] == [1, 2, 3, 4]  # mid-epoch 1, end of 1, mid-epoch 2, end of 2
    assert trial.reports[1][1] == state.history[0]["val_acc"] and trial.reports[3][1] == state.history[1]["val_acc"]
    assert cb.epochs_run == 2.0 and not cb.pruned and state.step == 16


def test_a_pruned_trial_stops_mid_epoch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state, callbacks = make_state(tmp_path, epochs=2)
    cb = PruningCallback(FakeTrial(prune_at=1), checks=2)
    validations = []
    monkeypatch.setattr(loop, "validate", lambda s: validations.append(s.step) or {"val_acc": 0.0})
    E.Trainer(state, [cb, *callbacks]).fit()
    assert cb.pruned and cb.trial.reports[0][0] == 1 and len(cb.trial.reports) == 1
    assert validations == [] and "val_acc" not in state.history[0]  # not validated again after the pruner's check
    assert state.step == 4 and cb.epochs_run == 0.5  # half of the first epoch, not two epochs
    assert state.history[0]["stopped_mid_epoch"] and "pruned" in state.stop_reason
