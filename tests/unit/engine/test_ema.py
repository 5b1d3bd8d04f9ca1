"""EMA: the warm-up and the cap make a short run's average follow the model instead of its random start."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from imgclf.engine import EMA


def _run(ema: EMA, model: nn.Linear, steps: int) -> None:
    """Move every weight linearly from 0 to 1 over ``steps`` optimizer steps, updating ``ema`` after each."""
    state = SimpleNamespace(raw_model=model)
    for i in range(1, steps + 1):
        with torch.no_grad():
            model.weight.fill_(i / steps)
        ema.on_step_end(state, {})  # type: ignore[arg-type]


def _start() -> nn.Linear:
    model = nn.Linear(4, 4)
    with torch.no_grad():
        model.weight.zero_()
    return model


def test_fifty_step_ema_tracks_the_model() -> None:
    model = _start()
    ema = EMA(model, decay=0.999, total_steps=50)
    _run(ema, model, 50)
    # the live weights end at 1.0; a plain 0.999 average of this ramp would sit near 0.025
    assert ema.module.weight.mean().item() > 0.85


def test_warm_up_alone_keeps_a_short_average_close_but_a_long_one_lags() -> None:
    model = _start()
    short = EMA(model, decay=0.999)  # no total_steps: only the (1 + n) / (10 + n) warm-up shortens the decay
    _run(short, model, 50)
    assert short.module.weight.mean().item() > 0.85
    model = _start()
    long = EMA(model, decay=0.999)
    state = SimpleNamespace(raw_model=model)
    for _ in range(9000):  # (1 + n) / (10 + n) reaches 0.999 at n = 8990: the full decay applies
        long.on_step_end(state, {})  # type: ignore[arg-type]
    with torch.no_grad():
        model.weight.fill_(1.0)
    long.on_step_end(state, {})  # type: ignore[arg-type]
    assert long.module.weight.mean().item() == pytest.approx(0.001, rel=1e-3)  # one step of a 0.999 average


@pytest.mark.parametrize(("steps", "decay"), [(215, 1 - 10 / 215), (1000, 0.99), (10**6, 0.999)])
def test_decay_spans_at_most_a_tenth_of_the_run(steps: int, decay: float) -> None:
    assert EMA(nn.Linear(2, 2), decay=0.999, total_steps=steps).decay == pytest.approx(decay)
