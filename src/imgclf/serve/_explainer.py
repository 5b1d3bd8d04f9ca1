"""Grad-CAM overlays for ``/v1/explain`` on the explain worker's own copy of the model.

Attribution methods put hooks on the model and switch its mode; doing that on the model the inference worker is
running would mix requests up. So the explainer deep-copies the model once, finds its target layer once (at
warm-up), and is only ever called from one worker thread (a :class:`MicroBatcher` with batches of one).
"""

from __future__ import annotations

import copy
import io
from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

from imgclf import explain
from imgclf.models import target_layer


class Explainer:
    """``explainer([x])`` -> ``[png_bytes]``: the Grad-CAM overlay of the predicted class for a ``(3, H, W)``
    preprocessed image, on a private copy of ``model``.

    >>> # ex = Explainer(predictor.model, predictor.meta.preprocessing); png = ex([predictor.preprocess(img)])[0]
    """

    def __init__(self, model: torch.nn.Module, preprocessing: Any) -> None:
        self.model = copy.deepcopy(model).eval()
        self.preprocessing = preprocessing
        self.layer: Any = None

    def warmup(self) -> None:
        """Find the target layer (one probe pass) and run one explanation, before the server turns ready."""
        self.layer = target_layer(self.model)
        side = int(self.preprocessing.input_size)
        self([torch.zeros(3, side, side)])

    def overlay_png(self, x: torch.Tensor) -> bytes:
        """One overlay for one preprocessed image ``(3, H, W)``."""
        device = next(self.model.parameters()).device
        batch = x.unsqueeze(0).to(device)  # (1, 3, H, W)
        attribution = explain.explain(self.model, batch, method="gradcam", layer=self.layer)
        pre = self.preprocessing
        picture = explain.overlay(explain.to_display_image(batch[0].cpu(), pre.mean, pre.std), attribution.maps[0])
        buf = io.BytesIO()
        Image.fromarray(picture).save(buf, format="PNG")
        return buf.getvalue()

    def __call__(self, tensors: Sequence[torch.Tensor]) -> list[bytes]:
        # One at a time: a batched forward may round differently from a single one, and an overlay must not
        # depend on which other requests happened to arrive with it.
        return [self.overlay_png(x) for x in tensors]
