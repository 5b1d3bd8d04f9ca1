"""Few-shot prototype heads: a class is the normalised mean of its few images' normalised embeddings.

The head is written into the model's own linear classifier (one row per prototype, zero bias, one scale), so the
result is an ordinary bundle: predict, evaluate, calibrate, explain, export and serve need nothing new. On a
backbone whose pooled features are not normalised, ``argmax(W f)`` with unit-norm rows equals the nearest
prototype by cosine (``|f|`` is common to every class); the scale only sets how peaked the softmax is (run
``imgclf calibrate`` on held-out images to fit it). :func:`episodes` measures few-shot accuracy on a backbone
over many random ``ways``-way ``shots``-shot tasks (easyfsl's episode scheme, seeded).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imgclf import data as D
from imgclf.bundle import Bundle, BundleMeta, read_meta, save_bundle
from imgclf.engine import logits_and_features, run_inference
from imgclf.errors import ConfigError, DataError, ModelError
from imgclf.models import create_model

#: cosine similarity times this is the logit: softmax(10 * cos) is confident on a clear match, not saturated
DEFAULT_SCALE = 10.0


def prototypes(features: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """``(C, D)`` unit-norm prototypes: the normalised mean of each class's normalised ``(N, D)`` features.

    >>> prototypes(np.array([[2.0, 0], [0, 3.0], [0, 1.0]]), np.array([0, 1, 1]), 2).round(3).tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """
    f = torch.nn.functional.normalize(torch.as_tensor(features, dtype=torch.float32), dim=1)  # (N, D)
    y = torch.as_tensor(labels, dtype=torch.long)
    missing = sorted(set(range(num_classes)) - set(y.tolist()))
    if missing:
        raise DataError(f"classes {missing} have no readable support image; give at least one per class")
    sums = torch.zeros(num_classes, f.shape[1]).index_add_(0, y, f)  # (C, D)
    return torch.nn.functional.normalize(sums, dim=1).numpy()


def _support(source: str | Path) -> tuple[tuple[str, ...], D.SampleList]:
    """Every image of a support set in one list, none held out: a folder ``ROOT/<class>/...`` (one class is
    enough: the case of ``--extend``) or anything :func:`imgclf.data.load_source` reads."""
    root = Path(source)
    if root.is_dir() and not (root / "train").is_dir():
        found = {d.name: D.list_images(d) for d in sorted(root.iterdir()) if d.is_dir()}
        found = {c: files for c, files in found.items() if files}
        if not found:
            raise DataError(f"{root} has no class folders with images; lay support images out as ROOT/<class>/...")
        classes = tuple(found)
        paths = [str(p) for c in classes for p in found[c]]
        return classes, D.SampleList.from_paths(paths, [i for i, c in enumerate(classes) for _ in found[c]])
    splits = D.load_source(source, val_fraction=0.0, test_fraction=0.0)
    if splits.task != "single":
        raise DataError(f"{source}: few-shot support needs one class per image, not multi-label targets")
    return tuple(splits.classes), splits.train


def _features(bundle: Bundle, samples: Any, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    out = run_inference(bundle.model, samples, bundle.meta.preprocessing, batch_size=batch_size, features=True)
    if out.features is None or out.features.shape[0] == 0:
        raise DataError("none of the support images could be read")
    return out.features, out.labels


def _head(model: torch.nn.Module) -> torch.nn.Linear:
    head = model.get_classifier()
    if not isinstance(head, torch.nn.Linear):
        raise ModelError(f"{type(model).__name__}'s classifier is a {type(head).__name__}, not one linear layer; "
                         "prototype heads need a model whose classifier is a torch.nn.Linear")  # fmt: skip
    return head


def _backbone_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    head_ids = {id(p) for p in _head(model).parameters()}
    named = dict(model.named_parameters())
    skip = {k for k, p in named.items() if id(p) in head_ids}
    return {k: v for k, v in model.state_dict().items() if k not in skip}


def _feature_scale(model: torch.nn.Module, rows: torch.Tensor, x: torch.Tensor) -> float:
    """How much bigger the head's logit is than the cosine: the typical feature norm, or 1 for a model whose
    head normalises the features itself (the open_clip tower). Measured, so any model contract fits."""
    head = _head(model)
    with torch.no_grad():
        head.weight.copy_(rows)
        if head.bias is not None:
            head.bias.zero_()
        logits, feats = logits_and_features(model, x)  # (n, C), (n, D)
    cos = torch.nn.functional.normalize(feats, dim=1) @ rows.T  # (n, C)
    ok = cos.abs() > 1e-3
    if not ok.any():
        return 1.0
    return float((logits[ok] / cos[ok]).abs().median())


@dataclass(frozen=True)
class FewShotResult:
    """The written bundle, its classes, and how many support images each class had."""

    bundle: Bundle
    classes: tuple[str, ...]
    shots: dict[str, int]
    extended_from: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"bundle": str(self.bundle.path), "classes": list(self.classes), "shots": self.shots,
                "extended_from": self.extended_from}  # fmt: skip


def fewshot_bundle(bundle: Bundle, support: str | Path, out: str | Path, *, extend: Bundle | None = None,
                   scale: float = DEFAULT_SCALE, batch_size: int = 64) -> FewShotResult:  # fmt: skip
    """Write a bundle whose head is the prototypes of ``support``'s classes on ``bundle``'s backbone.

    With ``extend`` (a prototype bundle on the same backbone weights) its classes keep their head rows and the
    support classes are appended at the same scale, so adding a class from a few images changes old predictions
    only where the new class is now the nearest prototype.

    >>> # fewshot_bundle(load_bundle("runs/x/bundle"), "support/", "runs/fewshot").classes
    """
    if scale <= 0:
        raise ConfigError(f"scale={scale} must be positive")
    classes, samples = _support(support)
    feats, labels = _features(bundle, samples, batch_size)
    protos = torch.as_tensor(prototypes(feats, labels, len(classes)))  # (C, D)
    shots = {c: int((labels == i).sum()) for i, c in enumerate(classes)}
    meta = bundle.meta
    if extend is not None:
        rows, bias, classes = _extend_rows(bundle, extend, protos, classes)
    elif len(classes) < 2:
        raise DataError(f"{support} has one class ({classes[0]}); a classifier needs two or more, or add it to an "
                        "existing bundle with --extend BUNDLE")  # fmt: skip
    model = create_model(meta.architecture, len(classes), **meta.arch_args)
    model.load_state_dict(_backbone_state(bundle.model), strict=False)
    model.eval()
    if extend is None:
        x, _ = D.sample_tensors(samples, meta.preprocessing, limit=16)
        norm = _feature_scale(model, protos, x)  # measured on a few support images
        rows, bias = protos * (scale / norm), torch.zeros(len(classes))
    head = _head(model)
    with torch.no_grad():
        head.weight.copy_(rows)
        if head.bias is not None:
            head.bias.copy_(bias)
    record = {"kind": "prototype", "support": str(support), "shots": shots, "scale": scale,
              "backbone": str(bundle.path or ""), "extended_from": str(extend.path) if extend else None}  # fmt: skip
    new_meta = BundleMeta(architecture=meta.architecture, classes=classes, preprocessing=meta.preprocessing,
                          arch_args=dict(meta.arch_args), task={"kind": "single"}, training=dict(meta.training),
                          data={"kind": "support", "root": str(support), "shots": shots},
                          extra={"head": record})  # fmt: skip
    directory = save_bundle(out, model.eval(), new_meta)
    return FewShotResult(Bundle(model.eval(), read_meta(directory), directory), classes, shots,
                         str(extend.path) if extend else None)  # fmt: skip


def _extend_rows(backbone: Bundle, base: Bundle, rows: torch.Tensor, classes: tuple[str, ...]
                 ) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:  # fmt: skip
    """``base``'s head rows followed by the new ones, imprinted at the mean norm of ``base``'s rows."""
    if base.meta.architecture != backbone.meta.architecture:
        raise ModelError(f"--extend {base.path}: its architecture {base.meta.architecture} is not the backbone's "
                         f"({backbone.meta.architecture}); extend a bundle built on the same model")  # fmt: skip
    mine, theirs = _backbone_state(backbone.model), _backbone_state(base.model)
    if mine.keys() != theirs.keys() or any(not torch.equal(mine[k], theirs[k]) for k in mine):
        raise ModelError(f"--extend {base.path}: its backbone weights differ from MODEL's, so its head rows would not "
                         "fit; pass the bundle it was built from as MODEL")  # fmt: skip
    if (base.meta.extra.get("head") or {}).get("kind") != "prototype":
        raise ModelError(f"--extend {base.path}: it has a trained head, whose rows are not on the prototypes' cosine "
                         "scale (an imprinted row would win everywhere); build a prototype bundle for all classes "
                         "with `imgclf fewshot MODEL SUPPORT --out DIR`, then extend that")  # fmt: skip
    clash = sorted(set(classes) & set(base.meta.classes))
    if clash:
        raise DataError(f"--extend {base.path}: classes {clash} are already in it; give only new classes "
                        "in the support folder")  # fmt: skip
    head = _head(base.model)
    old_w = head.weight.detach().cpu()  # (K, D)
    old_b = head.bias.detach().cpu() if head.bias is not None else torch.zeros(old_w.shape[0])
    unit = torch.nn.functional.normalize(rows, dim=1)
    new_w = unit * old_w.norm(dim=1).mean()
    new_b = torch.full((rows.shape[0],), float(old_b.mean()))
    return torch.cat([old_w, new_w]), torch.cat([old_b, new_b]), tuple(base.meta.classes) + classes


@dataclass(frozen=True)
class EpisodeResult:
    """Mean query accuracy over ``episodes`` random tasks with its 95% confidence interval (normal, over
    episodes), and the per-episode accuracies."""

    ways: int
    shots: int
    queries: int
    episodes: int
    accuracy: float
    ci_low: float
    ci_high: float
    per_episode: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out.pop("per_episode")
        return out


def episode_indices(labels: np.ndarray, *, n_episodes: int, ways: int, per_class: int, seed: int = 0
                    ) -> np.ndarray:  # fmt: skip
    """``(n_episodes, ways, per_class)`` sample indices: each episode draws ``ways`` classes, then ``per_class``
    distinct images of each, uniformly and without replacement (easyfsl's TaskSampler scheme, seeded).

    easyfsl 1.5.0 (the newest) cannot be constructed on torch >= 2.14 (its Sampler passes ``data_source``),
    hence these few lines instead of the dependency.

    >>> episode_indices(np.array([0, 0, 1, 1, 2, 2]), n_episodes=1, ways=2, per_class=2).shape
    (1, 2, 2)
    """
    rng = np.random.default_rng(seed)
    by_class = {int(c): np.flatnonzero(labels == c) for c in np.unique(labels)}
    eligible = sorted(c for c, idx in by_class.items() if len(idx) >= per_class)
    out = np.empty((n_episodes, ways, per_class), np.int64)
    for e in range(n_episodes):
        for w, c in enumerate(rng.choice(eligible, size=ways, replace=False)):
            out[e, w] = rng.choice(by_class[int(c)], size=per_class, replace=False)
    return out


def episodes(bundle: Bundle, source: str | Path, *, n_episodes: int = 200, ways: int = 5, shots: int = 5,
             queries: int = 15, seed: int = 0, batch_size: int = 64) -> EpisodeResult:  # fmt: skip
    """Few-shot accuracy of ``bundle``'s backbone on ``source``'s classes: ``n_episodes`` tasks of ``ways``
    classes with ``shots`` support and ``queries`` query images each, nearest prototype by cosine.

    Every image is embedded once; :func:`episode_indices` draws the episodes (seeded).

    >>> # episodes(bundle, "mnist_5_to_9/", n_episodes=100, ways=5, shots=1).accuracy
    """
    for name, value, low in (("episodes", n_episodes, 1), ("ways", ways, 2), ("shots", shots, 1),
                             ("queries", queries, 1)):  # fmt: skip
        if value < low:
            raise ConfigError(f"--{name} {value} must be at least {low}")
    classes, samples = _support(source)
    counts = np.bincount(np.asarray(samples.labels), minlength=len(classes))
    if len(classes) < ways:
        raise DataError(f"{source} has {len(classes)} classes; --ways {ways} needs at least that many")
    if (counts >= shots + queries).sum() < ways:
        raise DataError(f"{source}: fewer than {ways} classes have {shots}+{queries} images (shots + queries); "
                        "lower --shots/--queries or add images")  # fmt: skip
    feats, labels = _features(bundle, samples, batch_size)
    f = torch.nn.functional.normalize(torch.as_tensor(feats), dim=1)  # (N, D)
    tasks = episode_indices(labels, n_episodes=n_episodes, ways=ways, per_class=shots + queries, seed=seed)
    truth = torch.arange(ways).repeat_interleave(queries)  # (W*Q,)
    accs = []
    for task in torch.as_tensor(tasks):  # (W, S+Q): support first, then queries, class by class
        sup, qry = f[task[:, :shots]], f[task[:, shots:]]  # (W, S, D), (W, Q, D)
        protos = torch.nn.functional.normalize(sup.mean(dim=1), dim=1)  # (W, D)
        pred = (qry.reshape(-1, f.shape[1]) @ protos.T).argmax(dim=1)  # (W*Q,)
        accs.append(float((pred == truth).float().mean()))
    a = np.asarray(accs)
    half = 1.96 * float(a.std(ddof=1)) / math.sqrt(len(a)) if len(a) > 1 else float("nan")
    return EpisodeResult(ways, shots, queries, len(a), float(a.mean()), float(a.mean() - half),
                         float(a.mean() + half), tuple(accs))  # fmt: skip
