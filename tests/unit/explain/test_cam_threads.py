"""Grad-CAM and the target-layer probe on a model that another thread is running at the same time (a server
answering predictions): their hooks see only their own call's forward pass."""

from __future__ import annotations

import threading

import torch

from imgclf.explain import explain
from imgclf.models import create_model, target_layer


def _hammer(model: torch.nn.Module, stop: threading.Event, batch: int) -> None:
    x = torch.randn(batch, 3, 32, 32)
    with torch.inference_mode():
        while not stop.is_set():
            model(x)


def test_gradcam_and_target_layer_ignore_other_threads_forward_passes() -> None:
    torch.manual_seed(0)
    model = create_model("test_cnn", 3).eval()
    images = torch.randn(6, 3, 32, 32)
    layer = target_layer(model)
    expected = [explain(model, images[i : i + 1], method="gradcam").maps for i in range(6)]
    stop = threading.Event()
    others = [threading.Thread(target=_hammer, args=(model, stop, b)) for b in (1, 5)]  # other shapes, no grad
    for t in others:
        t.start()
    try:
        layers = [type(target_layer(model).module) for _ in range(10)]
        got = [explain(model, images[i % 6 : i % 6 + 1], method="gradcam").maps for i in range(60)]
    finally:
        stop.set()
        for t in others:
            t.join(30)
    assert set(layers) == {type(layer.module)}
    for i, maps in enumerate(got):
        torch.testing.assert_close(maps, expected[i % 6], rtol=0, atol=0)
    assert not model.training
