"""Few-shot prototype heads: a class is the normalised mean of its few images' normalised embeddings.

With ``center=True`` embeddings are first centred on the support set's mean (the "CL2N" few-shot trick: a
backbone puts every image in one cone of feature space, and the cosine between raw embeddings partly measures that
shared direction). It is off by default because it did not help where measured: on the MNIST digits-0-4 ``conv4``
backbone it cost 1-2 points on digits 5-9 (docs/tutorials/fewer-labels.md); compare both with ``episodes``.

With ``base=`` labelled images of *other* classes (the backbone's own training set is the natural choice),
embeddings are centred on their mean and whitened by their within-class covariance (their total covariance for a
folder of unlabelled images), shrunk halfway towards a multiple of the identity (:func:`whitening`): a backbone
spreads each class along a few directions it learned for its training classes, and the cosine between raw embeddings
weighs those directions as much as the ones that tell new classes apart. On an MNIST digits-0-4 ``conv4`` backbone
this raised 5-way 5-shot accuracy on digits 5-9 from 89.2% to 91.7% and 1-shot from 74.2% to 76.6% (trained on every
training image of 0-4; 85.3 -> 89.6% and 69.7 -> 74.3% on 1,000 per class; shrinkage chosen on training images of
5-9, measured on test images).

The head is written into the model's own linear classifier (one row per prototype, one scale, and the bias
``-row . mean``), so the result is an ordinary bundle: predict, evaluate, calibrate, explain, export and serve need
nothing new. ``argmax(W f + b) = argmax(p_c . A (f - mean))`` is exactly the nearest prototype by cosine to the
centred (and, with ``base``, whitened by the symmetric ``A``) embedding: ``|A (f - mean)|`` is common to every
class, so the row is ``A p_c`` and the bias ``-A p_c . mean``; the scale only sets how peaked the softmax is (run
``imgclf calibrate`` on held-out images to fit it). The mean and ``A`` are saved beside the weights
(``prototypes.safetensors``) so ``--extend`` maps new classes the same way. :func:`episodes` measures few-shot
accuracy on a backbone over many random ``ways``-way ``shots``-shot tasks (easyfsl's episode scheme, seeded),
mapped the same way.
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
from imgclf.bundle import Bundle, BundleMeta, load_arrays, read_meta, save_arrays, save_bundle
from imgclf.engine import logits_and_features, run_inference
from imgclf.errors import ConfigError, DataError, ModelError
from imgclf.models import create_model

#: cosine similarity times this is the logit: softmax(10 * cos) is confident on a clear match, not saturated
DEFAULT_SCALE = 10.0
#: --extend: a new class's bias is lowered by this fraction of its support images' smallest lead over old classes
DEFAULT_GUARD = 0.5
#: the centre of the embeddings (and the whitening matrix, with ``base``) is stored in this file of a prototype bundle
CENTER_FILE = "prototypes.safetensors"
#: ``base``: the within-class covariance is shrunk this far towards a multiple of the identity before whitening
#: (on MNIST digits 5-9 with a digits-0-4 backbone, 0.4-0.6 were best on training images: 91.2% 5-shot, 0.1: 90.3%,
#: 0.8: 90.1%, none: 86.6%)
DEFAULT_SHRINKAGE = 0.5
#: ``base``: at most this many of its images (evenly spread over the list) estimate the mean and covariance
BASE_IMAGES = 5000


def prototypes(features: np.ndarray, labels: np.ndarray, num_classes: int, center: np.ndarray | None = None
               ) -> np.ndarray:  # fmt: skip
    """``(C, D)`` unit-norm prototypes: the normalised mean of each class's normalised ``(N, D)`` features, after
    subtracting ``center`` ``(D,)`` from every feature when given.

    >>> prototypes(np.array([[2.0, 0], [0, 3.0], [0, 1.0]]), np.array([0, 1, 1]), 2).round(3).tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    >>> prototypes(np.array([[2.0, 1], [0, 1.0]]), np.array([0, 1]), 2, center=np.array([1.0, 1])).tolist()
    [[1.0, 0.0], [-1.0, 0.0]]
    """
    f = torch.as_tensor(features, dtype=torch.float32)  # (N, D)
    if center is not None:
        f = f - torch.as_tensor(center, dtype=torch.float32)
    f = torch.nn.functional.normalize(f, dim=1)
    y = torch.as_tensor(labels, dtype=torch.long)
    missing = sorted(set(range(num_classes)) - set(y.tolist()))
    if missing:
        raise DataError(f"classes {missing} have no readable support image; give at least one per class")
    sums = torch.zeros(num_classes, f.shape[1]).index_add_(0, y, f)  # (C, D)
    return torch.nn.functional.normalize(sums, dim=1).numpy()


def whitening(features: np.ndarray, labels: np.ndarray, shrinkage: float = DEFAULT_SHRINKAGE
              ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """``(mean (D,), A (D, D))`` such that ``(f - mean) @ A`` whitens the within-class spread of ``(N, D)``
    ``features`` of classes ``labels``: ``A = C^(-1/2)`` (symmetric) for their pooled within-class covariance ``C``
    shrunk towards ``trace(C)/D`` times the identity by ``shrinkage`` (0: none; 1: a scaled identity, centring only).
    Unlabelled features (one label for all) are whitened by their total covariance.

    >>> mu, a = whitening(np.array([[0.0, 0], [2, 0], [0, 5], [2, 5]]), np.array([0, 0, 1, 1]))
    >>> (mu.tolist(), [round(v, 3) for v in a.diagonal().tolist()])  # classes spread along the first axis: it is shrunk
    ([1.0, 2.5], [0.816, 1.414])
    """
    _check_shrinkage(shrinkage)
    f = torch.as_tensor(features, dtype=torch.float64)  # (N, D)
    y = torch.as_tensor(labels, dtype=torch.long)
    classes = y.unique()
    if len(f) <= len(classes):
        raise DataError(f"whitening needs more images than classes; got {len(f)} images of {len(classes)} "
                        "classes")  # fmt: skip
    means = torch.zeros(int(y.max()) + 1, f.shape[1], dtype=torch.float64).index_add_(0, y, f)
    means /= torch.bincount(y, minlength=means.shape[0]).clamp_min(1)[:, None].to(torch.float64)
    r = f - means[y]  # (N, D): each image minus its class mean
    cov = r.T @ r / (len(f) - len(classes))  # (D, D)
    level = float(cov.trace()) / f.shape[1] or 1.0
    cov = (1 - shrinkage) * cov + shrinkage * level * torch.eye(f.shape[1], dtype=torch.float64)
    vals, vecs = torch.linalg.eigh(cov)
    a = vecs @ torch.diag(vals.clamp_min(1e-12 * level).rsqrt()) @ vecs.T
    return f.mean(dim=0).float(), a.float()


def _check_shrinkage(shrinkage: float) -> None:
    if not 0.0 <= shrinkage <= 1.0:
        raise ConfigError(f"shrinkage={shrinkage} must be between 0 (none) and 1 (centring only)")


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
    """Every tensor but the classifier's (all of them for a headless embedding bundle, e.g. `imgclf pretrain`'s)."""
    head_ids = {id(p) for p in model.get_classifier().parameters()}
    named = dict(model.named_parameters())
    skip = {k for k, p in named.items() if id(p) in head_ids}
    return {k: v for k, v in model.state_dict().items() if k not in skip}


def _head_input(model: torch.nn.Module, x: torch.Tensor) -> tuple[bool, torch.Tensor]:
    """Whether the head sees the pooled features as they are (``W f + b``) or normalised (``W f/|f| + b``, the
    open_clip tower), and the features of ``x``. Measured, so any model contract fits; anything else is refused."""
    head = _head(model)
    probe = torch.nn.functional.normalize(torch.randn(head.out_features, head.in_features,
                                                      generator=torch.Generator().manual_seed(0)), dim=1)  # fmt: skip
    with torch.no_grad():
        head.weight.copy_(probe)
        if head.bias is not None:
            head.bias.zero_()
        logits, feats = logits_and_features(model, x)  # (n, C), (n, D)
    for unit in (False, True):
        g = torch.nn.functional.normalize(feats, dim=1) if unit else feats
        if torch.allclose(logits, g @ probe.T, rtol=1e-3, atol=1e-4 * float(g.abs().max()) + 1e-6):
            return unit, feats
    raise ModelError(f"{type(model).__name__}'s head is not a linear map of its pooled features (nor of their "
                     "normalised form), so prototype rows cannot be written into it; use a model whose "
                     "forward_head is one torch.nn.Linear")  # fmt: skip


def _fresh_model(bundle: Bundle, num_classes: int) -> torch.nn.Module:
    """``bundle``'s architecture with its backbone weights and a new ``num_classes``-way head, in eval mode."""
    model = create_model(bundle.meta.architecture, num_classes, **bundle.meta.arch_args)
    model.load_state_dict(_backbone_state(bundle.model), strict=False)
    return model.eval()


