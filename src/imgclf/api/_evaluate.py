"""``evaluate`` / ``calibrate`` / ``compare``: a bundle on a split of some data, with honest uncertainty."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imgclf import data as D
from imgclf import engine as E
from imgclf import evaluation as V
from imgclf import metrics as M
from imgclf.bundle import Bundle, BundleMeta
from imgclf.config import DataConfig
from imgclf.errors import DataError
from imgclf.utils import atomic_write_text

SPLITS = ("test", "val", "train", "all")


def split_logits(model: torch.nn.Module, samples: D.SampleList, pre: DataConfig, *, batch_size: int = 64,
                 workers: int | None = None, channels_last: bool = False, engine: Any = None,
                 features: bool = False) -> E.InferenceOutput:  # fmt: skip
    """Logits of every sample with the eval preprocessing, in sample order (unreadable ones skipped).

    ``engine`` (from :func:`imgclf.export.load_engine`) replaces the eager model, e.g. an ONNX Runtime session;
    ``features=True`` returns pooled pre-logit embeddings ``(N, num_features)`` in ``logits`` instead.
    """
    device = next(model.parameters()).device
    loader = D.make_loader(D.IndexedDataset(samples, D.build_eval_transform(pre)),
                           D.ResumableSampler(samples.labels, seed=0, shuffle=False), batch_size,
                           workers=workers, device_type=device.type)  # fmt: skip
    forward = None if engine is None else (lambda x: torch.from_numpy(np.asarray(engine.predict_logits(x))))
    if features:
        forward = lambda x: model.forward_head(model.forward_features(x), pre_logits=True)  # noqa: E731
    return E.predict_logits(model, loader, device, channels_last=channels_last, forward=forward)


def monitor_reference(model: torch.nn.Module, samples: D.SampleList, pre: DataConfig, temperature: float,
                      *, seed: int = 0, batch_size: int = 64,
                      logits: np.ndarray | None = None) -> dict[str, Any]:  # fmt: skip
    """Drift-monitoring reference statistics of held-out ``samples`` (calibrated confidences, predicted-class
    frequencies, projected embeddings), stored in the bundle as ``extra["monitor"]`` for ``imgclf monitor``.

    Pass ``logits`` of the same samples when they are already computed (saves one pass over the images).
    """
    from imgclf.monitor import reference_stats

    if logits is None:
        logits = split_logits(model, samples, pre, batch_size=batch_size).logits
    feats = split_logits(model, samples, pre, batch_size=batch_size, features=True)
    return reference_stats(M.apply_temperature(logits, temperature), feats.logits, seed=seed)


def sample_tensors(samples: D.SampleList, pre: DataConfig, limit: int | None = None, seed: int = 0
                   ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Eval-preprocessed inputs ``(N, 3, H, W)`` and labels of up to ``limit`` readable samples.

    With a ``limit`` below the sample count, a seeded random subset (kept in sample order) is used.
    """
    chosen = np.random.default_rng(seed).permutation(len(samples))[:limit] if limit else np.arange(len(samples))
    transform = D.build_eval_transform(pre)
    xs, ys = [], []
    for i in sorted(chosen.tolist()):
        try:
            image, label = samples[i]
        except DataError:
            continue
        xs.append(transform(image))
        ys.append(label)
    if not xs:
        raise DataError("none of the selected images could be read")
    return torch.stack(xs), torch.tensor(ys)


def load_split(meta: BundleMeta, source: str, split: str | None) -> tuple[D.SampleList, str, D.Splits]:
    """The samples of ``split`` of ``source``, relabelled to the bundle's classes.

    A flat folder is split with the seed and fractions the bundle was trained with, so ``test`` is the same
    held-out part training used. ``split=None`` picks test, else val; ``all`` joins every split.
    """
    data_cfg, train_cfg = meta.training.get("data", {}), meta.training.get("train", {})
    splits = D.load_source(source, val_fraction=data_cfg.get("val_fraction", 0.1),
                           test_fraction=data_cfg.get("test_fraction", 0.1), seed=train_cfg.get("seed", 0))  # fmt: skip
    unknown = [c for c in splits.classes if c not in meta.classes]
    if unknown:
        raise DataError(f"{source}: class(es) {', '.join(unknown)} are not among the model's classes "
                        f"({', '.join(meta.classes)}); evaluate on data with the model's classes")  # fmt: skip
    parts = {"train": splits.train, "val": splits.val, "test": splits.test}
    if split is None:
        split = "test" if splits.test is not None else "val" if splits.val is not None else "train"
    if split not in SPLITS:
        raise DataError(f"--split {split!r} is not one of {', '.join(SPLITS)}")
    chosen = [p for name, p in parts.items() if p is not None and (split == "all" or name == split)]
    if not chosen:
        have = ", ".join(n for n, p in parts.items() if p is not None)
        raise DataError(f"{source} has no {split!r} split (it has: {have}); pass --split")
    remap = [meta.classes.index(c) for c in splits.classes]
    samples = chosen[0] if len(chosen) == 1 else D.SampleList.concat(chosen)
    return samples.relabel(remap), split, splits


