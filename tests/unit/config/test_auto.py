"""'auto' defaults: resolved once from the data and the run's length; explicit (old) values are never touched."""

from __future__ import annotations

import pytest

from imgclf.config import (
    AUTO,
    RunConfig,
    auto_augment,
    auto_batch_size,
    auto_ema,
    auto_lr,
    auto_warmup_epochs,
    load_config,
    resolve_auto,
    to_yaml,
    update,
)

# the case: 28-px digits at --img-size 32, 3,000 images (2,700 after the validation carve-out), 5 epochs
SMALL_SHORT = {"data": {"img_size": 32}, "train": {"epochs": 5}}


def _resolved(changes: dict, train_size: int = 2700, num_classes: int = 10, world_size: int = 1) -> RunConfig:
    return resolve_auto(update(RunConfig(), changes), train_size=train_size, num_classes=num_classes,
                        world_size=world_size)  # fmt: skip


def test_defaults_are_auto_until_resolved() -> None:
    cfg = RunConfig()
    assert (cfg.data.batch_size, cfg.data.augment, cfg.optim.lr, cfg.optim.warmup_epochs, cfg.train.ema,
            cfg.train.ema_decay) == (AUTO, AUTO, AUTO, AUTO, AUTO, AUTO)  # fmt: skip


def test_short_run_on_small_images_gets_no_augmentation_a_higher_lr_and_no_ema() -> None:
    r = _resolved(SMALL_SHORT)
    assert r.data.augment == "none"  # crops of 28-px digits cost 5-7 points in 5 epochs, flips 1.6
    assert r.optim.lr == pytest.approx(2e-3)
    assert r.optim.warmup_epochs == pytest.approx(1.0)
    assert r.train.ema is False  # 215 optimizer steps: an average only lags the weights
    assert r.data.batch_size == 64  # 2,700 images: 43 batches an epoch
    written = {line.strip() for line in to_yaml(r).splitlines()}  # what config.yaml records is what ran
    assert {"batch_size: 64", "augment: none", "lr: 0.002", "warmup_epochs: 1.0", "ema: false"} <= written


@pytest.mark.parametrize(("train_size", "world_size", "batch"),
                         [(50000, 1, 64), (1024, 1, 64), (1000, 1, 32), (220, 1, 16), (30, 1, 16), (2700, 4, 32)])
def test_batch_size_shrinks_so_a_small_dataset_gets_sixteen_batches_an_epoch(train_size: int, world_size: int,
                                                                              batch: int) -> None:  # fmt: skip
    assert auto_batch_size(train_size, world_size=world_size) == batch  # per process: 2,700 / 4 ranks = 675 images


def test_a_tiny_dataset_trains_in_more_smaller_steps_at_a_matching_lr() -> None:
    photos = _resolved({"data": {"img_size": 128}, "train": {"epochs": 5}}, train_size=220, num_classes=2)
    assert photos.data.batch_size == 16  # 14 steps an epoch, not 4 (ants/bees: ~10 points in 5 epochs)
    assert photos.optim.lr == pytest.approx(1e-3)  # AdamW's rate follows the batch's square root
    assert photos.train.ema_decay == pytest.approx(1 - 10 / (14 * 5), abs=1e-6)  # counted in the smaller steps
    kept = _resolved({"data": {"img_size": 128, "batch_size": 64}, "train": {"epochs": 5}}, train_size=220)
    assert kept.data.batch_size == 64 and kept.optim.lr == pytest.approx(2e-3)  # an explicit batch is kept


def test_resolution_is_idempotent_and_keeps_explicit_old_values() -> None:
    old = {"data": {"img_size": 32, "augment": "standard", "batch_size": 64},
           "train": {"epochs": 5, "ema": True, "ema_decay": 0.999},
           "optim": {"lr": None, "warmup_epochs": 1.0}}  # the defaults before 'auto', written out
    r = _resolved(old)
    assert r == update(RunConfig(), old)  # nothing resolved away: the old run is reproduced exactly
    assert r.optim.resolved_lr == pytest.approx(1e-3)  # lr: null still means the old fixed default
    once = _resolved(SMALL_SHORT)
    assert resolve_auto(once, train_size=123, num_classes=2) == once  # a resolved config resolves to itself


def test_resolved_config_round_trips_through_yaml(tmp_path) -> None:
    r = _resolved(SMALL_SHORT)
    path = tmp_path / "config.yaml"
    path.write_text(to_yaml(r))
    assert load_config(path) == r


@pytest.mark.parametrize(
    ("img_size", "train_size", "classes", "epochs", "pretrained", "preset"),
    [
        (32, 2700, 10, 5, False, "none"),  # MNIST / CIFAR-sized, short
        (128, 220, 2, 5, False, "none"),  # ants/bees photos, short: under-fitted too
        (32, 45000, 10, 30, False, "small"),  # CIFAR-10, a medium run
        (224, 20000, 10, 30, False, "standard"),
        (224, 220, 2, 100, False, "strong"),  # few photos per class, long
        (224, 200000, 10, 100, False, "standard"),  # plenty of data per class: no need for strong
        (224, 220, 2, 5, True, "standard"),  # pretrained: 5 epochs count as 10
    ],
)
def test_augmentation_follows_image_size_data_and_run_length(
    img_size: int, train_size: int, classes: int, epochs: int, pretrained: bool, preset: str
) -> None:
    assert auto_augment(img_size=img_size, train_size=train_size, num_classes=classes, epochs=epochs,
                        pretrained=pretrained) == preset  # fmt: skip


def test_ema_switches_on_for_long_runs_and_spans_a_tenth() -> None:
    assert auto_ema(215) == (False, pytest.approx(1 - 10 / 215, abs=1e-6))
    use, decay = auto_ema(5000)
    assert use and decay == pytest.approx(0.998)  # 1 / (1 - decay) = 500 steps = a tenth of the run
    assert auto_ema(10**7) == (True, 0.9998)  # capped
    long = _resolved({"data": {"img_size": 32}, "train": {"epochs": 100}}, train_size=45000)
    assert long.train.ema is True and long.train.ema_decay == pytest.approx(0.9998)


def test_lr_scales_with_the_global_batch_and_warm_up_with_the_run() -> None:
    assert auto_lr("adamw", batch_size=256, pretrained=False) == pytest.approx(4e-3)  # sqrt(4) x 2e-3
    assert auto_lr("adamw", batch_size=64, pretrained=True) == pytest.approx(1e-3)
    assert auto_lr("sgd", batch_size=32, pretrained=False) == pytest.approx(0.025)
    assert auto_lr("adamw", batch_size=10**6, pretrained=False) == pytest.approx(8e-3)  # clipped at 4x
    two_ranks = _resolved({"data": {"img_size": 32, "batch_size": 64}, "train": {"epochs": 5}},
                          world_size=4)  # 4 x 64 images per step
    assert two_ranks.optim.lr == pytest.approx(4e-3)
    assert [auto_warmup_epochs(e) for e in (1, 5, 10, 25, 200)] == [0.2, 1.0, 2.0, 5.0, 5.0]


def test_explicit_values_beat_auto() -> None:
    r = _resolved({**SMALL_SHORT, "data": {"img_size": 32, "augment": "strong"}, "optim": {"lr": 0.01},
                   "train": {"epochs": 5, "ema": True}})  # fmt: skip
    assert (r.data.augment, r.optim.lr, r.train.ema) == ("strong", 0.01, True)
    assert r.train.ema_decay == pytest.approx(1 - 10 / 215, abs=1e-6)  # the auto decay for a run this short