def _frame(bundle: Bundle) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The centre and whitening matrix a prototype bundle's embeddings were mapped with (None where not)."""
    record = bundle.meta.extra.get("head") or {}
    arrays = load_arrays(bundle.path, record.get("center")) if record.get("center") and bundle.path else {}
    return arrays.get("center"), arrays.get("whiten")


def _base_frame(bundle: Bundle, base: str | Path, shrinkage: float, unit: bool, batch_size: int
                ) -> tuple[torch.Tensor, torch.Tensor, int]:  # fmt: skip
    """:func:`whitening` of ``bundle``'s embeddings of ``base``'s images (at most :data:`BASE_IMAGES`, evenly
    spread; normalised first when the head sees unit features), and how many were read. A folder that is not a
    class tree is taken as unlabelled images (an `imgclf pretrain` backbone's data): their total covariance."""
    try:
        _, samples = _support(base)
    except DataError:
        if not Path(base).is_dir():
            raise
        paths = [str(p) for p in D.list_images(Path(base))]
        if len(paths) < 2:
            raise DataError(f"--base {base} holds {len(paths)} images; give the backbone's training images (class "
                            "folders, a CSV or loose files)") from None  # fmt: skip
        samples = D.SampleList.from_paths(paths, [0] * len(paths))
    if len(samples) > BASE_IMAGES:
        samples = samples.subset(np.linspace(0, len(samples) - 1, BASE_IMAGES).round().astype(int).tolist())
    feats, labels = _features(bundle, samples, batch_size)
    g = torch.nn.functional.normalize(torch.as_tensor(feats), dim=1).numpy() if unit else feats
    try:
        mu, a = whitening(g, labels, shrinkage)
    except DataError as e:
        raise DataError(f"--base {base}: {e}; give more of the backbone's training images") from None
    return mu, a, len(labels)


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
                   scale: float = DEFAULT_SCALE, center: bool = False, guard: float = DEFAULT_GUARD,
                   base: str | Path | None = None, shrinkage: float = DEFAULT_SHRINKAGE,
                   batch_size: int = 64) -> FewShotResult:  # fmt: skip
    """Write a bundle whose head is the prototypes of ``support``'s classes on ``bundle``'s backbone.

    ``center`` subtracts the support images' mean embedding before normalising; ``base`` (labelled images of other
    classes) centres on their mean and whitens by their within-class covariance, shrunk by ``shrinkage`` (module
    docstring). With ``extend`` (a prototype bundle on the same backbone weights) its classes keep their head
    rows, and the support classes are appended, mapped as ``extend``'s were and at the same scale. A new
    prototype from a few images would otherwise take images of the old classes wherever it is the nearest
    (measured on MNIST: -2.5 points on the old digits), so each new class's bias is lowered by ``guard`` times
    the smallest lead its own support images have over the best old class: it claims only images about as
    clearly its own as its least clear support image (``guard=0``: plain nearest prototype; below 1 every
    support image still gets its class).

    >>> # fewshot_bundle(load_bundle("runs/x/bundle"), "support/", "runs/fewshot").classes
    """
    if scale <= 0:
        raise ConfigError(f"scale={scale} must be positive")
    if guard < 0:
        raise ConfigError(f"guard={guard} must be >= 0 (0: plain nearest prototype)")
    if base is not None and (center or extend is not None):
        raise ConfigError("--base sets the centre itself, and --extend reuses the extended bundle's: give --base "
                          "without --center or --extend")  # fmt: skip
    _check_shrinkage(shrinkage)
    classes, samples = _support(support)
    feats, labels = _features(bundle, samples, batch_size)
    shots = {c: int((labels == i).sum()) for i, c in enumerate(classes)}
    meta = bundle.meta
    if extend is None and len(classes) < 2:
        raise DataError(f"{support} has one class ({classes[0]}); a classifier needs two or more, or add it to an "
                        "existing bundle with --extend BUNDLE")  # fmt: skip
    total = len(classes) + (len(extend.meta.classes) if extend is not None else 0)
    model = _fresh_model(bundle, total)
    x, _ = D.sample_tensors(samples, meta.preprocessing, limit=16)
    unit, _ = _head_input(model, x)
    g = torch.as_tensor(feats, dtype=torch.float32)  # (N, D): what the head sees
    g = torch.nn.functional.normalize(g, dim=1) if unit else g
    whiten: torch.Tensor | None = None  # (D, D), symmetric
    whitened: dict[str, Any] | None = None
    if extend is not None:
        mu, whiten = _frame(extend)
    elif base is not None:
        mu, whiten, n_base = _base_frame(bundle, base, shrinkage, unit, batch_size)
        whitened = {"base": str(base), "images": n_base, "shrinkage": shrinkage}
    else:
        mu = g.mean(dim=0) if center else None
    mu = torch.zeros(g.shape[1]) if mu is None else mu.float()  # (D,)
    z = g - mu if whiten is None else (g - mu) @ whiten  # (N, D): where prototypes and cosines are taken
    protos = torch.as_tensor(prototypes(z.numpy(), labels, len(classes)))  # (C, D)
    if extend is not None:
        rows, bias, classes = _extend_rows(bundle, extend, protos, mu, whiten, classes)
        bias = _guard(rows, bias, g, torch.as_tensor(labels), len(extend.meta.classes), guard)
    else:
        typical = float(z.norm(dim=1).median()) or 1.0  # so that the logit is about scale x cosine
        rows = protos * (scale / typical)
        rows = rows if whiten is None else rows @ whiten  # (A p_c)^T = p_c^T A: A is symmetric
        bias = -(rows @ mu)
    head = _head(model)
    with torch.no_grad():
        head.weight.copy_(rows)
        if head.bias is not None:
            head.bias.copy_(bias)
        elif bias.abs().max() > 0:
            raise ModelError(f"{type(model).__name__}'s head has no bias, so centred or guarded prototypes cannot "
                             "be written into it; use --no-center (and --guard 0 with --extend)")  # fmt: skip
    record = {"kind": "prototype", "support": str(support), "shots": shots, "scale": scale,
              "backbone": str(bundle.path or ""), "extended_from": str(extend.path) if extend else None,
              "center": None, "guard": guard if extend is not None else None,
              "whitened": (extend.meta.extra.get("head") or {}).get("whitened") if extend else whitened}  # fmt: skip
    arrays = {"center": mu} if bool(mu.any()) or whiten is not None else {}
    if whiten is not None:
        arrays["whiten"] = whiten
    if arrays:
        Path(out).mkdir(parents=True, exist_ok=True)
        record["center"] = save_arrays(out, CENTER_FILE, arrays)
    new_meta = BundleMeta(architecture=meta.architecture, classes=classes, preprocessing=meta.preprocessing,
                          arch_args=dict(meta.arch_args), task={"kind": "single"}, training=dict(meta.training),
                          data={"kind": "support", "root": str(support), "shots": shots},
                          extra={"head": record})  # fmt: skip
    directory = save_bundle(out, model.eval(), new_meta)
    return FewShotResult(Bundle(model.eval(), read_meta(directory), directory), classes, shots,
                         str(extend.path) if extend else None)  # fmt: skip


