"""Image-processing kernels on batched tensors ``(B, C, H, W)``: convolutions, blurs, warps and fractal noise.

Spatial sizes given in ImageNet-C pixels (images of 224 px) are scaled by :func:`size_scale` so a corruption
looks the same relative to the content at any resolution, down to 28 px.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

REFERENCE_SIZE = 224  # the image size ImageNet-C's parameters were chosen for


def size_scale(x: torch.Tensor) -> float:
    """``min(H, W) / 224``: the factor that maps ImageNet-C pixel sizes onto this batch."""
    return min(x.shape[-2:]) / REFERENCE_SIZE


def scaled_px(reference_px: float, x: torch.Tensor, floor: float = 0.5) -> float:
    """An ImageNet-C size in pixels scaled to this batch, lifted smoothly (added in quadrature to ``floor``)
    so that blurs stay visible on 28-px images while sizes well above a pixel are left as they are."""
    return math.hypot(reference_px * size_scale(x), floor)


def conv_per_image(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Convolve every channel of image ``b`` with ``kernels[b]`` ``(k, k)`` (odd k), replicate padding.

    ``kernels`` may also be one ``(k, k)`` kernel for the whole batch.
    """
    b, c, h, w = x.shape
    if kernels.dim() == 2:
        kernels = kernels.expand(b, -1, -1)
    k = kernels.shape[-1]
    weight = kernels.to(x).repeat_interleave(c, dim=0).unsqueeze(1)  # (B*C, 1, k, k)
    padded = F.pad(x.reshape(1, b * c, h, w), (k // 2,) * 4, mode="replicate")  # (1, B*C, H+k-1, W+k-1)
    return F.conv2d(padded, weight, groups=b * c).reshape(b, c, h, w)


def gaussian_kernel1d(sigma: float) -> torch.Tensor:
    """Normalised 1-D Gaussian of standard deviation ``sigma`` pixels, radius ``ceil(3 sigma)`` (at least 1)."""
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-(t**2) / (2 * max(sigma, 1e-6) ** 2))
    return (kernel / kernel.sum()).float()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(B, C, H, W)`` with ``sigma`` in pixels (replicate padding)."""
    kernel = gaussian_kernel1d(sigma).to(x)
    r = kernel.numel() // 2
    b, c, h, w = x.shape
    flat = x.reshape(b * c, 1, h, w)
    flat = F.conv2d(F.pad(flat, (r, r, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    flat = F.conv2d(F.pad(flat, (0, 0, r, r), mode="replicate"), kernel.view(1, 1, -1, 1))
    return flat.reshape(b, c, h, w)


def disk_kernel(radius: float, supersample: int = 8) -> torch.Tensor:
    """An anti-aliased disk of ``radius`` pixels (fractional radii work), normalised to sum 1."""
    half = max(1, math.ceil(radius))
    n = (2 * half + 1) * supersample
    t = (torch.arange(n, dtype=torch.float64) + 0.5) / supersample - (half + 0.5)
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    inside = ((xx**2 + yy**2) <= max(radius, 0.5 / supersample) ** 2).double()
    kernel = F.avg_pool2d(inside[None, None], supersample)[0, 0]  # (2*half+1, 2*half+1) coverage
    return (kernel / kernel.sum()).float()


def motion_kernel(length: float, sigma: float, angle_deg: float) -> torch.Tensor:
    """One-sided motion-blur kernel (as ImageMagick's ``-motion-blur``): Gaussian weights along a ray of
    ``length`` pixels at ``angle_deg``, splatted bilinearly onto an odd square grid, normalised to sum 1."""
    half = max(1, math.ceil(length))
    size = 2 * half + 1
    kernel = torch.zeros(size, size, dtype=torch.float64)
    n = max(2, math.ceil(4 * length) + 1)
    t = torch.linspace(0.0, length, n, dtype=torch.float64)
    weights = torch.exp(-(t**2) / (2 * max(sigma, 1e-6) ** 2))
    rad = math.radians(angle_deg)
    px, py = half + t * math.cos(rad), half - t * math.sin(rad)
    x0, y0 = px.floor(), py.floor()
    for dx in (0, 1):
        for dy in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            share = (1 - (px - xi).abs()) * (1 - (py - yi).abs()) * weights
            ok = (xi >= 0) & (xi < size) & (yi >= 0) & (yi < size)
            kernel.index_put_((yi[ok].long(), xi[ok].long()), share[ok], accumulate=True)
    return (kernel / kernel.sum()).float()


def warp(x: torch.Tensor, flow: torch.Tensor, padding_mode: str = "reflection") -> torch.Tensor:
    """Sample ``x`` ``(B, C, H, W)`` at pixel positions shifted by ``flow`` ``(B, H, W, 2)`` (dx, dy in pixels),
    bilinearly."""
    b, _, h, w = x.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, device=x.device, dtype=x.dtype), torch.arange(w, device=x.device, dtype=x.dtype), indexing="ij"
    )
    px = xs + flow[..., 0].to(x)  # (B, H, W)
    py = ys + flow[..., 1].to(x)
    grid = torch.stack((2 * px / max(w - 1, 1) - 1, 2 * py / max(h - 1, 1) - 1), dim=-1)  # (B, H, W, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding_mode, align_corners=True)


def zoom_center(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Zoom into the centre of ``(B, C, H, W)`` by ``factor`` (> 1 magnifies), keeping the size."""
    b = x.shape[0]
    theta = torch.tensor([[1 / factor, 0, 0], [0, 1 / factor, 0]], dtype=x.dtype, device=x.device)
    grid = F.affine_grid(theta.expand(b, 2, 3), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def resize(x: torch.Tensor, size: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """Resize ``(B, C, H, W)`` to ``size`` (``area`` for shrinking, ``nearest`` or ``bilinear`` otherwise)."""
    if mode in ("nearest", "area"):
        return F.interpolate(x, size=size, mode=mode)
    return F.interpolate(x, size=size, mode=mode, align_corners=False)


def plasma_fractal(size: int, decay: float, rng: np.random.Generator) -> np.ndarray:
    """Diamond-square plasma fractal ``(N, N)`` in [0, 1], ``N`` the power of two >= ``size`` (ImageNet-C's fog).

    ``decay`` divides the random amplitude at each octave: larger values give smoother clouds.
    """
    n = 1 << max(2, math.ceil(math.log2(max(size, 2))))
    maparray = np.zeros((n, n), dtype=np.float64)
    step, wibble = n, 100.0

    def wibbled(array: np.ndarray) -> np.ndarray:
        return array / 4 + wibble * rng.uniform(-wibble, wibble, array.shape)

    while step >= 2:
        half = step // 2
        # squares: each square's centre is the mean of its four corners plus noise
        corners = maparray[0:n:step, 0:n:step]
        square = corners + np.roll(corners, -1, axis=0)
        square = square + np.roll(square, -1, axis=1)
        maparray[half:n:step, half:n:step] = wibbled(square)
        # diamonds: each edge midpoint is the mean of its two corners and two neighbouring centres plus noise
        centres = maparray[half:n:step, half:n:step]
        top = centres + np.roll(centres, 1, axis=0) + corners + np.roll(corners, -1, axis=1)
        maparray[0:n:step, half:n:step] = wibbled(top)
        left = centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=0)
        maparray[half:n:step, 0:n:step] = wibbled(left)
        step //= 2
        wibble /= decay
    maparray -= maparray.min()
    return maparray / max(maparray.max(), 1e-12)
