from __future__ import annotations

import dataclasses
import json
import platform
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from imgclf.bundle._arrays import REJECTION_FILE, load_arrays, save_arrays
from imgclf.config import DataConfig, from_dict, to_dict
from imgclf.errors import BundleError, ImgclfError
from imgclf.models import batchnorm_to_groupnorm, create_model, resize_to_state_dict
from imgclf.tasks import Task, task_from_dict
from imgclf.utils import atomic_write_bytes, atomic_write_text, sha256_bytes

SCHEMA_VERSION = 2  # 2: the task (kind of label, its decision parameters); schema-1 bundles load as single-label
BUNDLE_FILE = "imgclf.json"
WEIGHTS_FILE = "model.safetensors"


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries a bundle's numbers depend on."""
    import timm
    import torchvision

    from imgclf import __version__

    return {
        "imgclf": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "timm": timm.__version__,
    }


@dataclass(frozen=True)
class BundleMeta:
    """Everything needed to use the weights: architecture, labels, task, preprocessing, calibration, provenance.

    ``task`` records the kind of label and its decision parameters (``{"kind": "single"}``; multi-label adds
    per-class ``thresholds``, hierarchical its ``hierarchy`` and back-off threshold); ``temperature`` is the
    calibration (one float, or one per class for multi-label).
    """

    architecture: str
    classes: tuple[str, ...]
    preprocessing: DataConfig
    arch_args: dict[str, Any] = field(default_factory=dict)
    temperature: float | list[float] | None = None
    task: dict[str, Any] = field(default_factory=lambda: {"kind": "single"})
    rejection: dict[str, Any] | None = None
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=library_versions)
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    weights_sha256: str = ""
    schema_version: int = SCHEMA_VERSION

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def make_task(self) -> Task:
        """The :class:`~imgclf.tasks.Task` this bundle was trained for."""
        return task_from_dict(self.task, self.classes)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["classes"] = list(self.classes)
        out["preprocessing"] = to_dict(self.preprocessing)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "imgclf.json") -> BundleMeta:
        known = {f.name for f in dataclasses.fields(cls)}
        try:
            kwargs = {k: v for k, v in data.items() if k in known}
            kwargs["classes"] = tuple(data["classes"])
            kwargs["preprocessing"] = from_dict(DataConfig, data["preprocessing"])
            return cls(**kwargs)
        except (KeyError, TypeError, ImgclfError) as exc:
            raise BundleError(f"{source} is not a valid imgclf bundle description ({exc!r}); re-export it") from exc


@dataclass(frozen=True)
class Bundle:
    """A model (eval mode) with its metadata; ``path`` is where it was loaded from (None: only in memory);
    ``rejection_stats``: the fitted tensors of a feature-space rejection rule (``rejection.safetensors``)."""

    model: nn.Module
    meta: BundleMeta
    path: Path | None = None
    rejection_stats: dict[str, torch.Tensor] = field(default_factory=dict, repr=False, compare=False)

    @property
    def task(self) -> Task:
        return self.meta.make_task()


def _bundle_dir(path: str | Path) -> Path:
    p = Path(path)
    if p.is_file() and p.name in (BUNDLE_FILE, WEIGHTS_FILE):
        p = p.parent
    if not (p / BUNDLE_FILE).is_file():
        hint = " (a run directory? use RUN_DIR/bundle)" if (p / "bundle" / BUNDLE_FILE).is_file() else ""
        raise BundleError(f"{p} is not an imgclf bundle: {BUNDLE_FILE} is missing{hint}. Train one with `imgclf train`")
    return p


def save_bundle(directory: str | Path, model: nn.Module, meta: BundleMeta,
                rejection_stats: dict[str, torch.Tensor] | None = None) -> Path:  # fmt: skip
    """Write ``model.safetensors`` and ``imgclf.json`` (with the weights' sha256) atomically into ``directory``,
    and a feature rejection rule's ``rejection_stats`` into ``rejection.safetensors`` (recorded in the rule).

    >>> # save_bundle("runs/x/bundle", model, BundleMeta("resnet18", ("ant", "bee"), DataConfig()))
    """
    directory = Path(directory)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    weights = st_save(state)
    meta = dataclasses.replace(meta, weights_sha256=sha256_bytes(weights), schema_version=SCHEMA_VERSION)
    if meta.rejection:
        rejection = {k: v for k, v in meta.rejection.items() if k not in ("file", "sha256")}
        if rejection_stats:
            directory.mkdir(parents=True, exist_ok=True)
            rejection.update(save_arrays(directory, REJECTION_FILE, rejection_stats))
        meta = dataclasses.replace(meta, rejection=rejection)
    atomic_write_bytes(directory / WEIGHTS_FILE, weights)
    atomic_write_text(directory / BUNDLE_FILE, json.dumps(meta.to_dict(), indent=2) + "\n")
    return directory


def read_meta(path: str | Path) -> BundleMeta:
    """The bundle's metadata without loading weights."""
    p = _bundle_dir(path) / BUNDLE_FILE
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{p} is not valid JSON ({exc}); the bundle is damaged, re-train or re-copy it") from exc
    if data.get("schema_version", 0) > SCHEMA_VERSION:
        raise BundleError(f"{p} has schema {data['schema_version']}, newer than this imgclf; upgrade imgclf")
    return BundleMeta.from_dict(data, source=str(p))


def load_bundle(path: str | Path, *, device: str | torch.device = "cpu") -> Bundle:
    """Rebuild the model from ``imgclf.json`` and load its weights after checking their sha256."""
    directory = _bundle_dir(path)
    meta = read_meta(directory)
    wpath = directory / WEIGHTS_FILE
    if not wpath.is_file():
        raise BundleError(f"{wpath} is missing; the bundle is incomplete, re-train or re-copy it")
    raw = wpath.read_bytes()
    if meta.weights_sha256 and sha256_bytes(raw) != meta.weights_sha256:
        raise BundleError(
            f"{wpath} does not match the sha256 recorded in {BUNDLE_FILE}: the weights were changed or damaged"
        )
    try:
        state = st_load(raw)
    except SafetensorError as exc:
        raise BundleError(f"{wpath} is not a readable safetensors file ({exc})") from exc
    model = create_model(meta.architecture, meta.num_classes, **meta.arch_args)
    if meta.extra.get("pruned"):  # channel-pruned: the saved weights carry the smaller layer shapes
        resize_to_state_dict(model, state)
    if meta.extra.get("norm") == "groupnorm":  # trained with DP-SGD: BatchNorm was swapped for GroupNorm
        batchnorm_to_groupnorm(model)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise BundleError(f"{wpath} does not fit architecture {meta.architecture!r}: {exc}") from exc
    return Bundle(model.to(device).eval(), meta, directory, load_arrays(directory, meta.rejection))


def update_meta(path: str | Path, **changes: Any) -> BundleMeta:
    """Rewrite ``imgclf.json`` with some fields changed (e.g. ``temperature=1.7``); weights are untouched."""
    directory = _bundle_dir(path)
    meta = dataclasses.replace(read_meta(directory), **changes, schema_version=SCHEMA_VERSION)
    atomic_write_text(directory / BUNDLE_FILE, json.dumps(meta.to_dict(), indent=2) + "\n")
    return meta
