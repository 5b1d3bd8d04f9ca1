"""What a user hands to predict: file paths, folders, globs, PIL images, numpy arrays or tensors — one sequence.

:class:`InputImages` behaves like a :class:`SampleList` (``len``, ``[i] -> (PIL RGB image, 0)``, ``describe``,
``labels``), so predict runs through the same loader (decode, transform, skip unreadable) as training and
evaluation. :func:`sample_tensors` is the small eager variant for capabilities that want a tensor in hand.
"""

from __future__ import annotations

import glob
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from imgclf.config import DataConfig
from imgclf.data._decode import IMAGE_EXTENSIONS, BadImageError, open_image, to_rgb
from imgclf.data._loader import IndexedDataset, collate_skip_bad
from imgclf.data._scan import list_images
from imgclf.data._transforms import build_eval_transform
from imgclf.errors import DataError


def expand_inputs(inputs: Iterable[str | Path]) -> list[str]:
    """Files as given, folders walked recursively for images, globs expanded; order kept, duplicates dropped.

    A name that matches nothing, or a folder without image files, raises DataError naming it (a mistyped or
    still-empty folder among several inputs is not passed over in silence).

    >>> # expand_inputs(["photo.jpg", "more/"])  # -> ["photo.jpg", "more/a.png", "more/b.png"]
    """
    out: list[str] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = list_images(p)
            if not found:
                raise DataError(f"no images found in {item} (looked for {', '.join(IMAGE_EXTENSIONS)}, any case, "
                                "hidden files skipped); give a folder of images")  # fmt: skip
        elif p.exists():
            found = [p]
        else:
            found = sorted(Path(x) for x in glob.glob(str(item), recursive=True))
            if not found:
                raise DataError(f"{item}: no such file, folder or matching glob; check the path")
        out += [str(f) for f in found]
    return list(dict.fromkeys(out))


def _array_to_image(arr: np.ndarray, where: str) -> Image.Image:
    """HWC / HW uint8 (or float in [0, 1]) -> PIL RGB; anything else is a BadImageError naming ``where``."""
    if arr.size == 0:
        raise BadImageError(where, f"empty image: array of shape {tuple(arr.shape)}")
    if arr.dtype != np.uint8:
        if not np.issubdtype(arr.dtype, np.floating):
            raise BadImageError(where, f"array of dtype {arr.dtype}; give uint8 (0-255) or float (0-1)")
        arr = np.nan_to_num(arr)
        lo, hi = float(arr.min()), float(arr.max())
        # 0-255 floats or normalised pixels are a mistake that clipping would hide; the slight overshoot of
        # bicubic resampling of a [0, 1] image is not, and is clipped
        if lo < -0.05 or hi > 1.05:
            raise BadImageError(where, f"float array with values in [{lo:.4g}, {hi:.4g}]; float arrays must be in "
                                       "[0, 1]: pass uint8 0-255 or divide by 255")  # fmt: skip
        arr = (np.clip(arr, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 2:
        return Image.fromarray(arr, mode="L").convert("RGB")
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        return to_rgb(Image.fromarray(np.ascontiguousarray(arr)))
    raise BadImageError(where, f"array of shape {tuple(arr.shape)}; give (H, W), (H, W, 1), (H, W, 3) or (H, W, 4)")


def to_pil(item: Any, where: str = "input") -> Image.Image:
    """One input as a PIL RGB image: a path (decoded safely), a PIL image, an HWC array or a CHW/HWC tensor."""
    if isinstance(item, (str, Path)):
        return open_image(item)
    if isinstance(item, Image.Image):
        if 0 in item.size:
            raise BadImageError(where, f"empty image: PIL image of size {item.size}")
        return to_rgb(item)
    if isinstance(item, torch.Tensor):
        t = item.detach().cpu()
        if t.ndim == 3 and t.shape[0] in (1, 3, 4) and t.shape[-1] not in (1, 3, 4):
            t = t.permute(1, 2, 0)  # (C, H, W) -> (H, W, C)
        return _array_to_image(t.numpy(), where)
    if isinstance(item, np.ndarray):
        return _array_to_image(item, where)
    raise BadImageError(where, f"cannot read a {type(item).__name__}; give a path, PIL image, array or tensor")


class InputImages:
    """Predict inputs as a sample list: ``[i] -> (PIL RGB image, 0)``; unreadable ones raise BadImageError.

    Strings and paths are expanded (folders, globs) by :func:`expand_inputs`; a folder without image files is a
    DataError naming it. In-memory images are named ``input[i]`` in results.

    >>> imgs = InputImages([np.zeros((8, 8, 3), np.uint8)]); len(imgs), imgs.describe(0), imgs[0][0].size
    (1, 'input[0]', (8, 8))
    """

    def __init__(self, inputs: Iterable[Any]) -> None:
        items = [inputs] if isinstance(inputs, (str, Path, Image.Image, np.ndarray, torch.Tensor)) else list(inputs)
        if len(items) == 1 and isinstance(items[0], (np.ndarray, torch.Tensor)) and items[0].ndim == 4:
            items = list(items[0])  # a batch (N, H, W, C) or (N, C, H, W)
        self._items: list[Any] = []
        self._names: list[str] = []
        for item in items:
            if isinstance(item, (str, Path)):
                paths = expand_inputs([item])
                self._items += paths
                self._names += paths
            else:
                self._names.append(f"input[{len(self._items)}]")
                self._items.append(item)
        self.name = "inputs"

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, i: int) -> tuple[Image.Image, int]:
        return to_pil(self._items[i], self._names[i]), 0

    @property
    def labels(self) -> list[int]:
        return [0] * len(self._items)

    @property
    def names(self) -> list[str]:
        return list(self._names)

    def describe(self, i: int) -> str:
        return self._names[i]

    def unreadable(self, readable: Iterable[int]) -> dict[int, str]:
        """``{position: reason}`` for the inputs not in ``readable`` (decoded again for the message: rare)."""
        seen = set(int(i) for i in readable)
        out = {}
        for i in range(len(self._items)):
            if i not in seen:
                try:
                    self[i]
                    out[i] = "could not be read"
                except DataError as exc:
                    out[i] = getattr(exc, "reason", str(exc))
        return out


def sample_tensors(samples: Any, pre: DataConfig, limit: int | None = None, seed: int = 0
                   ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Eval-preprocessed inputs ``(N, 3, H, W)`` and labels of up to ``limit`` readable samples.

    With a ``limit`` below the sample count, a seeded random subset (kept in sample order) is used.

    >>> # x, y = sample_tensors(splits.val, bundle.meta.preprocessing, 256)
    """
    chosen = np.random.default_rng(seed).permutation(len(samples))[:limit] if limit else np.arange(len(samples))
    dataset = IndexedDataset(samples, build_eval_transform(pre))
    batch = collate_skip_bad([dataset[int(i)] for i in sorted(chosen.tolist())])
    if batch.images.shape[0] == 0:
        raise DataError("none of the selected images could be read")
    return batch.images, batch.labels


def describe_all(samples: Sequence[Any] | Any) -> list[str]:
    """``samples.describe(i)`` for every sample."""
    return [samples.describe(i) for i in range(len(samples))]
