"""The user-facing estimator: ``Classifier``, ``fit``, ``load`` and predictions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from imgclf import data as D
from imgclf import engine as E
from imgclf import evaluation as V
from imgclf import explain as XP
from imgclf import export as X
from imgclf import monitor
from imgclf.api._classical import train_classical
from imgclf.api._fit import FitResult, train_run
from imgclf.bundle import Bundle, BundleMeta, load_bundle, save_bundle, training_source, update_meta
from imgclf.config import RunConfig, load_config, parse_set, update
from imgclf.errors import ConfigError, DataError, NotFittedError
from imgclf.models import is_classical
from imgclf.tasks import Answer, rejection_scores
from imgclf.utils import closest

# Keyword shortcuts of Classifier / fit, and the config key each sets.
SHORTCUTS = {"model": ("model", "name"), "epochs": ("train", "epochs"), "batch_size": ("data", "batch_size"),
             "img_size": ("data", "img_size"), "seed": ("train", "seed"), "out": ("train", "out"),
             "name": ("train", "name"), "weights": ("model", "weights"), "freeze": ("model", "freeze"),
             "lr": ("optim", "lr"), "augment": ("data", "augment"), "task": ("data", "task"),
             "hierarchy": ("data", "hierarchy")}  # fmt: skip


@dataclass(frozen=True)
class Prediction(Answer):
    """One input's answer (see :class:`~imgclf.tasks.Answer`): ``path`` names the input (a file, or
    ``input[i]`` for an in-memory image); ``error`` says why it could not be read (then ``label`` is None)."""

    path: str = ""
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.error:
            return {"path": self.path, "label": None, "score": None, "topk": [], "error": self.error}
        return {"path": self.path, **super().to_dict()}


class Classifier:
    """An image classifier: train with :meth:`fit`, or load a bundle with :func:`load`; then predict, evaluate,
    calibrate, explain, export and save — all on the model in memory.

    ``__init__`` only stores settings: a config (object or YAML path), shortcuts (``model``, ``epochs``,
    ``batch_size``, ``img_size``, ``seed``, ``out``, ``name``, ``weights``, ``freeze``, ``lr``, ``augment``,
    ``task``, ``hierarchy``) and ``sets`` (``section.key=value`` strings, as on the command line).

    >>> # clf = Classifier(model="lenet5", epochs=5).fit("digits"); clf.predict(["img.png"])[0].label
    """

    def __init__(self, config: RunConfig | str | Path | None = None, *, sets: Sequence[str] = (), **overrides: Any):
        unknown = [k for k in overrides if k not in SHORTCUTS]
        if unknown:
            raise ConfigError(f"unknown option {unknown[0]!r}.{closest(unknown[0], SHORTCUTS)} "
                              "Other settings go through sets=['section.key=value']")  # fmt: skip
        self.config = config if isinstance(config, RunConfig) or config is None else load_config(config)
        self.sets = list(sets)
        self.overrides = {k: v for k, v in overrides.items() if v is not None}
        self.bundle_: Bundle | None = None
        self.result_: FitResult | None = None
        self.engine_: Any = None  # an imgclf.export engine replacing the eager model for logits

    def __repr__(self) -> str:
        if self.bundle_ is None:
            return "Classifier(not fitted)"
        m = self.bundle_.meta
        return f"Classifier({m.architecture}, {m.num_classes} classes, {self.bundle_.task.kind})"

    # -- training -----------------------------------------------------------------------------------------
    def resolved_config(self, data: str | None = None) -> RunConfig:
        """Defaults < config < keyword shortcuts (model, epochs, ...) < ``sets`` (``section.key=value``)."""
        changes: dict[str, dict[str, Any]] = {}
        if data is not None:
            changes.setdefault("data", {})["source"] = str(data)
        for key, value in self.overrides.items():
            section, name = SHORTCUTS[key]
            changes.setdefault(section, {})[name] = value
        cfg = update(self.config or RunConfig(), changes)
        sets = parse_set(self.sets)
        return update(cfg, sets) if sets else cfg

    def fit(self, data: Any = None, *, resume: str | Path | None = None, console: Console | None = None) -> Classifier:
        """Train on ``data`` (folder, CSV manifest or built-in name), write the run directory; returns ``self``."""
        cfg = None if resume else self.resolved_config(None if data is None else str(data))
        if cfg is not None and not cfg.data.source:
            raise DataError("no data given: pass a folder, a CSV manifest or a built-in name such as 'digits'")
        result = (train_classical(cfg, console) if cfg is not None and is_classical(cfg.model.name)
                  else train_run(cfg, resume=Path(resume) if resume else None, console=console))  # fmt: skip
        self.result_ = result
        if result.bundle is not None:
            self.bundle_ = result.bundle
        elif result.bundle_dir.is_dir():  # another rank of a distributed run wrote it
            self.bundle_ = load_bundle(result.bundle_dir)
        return self

    # -- state --------------------------------------------------------------------------------------------
    def _bundle(self) -> Bundle:
        if self.bundle_ is None:
            raise NotFittedError("this Classifier has no model yet: call .fit(data) or use imgclf.load(bundle_dir)")
        return self.bundle_

    @property
    def model_(self) -> Any:
        return self._bundle().model

    @property
    def meta_(self) -> BundleMeta:
        return self._bundle().meta

    @property
    def classes(self) -> tuple[str, ...]:
        return self.meta_.classes

    def _runner(self) -> E.Runner | None:
        return None if self.engine_ is None else self.engine_.predict_logits

    # -- using it -----------------------------------------------------------------------------------------
    def _outputs(self, inputs: Any, batch_size: int, features: bool = False
                 ) -> tuple[D.InputImages, E.InferenceOutput, dict[int, str]]:  # fmt: skip
        """One inference pass over the inputs; unreadable ones come back as ``{position: reason}``."""
        bundle = self._bundle()
        images = D.InputImages(inputs)
        out = E.run_inference(bundle.model, images, bundle.meta.preprocessing, batch_size=batch_size,
                              runner=self._runner(), features=features)  # fmt: skip
        return images, out, images.unreadable(out.indices.tolist())

    def predict_logits(self, inputs: Any, *, batch_size: int = 32
                       ) -> tuple[list[str], np.ndarray, dict[str, str]]:  # fmt: skip
        """Uncalibrated logits ``(N, C)`` of the readable inputs, their names, and ``{name: reason}`` for the rest.

        Inputs: file paths, folders, globs, PIL images, numpy arrays ``(H, W, C)`` uint8, tensors, or a list of
        them; images are decoded a batch at a time with the bundle's preprocessing.
        """
        images, out, errors = self._outputs(inputs, batch_size)
        names = [images.describe(int(i)) for i in out.indices]
        return names, out.logits, {images.describe(i): r for i, r in errors.items()}

    def embed(self, inputs: Any, *, batch_size: int = 32) -> np.ndarray:
        """Pooled pre-logit features ``(N, num_features)`` of the readable inputs (for drift, OOD, retrieval)."""
        _, out, _ = self._outputs(inputs, batch_size, features=True)
        return out.features

    def predict_proba(self, inputs: Any, *, batch_size: int = 32) -> np.ndarray:
        """Calibrated probabilities ``(N, C)`` (softmax rows, or per-label sigmoids for multi-label);
        an unreadable input raises DataError naming it."""
        bundle = self._bundle()
        _, logits, errors = self.predict_logits(inputs, batch_size=batch_size)
        if errors:
            path, reason = next(iter(errors.items()))
            raise DataError(f"{path}: {reason}")
        return bundle.task.probabilities(logits, bundle.meta.temperature)

    def predict(self, inputs: Any, *, top_k: int = 5, raw: bool = False, reject: bool = True,
                backoff: bool = True, batch_size: int = 32) -> list[Prediction]:  # fmt: skip
        """One :class:`Prediction` per input, in input order; unreadable inputs get ``error`` instead of labels.

        ``raw=True`` uses uncalibrated probabilities. With a rejection rule in the bundle, images scoring below
        its threshold are answered ``unknown`` (``reject=False`` shows the raw answer; the score is reported
        either way). For a hierarchy, an unsure leaf backs off to its deepest confident ancestor
        (``backoff=False`` shows the leaf).

        >>> # [p.label for p in clf.predict(["a.jpg", np.zeros((32, 32, 3), np.uint8)])]
        """
        bundle = self._bundle()
        meta, task = bundle.meta, bundle.task
        images, out, errors = self._outputs(inputs, batch_size)
        probs = task.probabilities(out.logits, None if raw else meta.temperature)
        rule = meta.rejection if task.supports_rejection else None
        ood = rejection_scores(rule, out.logits, meta.temperature) if rule and len(out.logits) else None
        answers = task.decode(probs, top_k=top_k, ood=ood, threshold=rule.get("threshold") if rule else None,
                              reject=reject, backoff=backoff)  # fmt: skip
        by_index: dict[int, Prediction] = {}
        for i, answer in zip(out.indices.tolist(), answers):
            by_index[i] = Prediction(**answer.__dict__, path=images.describe(i))
        for i, reason in errors.items():
            by_index[i] = Prediction(None, None, path=images.describe(i), error=reason)
        return [by_index[i] for i in range(len(images))]

    def evaluate(self, data: Any, *, split: str | None = None, raw: bool = False,
                 out_dir: str | Path | None = None, n_resamples: int = 1000,
                 groups_csv: str | Path | None = None) -> V.Evaluation:  # fmt: skip
        """Every metric of the task on ``split`` (default test, else val) of ``data``, with bootstrap intervals.

        >>> # ev = clf.evaluate("data/"); ev.to_dict()["accuracy"]
        """
        return V.evaluate_bundle(self._bundle(), str(data), split=split, raw=raw, out_dir=out_dir,
                                 n_resamples=n_resamples, groups_csv=groups_csv, runner=self._runner())  # fmt: skip

    def calibrate(self, data: Any = None, *, split: str = "val", save: bool = False) -> V.CalibrationResult:
        """Refit the calibration on ``split`` of ``data`` (default: the training data) and apply it, with the
        rejection threshold re-chosen at the new temperature and the drift reference recomputed; ``save=True``
        also writes them into the bundle directory."""
        bundle = self._bundle()
        result = V.calibrate_bundle(bundle, training_source(bundle.meta, data, option="DATA"), split=split)
        changes = dict(result.changes)
        if "monitor" in bundle.meta.extra and result.features is not None:
            probs = bundle.task.probabilities(result.logits, result.temperature)
            reference = monitor.reference_stats(probs, result.features, thresholds=bundle.meta.task.get("thresholds"))
            changes["extra"] = {**bundle.meta.extra, "monitor": reference}
        self.bundle_ = replace(bundle, meta=replace(bundle.meta, **changes))
        if save:
            if bundle.path is None:
                raise ConfigError("this model is only in memory: .save(directory) it first")
            update_meta(bundle.path, **changes)
        return result

    def explain(self, inputs: Any, out_dir: str | Path, *, method: str = "gradcam", target: str | None = None,
                faithfulness: bool = False) -> XP.ExplainReport:  # fmt: skip
        """Attribution overlays (PNG, input and heatmap side by side) for images.

        >>> # clf.explain(["cat.jpg"], "explanations", method="gradcam").images[0].overlay
        """
        return XP.explain_files(self._bundle(), inputs, out_dir, method=method, target=target,
                                faithfulness=faithfulness)  # fmt: skip

    def export(self, path: str | Path | None = None, *, format: str = "onnx", quantize: str | None = None,
               data: str | None = None) -> X.ExportResult:  # fmt: skip
        """Export to ONNX (into ``path``, default beside the bundle) after a parity check on real images."""
        if format != "onnx":
            raise ConfigError(f"format={format!r}: imgclf exports 'onnx'")
        return X.export_bundle(self._bundle(), quantize=quantize, data=data, out=path)

    def save(self, directory: str | Path) -> Path:
        """Write this classifier as a bundle directory (and remember it as this model's home)."""
        bundle = self._bundle()
        out = save_bundle(directory, bundle.model, bundle.meta)
        self.bundle_ = load_bundle(out, device=next(bundle.model.parameters()).device)
        return out


def load(path: str | Path, *, device: str = "cpu", engine: str = "torch") -> Classifier:
    """Load a bundle directory written by ``imgclf train`` (weights checked against their sha256), or an exported
    ``.onnx`` file inside one; ``engine`` is torch, torch-fast or onnxruntime (the bundle's ``model.onnx``).

    >>> # clf = imgclf.load("runs/x/bundle"); clf.classes
    """
    bundle_dir, onnx = X.resolve_model(path)
    clf = Classifier()
    clf.bundle_ = load_bundle(bundle_dir, device=device)
    if engine != "torch" or onnx is not None:
        clf.engine_ = X.make_engine(clf.bundle_, engine, onnx)
    return clf


def fit(data: Any, **kwargs: Any) -> Classifier:
    """Train a classifier on ``data`` and return it (keyword arguments as for :class:`Classifier`, plus
    ``resume`` and ``console``).

    >>> # clf = imgclf.fit("digits", model="lenet5", epochs=3)
    """
    console = kwargs.pop("console", None)
    resume = kwargs.pop("resume", None)
    return Classifier(**kwargs).fit(data, resume=resume, console=console)

