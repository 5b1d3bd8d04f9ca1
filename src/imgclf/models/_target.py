"""The layer attribution methods (Grad-CAM and friends) read, found without hand-written layer names.

ViT-style models (timm's ``blocks`` + ``patch_embed``, torchvision's ViT) use the last block's first norm, whose
output is ``(B, N, D)`` tokens with ``num_prefix_tokens`` class/register tokens first. CNNs use the last module
of the feature extractor whose output is the final ``(B, C, h, w)`` map, found by one probe forward pass.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass

import torch
from torch import nn

from imgclf.errors import ModelError
from imgclf.models._adapters import TorchvisionAdapter
from imgclf.models._inspect import probe_input

_PASS_THROUGH = (nn.Identity, nn.Dropout)


@dataclass(frozen=True)
class TargetLayer:
    """A submodule of the model to hook: ``kind`` "cnn" (``(B, C, h, w)`` output) or "vit" (``(B, N, D)`` tokens,
    or a channels-last ``(B, h, w, D)`` grid), and how many prefix tokens precede the patch tokens."""

    module: nn.Module
    kind: str
    num_prefix_tokens: int

    def to_dict(self) -> dict:
        return {"module": type(self.module).__name__, "kind": self.kind, "num_prefix_tokens": self.num_prefix_tokens}


def _token_block(model: nn.Module) -> nn.Module | None:
    if isinstance(model, TorchvisionAdapter) or callable(getattr(model, "token_block", None)):
        return model.token_block()  # wrappers that know their last transformer block (torchvision, open_clip)
    blocks = getattr(model, "blocks", None)
    if hasattr(model, "patch_embed") and isinstance(blocks, nn.Sequential | nn.ModuleList) and len(blocks) > 0:
        last = blocks[-1]
        return None if isinstance(last, nn.Sequential | nn.ModuleList) else last
    return None


def _probe_size(model: nn.Module) -> int | None:
    """A fixed-size patch embedding's image size (directly built ViTs carry no data config), else None."""
    size = getattr(getattr(model, "patch_embed", None), "img_size", None)
    if isinstance(size, tuple | list) and size:
        return int(size[0])
    return int(size) if isinstance(size, int) else None


def _probe(model: nn.Module) -> tuple[list[tuple[nn.Module, torch.Tensor]], torch.Tensor | None]:
    """Run the features once on a zero image in eval mode; return (module, output) in completion order.

    Models without ``forward_features`` run their whole forward; the final features are then unknown (None).
    The hooks record only this thread's pass, so another thread running the same model (a server answering
    predictions) cannot slip its modules into the list; a model already in eval mode is not switched at all.
    """
    calls: list[tuple[nn.Module, torch.Tensor]] = []
    me = threading.get_ident()

    def hook(module: nn.Module, args: object, output: object) -> None:
        if isinstance(output, torch.Tensor) and threading.get_ident() == me:
            calls.append((module, output))

    x = probe_input(model, _probe_size(model))
    features = getattr(model, "forward_features", None)
    modes = {m: m.training for m in model.modules()}
    handles = [m.register_forward_hook(hook) for m in model.modules() if m is not model]
    try:
        if any(modes.values()):
            model.eval()
        with torch.no_grad():
            final = features(x) if callable(features) else model(x)
    finally:
        for h in handles:
            h.remove()
        if any(modes.values()):
            for m, training in modes.items():
                m.training = training
    if not callable(features):
        return calls, None
    if not isinstance(final, torch.Tensor):
        raise ModelError(f"{type(model).__name__}.forward_features returned {type(final).__name__}, not a tensor")
    return calls, final


def _descend(module: nn.Module, out: torch.Tensor, last_out: dict[int, torch.Tensor]) -> nn.Module:
    """From a plain Sequential stage down to its last block when that block produced the same tensor.

    Parameter-free leaves (activations, pools) are not descended into: a hook on an in-place ReLU breaks
    full backward hooks, and the stage's output is the same tensor anyway.
    """
    while type(module) is nn.Sequential and len(module) > 0:
        last = module[-1]
        if last_out.get(id(last)) is not out or next(last.parameters(), None) is None:
            break
        module = last
    return module


def target_layer(model: nn.Module) -> TargetLayer:
    """The layer CAM-style attributions should read, found automatically.

    CNNs: the last module producing the final 4D feature map (the last stage's last block).
    ViT-style: the last block's ``norm1`` (``ln_1`` for torchvision) with the model's ``num_prefix_tokens``.

    >>> layer = target_layer(create_model("resnet20_cifar", 10))  # doctest: +SKIP
    >>> layer.kind, type(layer.module).__name__  # doctest: +SKIP
    ('cnn', 'BasicBlock')
    """
    inner = getattr(model, "target_model", None)  # wrappers (ensembles, TTA) name the network to attribute
    if isinstance(inner, nn.Module):
        return target_layer(inner)
    block = _token_block(model)
    if block is not None:
        norm = getattr(block, "norm1", None)
        norm = norm if isinstance(norm, nn.Module) else getattr(block, "ln_1", None)
        if isinstance(norm, nn.Module):  # timm / torchvision ViT blocks: tokens (B, N, D) in, pre-attention norm
            return TargetLayer(norm, "vit", int(getattr(model, "num_prefix_tokens", 0)))
    calls, final = _probe(model)
    last_out = {id(m): out for m, out in calls}
    n_calls = Counter(id(m) for m, _ in calls)
    once = [(m, out) for m, out in calls if n_calls[id(m)] == 1 and not isinstance(m, _PASS_THROUGH)]
    if final is None or final.dim() == 4:
        same = [(m, o) for m, o in once if final is not None and o.shape == final.shape]
        maps = same or [(m, o) for m, o in once if o.dim() == 4 and o.shape[-1] * o.shape[-2] > 1]
        if maps:
            module, out = maps[-1]
            channels_last = str(getattr(model, "output_fmt", "NCHW")).endswith("NHWC")
            return TargetLayer(_descend(module, out, last_out), "vit" if channels_last else "cnn", 0)
    if final is not None and final.dim() == 3:
        if block is not None and getattr(last_out.get(id(block)), "shape", None) == final.shape:
            return TargetLayer(block, "vit", int(getattr(model, "num_prefix_tokens", 0)))
        tokens = [(m, o) for m, o in once if o.dim() == 3 and o.shape == final.shape]
        blocks = [t for t in tokens if "block" in type(t[0]).__name__.lower()]
        if blocks or tokens:
            return TargetLayer((blocks or tokens)[-1][0], "vit", int(getattr(model, "num_prefix_tokens", 0)))
    shape = "unknown" if final is None else tuple(final.shape)
    raise ModelError(
        f"cannot find a target layer in {type(model).__name__}: its features have shape {shape} and no "
        "submodule produces a feature map or token sequence. Pass the layer to attribution methods explicitly."
    )