@dataclass(frozen=True, eq=False)
class Evaluation:
    """Every figure of one evaluation; ``probs`` / ``labels`` are kept for further analysis, not serialised."""

    split: str
    metrics: M.ClassificationReport
    intervals: dict[str, M.Interval]
    calibration: M.CalibrationReport
    calibration_raw: M.CalibrationReport
    temperature: float
    risk: M.RiskCoverage
    confidence: M.ConfidenceHistogram
    confused: list[M.ConfusedPair]
    errors: list[V.ErrorExample]
    groups: M.GroupReport | None
    skipped: int
    probs: np.ndarray = field(repr=False)
    labels: np.ndarray = field(repr=False)
    plots: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "split": self.split, "n": self.metrics.n, "skipped": self.skipped, "temperature": self.temperature,
            "metrics": self.metrics.to_dict(), "intervals": {k: v.to_dict() for k, v in self.intervals.items()},
            "calibration": self.calibration.to_dict(), "calibration_uncalibrated": self.calibration_raw.to_dict(),
            "risk_coverage": self.risk.to_dict(), "most_confused": [c.to_dict() for c in self.confused],
            "groups": self.groups.to_dict() if self.groups else None, "plots": self.plots,
        }  # fmt: skip

    def report_fields(self) -> dict[str, Any]:
        """The :class:`~imgclf.evaluation.ReportData` fields this evaluation fills."""
        return {"metrics": self.metrics, "intervals": self.intervals, "split": self.split,
                "calibration_before": self.calibration_raw, "calibration_after": self.calibration,
                "temperature": self.temperature, "risk_coverage": self.risk, "confidence": self.confidence,
                "groups": self.groups, "errors": self.errors}  # fmt: skip


def analyse(logits: np.ndarray, labels: np.ndarray, classes: Sequence[str], *, temperature: float = 1.0,
            split: str = "test", describe: Any = None, groups: Sequence[Any] | None = None, skipped: int = 0,
            n_resamples: int = 1000, seed: int = 0, target_accuracy: float | None = None) -> Evaluation:  # fmt: skip
    """All metrics of logits ``(N, C)`` and labels ``(N,)`` (``describe(i)`` gives the image of row ``i``)."""
    if len(labels) == 0:
        raise DataError("nothing to evaluate: the split has no readable images")
    probs = M.apply_temperature(logits, temperature)
    report = M.classification_metrics(probs, labels, list(classes))
    top = M.top_losses(probs, labels, k=min(25, len(labels)))
    errors = [V.ErrorExample(describe(int(i)) if describe else f"#{int(i)}", classes[int(t)], classes[int(p)],
                             float(c), float(loss)) for i, t, p, c, loss in
              zip(top.indices, top.labels, top.predicted, top.confidence, top.losses)]  # fmt: skip
    # Default abstention target: halve the error rate (e.g. 0.90 -> 0.95), capped at 0.99.
    target = target_accuracy if target_accuracy is not None else min(0.99, round((1 + report.accuracy) / 2, 3))
    return Evaluation(
        split=split, metrics=report, intervals=M.bootstrap_ci(probs, labels, n_resamples=n_resamples, seed=seed),
        calibration=M.calibration_metrics(probs, labels), calibration_raw=M.calibration_metrics(
            M.apply_temperature(logits, 1.0), labels), temperature=temperature,
        risk=M.risk_coverage(probs, labels, target_accuracy=target), confidence=M.confidence_histogram(probs, labels),
        confused=M.most_confused(report.confusion, list(classes)), errors=errors,
        groups=M.group_metrics(probs, labels, groups) if groups is not None else None, skipped=skipped,
        probs=probs, labels=labels,
    )  # fmt: skip


