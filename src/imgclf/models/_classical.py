"""Classical baselines: hand-made features (scikit-image) and a scikit-learn classifier, behind the model contract.

``hog-svm``, ``hog-rf``, ``hog-knn``, ``colorhist-rf`` and ``bovw-svm`` are :class:`ClassicalNet` modules: their
``forward_features`` computes the features of a batch ``(B, 3, H, W)`` -> ``(B, D)`` and ``forward_head`` applies
the fitted classifier (decision values or log-probabilities as logits). Nothing is learned by gradient descent:
:meth:`ClassicalNet.fit_head` grid-searches the classifier on the validation split. The fitted state travels in
the bundle's safetensors file as tensors -- the bag-of-words vocabulary as floats, the classifier serialised by
skops (never pickle) as bytes, loaded back with an explicit list of trusted scikit-learn types.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from imgclf.config import DataConfig
from imgclf.errors import BundleError, ModelError, NotFittedError

#: Inputs arrive in [0, 1] (mean 0, std 1): colour histograms need real pixel values.
CLASSICAL_CONFIG = DataConfig(input_size=32, resize_size=32, interpolation="bilinear", mean=(0.0, 0.0, 0.0),
                              std=(1.0, 1.0, 1.0))  # fmt: skip
TRUSTED_TYPES = (
    "sklearn.pipeline.Pipeline", "sklearn.preprocessing._data.StandardScaler", "sklearn.svm._classes.LinearSVC",
    "sklearn.svm._classes.SVC", "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.tree._classes.DecisionTreeClassifier", "sklearn.tree._tree.Tree",
    "sklearn.neighbors._classification.KNeighborsClassifier", "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neighbors._ball_tree.BallTree", "numpy.random.mtrand.RandomState", "numpy.random._mt19937.MT19937",
    "collections.OrderedDict", "builtins.slice",
)  # fmt: skip
BOVW_WORDS = 64
GRID_SAMPLES = 4000  # the grid is searched on at most this many training images; the best is refit on all
#: A kernel SVM costs O(n^2) in time and memory: above this many training images only the linear kernel is searched
#: (the dual LinearSVC fits MNIST's 54,000 HOG vectors in ~30 s on one core; an RBF SVC would take the better part
#: of an hour and answer slowly).
KERNEL_MAX_IMAGES = 20_000
#: The feature definitions' version, stored with the fitted classifier: a bundle fitted on other features is refused.
FEATURES_VERSION = 2


@dataclass(frozen=True)
class ClassicalSpec:
    """One classical baseline: which features, which classifier, the grid searched on validation."""

    name: str
    features: tuple[str, ...]
    classifier: str
    grid: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    description: str = ""
    scale: bool = True  # standardise features before the classifier (off where every group is already unit-norm)


SPECS: dict[str, ClassicalSpec] = {s.name: s for s in (
    ClassicalSpec("hog-svm", ("hog", "colorhist"), "svm", {"kernel": ("linear", "rbf"), "C": (1.0, 10.0)},
                  "HOG + colour histogram, SVM (linear or RBF kernel and C chosen on val)", scale=False),
    ClassicalSpec("hog-rf", ("hog",), "rf", {"max_depth": (10, 20, None)},
                  "HOG, random forest (300 trees; depth chosen on val)"),
    ClassicalSpec("hog-knn", ("hog",), "knn", {"n_neighbors": (1, 5, 15)},
                  "HOG, k nearest neighbours (k chosen on val)"),
    ClassicalSpec("colorhist-rf", ("colorhist",), "rf", {"max_depth": (10, 20, None)},
                  "HSV colour histogram, random forest (depth chosen on val)"),
    ClassicalSpec("bovw-svm", ("bovw",), "svm", {"kernel": ("rbf",), "C": (1.0, 10.0)},
                  f"bag of visual words: dense DAISY descriptors, {BOVW_WORDS}-word k-means vocabulary, RBF SVM"),
)}  # fmt: skip


def classical_names() -> list[str]:
    return list(SPECS)


def is_classical(name: str) -> bool:
    """Whether ``name`` is a classical baseline (trained by a grid search, not the training loop)."""
    return name in SPECS


# -- features ------------------------------------------------------------------------------------------------
def _gray(img: np.ndarray) -> np.ndarray:
    return img @ np.array([0.299, 0.587, 0.114])  # (H, W, 3) -> (H, W)


def _cell(size: int) -> int:
    return max(4, size // 8)  # 4 px cells at 32 px: 8 x 8 cells


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / max(float(np.linalg.norm(v)), 1e-6)).astype(np.float32)


def hog_features(img: np.ndarray) -> np.ndarray:
    """HOG of the grey image ``(H, W, 3)`` in [0, 1]: 9 orientations, cells of 1/8 side, 2 x 2 blocks (L2), the
    whole vector scaled to unit length.

    Each group of features is unit-length, so HOG and the colour histogram beside it weigh the same without a
    fitted scaler: standardising HOG (the former default) blew up the cells that are nearly always empty (the
    border of a digit) into unit-variance noise, and scored 97.1% on MNIST against 97.8% unscaled (10k images).
    L2 rather than L2-Hys block norms: the clipping flattens the few strong strokes of a small image (98.5% vs 98.3%
    on MNIST with 54k images)."""
    from skimage.feature import hog

    c = _cell(min(img.shape[:2]))
    return _unit(hog(_gray(img), orientations=9, pixels_per_cell=(c, c), cells_per_block=(2, 2), block_norm="L2",
                     feature_vector=True))  # fmt: skip


def colorhist_features(img: np.ndarray, bins: int = 16) -> np.ndarray:
    """HSV histograms (hue, saturation, value; ``bins`` each) of ``(H, W, 3)`` in [0, 1], as square roots of the
    frequencies (the Hellinger embedding: dot products compare distributions), scaled to unit length."""
    from skimage.color import rgb2hsv

    hsv = rgb2hsv(np.clip(img, 0, 1)).reshape(-1, 3)
    n = hsv.shape[0]
    return _unit(np.sqrt(np.concatenate([np.histogram(hsv[:, k], bins=bins, range=(0, 1))[0] / n for k in range(3)])))


def dense_descriptors(img: np.ndarray) -> np.ndarray:
    """Dense DAISY descriptors ``(n, d)`` of the grey image (a SIFT-like histogram of gradients every 4 px)."""
    from skimage.feature import daisy

    gray = _gray(img)
    radius = max(3, min(gray.shape) // 8)
    desc = daisy(gray, step=4, radius=radius, rings=2, histograms=6, orientations=8)  # (h, w, d)
    return desc.reshape(-1, desc.shape[-1]).astype(np.float32)


def bovw_histogram(desc: np.ndarray, vocab: np.ndarray) -> np.ndarray:
    """Normalised histogram of nearest vocabulary words of descriptors ``(n, d)``; ``vocab`` ``(K, d)``."""
    d2 = (desc**2).sum(1)[:, None] - 2 * desc @ vocab.T + (vocab**2).sum(1)[None]  # (n, K)
    words = d2.argmin(1)
    return (np.bincount(words, minlength=len(vocab)) / max(1, len(words))).astype(np.float32)


_EXTRACTORS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"hog": hog_features, "colorhist": colorhist_features}


def _make_classifier(kind: str, params: dict[str, Any], seed: int, scale: bool = True) -> Any:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC, LinearSVC

    if kind == "svm":
        if params["kernel"] == "linear":
            # dual=True: with more images than features sklearn's "auto" picks the primal solver, which on
            # standardised HOG features (MNIST, 1,500 x 1,812) ran > 10 min where the dual one takes ~5 s
            clf = LinearSVC(C=params["C"], dual=True, max_iter=5000, random_state=seed)
        else:
            clf = SVC(kernel="rbf", C=params["C"], gamma="scale", decision_function_shape="ovr", random_state=seed)
        return Pipeline([*([("scale", StandardScaler())] if scale else []), ("clf", clf)])
    if kind == "rf":
        return RandomForestClassifier(n_estimators=300, max_depth=params["max_depth"], n_jobs=-1, random_state=seed)
    if kind == "knn":
        return Pipeline([("scale", StandardScaler()), ("clf", KNeighborsClassifier(n_neighbors=params["n_neighbors"]))])
    raise ModelError(f"unknown classical classifier {kind!r}")


def _logits(estimator: Any, feats: np.ndarray, num_classes: int) -> np.ndarray:
    """Logits ``(N, C)``: SVM decision values, else log-probabilities (classes the fit never saw get -30)."""
    if hasattr(estimator, "decision_function") and not hasattr(estimator, "predict_proba"):
        z = estimator.decision_function(feats)
        z = np.stack([-z, z], 1) if z.ndim == 1 else z
        seen = estimator.classes_
    else:
        z = np.log(np.clip(estimator.predict_proba(feats), 1e-4, 1.0))  # a floor: kNN and forests say 0 often
        seen = estimator.classes_
    out = np.full((feats.shape[0], num_classes), -30.0, np.float32)
    out[:, np.asarray(seen, dtype=np.int64)] = z
    return out


class ClassicalNet(nn.Module):
    """A classical pipeline (features -> scikit-learn classifier) with the model contract's methods.

    >>> net = ClassicalNet("hog-knn", 3)
    >>> net.forward_features(torch.rand(2, 3, 32, 32)).shape[0]
    2
    """

    onnx_exportable = False
    descriptors = staticmethod(dense_descriptors)  # the bag-of-words' dense descriptors of one image

    def __init__(self, name: str, num_classes: int) -> None:
        super().__init__()
        if name not in SPECS:
            raise ModelError(f"unknown classical model {name!r}; one of {', '.join(SPECS)}")
        self.spec = SPECS[name]
        self.num_classes = num_classes
        self.drop_rate = 0.0
        self.device_anchor = nn.Parameter(torch.zeros(0), requires_grad=False)  # the inference pass reads the device
        self.register_buffer("head_blob", torch.zeros(0, dtype=torch.uint8))  # skops bytes of the classifier
        self.register_buffer("vocab", torch.zeros(0, 0))  # (K, d) bag-of-words vocabulary
        self.register_buffer("features_version", torch.tensor(FEATURES_VERSION))
        self._estimator: Any = None
        self.num_features = int(self._extract(np.zeros((1, 32, 32, 3), np.float32)).shape[1]) if (
            "bovw" not in self.spec.features) else BOVW_WORDS  # fmt: skip

    # -- state -----------------------------------------------------------------------------------------------
    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: Any, **kwargs: Any) -> None:
        version = int(state_dict.get(prefix + "features_version", 1))  # bundles before the buffer: version 1
        fitted = state_dict.get(prefix + "head_blob")
        if fitted is not None and fitted.numel() and version != FEATURES_VERSION:
            raise BundleError(f"this {self.spec.name} bundle was fitted on features version {version}, and this imgclf "
                              f"computes version {FEATURES_VERSION}; re-train it with `imgclf train DATA --model "
                              f"{self.spec.name}`")  # fmt: skip
        state_dict.setdefault(prefix + "features_version", torch.tensor(FEATURES_VERSION))
        for name in ("head_blob", "vocab"):  # fitted sizes vary: take the saved shapes
            saved = state_dict.get(prefix + name)
            if saved is not None:
                setattr(self, name, torch.empty_like(saved))
        self._estimator = None
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def estimator(self) -> Any:
        """The fitted scikit-learn classifier, loaded from the skops bytes: every type inside must be one skops
        trusts or one imgclf writes (:data:`TRUSTED_TYPES`), and the classifier itself one imgclf writes."""
        if self._estimator is None:
            if self.head_blob.numel() == 0:
                raise NotFittedError(f"{self.spec.name} has no fitted classifier: train it with "
                                     f"`imgclf train DATA --model {self.spec.name}`")  # fmt: skip
            from skops.io import get_untrusted_types, loads

            raw = bytes(self.head_blob.cpu().numpy().tobytes())
            untrusted = [t for t in get_untrusted_types(data=raw) if t not in TRUSTED_TYPES]
            if untrusted:
                raise BundleError(f"the {self.spec.name} classifier in this bundle holds types imgclf does not trust "
                                  f"({', '.join(untrusted)}); re-train it with this imgclf")  # fmt: skip
            est = loads(raw, trusted=list(TRUSTED_TYPES))
            kind = f"{type(est).__module__}.{type(est).__qualname__}"
            if kind not in TRUSTED_TYPES:
                raise BundleError(f"the {self.spec.name} classifier in this bundle is a {kind}, which imgclf does not "
                                  "write or trust; re-train it with this imgclf")  # fmt: skip
            self._estimator = est
        return self._estimator

    # -- the contract ----------------------------------------------------------------------------------------
    def _extract(self, imgs: np.ndarray) -> np.ndarray:
        rows = []
        for img in imgs:  # (H, W, 3) in [0, 1]
            parts = []
            for kind in self.spec.features:
                if kind == "bovw":
                    if self.vocab.numel() == 0:
                        parts.append(np.zeros(BOVW_WORDS, np.float32))
                    else:
                        parts.append(bovw_histogram(dense_descriptors(img), self.vocab.cpu().numpy()))
                else:
                    parts.append(_EXTRACTORS[kind](img))
            rows.append(np.concatenate(parts))
        return np.stack(rows)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        imgs = x.detach().float().permute(0, 2, 3, 1).cpu().numpy().astype(np.float64)  # (B, H, W, 3)
        return torch.from_numpy(self._extract(imgs)).to(x.device)  # (B, D)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if pre_logits:
            return x
        if self.head_blob.numel() == 0:  # unfitted: uniform answers (the contract test builds it unfitted)
            return torch.zeros(x.shape[0], self.num_classes, device=x.device)
        z = _logits(self.estimator(), x.detach().cpu().numpy(), self.num_classes)
        return torch.from_numpy(z).to(x.device)  # (B, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return nn.Identity()

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.head_blob = torch.zeros(0, dtype=torch.uint8)
        self._estimator = None

    # -- fitting ---------------------------------------------------------------------------------------------
    def fit_vocabulary(self, descriptor_sets: list[np.ndarray], seed: int = 0) -> None:
        """k-means vocabulary of :data:`BOVW_WORDS` words from training images' dense descriptors."""
        from sklearn.cluster import MiniBatchKMeans

        desc = np.concatenate(descriptor_sets)
        rng = np.random.default_rng(seed)
        if len(desc) > 100_000:
            desc = desc[rng.choice(len(desc), 100_000, replace=False)]
        km = MiniBatchKMeans(n_clusters=BOVW_WORDS, random_state=seed, n_init=3, batch_size=4096).fit(desc)
        self.vocab = torch.from_numpy(km.cluster_centers_.astype(np.float32))

    def fit_head(self, train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray] | None,
                 seed: int = 0, log: Callable[[str], None] = print) -> dict[str, Any]:  # fmt: skip
        """Grid-search the classifier on ``val`` (features, labels), fitting each setting on ``train`` (a stratified
        subsample of :data:`GRID_SAMPLES` images when larger), then fit the best on all of ``train``.
        Returns ``{"params", "val_acc", "grid": [...]}``."""
        from skops.io import dumps

        keys = list(self.spec.grid)
        settings = [dict(zip(keys, v)) for v in itertools.product(*(self.spec.grid[k] for k in keys))] or [{}]
        x, y = train
        if len(y) > KERNEL_MAX_IMAGES and any(s.get("kernel", "linear") != "linear" for s in settings):
            settings = [s for s in settings if s.get("kernel", "linear") == "linear"] or settings
            log(f"{self.spec.name}: {len(y)} training images, over {KERNEL_MAX_IMAGES:,} for a kernel SVM (its cost "
                "grows with the square of the images): searching the linear kernel only")
        if len(y) > GRID_SAMPLES and val is not None and len(settings) > 1:  # search on a stratified subsample
            from sklearn.model_selection import train_test_split

            xs, _, ys, _ = train_test_split(x, y, train_size=GRID_SAMPLES, stratify=y, random_state=seed)
        else:
            xs, ys = x, y
        best, best_acc, tried = None, -1.0, []
        for params in settings:
            est = _make_classifier(self.spec.classifier, params, seed, self.spec.scale).fit(xs, ys)
            acc = float((est.predict(val[0]) == val[1]).mean()) if val is not None else float("nan")
            tried.append({"params": params, "val_acc": acc, "fit_images": int(len(ys))})
            log(f"{self.spec.name} {params}: val acc {acc:.4f} (fit on {len(ys)} images)")
            if best is None or acc > best_acc:
                best, best_acc = (params, est), acc
            if val is None:
                break
        if len(ys) == len(y):
            est = best[1]
        else:
            est = _make_classifier(self.spec.classifier, best[0], seed, self.spec.scale).fit(x, y)
        self.head_blob = torch.frombuffer(bytearray(dumps(est)), dtype=torch.uint8).clone()
        self._estimator = None
        return {"params": best[0], "val_acc": best_acc, "grid": tried}


def build_classical(name: str, num_classes: int) -> ClassicalNet:
    net = ClassicalNet(name, num_classes)
    net.imgclf_data_config = CLASSICAL_CONFIG
    return net
