"""``data.cache=memory``: decode every image once into a uint8 tensor, then serve augmented batches from memory.

Decoding and per-image transforms cost more than a small model's step on small images; a speedrun keeps the
whole set in memory and augments a batch at a time. The batches follow a :class:`ResumableSampler` (same order,
sharding and mid-epoch resume as the DataLoader path), and every random choice comes from the sampler's item seeds,
so a resumed run sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from rich.console import Console
from rich.progress import Progress
from torchvision.transforms import v2

from imgclf.config import MEMORY_AUGMENTS, DataConfig
from imgclf.data._loader import Batch, IndexedDataset, make_loader
from imgclf.data._pixels import normalize
from imgclf.data._sampler import ResumableSampler
from imgclf.data._samples import SampleList
from imgclf.data._transforms import build_eval_transform, shift_pixels
from imgclf.errors import ConfigError

MEMORY_SHARE = 0.5  # refuse a cache larger than this share of the memory available now


def _available_bytes() -> int | None:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not on Linux
        return None


def decode_to_memory(
    samples: SampleList, pre: DataConfig, *, workers: int | None = None, console: Console | None = None,
    what: str = "images",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(images uint8 (N, 3, H, W), labels, dataset indices (N,))`` of the readable samples, resized and
    center-cropped as the eval transform does (``H = W = pre.input_size``). Unreadable files are left out with
    a warning, as in training from files.
    """
    size = pre.input_size
    need = len(samples) * 3 * size * size
    available = _available_bytes()
    if available is not None and need > MEMORY_SHARE * available:
        raise ConfigError(f"data.cache=memory needs {need / 2**30:.1f} GiB for {len(samples)} {what} at {size} px, "
                          f"but only {available / 2**30:.1f} GiB is free; use data.cache=none or a smaller "
                          "--img-size")  # fmt: skip
    resize_crop = v2.Compose([*list(build_eval_transform(pre).transforms)[:2], v2.ToImage()])  # no scaling

    def to_uint8(image: Image.Image) -> torch.Tensor:  # (3, size, size); images already that size skip the resize
        if image.size == (size, size) and size == pre.resize_size:
            return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)
        return resize_crop(image)

    sampler = ResumableSampler(samples.labels, seed=0, shuffle=False)
    loader = make_loader(IndexedDataset(samples, to_uint8), sampler, 256, workers=workers)
    images, labels, indices = [], [], []
    with Progress(console=console or Console(), transient=True) as progress:
        task = progress.add_task(f"decoding {len(samples)} {what} into memory", total=len(loader))
        for batch in loader:
            images.append(batch.images)
            labels.append(batch.labels)
            indices.append(batch.indices)
            progress.advance(task)
    if not images:
        return torch.empty(0, 3, size, size, dtype=torch.uint8), torch.empty(0, dtype=torch.long), torch.empty(0)
    return torch.cat(images), torch.cat(labels), torch.cat(indices)


class MemoryLoader:
    """Batches of normalised ``(B, 3, H, W)`` float images from uint8 tensors in memory, in ``sampler``'s order.

    ``augment``: ``none``; ``flip`` mirrors each image on alternate epochs (a fixed random half of the images on
    even epochs, the other half on odd ones: every image is seen both ways in any two epochs, which trains better
    than independent coin flips); ``shift`` adds a random translation by up to ``shift_pixels(H)`` px with
    reflected borders. Translations come from the sampler's item seeds. ``drop_last`` drops an incomplete final
    batch (when there is at least one full batch).

    >>> imgs = torch.randint(0, 255, (10, 3, 8, 8), dtype=torch.uint8)
    >>> loader = MemoryLoader(imgs, torch.arange(10), torch.arange(10), ResumableSampler(list(range(10)), seed=0),
    ...                       batch_size=4, mean=(0.5,) * 3, std=(0.5,) * 3, augment="shift", drop_last=True)
    >>> [tuple(b.images.shape) for b in loader]
    [(4, 3, 8, 8), (4, 3, 8, 8)]
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor, sampler: ResumableSampler,
                 batch_size: int, *, mean: Sequence[float], std: Sequence[float], augment: str = "none",
                 hflip: bool = True, drop_last: bool = False, seed: int = 0) -> None:  # fmt: skip
        if augment not in MEMORY_AUGMENTS:
            raise ConfigError(f"data.cache=memory supports augment {', '.join(MEMORY_AUGMENTS)}, not {augment!r}")
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"MemoryLoader needs uint8 (N, 3, H, W) images, got {images.dtype} {tuple(images.shape)}")
        self.images, self.labels, self.indices = images, labels, indices
        self.position = {int(i): p for p, i in enumerate(indices.tolist())}  # dataset index -> row
        self.sampler, self.batch_size, self.drop_last = sampler, batch_size, drop_last
        self.mean, self.std = tuple(mean), tuple(std)
        self.flip = hflip and augment in ("flip", "shift")
        self.shift = shift_pixels(images.shape[-1]) if augment == "shift" else 0
        self.flip_half = torch.rand(len(images), generator=torch.Generator().manual_seed(seed)) < 0.5  # (N,)

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last and n >= self.batch_size else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        epoch = self.sampler.epoch
        items = [(self.position[i], s) for i, s in self.sampler if i in self.position]  # unreadable files: left out
        full = self.drop_last and len(self.sampler) >= self.batch_size
        for start in range(0, len(items), self.batch_size):
            chunk = items[start:start + self.batch_size]
            if full and len(chunk) < self.batch_size:
                break
            rows = torch.tensor([r for r, _ in chunk])
            seeds = torch.tensor([s for _, s in chunk], dtype=torch.long)
            yield Batch(self._augment(rows, seeds, epoch), self.labels[rows], self.indices[rows])

    def _augment(self, rows: torch.Tensor, seeds: torch.Tensor, epoch: int) -> torch.Tensor:
        x = normalize(self.images[rows].float().div_(255), self.mean, self.std)  # (B, 3, H, W)
        if self.shift:
            r, (h, w) = self.shift, x.shape[-2:]
            span = 2 * r + 1
            dy, dx = seeds % span, (seeds // span) % span  # (B,) offsets into the padded image, 0..2r
            padded = F.pad(x, (r, r, r, r), mode="reflect")  # (B, 3, H + 2r, W + 2r)
            ys = (dy[:, None] + torch.arange(h))[:, None, :, None]  # (B, 1, H, 1)
            xs = (dx[:, None] + torch.arange(w))[:, None, None, :]  # (B, 1, 1, W)
            x = padded[torch.arange(len(x))[:, None, None, None], torch.arange(3)[None, :, None, None], ys, xs]
        if self.flip:
            mirror = self.flip_half[rows] ^ bool(epoch % 2)  # (B,)
            x = torch.where(mirror[:, None, None, None], x.flip(-1), x)
        return x
