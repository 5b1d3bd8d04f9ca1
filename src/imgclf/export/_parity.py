"""Does the exported file compute what the PyTorch model computes? Logit difference and top-1 agreement."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from imgclf.errors import DataError, ImgclfError
from imgclf.export._onnx_io import check_external_data
from imgclf.export._runtime import as_float_tensor, ort_session
from imgclf.utils import eval_mode, model_device


class ExportParityError(ImgclfError, RuntimeError):
    """An exported model disagrees with the PyTorch model beyond the tolerance; ``parity`` holds the numbers."""

    exit_code = 1

    def __init__(self, message: str, parity: Parity) -> None:
        super().__init__(message)
        self.parity = parity


@dataclass(frozen=True)
class Parity:
    """Agreement of an exported model with its PyTorch source on ``n`` images.

    ``max_abs_logit_diff``: largest |logit_onnx - logit_torch| over all images and classes;
    ``top1_agreement``: fraction of images with the same arg-max class; ``passed``: both within tolerance.
    """

    max_abs_logit_diff: float
    top1_agreement: float
    n: int
    passed: bool
    atol: float
    min_agreement: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def describe(self) -> str:
        """One line with the numbers and the tolerances."""
        return (
            f"max |logit difference| = {self.max_abs_logit_diff:.3g} (tolerance {self.atol:g}), "
            f"top-1 agreement = {100 * self.top1_agreement:.2f}% (minimum {100 * self.min_agreement:.2f}%) "
            f"on {self.n} images"
        )


def check_images(images: Any, what: str = "images") -> torch.Tensor:
    """``images`` as a float32 CPU tensor ``(N, 3, H, W)`` with N >= 1, or a :class:`DataError` saying what is wrong."""
    x = as_float_tensor(images)
    if x.ndim != 4 or x.shape[1] != 3 or x.shape[0] < 1:
        raise DataError(
            f"{what} must be a batch of normalised RGB images shaped (N, 3, H, W) with N >= 1, got shape "
            f"{tuple(x.shape)}; stack preprocessed images with torch.stack(...)."
        )
    return x


def torch_logits(model: nn.Module, images: torch.Tensor, batch_size: int = 32) -> np.ndarray:
    """fp32 eval-mode logits of ``model`` on ``images`` ``(N, 3, H, W)`` -> ``(N, C)``, in chunks of ``batch_size``."""
    device = model_device(model)
    outs = []
    with eval_mode(model), torch.inference_mode():
        for chunk in images.split(batch_size):
            outs.append(model(chunk.to(device)).float().cpu())  # (b, C)
    return torch.cat(outs).numpy()


def session_logits(session: Any, images: torch.Tensor, batch_size: int = 32) -> np.ndarray:
    """Logits of an onnxruntime session on ``images`` ``(N, 3, H, W)`` -> ``(N, C)``."""
    name = session.get_inputs()[0].name
    outs = [session.run(None, {name: chunk.numpy()})[0] for chunk in images.split(batch_size)]
    return np.concatenate(outs).astype(np.float32)


def compare_logits(reference: np.ndarray, candidate: np.ndarray, *, atol: float, min_agreement: float) -> Parity:
    """:class:`Parity` of ``candidate`` logits ``(N, C)`` against ``reference`` logits ``(N, C)``."""
    if reference.shape != candidate.shape:
        raise DataError(f"logit shapes differ: reference {reference.shape}, candidate {candidate.shape}")
    diff = float(np.abs(reference.astype(np.float64) - candidate.astype(np.float64)).max())
    agree = float((reference.argmax(1) == candidate.argmax(1)).mean())
    passed = bool(np.isfinite(diff) and diff <= atol and agree >= min_agreement)
    return Parity(diff, agree, int(reference.shape[0]), passed, float(atol), float(min_agreement))


def parity_on(model: nn.Module, onnx_model: str | os.PathLike | bytes, images: Any, *, atol: float,
              min_agreement: float) -> Parity:  # fmt: skip
    """:func:`parity_check` for a checked path or in-memory serialized ONNX bytes."""
    x = check_images(images, "parity images")
    return compare_logits(torch_logits(model, x), session_logits(ort_session(onnx_model), x),
                          atol=atol, min_agreement=min_agreement)  # fmt: skip


def parity_check(model: nn.Module, onnx_path: str | os.PathLike, images: Any, *, atol: float = 1e-3,
                 min_agreement: float = 0.99) -> Parity:  # fmt: skip
    """Compare ``model`` (fp32, eval mode) with the ONNX file on the same normalised ``images`` ``(N, 3, H, W)``.

    Returns a :class:`Parity`; ``passed`` is true when max |logit difference| <= ``atol`` and top-1 agreement
    >= ``min_agreement``. The model's train/eval mode is left as it was.

    >>> p = parity_check(model, "model.onnx", torch.randn(8, 3, 32, 32))  # doctest: +SKIP
    >>> p.passed, p.max_abs_logit_diff < 1e-3  # doctest: +SKIP
    (True, True)
    """
    return parity_on(model, check_external_data(onnx_path), images, atol=atol, min_agreement=min_agreement)
