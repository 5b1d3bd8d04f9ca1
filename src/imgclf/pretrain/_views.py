"""Two augmented views of each image, from lightly's per-method view transforms, seeded for exact resume."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from imgclf.config import DataConfig
from imgclf.utils import optional_import


class SeededViews:
    """``image -> (V, 3, H, W)``: lightly's multi-view transform with its NumPy/Python draws seeded from torch.

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
        return torch.stack(list(views))  # (V, 3, H, W)

    def __repr__(self) -> str:
        return f"SeededViews({self.transform!r})"


def view_transform(method: str, pre: DataConfig) -> SeededViews:
    """The method's two-view augmentation at ``pre.input_size``, normalised with ``pre``'s mean and std.

    Small images (< 64 px, CIFAR-like) get no blur and half-strength colour jitter, as the SimCLR paper does
    for CIFAR-10; DINO uses two global crops only (views of one size stack into one batch tensor).
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
        tf = T.DINOTransform(global_crop_size=size, n_local_views=0, gaussian_blur=blur, normalize=norm)
    return SeededViews(tf)
