"""The user-facing estimator: ``Classifier``, ``fit``, ``load`` and predictions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console

from imgclf import data as D
from imgclf import engine as E
from imgclf import evaluation as V
from imgclf import explain as XP
from imgclf import export as X
from imgclf import monitor
from imgclf import robustness as R
from imgclf.api._classical import train_classical
from imgclf.api._fit import FitResult, pretrained_bundle, train_run
from imgclf.bundle import Bundle, BundleMeta, load_bundle, same_source, save_bundle, training_source, update_meta
from imgclf.config import RunConfig, load_config, parse_set, update
from imgclf.errors import ConfigError, DataError, NotFittedError
from imgclf.models import is_classical
from imgclf.tasks import Answer, needs_features, rejection_scores, with_reasons
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
    #: an ensemble's or hedged model's (``--tta`` / ``--mc-dropout``) disagreement between its members / views /
    #: dropout passes (mutual information, nats), from the same passes as the probabilities; None otherwise
    uncertainty: float | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.error:
            return {"path": self.path, "label": None, "score": None, "topk": [], "error": self.error}
        out = {"path": self.path, **super().to_dict()}
        if self.uncertainty is not None:
            out["uncertainty"] = self.uncertainty
        return out


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
        self.adapt_: str | None = None  # test-time adaptation of this copy ("bn" / "tent"), see adapted()

    def __repr__(self) -> str:
        if self.bundle_ is None:
            return "Classifier(not fitted)"
        m = self.bundle_.meta
        adapt = f", adapt={self.adapt_}" if self.adapt_ else ""
        return f"Classifier({m.architecture}, {m.num_classes} classes, {self.bundle_.task.kind}{adapt})"

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
        cfg = update(cfg, sets) if sets else cfg
        named = "model" in self.overrides or "name" in sets.get("model", {}) or self.config is not None
        start = None if named else pretrained_bundle(cfg, check_architecture=False)
        if start is not None:  # --weights RUN_DIR without --model: the architecture pretrained there
            cfg = replace(cfg, model=replace(cfg.model, name=start[1].architecture))
        return cfg

    def fit(self, data: Any = None, *, resume: str | Path | None = None, console: Console | None = None) -> Classifier:
        """Train on ``data`` (folder, CSV manifest or built-in name), write the run directory; returns ``self``."""
        cfg = None if resume else self.resolved_config(None if data is None else str(data))
        if cfg is not None and not cfg.data.source:
            raise DataError("no data given: pass a folder, a CSV manifest or a built-in name such as 'digits'")
        result = (train_classical(cfg, console) if cfg is not None and is_classical(cfg.model.name)
                  else train_run(cfg, resume=Path(resume) if resume else None, console=console,
                                 asked=self._asked(data, resume) if resume else ()))  # fmt: skip
        self.result_ = result
        if result.bundle is not None:
            self.bundle_ = result.bundle
        elif result.bundle_dir.is_dir():  # another rank of a distributed run wrote it
            self.bundle_ = load_bundle(result.bundle_dir)
        return self

    def _asked(self, data: Any, resume: str | Path) -> list[str]:
        """The settings given to this Classifier, as command-line options, and ``data`` when it is not the data
        the run in ``resume`` trains on: what a resume cannot apply."""
        asked = [f"--{key.replace('_', '-')} {value}" for key, value in self.overrides.items()]
        asked += [f"--set {item}" for item in self.sets]
        recorded = Path(resume) / "config.yaml"  # (a folder without it is refused by the resume itself)
        if data is not None and recorded.is_file() and not same_source(str(data), load_config(recorded).data.source):
            asked.append(f"DATA {data}")
        return asked + (["--config"] if self.config is not None else [])

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

    def _runner(self, features: bool = False) -> E.Runner | None:
        if self.engine_ is None:
            return None
        return self.engine_.predict_outputs if features else self.engine_.predict_logits

    def adapted(self, method: str, **options: Any) -> Classifier:
        """A new Classifier answering through a test-time-adapted copy of the model (``method`` ``"bn"``:
        BatchNorm statistics of the incoming batches; ``"tent"``: also entropy minimisation on the BatchNorm
        affine parameters; ``options``: ``lr``, ``steps``, ``episodic``). This classifier and its bundle are never
        changed. Adaptation learns from each batch it answers and needs batches that mix classes: predict and
        evaluate feed it a seeded shuffle of their inputs in batches of at least 256 (answers in input order).

        >>> # clf.adapted("tent").predict(shifted_images)
        """
        bundle = self._bundle()
        if self.engine_ is not None:
            raise ConfigError(f"--adapt {method} updates the PyTorch model as images arrive; it cannot run on the "
                              f"{self.engine_.name} engine: use --engine torch")  # fmt: skip
        clf = Classifier()
        clf.bundle_ = replace(bundle, model=R.TestTimeAdapter(bundle.model, method, **options).eval())
        clf.adapt_ = method
        return clf

    # -- using it -----------------------------------------------------------------------------------------
    def hedger(self) -> E.HedgedRunner | None:
        """A fresh runner that keeps the disagreement of each batch it runs, for an ensemble or a hedged model on
        the torch engine (else None): probabilities and uncertainty then come from one pass."""
        model = self._bundle().model
        if self.engine_ is not None or self.adapt_ or not callable(getattr(model, "hedged_outputs", None)):
            return None
        return E.HedgedRunner(model)

    def _outputs(self, inputs: Any, batch_size: int, features: bool = False, runner: E.Runner | None = None,
                 ) -> tuple[D.InputImages, E.InferenceOutput, dict[int, str]]:  # fmt: skip
        """One inference pass over the inputs (through ``runner`` when given); unreadable ones come back as
        ``{position: reason}``."""
        bundle = self._bundle()
        images = D.InputImages(inputs)
        if not self.adapt_:
            out = E.run_inference(bundle.model, images, bundle.meta.preprocessing, batch_size=batch_size,
                                  runner=runner or self._runner(features), features=features)  # fmt: skip
        else:
            # An adapting model learns from each batch: feed it a seeded shuffle in batches of at least 256 (inputs
            # often come sorted by class, which misleads batch statistics); answers go back in input order.
            order = np.random.default_rng(0).permutation(len(images))
            out = E.run_inference(bundle.model, _Reordered(images, order), bundle.meta.preprocessing,
                                  batch_size=max(batch_size, 256), features=features)  # fmt: skip
            back = np.argsort(order[out.indices], kind="stable")
            out = replace(out, logits=out.logits[back], labels=out.labels[back], indices=order[out.indices][back],
                          features=None if out.features is None else out.features[back])  # fmt: skip
        if not len(out.logits):  # nothing readable: (0, C) logits, so probabilities and answers come out empty
            out = replace(out, logits=np.zeros((0, bundle.task.num_outputs), np.float32))
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
        its threshold are answered ``unknown`` with the ``reason`` (``reject=False`` shows the raw answer; the
        score is reported either way); a feature-space rule scores the pooled features of the same forward pass.
        For a hierarchy, an unsure leaf backs off to its deepest confident ancestor
        (``backoff=False`` shows the leaf).

        >>> # [p.label for p in clf.predict(["a.jpg", np.zeros((32, 32, 3), np.uint8)])]
        """
        bundle = self._bundle()
        meta, task = bundle.meta, bundle.task
        rule = meta.rejection if task.supports_rejection else None
        hedger = self.hedger()
        images, out, errors = self._outputs(inputs, batch_size, features=bool(rule) and needs_features(rule["score"]),
                                            runner=hedger)  # fmt: skip
        unc = hedger.values().tolist() if hedger is not None else [None] * len(out.logits)
        probs = task.probabilities(out.logits, None if raw else meta.temperature)
        ood = None
        if rule and len(out.logits):
            ood = rejection_scores(rule, out.logits, meta.temperature, features=out.features,
                                   stats=bundle.rejection_stats)  # fmt: skip
        answers = task.decode(probs, top_k=top_k, ood=ood, threshold=rule.get("threshold") if rule else None,
                              reject=reject, backoff=backoff)  # fmt: skip
        answers = with_reasons(answers, rule)
        smoothing = meta.extra.get("smoothing") if reject and task.kind == "single" else None
        if smoothing and len(out.logits):
            answers = self._smoothed(images, answers, smoothing, batch_size)
        by_index: dict[int, Prediction] = {}
        for i, answer, u in zip(out.indices.tolist(), answers, unc):
            by_index[i] = Prediction(**answer.__dict__, path=images.describe(i), uncertainty=u)
        for i, reason in errors.items():
            by_index[i] = Prediction(None, None, path=images.describe(i), error=reason)
        return [by_index[i] for i in range(len(images))]

    def _smoothed(self, images: D.InputImages, answers: list[Answer], smoothing: dict[str, Any],
                  batch_size: int) -> list[Answer]:  # fmt: skip
        """The randomized-smoothing answer (Cohen et al.'s PREDICT, stored by ``imgclf robustness --certify``) in
        place of the base model's: its class, or ``unknown`` with the reason when the noisy votes do not single
        one out. Images the rejection rule already answered ``unknown`` stay so."""
        bundle = self._bundle()
        pre = bundle.meta.preprocessing
        votes = R.SmoothedVotes(bundle.model, float(smoothing["sigma"]), pre.mean, pre.std,
                                n=int(smoothing.get("samples", 100)))  # fmt: skip
        counts = E.run_inference(votes, images, pre, batch_size=batch_size).logits
        decided = R.predict_from_counts(torch.from_numpy(counts), float(smoothing.get("alpha", 0.001)))
        out = []
        for answer, label, p in zip(answers, decided.labels.tolist(), decided.p_values.tolist()):
            if answer.label == "unknown":
                out.append(answer)
            elif label == R.ABSTAIN:
                out.append(replace(answer, label="unknown", unknown=True,
                                   reason=f"randomized smoothing (sigma {smoothing['sigma']}) abstained: the top two "
                                          f"classes could not be told apart under noise (p = {p:.3g})"))  # fmt: skip
            else:
                out.append(replace(answer, label=bundle.meta.classes[label]))
        return out

    def evaluate(self, data: Any, *, split: str | None = None, raw: bool = False,
                 out_dir: str | Path | None = None, n_resamples: int = 1000,
                 groups_csv: str | Path | None = None) -> V.Evaluation:  # fmt: skip
        """Every metric of the task on ``split`` of ``data``, with bootstrap intervals. Default: the training data's
        held-out split (test, else val); every image of other data that has no train/val/test split of its own.

        >>> # ev = clf.evaluate("data/"); ev.to_dict()["accuracy"]
        """
        bundle = self._bundle()
        rule = bundle.meta.rejection
        features = bool(rule) and bundle.task.supports_rejection and needs_features(rule["score"])
        return V.evaluate_bundle(bundle, str(data), split=split, raw=raw, out_dir=out_dir,
                                 n_resamples=n_resamples, groups_csv=groups_csv, runner=self._runner(features),
                                 shuffle_seed=0 if self.adapt_ else None)  # fmt: skip

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
        if self.adapt_:
            raise ConfigError("this classifier answers through a test-time-adapted copy (adapted()); save the "
                              "classifier it was made from instead")  # fmt: skip
        out = save_bundle(directory, bundle.model, bundle.meta, bundle.rejection_stats)
        self.bundle_ = load_bundle(out, device=next(bundle.model.parameters()).device)
        return out


class _Reordered:
    """``images`` seen in the order ``order`` (a permutation of their positions), as run_inference reads them."""

    def __init__(self, images: D.InputImages, order: np.ndarray) -> None:
        self.images, self.order = images, order

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, i: int) -> Any:
        return self.images[int(self.order[i])]

    @property
    def labels(self) -> list[int]:
        return [0] * len(self.order)


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

