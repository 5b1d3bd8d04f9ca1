"""Inference engines behind one interface: images ``(B, 3, H, W)`` float32, normalised -> logits ``(B, C)``.

Preprocessing is the caller's job and identical for every engine, so engines can be compared logit for logit.
"""

from __future__ import annotations

import abc
import copy
import logging
import os
from typing import Any

import numpy as np
import torch
from torch import nn

from imgclf.errors import ConfigError
from imgclf.export._onnx_io import check_external_data, load_onnx, onnx_precision
from imgclf.export._parity import check_images
from imgclf.export._runtime import ort_session
from imgclf.utils import closest, cpu_supports_bf16

log = logging.getLogger(__name__)

ENGINES = ("torch", "torch-fast", "onnxruntime")


class Engine(abc.ABC):
    """Runs a classifier on preprocessed images; ``name`` is the engine kind, ``precision`` its arithmetic."""

    name: str
    precision: str

    @abc.abstractmethod
    def predict_logits(self, images: Any) -> np.ndarray:
        """Logits ``(B, C)`` float32 for normalised images ``(B, 3, H, W)`` (tensor or numpy array)."""

    def predict_outputs(self, images: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """Logits ``(B, C)`` and the pooled pre-logit features ``(B, D)`` of the same pass, or None for the
        features when this engine cannot give them (the default; the caller then asks the eager model)."""
        return self.predict_logits(images), None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, precision={self.precision!r})"


class TorchEngine(Engine):
    """Eager PyTorch, fp32, eval mode, under ``torch.inference_mode`` (the reference every engine is held to).

    The model itself is used: it is moved to ``device`` and put in eval mode.
    """

    name = "torch"

    def __init__(self, model: nn.Module, device: str = "cpu") -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.precision = "fp32"

    def predict_logits(self, images: Any) -> np.ndarray:
        x = check_images(images).to(self.device)  # (B, 3, H, W)
        with torch.inference_mode():
            return self.model(x).float().cpu().numpy()  # (B, C)

    def predict_outputs(self, images: Any) -> tuple[np.ndarray, np.ndarray | None]:
        x = check_images(images).to(self.device)  # (B, 3, H, W)
        with torch.inference_mode():
            f = self.model.forward_features(x)
            logits, feats = self.model.forward_head(f), self.model.forward_head(f, pre_logits=True)
        return logits.float().cpu().numpy(), feats.float().cpu().numpy()  # (B, C), (B, D)


def _split_norm_act(model: nn.Module) -> nn.Module:
    """timm's fused ``BatchNormAct2d`` (BatchNorm, dropout, activation in one module, as in MobileNetV3 and
    EfficientNet) as ``Sequential(BatchNorm2d, drop, act)``, the same computation in eval, so that fx sees a plain
    ``BatchNorm2d`` after each convolution and can fold it. In place; returns ``model``."""
    from timm.layers import BatchNormAct2d

    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is BatchNormAct2d:
                bn = nn.BatchNorm2d(child.num_features, child.eps, child.momentum, child.affine,
                                    child.track_running_stats)  # fmt: skip
                own = {k: v for k, v in child.state_dict().items() if "." not in k}  # not drop's / act's
                bn.load_state_dict(own)  # weight, bias, running stats: all of them, or an error
                setattr(parent, name, nn.Sequential(bn, child.drop, child.act).train(child.training))
    return model


def _fold_batchnorm(model: nn.Module) -> nn.Module:
    """Conv+BN folded into one conv via torch.fx (eval only; timm's norm+act layers split first, see
    :func:`_split_norm_act`); when it cannot be traced, the model computes as before (unfolded, norm+act split)."""
    from torch.fx.experimental.optimization import fuse

    try:
        return fuse(_split_norm_act(model), inplace=True)
    except Exception as exc:  # fx tracing fails on data-dependent control flow in many forms
        log.info("torch-fast: conv-bn folding skipped, model not traceable (%s)", exc)
        return model


