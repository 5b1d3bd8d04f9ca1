"""``robustness``: adversarial, corruption and out-of-distribution stress tests of a bundle, and rejection."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from imgclf import data as D
from imgclf import engine as E
from imgclf.bundle import Bundle, load_bundle, split_samples, update_meta
from imgclf.errors import DataError
from imgclf.robustness._corruption_eval import CorruptionReport, corruption_accuracy
from imgclf.robustness._curve import RobustCurve, robust_accuracy_curve
from imgclf.robustness._normalize import NormalizedModel
from imgclf.robustness._ood_feature import KNNScorer, Mahalanobis
from imgclf.robustness._ood_metrics import OODReport, ood_metrics
from imgclf.robustness._outliers import synthetic_outliers
from imgclf.robustness._plots import plot_corruption_heatmap, plot_ood_histogram, plot_robust_curve
from imgclf.tasks import LOGIT_SCORES, fit_rejection, ood_score
from imgclf.utils import atomic_write_text

DEFAULT_EPSILONS = (0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255, 16 / 255)


def _folder_tensors(folder: str | Path, bundle: Bundle, limit: int, seed: int) -> torch.Tensor:
    paths = D.list_images(Path(folder))
    if not paths:
        raise DataError(f"--ood {folder}: no images found; give a folder of images from outside the classes")
    samples = D.SampleList.from_paths([str(p) for p in paths], [0] * len(paths))
    return D.sample_tensors(samples, bundle.meta.preprocessing, limit, seed)[0]


@torch.no_grad()
def _logits_features(model: torch.nn.Module, x: torch.Tensor, batch: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    parts = [E.logits_and_features(model, x[i : i + batch]) for i in range(0, len(x), batch)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


@dataclass(frozen=True)
class RobustnessResult:
    """Everything ``imgclf robustness`` measured, the plots it wrote and the rejection rule it chose."""

    n: int
    clean_accuracy: float
    adversarial: dict[str, RobustCurve]
    corruptions: CorruptionReport | None
    ood: dict[str, OODReport]
    ood_source: str
    rejection: dict[str, Any] | None
    plots: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "clean_accuracy": self.clean_accuracy,
                "adversarial": {k: v.to_dict() for k, v in self.adversarial.items()},
                "corruptions": self.corruptions.to_dict() if self.corruptions else None,
                "ood": {k: v.to_dict() for k, v in self.ood.items()}, "ood_source": self.ood_source,
                "rejection": self.rejection, "plots": self.plots}  # fmt: skip


def stress_test(bundle: Bundle, source: str, *, ood: str | Path | None = None, split: str | None = None,
                max_images: int = 256, epsilons: Sequence[float] = DEFAULT_EPSILONS,
                attacks: Sequence[str] = ("fgsm", "pgd", "apgd"), corruptions: bool = True,
                corruption_images: int | None = None, target_acceptance: float = 0.95, seed: int = 0,
                out_dir: str | Path | None = None) -> RobustnessResult:  # fmt: skip
    """Attack, corrupt and OOD-test ``bundle`` on ``split`` of ``source``; choose a rejection threshold.

    The threshold is on the best logit-based OOD score (by AUROC), set so ``target_acceptance`` of the
    in-distribution validation images are accepted. Feature-space scores (Mahalanobis, kNN) are reported too.
    """
    model, meta = bundle.model.eval(), bundle.meta
    samples, split, splits = split_samples(meta, source, split)
    x, y = D.sample_tensors(samples, meta.preprocessing, max_images, seed)
    mean, std = meta.preprocessing.mean, meta.preprocessing.std
    pixels = D.denormalize(x, mean, std)  # (N, 3, H, W) in [0, 1]
    pixel_model = NormalizedModel(model, meta.preprocessing.mean, meta.preprocessing.std).eval()
    logits, feats = _logits_features(model, x)
    clean = float((logits.argmax(1) == y).float().mean())
    adversarial = {}
    steps = {"apgd": {"steps": 50}, "pgd": {"steps": 10}}
    for name in attacks:
        adversarial[f"{name}-linf"] = robust_accuracy_curve(
            pixel_model, (pixels, y), list(epsilons), attack=name, attack_kwargs=steps.get(name, {}))
    if "pgd" in attacks:
        adversarial["pgd-l2"] = robust_accuracy_curve(
            pixel_model, (pixels, y), [0.0, 0.25, 0.5, 1.0], attack="pgd", attack_kwargs={"norm": "l2", "steps": 10})
    corr = None
    if corruptions:
        n_corr = corruption_images or (max_images if meta.preprocessing.input_size <= 64 else min(max_images, 32))
        corr = corruption_accuracy(pixel_model, (pixels[:n_corr], y[:n_corr]), seed=seed)
    # Out-of-distribution: the given folder, else synthetic outliers of the input's shape.
    if ood is not None:
        x_out, ood_source = _folder_tensors(ood, bundle, max_images, seed), str(ood)
    else:
        x_out = D.normalize(synthetic_outliers(len(x), tuple(x.shape[1:]), seed=seed), mean, std)
        ood_source = "synthetic outliers (noise, blobs, constant, stripes, checkerboards)"
    out_logits, out_feats = _logits_features(model, x_out)
    temperature = meta.temperature or 1.0
    reports = {n: ood_metrics(ood_score(n, logits, temperature), ood_score(n, out_logits, temperature))
               for n in LOGIT_SCORES}  # fmt: skip
    remap = [meta.classes.index(c) for c in splits.classes]
    train_x, train_y = D.sample_tensors(splits.train.relabel(remap), meta.preprocessing, 2000, seed)
    _, train_feats = _logits_features(model, train_x)
    maha = Mahalanobis().fit(train_feats, train_y)
    knn = KNNScorer(k=min(50, len(train_feats))).fit(train_feats)
    reports["mahalanobis"] = ood_metrics(maha.score(feats), maha.score(out_feats))
    reports["knn"] = ood_metrics(knn.score(feats), knn.score(out_feats))
    best = max(LOGIT_SCORES, key=lambda n: reports[n].auroc)
    ref = splits.val if splits.val is not None else samples
    ref_x, _ = D.sample_tensors(ref, meta.preprocessing, 2000, seed)
    rejection = fit_rejection(_logits_features(model, ref_x)[0], score=best, temperature=temperature,
                              target_acceptance=target_acceptance, auroc=reports[best].auroc,
                              fpr_at_95_tpr=reports[best].fpr_at_95_tpr, ood_source=ood_source)  # fmt: skip
    result = RobustnessResult(len(y), clean, adversarial, corr, reports, ood_source, rejection)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        result.plots["adversarial"] = str(plot_robust_curve(
            [c for k, c in adversarial.items() if k.endswith("linf")], out / "robust_accuracy.png"))  # fmt: skip
        if corr is not None:
            result.plots["corruptions"] = str(plot_corruption_heatmap(corr, out / "corruptions.png"))
        result.plots["ood"] = str(plot_ood_histogram(
            ood_score(best, logits, temperature), ood_score(best, out_logits, temperature), out / "ood_scores.png",
            score_name=best, report=reports[best], threshold=rejection["threshold"]))  # fmt: skip
        atomic_write_text(out / "robustness.json", json.dumps(result.to_dict(), indent=2) + "\n")
    return result


def robustness(model: str | Path, data: str, *, store: bool = True, **kwargs: Any) -> RobustnessResult:
    """Load the bundle at ``model``, run :func:`stress_test` on ``data`` and (``store``) save the rejection rule."""
    result = stress_test(load_bundle(model), str(data), **kwargs)
    if store and result.rejection is not None:
        update_meta(model, rejection=result.rejection)
    return result
