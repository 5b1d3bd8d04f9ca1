"""FLOP counting against hand counts."""

from __future__ import annotations

from torch import nn

from imgclf.export import count_flops


def test_conv_and_linear_match_hand_count() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(8, 5))  # fmt: skip
    conv = 2 * (3 * 3 * 3) * 8 * 16 * 16  # 2 FLOPs per multiply-add, per output element
    linear = 2 * 8 * 5
    assert count_flops(model, 16) == conv + linear
    assert count_flops(model, 16, batch_size=4) == 4 * (conv + linear)


def test_model_mode_is_restored() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).train()
    count_flops(model, 8)
    assert model.training and model[1].training
    assert int(model[1].num_batches_tracked) == 0  # counted in eval mode: BN statistics untouched
