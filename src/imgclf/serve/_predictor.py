"""The model side of the server: preprocessing, one batched forward pass, calibrated top-k and rejection."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from imgclf import data as D
from imgclf import engine as E
from imgclf import monitor
from imgclf.api import Classifier
from imgclf.errors import BundleError
from imgclf.models import EnsembleNet, HedgedNet
from imgclf.tasks import REJECTION_SCORES, Answer, needs_features, rejection_scores, with_reasons


@dataclass(frozen=True)
class ImageResult:
    """One image's answer (:class:`~imgclf.tasks.Answer`, the same schema as ``imgclf predict --json``), with
    what the drift monitor needs: the top class index, its probability, and the embedding projected with the
    bundle's drift reference (None without one).
    """

    answer: Answer
    class_index: int
    confidence: float
    features: tuple[float, ...] | None = None
    uncertainty: float | None = None  # members' / views' / passes' mutual information (nats), hedged models only

    @property
    def label(self) -> str | None:
        return self.answer.label

    @property
    def topk(self) -> tuple[tuple[str, float], ...]:
        return self.answer.topk

    @property
    def unknown(self) -> bool:
        return self.answer.unknown

    @property
    def ood_score(self) -> float:
        return float("nan") if self.answer.ood_score is None else self.answer.ood_score


class Predictor:
    """Wraps a loaded :class:`~imgclf.Classifier` for serving.

    ``preprocess`` turns a PIL image into the bundle's input tensor ``(3, H, W)`` (call it from request threads);
    ``__call__`` runs one batch of them (the inference worker), through the classifier's export engine when
    it was loaded with one (``imgclf.load(path, engine="onnxruntime")``). Probabilities are calibrated with the bundle's
    temperature. The OOD score is the bundle's ``rejection["score"]`` (``msp`` on calibrated probabilities,
    ``max_logit`` or ``energy`` at T = 1, or a feature rule -- ``mahalanobis``, ``knn``, ``vim`` -- on the pooled
    features of the same pass with the bundle's fitted statistics), computed by
    :func:`imgclf.tasks.rejection_scores` exactly as predict and ``imgclf robustness`` do (higher means more
    in-distribution), else ``msp``; an image is ``unknown``, with the reason, when rejection is on and its score
    is below ``rejection["threshold"]``. For an ensemble bundle, or a classifier wrapped by
    :func:`imgclf.api.hedge` (``--tta`` / ``--mc-dropout``), each answer also carries its ``uncertainty`` (the
    members' / views' / passes' mutual information), from the same pass as its probabilities.

    >>> # p = Predictor(imgclf.load("runs/x/bundle")); p([p.preprocess(img)])[0].label
    """

    def __init__(self, clf: Classifier, *, top_k: int = 5, reject: bool = True) -> None:
        if clf.model_ is None or clf.meta_ is None:
            raise BundleError("the server needs a loaded bundle: use imgclf.load(bundle_dir)")
        self.model, self.meta = clf.model_.eval(), clf.meta_
        # explanations hook the layers of a plain model: the adapted copy's own network when adapting, the
        # underlying model (original view, dropout off) behind test-time augmentation / MC dropout
        hedged_net = isinstance(self.model, HedgedNet)
        self.explain_model = self.model.model if getattr(clf, "adapt_", None) or hedged_net else self.model
        self.engine = getattr(clf, "engine_", None)  # an imgclf.export engine (torch-fast, onnxruntime) if loaded
        #: an ensemble or a TTA / MC-dropout wrapper: each answer carries the members' disagreement, computed in
        #: the same pass as its probabilities (the same dropout draws)
        self.hedged = self.engine is None and isinstance(self.model, EnsembleNet | HedgedNet)
        self.engine_name = getattr(self.engine, "name", "torch")
        self.device = next(self.model.parameters()).device
        self.transform = D.build_eval_transform(self.meta.preprocessing)
        self.top_k = min(top_k, self.meta.num_classes)
        self.task = self.meta.make_task()
        rejection = dict(self.meta.rejection or {}) if reject and self.task.supports_rejection else {}
        self.score_name = str(rejection.get("score", "msp"))
        if self.score_name not in REJECTION_SCORES:
            raise BundleError(
                f"the bundle's rejection score {self.score_name!r} cannot be computed by the server "
                f"(it knows {', '.join(REJECTION_SCORES)}); serve with --no-reject or re-calibrate"
            )
        self.rule = rejection if "threshold" in rejection else None
        self.stats = clf.bundle_.rejection_stats if clf.bundle_ is not None else {}
        self.needs_features = needs_features(self.score_name) and self.rule is not None
        if self.needs_features and not self.stats:
            raise BundleError(f"the bundle's rejection rule {self.score_name!r} needs its fitted statistics, but "
                              "rejection.safetensors is missing; re-run `imgclf robustness` on the bundle, or serve "
                              "with --no-reject")  # fmt: skip
        if not self.needs_features and needs_features(self.score_name):
            self.score_name = "msp"  # rejection is off: report the logit score (drift) without the features
        self.threshold: float | None = float(rejection["threshold"]) if self.rule else None
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

    def __call__(self, tensors: Sequence[torch.Tensor]) -> list[ImageResult]:
        x = torch.stack(list(tensors)).to(self.device)  # (B, 3, H, W)
        batch = D.Batch(x, torch.zeros(len(x), dtype=torch.long), torch.arange(len(x)))
        want = self.has_features or self.needs_features
        runner = None if self.engine is None else (self.engine.predict_outputs if want else self.engine.predict_logits)
        hedger = E.HedgedRunner(self.model) if self.hedged else None  # this call's own: nothing shared between batches
        out = E.predict_logits(self.model, [batch], self.device, runner=hedger or runner, features=want)
        unc = hedger.values().tolist() if hedger is not None else [None] * len(x)
        logits = out.logits  # (B, C)
        probs = self.task.probabilities(logits, self.meta.temperature)  # (B, C)
        # the score is reported (and logged for drift) even without a threshold; only a rule makes ``unknown``
        scoring = self.rule or {"score": self.score_name}
        ood = None
        if self.task.supports_rejection:
            ood = rejection_scores(scoring, logits, self.meta.temperature, features=out.features, stats=self.stats)
        answers = with_reasons(self.task.decode(probs, top_k=self.top_k, ood=ood, threshold=self.threshold), self.rule)
        projected = None
        if self.has_features and out.features is not None and self.reference is not None:
            projected = monitor.project_features(self.reference, out.features)  # (B, k)
        best = probs.argmax(axis=1)
        return [ImageResult(answer, int(best[i]), float(probs[i, best[i]]),
                            None if projected is None else tuple(float(f"{v:.5g}") for v in projected[i]), unc[i])
                for i, answer in enumerate(answers)]  # fmt: skip