class TorchFastEngine(Engine):
    """PyTorch tuned for inference: conv-BN folding, channels-last, and reduced precision where it pays off.

    On CPUs with native bf16 (AVX512-BF16 / AMX) it runs under bf16 autocast; on CUDA under fp16 autocast;
    elsewhere in fp32. ``compile`` wraps the model in ``torch.compile`` (default: on CUDA only, since compiling
    on a small CPU costs minutes). The caller's model is copied, never modified.
    """

    name = "torch-fast"

    def __init__(self, model: nn.Module, device: str = "cpu", compile: bool | None = None) -> None:
        self.device = torch.device(device)
        net = copy.deepcopy(model).to(self.device).eval()
        net = _fold_batchnorm(net).to(memory_format=torch.channels_last)
        if self.device.type == "cuda":
            self.dtype: torch.dtype | None = torch.float16
        elif self.device.type == "cpu" and cpu_supports_bf16():
            self.dtype = torch.bfloat16
        else:
            self.dtype = None
        self.precision = {torch.float16: "fp16", torch.bfloat16: "bf16", None: "fp32"}[self.dtype]
        if compile if compile is not None else self.device.type == "cuda":
            net = torch.compile(net, dynamic=False)
        self.model = net

    def predict_logits(self, images: Any) -> np.ndarray:
        x = check_images(images).to(self.device).contiguous(memory_format=torch.channels_last)  # (B, 3, H, W)
        enabled = self.dtype is not None
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=self.dtype, enabled=enabled):
            return self.model(x).float().cpu().numpy()  # (B, C)


class OnnxRuntimeEngine(Engine):
    """onnxruntime on an fp32 or int8 ONNX file (precision read from the graph), all graph optimisations on."""

    name = "onnxruntime"

    def __init__(self, onnx_path: str | os.PathLike, device: str = "cpu", threads: int | None = None) -> None:
        self.path = check_external_data(onnx_path)
        self.precision = onnx_precision(load_onnx(self.path))
        self.session = ort_session(self.path, device, threads)
        self.input_name = self.session.get_inputs()[0].name

    def predict_logits(self, images: Any) -> np.ndarray:
        x = check_images(images).numpy()  # (B, 3, H, W)
        return np.asarray(self.session.run(None, {self.input_name: x})[0], dtype=np.float32)  # (B, C)

    def predict_outputs(self, images: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """Logits, and the ``features`` output when the file has one (``export_onnx(..., features=True)``)."""
        outs = self.session.run(None, {self.input_name: check_images(images).numpy()})
        feats = np.asarray(outs[1], dtype=np.float32) if len(outs) > 1 else None  # (B, D)
        return np.asarray(outs[0], dtype=np.float32), feats  # (B, C)


def load_engine(kind: str, *, model: nn.Module | None = None, onnx_path: str | os.PathLike | None = None,
                device: str = "cpu", compile: bool | None = None, threads: int | None = None) -> Engine:  # fmt: skip
    """Build an inference engine: ``"torch"`` or ``"torch-fast"`` need ``model``; ``"onnxruntime"`` needs ``onnx_path``.

    ``compile`` applies to torch-fast (see :class:`TorchFastEngine`); ``threads`` sets onnxruntime's intra-op
    threads (default: one per physical core); PyTorch's thread count is process-wide (``torch.set_num_threads``).

    >>> eng = load_engine("onnxruntime", onnx_path="bundle/model.onnx")  # doctest: +SKIP
    >>> eng.predict_logits(torch.randn(4, 3, 224, 224)).shape  # doctest: +SKIP
    (4, 2)
    """
    if kind not in ENGINES:
        raise ConfigError(f"unknown engine {kind!r}; choose one of {', '.join(ENGINES)}.{closest(kind, ENGINES)}")
    if kind == "onnxruntime":
        if onnx_path is None:
            raise ConfigError("the onnxruntime engine needs an ONNX file; export one first (imgclf export MODEL).")
        return OnnxRuntimeEngine(onnx_path, device, threads)
    if model is None:
        raise ConfigError(f"the {kind} engine needs a PyTorch model (a bundle), not only an ONNX file.")
    return TorchEngine(model, device) if kind == "torch" else TorchFastEngine(model, device, compile)
