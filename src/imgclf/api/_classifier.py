"""The user-facing estimator: ``Classifier``, ``fit``, ``load`` and predictions."""

from __future__ import annotations

import glob
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from rich.console import Console

from imgclf import data as D
from imgclf import engine as E
from imgclf.api._explain import ExplainReport, explain_files
from imgclf.api._fit import FitResult, RepeatResult, train_repeated, train_run
from imgclf.api._robustness import ood_score
from imgclf.bundle import Bundle, BundleMeta, load_bundle, save_bundle
from imgclf.config import RunConfig, load_config, parse_set, update
from imgclf.errors import DataError, NotFittedError
from imgclf.metrics import apply_temperature


@dataclass(frozen=True)
class Prediction:
    """One input's answer: top-1 label and score, the top-k, or the error that kept it from being read."""

    path: str
    label: str | None
    score: float | None
    topk: tuple[tuple[str, float], ...] = ()
    error: str | None = None
    unknown: bool = False
    ood_score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "label": self.label, "score": self.score,
                               "topk": [{"label": lab, "score": s} for lab, s in self.topk]}  # fmt: skip
        if self.error:
            out["error"] = self.error
        if self.ood_score is not None:
            out["unknown"], out["ood_score"] = self.unknown, self.ood_score
        return out


def expand_inputs(inputs: Iterable[str | Path]) -> list[str]:
    """Files as given, folders walked recursively for images, globs expanded; order kept, duplicates dropped.

    A name that matches nothing raises DataError naming it.
    """
    out: list[str] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = D.list_images(p)
        elif p.exists():
            found = [p]
        else:
            found = sorted(Path(x) for x in glob.glob(str(item), recursive=True))
            if not found:
                raise DataError(f"{item}: no such file, folder or matching glob; check the path")
        out += [str(f) for f in found]
    return list(dict.fromkeys(out))


