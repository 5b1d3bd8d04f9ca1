"""Two augmented views of each image, from lightly's per-method view transforms, seeded for exact resume."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from imgclf.config import DataConfig
from imgclf.utils import optional_import


def local_crop_size(size: int) -> int:
    """The side of DINO's small crops for ``size``-pixel global views: 3/7 of it, as 96 is of 224 (at least 8).

    >>> local_crop_size(224), local_crop_size(32)
    (96, 14)
    """
    return max(8, round(size * 3 / 7))


class SeededViews:
    """``image -> (V, 3, H, W)``: lightly's multi-view transform with its NumPy/Python draws seeded from torch.
    Views of two sizes (DINO's multi-crop) come flattened and concatenated in order, ``(sum of V_i*3*H_i*W_i,)``, so
    they still stack into one batch tensor; :meth:`imgclf.pretrain.DINO.crops` takes them apart.

    The loader seeds torch's generator per item (:class:`imgclf.data.IndexedDataset`); lightly's blur and
    solarisation draw from NumPy, so they are seeded from that generator here (and the global NumPy / Python
    states restored), making every view depend only on the item seed: a resumed run sees the same views.
    """

    def __init__(self, transform: Any) -> None:
        self.transform = transform

    def __call__(self, image: Any) -> torch.Tensor:
        seed = int(torch.randint(0, 2**31 - 1, ()).item())
        np_state, py_state = np.random.get_state(), random.getstate()
        np.random.seed(seed)
        random.seed(seed)
        try:
            views = self.transform(image)
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)
        views = list(views)
        if len({v.shape for v in views}) == 1:
            return torch.stack(views)  # (V, 3, H, W)
        return torch.cat([v.reshape(-1) for v in views])  # global views, then local ones, flattened

    def __repr__(self) -> str:
        return f"SeededViews({self.transform!r})"


def view_transform(method: str, pre: DataConfig, local_views: int = 0) -> SeededViews:
    """The method's two-view augmentation at ``pre.input_size``, normalised with ``pre``'s mean and std; for DINO
    ``local_views`` more small crops of each image (:func:`local_crop_size`), its multi-crop.

    Small images (< 64 px, CIFAR-like) get no blur and half-strength colour jitter, as the SimCLR paper does
    for CIFAR-10.
    """
    T = optional_import("lightly.transforms", "fewlabels")
    size, small = pre.input_size, pre.input_size < 64
    norm = {"mean": list(pre.mean), "std": list(pre.std)}
    if method == "simclr":
        tf = T.SimCLRTransform(input_size=size, cj_strength=0.5 if small else 1.0, gaussian_blur=0.0 if small else 0.5,
                               normalize=norm)  # fmt: skip
    elif method == "byol":
        v1 = T.BYOLView1Transform(input_size=size, gaussian_blur=0.0 if small else 1.0, normalize=norm)
        v2 = T.BYOLView2Transform(input_size=size, gaussian_blur=0.0 if small else 0.1, normalize=norm)
        tf = T.BYOLTransform(view_1_transform=v1, view_2_transform=v2)
    else:
        blur = (0.0, 0.0, 0.0) if small else (1.0, 0.1, 0.5)
        tf = T.DINOTransform(global_crop_size=size, local_crop_size=local_crop_size(size), n_local_views=local_views,
                             gaussian_blur=blur, normalize=norm)  # fmt: skip
    return SeededViews(tf)
