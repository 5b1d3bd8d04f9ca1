"""Grad-CAM (Selvaraju et al. 2017) and Grad-CAM++ (Chattopadhay et al. 2018) through forward hooks.

One code path serves CNNs and ViT-style models: the hooked layer's output and its gradient are both turned into
``(B, C, h, w)`` grids by :func:`to_grid` (tokens reshaped to the patch grid, prefix tokens dropped) before the
channel weighting, which Captum's LayerGradCam cannot do for tokens.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from imgclf.errors import ModelError
from imgclf.explain._layer import ResolvedLayer, to_grid


def gradcam(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, layer: ResolvedLayer) -> torch.Tensor:
    """Grad-CAM maps ``(B, H, W)``: ReLU of the activations weighted by their spatially averaged gradients."""
    return _cam(model, images, targets, layer, _gradcam_weights)


def gradcam_plus_plus(
    model: nn.Module, images: torch.Tensor, targets: torch.Tensor, layer: ResolvedLayer
) -> torch.Tensor:
    """Grad-CAM++ maps ``(B, H, W)``: activations weighted by alpha-weighted positive gradients."""
    return _cam(model, images, targets, layer, _gradcam_pp_weights)


def _gradcam_weights(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    return grads.mean(dim=(2, 3))  # (B, C)


def _gradcam_pp_weights(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    # Closed form of the paper (eq. 19) for an exponential of the class score: only gradient powers are needed.
    # Float64 and an exact-zero test (no epsilon) keep tiny gradients from being rounded away.
    a, g = acts.double(), grads.double()  # (B, C, h, w)
    g2 = g.pow(2)
    denom = 2 * g2 + a.sum(dim=(2, 3), keepdim=True) * g2 * g
    usable = (g != 0) & (denom != 0)
    alpha = torch.where(usable, g2 / torch.where(usable, denom, torch.ones_like(denom)), 0.0)
    return (alpha * F.relu(g)).sum(dim=(2, 3)).to(acts.dtype)  # (B, C)


def _cam(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    layer: ResolvedLayer,
    weigh: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    hw = (images.shape[2], images.shape[3])
    (out, out_grad), (inp, inp_grad) = _activations_and_gradients(model, images, targets, layer)
    acts, grads = to_grid(out, layer, hw), to_grid(out_grad, layer, hw)  # (B, C, h, w) each
    if out.dim() == 3 and not grads.any() and inp is not None and inp.shape == out.shape:
        # Patch tokens leaving the last block of a class-token ViT never reach the class token, so their
        # gradient is zero; the block's input tokens (the previous block's output) do, through attention.
        acts, grads = to_grid(inp, layer, hw), to_grid(inp_grad, layer, hw)  # (B, C, h, w) each
    weights = weigh(acts, grads)  # (B, C)
    cam = F.relu((weights[:, :, None, None] * acts).sum(dim=1))  # (B, h, w)
    return F.interpolate(cam[:, None], size=hw, mode="bilinear", align_corners=False)[:, 0]  # (B, H, W)


def _activations_and_gradients(
    model: nn.Module, images: torch.Tensor, targets: torch.Tensor, layer: ResolvedLayer
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor | None, torch.Tensor | None]]:
    """Output and first input of ``layer``, each with the gradient of the summed target logits.

    The hook is scoped to this call: it records (and copies) only the forward pass run by this thread, so another
    thread using the same model at the same time neither lands in ``saved`` nor sees its output changed.
    """
    saved: list[tuple[torch.Tensor, torch.Tensor | None]] = []
    me = threading.get_ident()

    def hook(_module: nn.Module, inputs: tuple[object, ...], output: object) -> object:
        if threading.get_ident() != me:
            return None
        tensor = output[0] if isinstance(output, (tuple, list)) else output
        if not isinstance(tensor, torch.Tensor):
            return None
        first = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) and inputs[0].requires_grad else None
        saved.append((tensor, first))
        # Hand a copy downstream so that in-place ops after the layer (ReLU(inplace=True)) cannot change
        # the activation we read, nor its gradient.
        copy = tensor.clone()
        if isinstance(output, tuple):
            return (copy, *output[1:])
        if isinstance(output, list):
            return [copy, *output[1:]]
        return copy

    handle = layer.module.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            inputs = images.detach().clone().requires_grad_(True)  # makes the graph reach frozen layers
            logits = model(inputs)  # (B, K)
            if not saved:
                raise ModelError(
                    f"the target layer '{layer.name}' did not run (or returned no tensor) in the model's forward; "
                    "pick a layer that the forward pass uses."
                )
            out, inp = saved[-1]  # this call's pass (a layer run twice per forward: its last use)
            score = logits.gather(1, targets[:, None]).sum()
            wrt = [out] if inp is None else [out, inp]
            grads = torch.autograd.grad(score, wrt, allow_unused=True)
    finally:
        handle.remove()
    out_grad = grads[0] if grads[0] is not None else torch.zeros_like(out)
    if inp is None:
        return (out.detach(), out_grad.detach()), (None, None)
    inp_grad = grads[1] if grads[1] is not None else torch.zeros_like(inp)
    return (out.detach(), out_grad.detach()), (inp.detach(), inp_grad.detach())