class Classifier:
    """An image classifier: train with :meth:`fit`, or load a bundle with :func:`load`, then predict.

    ``__init__`` only stores settings: a config (object or YAML path), shortcuts (``model``, ``epochs``,
    ``batch_size``, ``img_size``, ``seed``, ``out``, ``name``, ``weights``) and ``sets`` (``section.key=value``).

    >>> # clf = Classifier(model="lenet5", epochs=5).fit("digits"); clf.predict(["img.png"])[0].label
    """

    def __init__(self, config: RunConfig | str | Path | None = None, *, sets: Sequence[str] = (), **overrides: Any):
        self.config = config if isinstance(config, RunConfig) or config is None else load_config(config)
        self.overrides: dict[str, Any] = {"sets": list(sets), **overrides}
        self.model_: torch.nn.Module | None = None
        self.meta_: BundleMeta | None = None
        self.result_: FitResult | None = None
        self.engine_: Any = None  # an imgclf.export engine replacing the eager model for logits

    def __repr__(self) -> str:
        state = f"{self.meta_.architecture}, {self.meta_.num_classes} classes" if self.meta_ else "not fitted"
        return f"Classifier({state})"

    # -- training -----------------------------------------------------------------------------------------
    def resolved_config(self, data: str | None = None) -> RunConfig:
        """Defaults < config < keyword shortcuts (model, epochs, ...) < ``sets`` (``section.key=value``)."""
        cfg = self.config or RunConfig()
        kw = {k: v for k, v in self.overrides.items() if k != "sets" and v is not None}
        short = {"model": ("model", "name"), "epochs": ("train", "epochs"), "batch_size": ("data", "batch_size"),
                 "img_size": ("data", "img_size"), "seed": ("train", "seed"), "out": ("train", "out"),
                 "name": ("train", "name"), "weights": ("model", "weights")}  # fmt: skip
        changes: dict[str, dict[str, Any]] = {}
        if data is not None:
            changes.setdefault("data", {})["source"] = str(data)
        for key, value in kw.items():
            if key not in short:
                from imgclf.errors import ConfigError
                from imgclf.utils import closest

                raise ConfigError(f"unknown option {key!r}.{closest(key, short)} Use sets=['section.key=value']")
            section, name = short[key]
            changes.setdefault(section, {})[name] = value
        cfg = update(cfg, changes)
        sets = parse_set(self.overrides.get("sets", []))
        return update(cfg, sets) if sets else cfg

    def fit(self, data: str | Path | None = None, *, resume: str | Path | None = None,
            console: Console | None = None) -> Classifier:  # fmt: skip
        """Train on ``data`` (folder, CSV or built-in name), write the run directory, load the bundle."""
        cfg = None if resume else self.resolved_config(None if data is None else str(data))
        if cfg is not None and not cfg.data.source:
            raise DataError("no data given: pass a folder, a CSV manifest or a built-in name such as 'digits'")
        result = train_run(cfg, resume=Path(resume) if resume else None, console=console)
        self.result_ = result
        if result.bundle_dir.is_dir():
            self._set(load_bundle(result.bundle_dir))
        return self

    def fit_repeated(self, data: str | Path, *, seeds: int = 1, folds: int | None = None,
                     console: Console | None = None) -> RepeatResult:  # fmt: skip
        """Train the same recipe with several seeds, or cross-validate over ``folds``; returns mean ± std."""
        return train_repeated(self.resolved_config(str(data)), seeds=seeds, folds=folds, console=console)

    def _set(self, bundle: Bundle) -> None:
        self.model_, self.meta_ = bundle.model, bundle.meta

    # -- using it -----------------------------------------------------------------------------------------
    def _require(self) -> tuple[torch.nn.Module, BundleMeta]:
        if self.model_ is None or self.meta_ is None:
            raise NotFittedError("this Classifier has no model yet: call .fit(data) or use imgclf.load(bundle_dir)")
        return self.model_, self.meta_

    @property
    def classes(self) -> tuple[str, ...]:
        return self._require()[1].classes

    def _run(self, images: Sequence[Image.Image], batch_size: int, features: bool) -> np.ndarray:
        model, meta = self._require()
        transform = D.build_eval_transform(meta.preprocessing)
        device = next(model.parameters()).device
        forward = (lambda x: model.forward_head(model.forward_features(x), pre_logits=True)) if features else None
        batches = (
            D.Batch(torch.stack([transform(im.convert("RGB")) for im in images[i : i + batch_size]]),
                    torch.zeros(len(images[i : i + batch_size]), dtype=torch.long),
                    torch.arange(i, i + len(images[i : i + batch_size])), 0)
            for i in range(0, len(images), batch_size)
        )  # fmt: skip
        if not features and self.engine_ is not None:
            forward = lambda x: torch.from_numpy(np.asarray(self.engine_.predict_logits(x)))  # noqa: E731
        out = E.predict_logits(model, batches, device, forward=forward)
        width = getattr(model, "num_features", 0) if features else meta.num_classes
        return out.logits if len(images) else np.zeros((0, width), np.float32)

    def logits_from_images(self, images: Sequence[Image.Image], *, batch_size: int = 32) -> np.ndarray:
        """Uncalibrated logits ``(N, C)`` of in-memory PIL images, with the bundle's preprocessing."""
        return self._run(images, batch_size, features=False)

    def embed_images(self, images: Sequence[Image.Image], *, batch_size: int = 32) -> np.ndarray:
        """Pooled pre-logit features ``(N, num_features)`` of in-memory PIL images (for drift / OOD scores)."""
        return self._run(images, batch_size, features=True)

    def predict_logits(self, inputs: Iterable[str | Path], *, batch_size: int = 32
                       ) -> tuple[list[str], np.ndarray, dict[str, str]]:  # fmt: skip
        """Logits ``(N, C)`` of the readable inputs, their paths, and ``{path: reason}`` for the unreadable.

        Inputs are files, folders or globs (see :func:`expand_inputs`); images are decoded a batch at a time.
        """
        return self._logits_of_files(expand_inputs(inputs), batch_size)

    def _logits_of_files(self, paths: Sequence[str], batch_size: int = 32
                         ) -> tuple[list[str], np.ndarray, dict[str, str]]:  # fmt: skip
        _, meta = self._require()
        ok, chunks, errors = [], [np.zeros((0, meta.num_classes), np.float32)], {}
        for start in range(0, len(paths), batch_size):
            images = []
            for path in paths[start : start + batch_size]:
                try:
                    images.append(D.open_image(path))
                    ok.append(path)
                except DataError as exc:
                    errors[path] = getattr(exc, "reason", str(exc))
            chunks.append(self.logits_from_images(images, batch_size=batch_size))
        return ok, np.concatenate(chunks), errors

    def predict_proba(self, inputs: Iterable[str | Path]) -> np.ndarray:
        """Calibrated class probabilities ``(N, C)`` of the readable inputs (unreadable ones raise DataError)."""
        paths, logits, errors = self.predict_logits(inputs)
        if errors:
            path, reason = next(iter(errors.items()))
            raise DataError(f"{path}: {reason}")
        return apply_temperature(logits, self._require()[1].temperature or 1.0)

    def predict(self, inputs: Iterable[str | Path], *, top_k: int = 5, raw: bool = False,
                reject: bool = True) -> list[Prediction]:  # fmt: skip
        """Top-k predictions per input, in input order; unreadable inputs get ``error`` instead of labels.

        ``raw=True`` uses uncalibrated probabilities (temperature 1). When the bundle holds a rejection rule
        (``imgclf robustness``), images scoring below its threshold are answered ``unknown`` with their OOD
        score; ``reject=False`` shows the raw answer (the score is still reported).
        """
        _, meta = self._require()
        order = expand_inputs(inputs)
        paths, logits, errors = self._logits_of_files(order)
        probs = apply_temperature(logits, 1.0 if raw else meta.temperature or 1.0)
        scores = [None] * len(paths)
        if meta.rejection:
            scores = ood_score(meta.rejection["score"], torch.from_numpy(logits), meta.temperature or 1.0).tolist()
        by_path = {}
        k = min(top_k, meta.num_classes)
        for path, row, ood in zip(paths, probs, scores):
            best = np.argsort(-row)[:k]
            topk = tuple((meta.classes[j], float(row[j])) for j in best)
            unknown = ood is not None and ood < meta.rejection["threshold"]
            label = "unknown" if unknown and reject else topk[0][0]
            by_path[path] = Prediction(path, label, topk[0][1], topk, unknown=unknown, ood_score=ood)
        for path, reason in errors.items():
            by_path[path] = Prediction(path, None, None, (), reason)
        return [by_path[p] for p in order]

    def explain(self, inputs: Iterable[str | Path], out_dir: str | Path, *, method: str = "gradcam",
                target: str | None = None, faithfulness: bool = False) -> ExplainReport:  # fmt: skip
        """Attribution overlays (PNG, input and heatmap side by side) for image files; see :func:`explain_files`.

        >>> # clf.explain(["cat.jpg"], "explanations", method="gradcam").images[0].overlay
        """
        return explain_files(self, inputs, out_dir, method=method, target=target, faithfulness=faithfulness)

    def save(self, directory: str | Path) -> Path:
        """Write this classifier as a bundle directory."""
        model, meta = self._require()
        return save_bundle(directory, model, meta)


def load(path: str | Path, *, device: str = "cpu", engine: str = "torch") -> Classifier:
    """Load a bundle directory written by ``imgclf train`` (weights checked against their sha256), or an exported
    ``.onnx`` file inside one; ``engine`` is torch, torch-fast or onnxruntime (the bundle's ``model.onnx``).

    >>> # clf = imgclf.load("runs/x/bundle"); clf.classes
    """
    from imgclf.api._export import make_engine, resolve_model

    bundle_dir, onnx = resolve_model(path)
    clf = Classifier()
    bundle = load_bundle(bundle_dir, device=device)
    clf._set(bundle)
    if engine != "torch" or onnx is not None:
        clf.engine_ = make_engine(bundle, engine, onnx)
    return clf


def fit(data: str | Path, **kwargs: Any) -> Classifier:
    """Train a classifier on ``data`` and return it (keyword arguments as for :class:`Classifier`)."""
    console = kwargs.pop("console", None)
    resume = kwargs.pop("resume", None)
    return Classifier(**kwargs).fit(data, resume=resume, console=console)