def _extend_rows(backbone: Bundle, base: Bundle, protos: torch.Tensor, mu: torch.Tensor, whiten: torch.Tensor | None,
                 classes: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:  # fmt: skip
    """``base``'s head rows followed by the new classes' (unit prototypes ``protos`` of embeddings mapped with
    ``base``'s centre ``mu`` and whitening ``whiten``), imprinted at the scale of ``base``'s rows, with the bias
    ``-row . mu`` the base rows have."""
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
    old_w = head.weight.detach().cpu()  # (K, D): scale x prototype, times A when whitened
    old_b = head.bias.detach().cpu() if head.bias is not None else torch.zeros(old_w.shape[0])
    unmapped = old_w if whiten is None else torch.linalg.solve(whiten, old_w.T).T  # (K, D): scale x prototype
    new_w = torch.nn.functional.normalize(protos, dim=1) * unmapped.norm(dim=1).mean()
    new_w = new_w if whiten is None else new_w @ whiten
    new_b = -(new_w @ mu)
    return torch.cat([old_w, new_w]), torch.cat([old_b, new_b]), tuple(base.meta.classes) + classes


def _guard(rows: torch.Tensor, bias: torch.Tensor, g: torch.Tensor, labels: torch.Tensor, n_old: int,
           guard: float) -> torch.Tensor:  # fmt: skip
    """``bias`` with each new class's entry (those after the first ``n_old``) lowered by ``guard`` times the
    smallest lead of its support images ``g`` (head inputs, ``labels`` counted from 0 among the new classes) over
    the best old class, in logits."""
    logits = g @ rows.T + bias  # (N, K + C)
    lead = logits[:, n_old:].gather(1, labels[:, None])[:, 0] - logits[:, :n_old].max(dim=1).values  # (N,)
    out = bias.clone()
    for c in range(rows.shape[0] - n_old):
        out[n_old + c] -= guard * float(lead[labels == c].min().clamp_min(0))
    return out


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
             queries: int = 15, seed: int = 0, center: bool = False, base: str | Path | None = None,
             shrinkage: float = DEFAULT_SHRINKAGE, batch_size: int = 64) -> EpisodeResult:  # fmt: skip
    """Few-shot accuracy of ``bundle``'s backbone on ``source``'s classes: ``n_episodes`` tasks of ``ways``
    classes with ``shots`` support and ``queries`` query images each, nearest prototype by cosine (to embeddings
    centred on each episode's support mean with ``center``, or centred and whitened by ``base``'s images of other
    classes; normalised first where the head normalises its input, e.g. an open_clip tower: as
    :func:`fewshot_bundle` maps them).

    Every image is embedded once; :func:`episode_indices` draws the episodes (seeded).

    >>> # episodes(bundle, "mnist_5_to_9/", n_episodes=100, ways=5, shots=1).accuracy
    """
    for name, value, low in (("episodes", n_episodes, 1), ("ways", ways, 2), ("shots", shots, 1),
                             ("queries", queries, 1)):  # fmt: skip
        if value < low:
            raise ConfigError(f"--{name} {value} must be at least {low}")
    if base is not None and center:
        raise ConfigError("--base sets the centre itself: give --base or --center, not both")
    _check_shrinkage(shrinkage)
    classes, samples = _support(source)
    counts = np.bincount(np.asarray(samples.labels), minlength=len(classes))
    if len(classes) < ways:
        raise DataError(f"{source} has {len(classes)} classes; --ways {ways} needs at least that many")
    if (counts >= shots + queries).sum() < ways:
        raise DataError(f"{source}: fewer than {ways} classes have {shots}+{queries} images (shots + queries); "
                        "lower --shots/--queries or add images")  # fmt: skip
    feats, labels = _features(bundle, samples, batch_size)
    f = torch.as_tensor(feats, dtype=torch.float32)  # (N, D)
    if base is not None or center:  # centred where the head looks: on unit features for a head that normalises
        x, _ = D.sample_tensors(samples, bundle.meta.preprocessing, limit=16)
        unit, _ = _head_input(_fresh_model(bundle, ways), x)
        f = torch.nn.functional.normalize(f, dim=1) if unit else f
        if base is not None:
            mu, whiten, _ = _base_frame(bundle, base, shrinkage, unit, batch_size)
            f = (f - mu) @ whiten
    tasks = episode_indices(labels, n_episodes=n_episodes, ways=ways, per_class=shots + queries, seed=seed)
    truth = torch.arange(ways).repeat_interleave(queries)  # (W*Q,)
    accs = []
    for task in torch.as_tensor(tasks):  # (W, S+Q): support first, then queries, class by class
        sup, qry = f[task[:, :shots]], f[task[:, shots:]].reshape(-1, f.shape[1])  # (W, S, D), (W*Q, D)
        if center:
            mu = sup.reshape(-1, f.shape[1]).mean(dim=0)  # (D,): the support mean, as a bundle is built
            sup, qry = sup - mu, qry - mu
        sup, qry = torch.nn.functional.normalize(sup, dim=2), torch.nn.functional.normalize(qry, dim=1)
        protos = torch.nn.functional.normalize(sup.mean(dim=1), dim=1)  # (W, D)
        pred = (qry @ protos.T).argmax(dim=1)  # (W*Q,)
        accs.append(float((pred == truth).float().mean()))
    a = np.asarray(accs)
    half = 1.96 * float(a.std(ddof=1)) / math.sqrt(len(a)) if len(a) > 1 else float("nan")
    return EpisodeResult(ways, shots, queries, len(a), float(a.mean()), float(a.mean() - half),
                         float(a.mean() + half), tuple(accs))  # fmt: skip