def write_plots(ev: Evaluation, out_dir: str | Path) -> dict[str, str]:
    """The evaluation's PNGs in ``out_dir`` (confusion, reliability, per-class, confidence, risk, errors)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = ev.metrics.class_names
    plots = {
        "confusion": V.plot_confusion_matrix(ev.metrics.confusion, names, out / "confusion_matrix.png"),
        "reliability": V.plot_reliability(ev.calibration_raw, out / "reliability.png", after=ev.calibration),
        "per_class": V.plot_per_class_accuracy(ev.metrics, out / "per_class_accuracy.png"),
        "confidence": V.plot_confidence_histogram(ev.confidence, out / "confidence_histogram.png"),
        "risk_coverage": V.plot_risk_coverage(ev.risk, out / "risk_coverage.png"),
        "errors": V.plot_error_gallery(ev.errors, out / "error_gallery.png"),
    }
    ev.plots.update({k: str(v) for k, v in plots.items()})
    return ev.plots


def read_groups(path: str | Path, samples: D.SampleList) -> list[str]:
    """Group of each sample from a CSV ``path,group`` (paths as in the data, or file names); missing -> DataError."""
    import csv

    p = Path(path)
    if not p.is_file():
        raise DataError(f"--groups {p} does not exist; give a CSV with columns path,group")
    with open(p, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"path", "group"} <= set(rows[0]):
        raise DataError(f"{p} needs a header with columns path,group")
    table: dict[str, str] = {}
    for r in rows:
        table[str((p.parent / r["path"]).resolve())] = r["group"]
        table.setdefault(Path(r["path"]).name, r["group"])
    out = []
    for i in range(len(samples)):
        d = samples.describe(i)
        g = table.get(str(Path(d).resolve())) or table.get(Path(d).name)
        if g is None:
            raise DataError(f"{p} has no group for {d}; list every evaluated image (path,group)")
        out.append(g)
    return out


def evaluate_bundle(bundle: Bundle, source: str, *, split: str | None = None, raw: bool = False,
                    groups_csv: str | Path | None = None, out_dir: str | Path | None = None,
                    n_resamples: int = 1000, batch_size: int = 64, engine: Any = None) -> Evaluation:  # fmt: skip
    """Evaluate a loaded bundle on ``split`` of ``source``; with ``out_dir``, write plots and ``evaluation.json``."""
    samples, split, _ = load_split(bundle.meta, source, split)
    out = split_logits(bundle.model, samples, bundle.meta.preprocessing, batch_size=batch_size, engine=engine)
    groups = read_groups(groups_csv, samples) if groups_csv else None
    if groups is not None:
        groups = [groups[int(i)] for i in out.indices]
    temperature = 1.0 if raw else bundle.meta.temperature or 1.0
    ev = analyse(out.logits, out.labels, bundle.meta.classes, temperature=temperature, split=split,
                 describe=samples.describe, groups=groups, skipped=out.skipped, n_resamples=n_resamples)  # fmt: skip
    if out_dir is not None:
        import json

        write_plots(ev, Path(out_dir) / "plots")
        atomic_write_text(Path(out_dir) / "evaluation.json", json.dumps(ev.to_dict(), indent=2) + "\n")
    return ev


@dataclass(frozen=True)
class CalibrationResult:
    """Temperature fitted on a split, with calibration before and after."""

    temperature: float
    split: str
    before: M.CalibrationReport
    after: M.CalibrationReport

    def to_dict(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "split": self.split, "before": self.before.to_dict(),
                "after": self.after.to_dict()}  # fmt: skip


MIN_CALIBRATION_IMAGES = 30


def checked_temperature(logits: np.ndarray, labels: np.ndarray) -> tuple[float | None, str]:
    """The NLL-optimal temperature, or None with the reason when the split cannot support one.

    Too few images, or a split the model gets entirely right (the NLL then falls without bound as T -> 0),
    would store an arbitrary, overconfident temperature.
    """
    if len(labels) < MIN_CALIBRATION_IMAGES:
        return None, f"only {len(labels)} images (need {MIN_CALIBRATION_IMAGES})"
    if (logits.argmax(1) == labels).all():
        return None, "the model classifies every image of the split correctly, so any temperature below 1 fits"
    t = float(M.fit_temperature(logits, labels))
    if not 0.06 <= t <= 19.0:
        return None, f"the fitted temperature {t:.3g} sits at the search bound"
    return t, ""


def calibrate_bundle(bundle: Bundle, source: str, *, split: str = "val") -> CalibrationResult:
    """Fit temperature scaling (minimising NLL) on ``split`` of ``source``; the caller stores it in the bundle."""
    samples, split, _ = load_split(bundle.meta, source, split)
    out = split_logits(bundle.model, samples, bundle.meta.preprocessing)
    t, reason = checked_temperature(out.logits, out.labels)
    if t is None:
        raise DataError(f"cannot calibrate on split {split!r} of {source}: {reason}. "
                        "Use a larger or harder split (--split), e.g. more validation images")  # fmt: skip
    before = M.calibration_metrics(M.apply_temperature(out.logits, 1.0), out.labels)
    after = M.calibration_metrics(M.apply_temperature(out.logits, t), out.labels)
    return CalibrationResult(float(t), split, before, after)


def compare_bundles(a: Bundle, b: Bundle, source: str, *, split: str | None = None,
                    names: tuple[str, str] = ("A", "B")) -> M.Comparison:  # fmt: skip
    """Paired comparison (exact McNemar + paired bootstrap) of two bundles on the same images."""
    if a.meta.classes != b.meta.classes:
        raise DataError("the two models have different classes; a paired comparison needs the same label set")
    samples, split, _ = load_split(a.meta, source, split)
    outs = [split_logits(x.model, samples, x.meta.preprocessing) for x in (a, b)]
    if not np.array_equal(outs[0].indices, outs[1].indices):
        raise DataError("the two models could not read the same images; compare needs identical inputs")
    probs = [M.apply_temperature(o.logits, x.meta.temperature or 1.0) for o, x in zip(outs, (a, b))]
    return M.compare_predictions(probs[0], probs[1], outs[0].labels, names=names)


def summary_rows(ev: Evaluation) -> list[tuple[str, str]]:
    """Headline figures with intervals, as (name, "0.912 [0.901, 0.923]") rows."""
    rows = [(name, str(iv)) for name, iv in ev.intervals.items()]
    rows += [(f"top-{k} accuracy", f"{v:.3f}") for k, v in ev.metrics.top_k.items() if k > 1]
    rows += [("kappa", f"{ev.metrics.kappa:.3f}"), ("MCC", f"{ev.metrics.mcc:.3f}"),
             ("Brier", f"{ev.metrics.brier:.3f}"), ("ECE (equal mass)", f"{ev.calibration.ece_equal_mass:.3f}"),
             ("MCE", f"{ev.calibration.mce:.3f}")]  # fmt: skip
    return rows






def evaluate(model: str | Path, data: str, *, engine: str = "torch", **kwargs: Any) -> Evaluation:
    """Load the bundle (or exported ``.onnx`` in one) at ``model`` and evaluate it on ``data``.

    ``engine``: torch, torch-fast or onnxruntime; options as for :func:`evaluate_bundle`.

    >>> # ev = imgclf.api.evaluate("runs/x/bundle", "path/to/images"); print(ev.intervals["accuracy"])
    """
    from imgclf.api._export import make_engine, resolve_model
    from imgclf.bundle import load_bundle

    bundle_dir, onnx = resolve_model(model)
    bundle = load_bundle(bundle_dir)
    runner = None if engine == "torch" and onnx is None else make_engine(bundle, engine, onnx)
    return evaluate_bundle(bundle, str(data), engine=runner, **kwargs)


def calibrate(model: str | Path, data: str, *, split: str = "val") -> CalibrationResult:
    """Fit the temperature on ``split`` of ``data`` and store it in the bundle at ``model``."""
    from imgclf.bundle import load_bundle, update_meta

    bundle = load_bundle(model)
    res = calibrate_bundle(bundle, str(data), split=split)
    extra = dict(bundle.meta.extra)
    if "monitor" in extra:  # the drift reference holds calibrated confidences: recompute them with the new T
        samples, _, _ = load_split(bundle.meta, str(data), None)
        extra["monitor"] = monitor_reference(bundle.model, samples, bundle.meta.preprocessing, res.temperature)
    update_meta(model, temperature=res.temperature, extra=extra)
    return res


def compare(model_a: str | Path, model_b: str | Path, data: str, *, split: str | None = None) -> M.Comparison:
    """Paired comparison of two bundles on the same images of ``data``."""
    from imgclf.bundle import load_bundle

    return compare_bundles(load_bundle(model_a), load_bundle(model_b), str(data), split=split,
                           names=(Path(model_a).parent.name or "A", Path(model_b).parent.name or "B"))  # fmt: skip
