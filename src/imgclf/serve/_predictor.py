"""The model side of the server: preprocessing, one batched forward pass, calibrated top-k and rejection."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from imgclf import data as D
from imgclf import monitor
from imgclf.api import Classifier
from imgclf.errors import BundleError
from imgclf.metrics import apply_temperature
from imgclf.tasks import LOGIT_SCORES, ood_score

REJECTION_SCORES = LOGIT_SCORES


@dataclass(frozen=True)
class ImageResult:
    """One image's answer: calibrated top-k, the OOD score and whether the bundle's threshold rejects it.

    ``features`` is the embedding projected with the bundle's drift reference (None without one).
    """

    topk: tuple[tuple[str, float], ...]
    class_index: int
    confidence: float
    ood_score: float
    unknown: bool
    features: tuple[float, ...] | None = None

    @property
    def label(self) -> str:
        return self.topk[0][0]


class Predictor:
    """Wraps a loaded :class:`~imgclf.Classifier` for serving.

    ``preprocess`` turns a PIL image into the bundle's input tensor ``(3, H, W)`` (call it from request threads);
    ``__call__`` runs one batch of them (the inference worker), through the classifier's export engine when
    it was loaded with one (``imgclf.load(path, engine="onnxruntime")``). Probabilities are calibrated with the bundle's
    temperature. The OOD score is the bundle's ``rejection["score"]`` (``msp`` on calibrated probabilities,
    ``max_logit`` or ``energy`` at T = 1, computed by :func:`imgclf.tasks.ood_score` exactly as predict and
    ``imgclf robustness`` do; higher means more in-distribution), else ``msp``; an image is ``unknown`` when
    rejection is on and its score is below ``rejection["threshold"]``.

    >>> # p = Predictor(imgclf.load("runs/x/bundle")); p([p.preprocess(img)])[0].label
    """

    def __init__(self, clf: Classifier, *, top_k: int = 5, reject: bool = True) -> None:
        if clf.model_ is None or clf.meta_ is None:
            raise BundleError("the server needs a loaded bundle: use imgclf.load(bundle_dir)")
        self.model, self.meta = clf.model_.eval(), clf.meta_
        self.engine = getattr(clf, "engine_", None)  # an imgclf.export engine (torch-fast, onnxruntime) if loaded
        self.engine_name = getattr(self.engine, "name", "torch")
        self.device = next(self.model.parameters()).device
        self.transform = D.build_eval_transform(self.meta.preprocessing)
        self.temperature = float(self.meta.temperature or 1.0)
        self.top_k = min(top_k, self.meta.num_classes)
        rejection = dict(self.meta.rejection or {}) if reject else {}
        self.score_name = str(rejection.get("score", "msp"))
        if self.score_name not in REJECTION_SCORES:
            raise BundleError(
                f"the bundle's rejection score {self.score_name!r} cannot be computed by the server "
                f"(it knows {', '.join(REJECTION_SCORES)}); serve with --no-reject or re-calibrate"
            )
        self.threshold: float | None = float(rejection["threshold"]) if reject and "threshold" in rejection else None
        self.score_temperature = float(rejection.get("temperature", self.temperature))
        reference = self.meta.extra.get("monitor")
        self.reference: dict[str, Any] | None = monitor.check_reference(reference) if reference else None
        self.has_features = bool(self.reference and self.reference.get("features"))

    @property
    def version(self) -> str:
        return self.meta.weights_sha256

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        return self.transform(image.convert("RGB"))  # (3, H, W)

    def warmup(self) -> None:
        """One forward pass on a blank image, so the first request does not pay for lazy initialisation."""
        side = int(self.meta.preprocessing.input_size)
        self([self.preprocess(Image.new("RGB", (side, side)))])

    def _scores(self, logits: torch.Tensor) -> np.ndarray:
        return ood_score(self.score_name, logits, self.score_temperature).double().numpy()  # (B,)

    def __call__(self, tensors: Sequence[torch.Tensor]) -> list[ImageResult]:
        x = torch.stack(list(tensors)).to(self.device)  # (B, 3, H, W)
        pooled = None
        with torch.inference_mode():
            if self.engine is not None:
                logits_t = torch.from_numpy(np.asarray(self.engine.predict_logits(x)))  # (B, C)
                if self.has_features:  # engines give logits only; the embedding comes from the eager model
                    pooled = self.model.forward_head(self.model.forward_features(x), pre_logits=True)  # (B, D)
            else:
                feats = self.model.forward_features(x)
                logits_t = self.model.forward_head(feats)  # (B, C)
                pooled = self.model.forward_head(feats, pre_logits=True) if self.has_features else None  # (B, D)
        logits_t = logits_t.float().cpu()
        probs = apply_temperature(logits_t.numpy(), self.temperature)  # (B, C)
        scores = self._scores(logits_t)
        projected = None
        if pooled is not None and self.reference is not None:
            projected = monitor.project_features(self.reference, pooled.float().cpu().numpy())  # (B, k)
        order = np.argsort(-probs, axis=1)[:, : self.top_k]
        out = []
        for i in range(len(probs)):
            topk = tuple((self.meta.classes[j], float(probs[i, j])) for j in order[i])
            score = float(scores[i])
            feat = None if projected is None else tuple(float(f"{v:.5g}") for v in projected[i])
            out.append(ImageResult(topk, int(order[i, 0]), topk[0][1], score,
                                   self.threshold is not None and score < self.threshold, feat))  # fmt: skip
        return out
