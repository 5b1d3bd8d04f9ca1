"""``explain``: attribution overlays for images (files, folders, in-memory), with the bundle's own preprocessing."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgclf import data as D
from imgclf.bundle import Bundle
from imgclf.errors import ConfigError
from imgclf.explain._explain import explain
from imgclf.explain._faithfulness import deletion_insertion
from imgclf.explain._overlay import GalleryItem, save_gallery, save_side_by_side, to_display_image
from imgclf.utils import closest


@dataclass(frozen=True)
class ExplainedImage:
    """One input's overlay: predicted label and score, the class explained, and the PNG written."""

    path: str
    label: str
    score: float
    target: str
    overlay: str
    deletion_auc: float | None = None
    insertion_auc: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class ExplainReport:
    """All overlays of one call, the gallery PNG (when more than one image) and skipped inputs."""

    method: str
    images: tuple[ExplainedImage, ...]
    gallery: str | None
    errors: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "images": [i.to_dict() for i in self.images], "gallery": self.gallery,
                "errors": self.errors}  # fmt: skip


def explain_files(
    bundle: Bundle, inputs: Iterable[Any], out_dir: str | Path, *, method: str = "gradcam",
    target: str | None = None, faithfulness: bool = False, batch_size: int = 16,
) -> ExplainReport:  # fmt: skip
    """Explain ``bundle``'s decision on images (paths, folders, globs, PIL images, arrays, tensors); writes
    ``<stem>_<method>.png`` side-by-side overlays (``input_<i>_<method>.png`` for in-memory images). Files whose
    stems clash are named by their path below the clashing files' common folder (``cat/0000.jpg`` and
    ``dog/0000.jpg`` -> ``cat_0000_<method>.png``, ``dog_0000_<method>.png``).

    ``target`` is a class name (default: each image's predicted class).

    >>> # explain_files(load_bundle("runs/x/bundle"), ["cat.jpg"], "out").images[0].overlay
    """
    model, meta = bundle.model, bundle.meta
    if target is not None and target not in meta.classes:
        raise ConfigError(f"--target {target!r} is not a class of this model.{closest(target, meta.classes)} "
                          f"Classes: {', '.join(meta.classes)}")  # fmt: skip
    images = D.InputImages(inputs)  # first: a bad path or an empty folder leaves no output folder behind
    stems = _overlay_stems(images.names)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    transform = D.build_eval_transform(meta.preprocessing)
    device = next(model.parameters()).device
    dataset = D.IndexedDataset(images, transform)
    readable, done, tiles = [], [], []
    for start in range(0, len(images), batch_size):
        batch = D.collate_skip_bad([dataset[i] for i in range(start, min(start + batch_size, len(images)))])
        readable += batch.indices.tolist()
        if batch.images.shape[0] == 0:
            continue
        chunk = [(images.describe(int(i)), stems[int(i)]) for i in batch.indices]
        x = batch.images.to(device)  # (B, 3, H, W)
        tgt = None if target is None else [meta.classes.index(target)] * len(chunk)
        attr = explain(model, x, method=method, target=tgt)
        faith = deletion_insertion(model, x, attr.maps, target=list(attr.targets)) if faithfulness else None
        for i, (p, stem) in enumerate(chunk):
            image = to_display_image(x[i].cpu(), meta.preprocessing.mean, meta.preprocessing.std)
            label, tname = meta.classes[int(attr.predicted[i])], meta.classes[int(attr.targets[i])]
            title = f"{Path(p).name}: {label} {float(attr.scores[i]):.2f} (explaining {tname})"
            png = save_side_by_side(image, attr.maps[i], out / f"{stem}_{method}.png", title)
            tiles.append(GalleryItem(image, attr.maps[i], f"{Path(p).name}: {label}"))
            done.append(ExplainedImage(
                p, label, float(attr.scores[i]), tname, str(png),
                None if faith is None else float(faith.deletion_auc[i]),
                None if faith is None else float(faith.insertion_auc[i]),
            ))  # fmt: skip
    errors = {images.describe(i): reason for i, reason in images.unreadable(readable).items()}
    gallery = str(save_gallery(tiles, out / f"gallery_{method}.png")) if len(tiles) > 1 else None
    return ExplainReport(method, tuple(done), gallery, errors)


def _stem(name: str) -> str:
    """A file stem for an input: the file's stem, or ``input_3`` for the in-memory ``input[3]``."""
    return name.replace("[", "_").rstrip("]") if name.startswith("input[") else Path(name).stem


def _overlay_stems(names: list[str]) -> list[str]:
    """One distinct overlay stem per input (compared ignoring case, as some file systems do): the file's stem, or,
    for files whose stems clash, their path below the clashing files' common folder joined by ``_``; a counter
    settles what still clashes (``a.jpg`` beside ``a.png``) and keeps clear of the gallery's name.

    >>> _overlay_stems(["d/cat/0000.jpg", "d/dog/0000.jpg", "d/cat/0001.jpg", "input[3]"])
    ['cat_0000', 'dog_0000', '0001', 'input_3']
    """
    stems = [_stem(n) for n in names]
    count = Counter(s.lower() for s in stems)
    clashing = [i for i, s in enumerate(stems) if count[s.lower()] > 1 and not names[i].startswith("input[")]
    if clashing:
        root = os.path.commonpath([os.path.dirname(os.path.abspath(names[i])) for i in clashing])
        for i in clashing:
            stems[i] = "_".join(Path(os.path.relpath(os.path.abspath(names[i]), root)).with_suffix("").parts)
    used, out = {"gallery"}, []
    for s in stems:
        name, k = s, 1
        while name.lower() in used:
            k += 1
            name = f"{s}_{k}"
        used.add(name.lower())
        out.append(name)
    return out
