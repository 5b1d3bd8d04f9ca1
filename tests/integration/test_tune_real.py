"""20 TPE trials on an MNIST subset: better than the default configuration, and pruning saves epochs."""

from __future__ import annotations

from pathlib import Path

import pytest

from imgclf.api import Classifier
from imgclf.workflows import load_space, tune

pytestmark = [pytest.mark.real, pytest.mark.slow]


def test_twenty_tpe_trials_beat_the_default_and_pruning_saves_30_percent(mnist_dir: Path, tmp_path: Path) -> None:
    cfg = Classifier(model="lenet5", epochs=2, seed=0,
                     sets=["data.max_per_class=200", "data.workers=0"]).resolved_config(str(mnist_dir))  # fmt: skip
    res = tune(cfg, trials=20, space=load_space(None, {"model.name"}), sampler="tpe", out=tmp_path / "tune",
               retrain=False)  # the default pruner: successive halving, checked twice per epoch  # fmt: skip
    print(res.to_dict())
    assert res.trials == 20
    assert res.best_value > res.default_value, (res.best_value, res.default_value)
    # measured: 12 of 20 trials pruned (most after half an epoch), 37% of the epochs saved, best 0.9595 vs default
    # 0.8575 (with seed 1: 30%; median pruner 31% / 22%, Hyperband 30% / 19%; all pruners once per epoch: <= 27%)
    assert res.epochs_saved >= 0.30, (res.epochs_run, res.epochs_budget, res.pruned)
