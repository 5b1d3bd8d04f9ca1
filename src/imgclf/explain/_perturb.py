"""Attribution methods that Captum provides: SmoothGrad, Integrated Gradients, occlusion, LIME, GradientSHAP.

Each returns a non-negative importance map ``(B, H, W)`` at the input resolution, not yet normalised. Captum
is imported inside each function (``imgclf[explain]`` extra). Baselines are the zero image of the normalised
input space, i.e. the dataset mean colour.
"""

from __future__ import annotations

from types import ModuleType

import torch
from torch import nn

from imgclf.errors import ConfigError
from imgclf.utils import optional_import


def _captum() -> ModuleType:
    return optional_import("captum.attr", "explain")


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(f"option {name} must be positive, got {value!r}.")


def _chunks(images: torch.Tensor, targets: torch.Tensor, size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Split a batch into pieces of at most ``size`` images (at least one), each with its targets."""
    size = max(1, int(size))
    return list(zip(images.split(size), targets.split(size), strict=True))


def smoothgrad(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    *,
    samples: int = 16,
    noise: float = 0.15,
    batch_size: int = 32,
) -> torch.Tensor:
    """SmoothGrad (Smilkov et al. 2017): absolute input gradients averaged over ``samples`` noisy copies.

    ``noise`` is the Gaussian standard deviation as a fraction of each image's value range; the channel
    maximum gives the map. ``batch_size`` bounds the noisy copies per forward pass.
    """
    _check_positive("samples", samples)
    _check_positive("noise", noise)
    _check_positive("batch_size", batch_size)
    captum = _captum()
    tunnel = captum.NoiseTunnel(captum.Saliency(model))
    maps = []
    for image, target in _chunks(images, targets, 1):  # one image at a time: noise scaled to its own range
        stdev = float(noise * (image.max() - image.min()).clamp_min(1e-6))
        attr = tunnel.attribute(
            image,
            nt_type="smoothgrad",
            nt_samples=int(samples),
            nt_samples_batch_size=min(int(samples), int(batch_size)),
            stdevs=stdev,
            target=target,
            abs=True,
        )  # (1, C, H, W)
        maps.append(attr.abs().amax(dim=1))  # (1, H, W)
    return torch.cat(maps)  # (B, H, W)


def integrated_gradients(
    model: nn.Module, images: torch.Tensor, targets: torch.Tensor, *, steps: int = 32, batch_size: int = 32
) -> torch.Tensor:
    """Integrated Gradients (Sundararajan et al. 2017) from the mean-colour baseline in ``steps`` steps.

    The map is the absolute value of the channel sum, as Captum's visualiser shows it. ``batch_size`` bounds
    the path points per forward pass.
    """
    _check_positive("steps", steps)
    _check_positive("batch_size", batch_size)
    captum = _captum()
    explainer = captum.IntegratedGradients(model)
    maps = []
    for chunk, target in _chunks(images, targets, max(1, batch_size // 2)):
        attr = explainer.attribute(
            chunk,
            baselines=torch.zeros_like(chunk),
            target=target,
            n_steps=int(steps),
            internal_batch_size=max(int(batch_size), 2 * len(chunk)),
        )  # (b, C, H, W)
        maps.append(attr.sum(dim=1).abs())  # (b, H, W)
    return torch.cat(maps)  # (B, H, W)


def occlusion(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    *,
    window: int | None = None,
    stride: int | None = None,
    batch_size: int = 32,
) -> torch.Tensor:
    """Occlusion (Zeiler & Fergus 2014): drop of the target logit when a ``window`` square is set to the mean.

    Defaults: window = 1/8 of the shorter side, stride = half the window. Only drops (positive evidence) count.
    ``batch_size`` bounds the occluded images per forward pass.
    """
    h, w = images.shape[2], images.shape[3]
    window = int(window) if window is not None else max(2, min(h, w) // 8)
    stride = int(stride) if stride is not None else max(1, window // 2)
    _check_positive("window", window)
    _check_positive("stride", stride)
    _check_positive("batch_size", batch_size)
    if window > min(h, w):
        raise ConfigError(f"occlusion window {window} is larger than the {h}x{w} input; choose a smaller window.")
    captum = _captum()
    explainer = captum.Occlusion(model)
    maps = []
    for chunk, target in _chunks(images, targets, batch_size):
        attr = explainer.attribute(
            chunk,
            sliding_window_shapes=(images.shape[1], window, window),
            strides=(images.shape[1], stride, stride),
            baselines=0.0,
            target=target,
            perturbations_per_eval=max(1, int(batch_size) // len(chunk)),
        )  # (b, C, H, W)
        maps.append(attr.sum(dim=1).clamp_min(0))  # (b, H, W)
    return torch.cat(maps)  # (B, H, W)


def lime(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    *,
    samples: int = 100,
    segments: int = 49,
    superpixels: str = "slic",
    batch_size: int = 32,
) -> torch.Tensor:
    """LIME (Ribeiro et al. 2016) over superpixels: ``samples`` random on/off maskings fit a ridge linear model.

    ``superpixels`` is ``"slic"`` (scikit-image SLIC, about ``segments`` regions) or ``"grid"`` (a square grid
    of about ``segments`` cells). Only positive coefficients count.
    """
    _check_positive("samples", samples)
    _check_positive("batch_size", batch_size)
    captum = _captum()
    linear_model = optional_import("captum._utils.models.linear_model", "explain")
    # Ridge rather than Captum's default Lasso: with few samples Lasso often zeroes every coefficient.
    explainer = captum.Lime(model, interpretable_model=linear_model.SkLearnRidge(alpha=1.0))
    maps = []
    for i in range(images.shape[0]):
        image = images[i : i + 1]  # (1, C, H, W)
        mask = superpixel_mask(image[0], segments=segments, method=superpixels)  # (H, W)
        attr = explainer.attribute(
            image,
            target=targets[i : i + 1],
            baselines=0.0,
            feature_mask=mask[None, None],
            n_samples=int(samples),
            perturbations_per_eval=int(batch_size),
        )  # (1, C, H, W)
        maps.append(attr[0, 0].clamp_min(0))  # every channel of a superpixel holds the same coefficient
    return torch.stack(maps)  # (B, H, W)


def shap(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    *,
    samples: int = 32,
    noise: float = 0.1,
    batch_size: int = 32,
) -> torch.Tensor:
    """GradientSHAP (Lundberg & Lee 2017; expected gradients): SHAP values approximated from ``samples``
    random points between the input and a baseline distribution (the mean colour and four noise images).

    ``noise`` is the standard deviation added to each sample (fraction of the image's value range); the map
    is the absolute value of the channel sum. ``batch_size`` bounds the samples per forward pass.
    """
    _check_positive("samples", samples)
    _check_positive("batch_size", batch_size)
    if noise < 0:
        raise ConfigError(f"option noise must be >= 0, got {noise!r}.")
    captum = _captum()
    generator = torch.Generator().manual_seed(0)  # the same baselines on every call
    noise_baselines = 0.5 * torch.randn((4, *images.shape[1:]), generator=generator)  # (4, C, H, W)
    baselines = torch.cat([torch.zeros_like(images[:1]), noise_baselines.to(images)])  # (5, C, H, W)
    explainer = captum.GradientShap(model)
    maps = []
    for image, target in _chunks(images, targets, 1):  # Captum expands each image ``samples`` times at once
        span = float((image.max() - image.min()).clamp_min(1e-6))
        total = torch.zeros_like(image)  # (1, C, H, W)
        for n in _split_count(int(samples), int(batch_size)):
            attr = explainer.attribute(image, baselines=baselines, target=target, n_samples=n, stdevs=noise * span)
            total += attr * n
        maps.append((total / samples).sum(dim=1).abs())  # (1, H, W)
    return torch.cat(maps)  # (B, H, W)


def _split_count(total: int, size: int) -> list[int]:
    """``total`` as a list of parts of at most ``size``: _split_count(70, 32) == [32, 32, 6]."""
    return [min(size, total - start) for start in range(0, total, size)]


def superpixel_mask(image: torch.Tensor, *, segments: int = 49, method: str = "slic") -> torch.Tensor:
    """Integer region labels ``(H, W)`` numbered from 0 for one image ``(C, H, W)``: SLIC or a square grid.

    SLIC falls back to the grid when it finds fewer than a quarter of the requested regions (it merges
    texture-free or noise-like images into a few blobs, which would leave LIME nothing to compare).
    """
    _check_positive("segments", segments)
    if method not in ("slic", "grid"):
        raise ConfigError(f"superpixels must be 'slic' or 'grid', got {method!r}.")
    h, w = image.shape[1], image.shape[2]
    if method == "slic":
        segmentation = optional_import("skimage.segmentation", "explain")
        pixels = image.detach().permute(1, 2, 0).float().cpu()  # (H, W, C)
        # SLIC's colour conversion expects values in [0, 1], not normalised inputs.
        pixels = ((pixels - pixels.min()) / (pixels.max() - pixels.min()).clamp_min(1e-6)).numpy()
        labels = segmentation.slic(
            pixels,
            n_segments=int(segments),
            compactness=10.0,
            start_label=0,
            channel_axis=-1 if pixels.shape[2] > 1 else None,
        )
        _, labels = torch.unique(torch.as_tensor(labels, dtype=torch.long), return_inverse=True)  # 0..K-1
        if int(labels.max()) + 1 >= max(2, segments // 4):
            return labels.to(image.device)  # (H, W)
    side = max(1, round((h * w / segments) ** 0.5))
    rows = torch.arange(h, device=image.device) // side  # (H,)
    cols = torch.arange(w, device=image.device) // side  # (W,)
    n_cols = (w + side - 1) // side
    return rows[:, None] * n_cols + cols[None, :]  # (H, W)
