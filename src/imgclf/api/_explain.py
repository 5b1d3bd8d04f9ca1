"""``explain``: attribution overlays for image files, with the bundle's own preprocessing."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from imgclf import data as D
from imgclf import explain as X
from imgclf.errors import ConfigError, DataError
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
    clf: Any, inputs: Iterable[str | Path], out_dir: str | Path, *, method: str = "gradcam",
    target: str | None = None, faithfulness: bool = False, batch_size: int = 16,
) -> ExplainReport:  # fmt: skip
    """Explain ``clf``'s decision on image files; writes ``<stem>_<method>.png`` side-by-side overlays.

    ``target`` is a class name (default: each image's predicted class).
    """
    from imgclf.api._classifier import expand_inputs

    model, meta = clf._require()
    if target is not None and target not in meta.classes:
        raise ConfigError(f"--target {target!r} is not a class of this model.{closest(target, meta.classes)} "
                          f"Classes: {', '.join(meta.classes)}")  # fmt: skip
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    transform = D.build_eval_transform(meta.preprocessing)
    device = next(model.parameters()).device
    paths = expand_inputs(inputs)
    errors, done, tiles = {}, [], []
    for start in range(0, len(paths), batch_size):
        chunk, tensors = [], []
        for p in paths[start : start + batch_size]:
            try:
                tensors.append(transform(D.open_image(p)))
                chunk.append(p)
            except DataError as exc:
                errors[p] = getattr(exc, "reason", str(exc))
        if not tensors:
            continue
        x = torch.stack(tensors).to(device)  # (B, 3, H, W)
        tgt = None if target is None else [meta.classes.index(target)] * len(chunk)
        attr = X.explain(model, x, method=method, target=tgt)
        faith = X.deletion_insertion(model, x, attr.maps, target=list(attr.targets)) if faithfulness else None
        for i, p in enumerate(chunk):
            image = X.to_display_image(x[i].cpu(), meta.preprocessing.mean, meta.preprocessing.std)
            label, tname = meta.classes[int(attr.predicted[i])], meta.classes[int(attr.targets[i])]
            title = f"{Path(p).name}: {label} {float(attr.scores[i]):.2f} (explaining {tname})"
            png = X.save_side_by_side(image, attr.maps[i], out / f"{Path(p).stem}_{method}.png", title)
            tiles.append(X.GalleryItem(image, attr.maps[i], f"{Path(p).name}: {label}"))
            done.append(ExplainedImage(
                p, label, float(attr.scores[i]), tname, str(png),
                None if faith is None else float(faith.deletion_auc[i]),
                None if faith is None else float(faith.insertion_auc[i]),
            ))  # fmt: skip
    gallery = str(X.save_gallery(tiles, out / f"gallery_{method}.png")) if len(tiles) > 1 else None
    return ExplainReport(method, tuple(done), gallery, errors)
